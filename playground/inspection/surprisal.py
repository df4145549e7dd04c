"""Surprisal: how unexpected each token of a text was to the model, in bits.

One forward pass. Position ``i - 1``'s output is the model's guess for token
``i``, so ``surprisal_bits[i] = -log2 p(token i | tokens before it)``; the
first token has no guess behind it and gets ``None``. Bits rather than nats so
the numbers read as "a coin flip is 1 bit": a token with 10 bits was about as
surprising as guessing right out of 1024 equally likely ones. Next to each
value, what the model expected instead (its top guesses) and where the true
token stood (rank 1 = the model's top guess), as CircuitsVis's
``token_log_probs`` shows on hover.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..model import GPTModel
from .export import dumps
from .inputs import LabelFn, TokenInput, TokenizerLike, eval_mode, make_label_fn, prepare

LN2 = math.log(2.0)


@dataclass(frozen=True)
class Surprisal:
    """Per-token surprisal of one prompt (after cropping; ``offset`` tokens were dropped)."""

    tokens: tuple[str, ...]                     # display labels
    token_ids: tuple[int, ...]
    surprisal_bits: tuple[float | None, ...]    # None for the first token
    top: tuple[tuple[dict, ...] | None, ...]    # [i]: the guesses made at i-1, [{token, token_id, prob}]
    rank: tuple[int | None, ...]                # [i]: rank of token i among those guesses, 1 = top
    mean_bits: float | None                     # None when there is a single token
    perplexity: float | None                    # 2 ** mean_bits
    offset: int = 0
    note: str = ""

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    def data(self) -> dict:
        return {"tokens": list(self.tokens), "token_ids": list(self.token_ids),
                "surprisal_bits": list(self.surprisal_bits),
                "top": [None if t is None else [dict(g) for g in t] for t in self.top],
                "rank": list(self.rank), "mean_bits": self.mean_bits, "perplexity": self.perplexity,
                "note": self.note}

    def to_json(self) -> str:
        return dumps(self.data())


@torch.inference_mode()
def surprisal(model: GPTModel, tokens: TokenInput, *, tokenizer: TokenizerLike | None = None,
              label_fn: LabelFn | None = None, top_k: int = 5, max_tokens: int | None = None) -> Surprisal:
    """Surprisal in bits of every token given the ones before it (one forward pass)."""
    prep = prepare(model, tokens, tokenizer=tokenizer, label_fn=label_fn, max_tokens=max_tokens)
    with eval_mode(model):
        logits = model(prep.ids)[0].float()                                   # (T, V)
    ids = prep.ids[0]                                                         # (T,)
    guesses = logits[:-1]                                                     # (T-1, V): row i-1 guesses token i
    actual = ids[1:]                                                          # (T-1,)
    logp = torch.log_softmax(guesses, dim=-1)                                 # (T-1, V)
    bits = (-logp.gather(-1, actual[:, None])[:, 0] / LN2).tolist()           # (T-1,)
    chosen = guesses.gather(-1, actual[:, None])                              # (T-1, 1)
    ranks = ((guesses > chosen).sum(-1) + 1).tolist()                         # ties share the better rank
    k = min(top_k, model.cfg.vocab_size)
    top_p, top_i = torch.topk(logp.exp(), k, dim=-1)                          # (T-1, k)
    fn = make_label_fn(model, tokenizer, label_fn)
    labels: dict[int, str] = {}

    def lab(i: int) -> str:
        if i not in labels:
            labels[i] = fn(i)
        return labels[i]

    top = [tuple({"token": lab(i), "token_id": i, "prob": p} for i, p in zip(row_i, row_p))
           for row_i, row_p in zip(top_i.tolist(), top_p.tolist())]
    mean = sum(bits) / len(bits) if bits else None
    note = prep.note
    if not bits:
        note = (note + " " if note else "") + "A single token: there is nothing before it to predict it from."
    return Surprisal(
        tokens=prep.labels, token_ids=tuple(prep.token_ids),
        surprisal_bits=(None, *bits), top=(None, *top), rank=(None, *ranks),
        mean_bits=mean, perplexity=None if mean is None else 2.0 ** mean,
        offset=prep.offset, note=note)
