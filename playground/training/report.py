"""How good is a trained model? Held-out loss next to n-gram baselines, copying, head scores, samples.

``python -m playground.training.report`` (or ``python -m playground.train_eval``) --weights W --data FILES... [--seed S]`` prints a JSON
report. Use the same ``--data``/``--seed``/``--val-fraction``/``--doc-chars`` as
the training run, so the held-out documents are the same ones.

The baselines are fitted on the *training* tokens of every source at its
natural frequency and scored on exactly the targets the model is scored on
(the non-overlapping validation windows), so the three numbers compare.
"""
from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..checkpoints import load_model
from ..generation import generate
from ..model import GPTModel
from .baselines import bigram_nll, token_counts, unigram_nll
from .data import DEFAULT_CACHE_DIR, BatchSampler, SourceTokens, load_source, parse_weights, validation_windows
from .evaluate import copy_score, evaluate, held_out_passages

PROMPTS = ("Hello, I am", "It is a truth universally acknowledged", "The President said",
           "Once upon a time", "The meaning of life is")


def max_ngram_repeats(ids: Sequence[int], n: int = 4) -> int:
    """How often the most frequent ``n``-gram occurs in ``ids`` (1 = no repeats; 0 if too short)."""
    grams = Counter(tuple(ids[i:i + n]) for i in range(len(ids) - n + 1))
    return max(grams.values(), default=0)


def samples(model: GPTModel, prompts: Sequence[str] = PROMPTS, max_new_tokens: int = 40,
            seed: int = 0) -> list[dict[str, Any]]:
    """Greedy and sampled (T 0.8, top-k 40, fixed seed) continuations of each prompt."""
    out = []
    for prompt in prompts:
        greedy = generate(model, prompt, max_new_tokens, temperature=0.0, stop_at_eot=False)
        sampled = generate(model, prompt, max_new_tokens, temperature=0.8, top_k=40, seed=seed,
                           stop_at_eot=False)
        out.append({"prompt": prompt, "greedy": greedy.text, "sampled": sampled.text,
                    "greedy_max_4gram_repeats": max_ngram_repeats(greedy.ids, 4)})
    return out


def seen_tokens(train: Sequence[np.ndarray], min_count: int = 100, vocab: int = 50257) -> np.ndarray:
    """Token ids that occur at least ``min_count`` times in the training streams."""
    return np.nonzero(token_counts(train, vocab) >= min_count)[0]


def best_heads(model: GPTModel, text_windows: Sequence[torch.Tensor], seq_len: int = 100,
               batch: int = 8, seed: int = 0, pool: np.ndarray | None = None) -> dict[str, Any]:
    """Previous-token score (averaged over ``text_windows``) and induction score of every head.

    Uses :func:`playground.inspection.head_scores.head_scores` (hook point
    ``trf_blocks.{i}.att.hook_pattern``); induction is measured on ``seq_len``
    uniformly random tokens repeated twice, and, with ``pool``, also on random
    tokens drawn from ``pool`` only (``induction_seen``): a small corpus never
    shows the model most of the 50,257 ids, whose embeddings stay untrained.
    """
    from ..inspection.head_scores import head_scores

    prev = []
    induction = None
    for ids in text_windows:
        hs = head_scores(model, ids.tolist(), seq_len=seq_len, batch=batch, seed=seed)
        prev.append(hs.previous_token)
        induction = hs.induction
    prev_mean = torch.stack(prev).mean(0)                                     # (L, H)

    def top(grid: torch.Tensor) -> dict[str, Any]:
        i = int(grid.argmax())
        return {"layer": i // grid.shape[1], "head": i % grid.shape[1], "score": float(grid.flatten()[i])}

    out = {"previous_token": top(prev_mean), "induction": top(induction),
           "previous_token_grid": prev_mean.tolist(), "induction_grid": induction.tolist()}
    if pool is not None:
        seen = head_scores(model, seq_len=seq_len, batch=batch, seed=seed, pool=pool).induction
        out.update(induction_seen=top(seen), induction_seen_grid=seen.tolist(), pool_size=int(len(pool)))
    return out


def with_mixture(losses: dict[str, float], shares: dict[str, float]) -> dict[str, float]:
    """Add ``"mix"``: per-source losses averaged with the training mixture's shares.

    ``"all"`` weighs sources by their held-out token counts (the natural mix,
    ~40% Bible); ``"mix"`` asks how well the model does on the mixture it was
    trained to model.
    """
    total = sum(shares[k] for k in losses if k in shares)
    return {**losses, "mix": sum(losses[k] * shares[k] for k in losses if k in shares) / total}


def evaluate_weights(weights: "str | Path", sources: Sequence[SourceTokens], seed: int = 0,
                     source_weights: dict[str, float] | None = None) -> dict[str, Any]:
    """The full report for one weights file (baselines included)."""
    model = load_model(weights).model
    cfg = model.cfg
    windows = validation_windows(sources, cfg.context_length)
    shares = BatchSampler(sources, cfg.context_length, source_weights).shares()
    with torch.inference_mode():
        val = with_mixture(evaluate(model, windows, amp=False), shares)
    train = [s.train for s in sources]
    uni = with_mixture(unigram_nll(train, windows), shares)
    bi = with_mixture(bigram_nll(train, windows), shares)
    first_windows = [w[0, :-1] for name, w in windows.items() if name in ("austen", "sotu")] or \
                    [next(iter(windows.values()))[0, :-1]]
    report = {
        "weights": str(weights), "config": cfg.to_dict(), "parameters": model.num_parameters(),
        "mixture_shares": shares,
        "val_tokens": int(sum(w[:, 1:].numel() for w in windows.values())),
        "val_loss": val, "val_ppl": {k: math.exp(v) for k, v in val.items()},
        "unigram_loss": uni, "unigram_ppl": {k: math.exp(v) for k, v in uni.items()},
        "bigram_loss": bi, "bigram_ppl": {k: math.exp(v) for k, v in bi.items()},
        "copying": copy_score(model, held_out_passages(sources, min(48, cfg.context_length // 2), 64)),
        "heads": best_heads(model, first_windows, seed=seed, pool=seen_tokens(train)),
        "samples": samples(model, seed=seed),
    }
    return report


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m playground.train_eval", description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--seed", type=int, default=1337, help="the training run's --seed (it fixes the split)")
    p.add_argument("--weight", action="append", default=[], metavar="NAME=W",
                   help="the training run's source weights (for the \"mix\" average)")
    p.add_argument("--val-fraction", type=float, default=0.01)
    p.add_argument("--doc-chars", type=int, default=4000)
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    p.add_argument("--clean-whitespace", action="store_true",
                   help="the training run's --clean-whitespace (scores the cleaned held-out text)")
    p.add_argument("--threads", type=int)
    p.add_argument("--json", help="also write the report here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sources = [load_source(f, args.val_fraction, args.seed, args.doc_chars, args.cache_dir,
                           clean_whitespace=args.clean_whitespace) for f in args.data]
    report = evaluate_weights(args.weights, sources, source_weights=parse_weights(args.weight))
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
