"""Training the small models this app ships (``python -m playground.train``).

- ``data``: text files -> cached token streams -> random batches (plus synthetic rows);
- ``optim``: initialisation, AdamW, the learning-rate schedule;
- ``checkpoint``: resumable checkpoints (safetensors + JSON);
- ``evaluate``: held-out loss, in-context copying, the best heads;
- ``unlikelihood``: sequence-level unlikelihood against greedy loops;
- ``step``: one optimizer step (the command line's and the app's live runs');
- ``loop``: setup / step / periodic evaluation / finish;
- ``cli``: the command line; ``report``: the evaluation report (``python -m playground.train_eval``);
- ``baselines``: unigram and Kneser-Ney bigram perplexities; ``loss_plot``: SVG/HTML loss curves.
"""
