"""Why this weight: one attention row taken apart (bertviz's neuron view).

For layer ``l``, head ``h`` and query position ``t``: the head's query ``q_t`` and every key
``k_j`` (block l's ``norm1`` output times the head's slice of ``W_query`` / ``W_key``, plus
its bias when the model has ``qkv_bias``), their elementwise products ``q_t * k_j`` — one
column per key, ``head_dim`` rows, whose sum is the score — the scores ``sum(q_t * k_j) /
sqrt(head_dim)``, the causal mask (keys after ``t`` cannot be seen) and the softmax row, which
is exactly the attention weight the model uses (``attention.capture_attention``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..hooks import hooks
from ..model import GPTModel
from .export import dumps, rows_to_csv
from .inputs import LabelFn, StopForward, TokenInput, TokenizerLike, eval_mode, prepare, this_thread_only
from .neurons import check_layer


@dataclass(frozen=True)
class QKBreakdown:
    """The pieces of one attention row: ``weights[j] = softmax(where(mask, -inf, scores))[j]``."""

    layer: int
    head: int
    query: int                       # the query position t
    q: torch.Tensor                  # (D,)
    keys: torch.Tensor               # (T, D) every key, future ones included (they are masked)
    products: torch.Tensor           # (D, T) q_t * k_j, one column per key
    scores: torch.Tensor             # (T,) sum of each column / sqrt(D)
    mask: torch.Tensor               # (T,) bool, True where the key is in the future (not seen)
    weights: torch.Tensor            # (T,) the softmax row; 0 under the mask
    labels: tuple[str, ...]
    offset: int = 0
    note: str = ""

    @property
    def head_dim(self) -> int:
        return int(self.q.shape[0])

    def rows(self) -> list[dict]:
        return [{"layer": self.layer, "head": self.head, "query": self.query, "query_token": self.labels[self.query],
                 "key": j, "key_token": self.labels[j], "q_dot_k": float(self.products[:, j].sum()),
                 "score": float(self.scores[j]), "masked": bool(self.mask[j]), "weight": float(self.weights[j])}
                for j in range(len(self.labels))]

    def to_json(self) -> str:
        return dumps({"layer": self.layer, "head": self.head, "query": self.query, "labels": self.labels,
                      "q": self.q, "keys": self.keys, "products": self.products, "scores": self.scores,
                      "mask": self.mask, "weights": self.weights, "offset": self.offset, "note": self.note})

    def to_csv(self) -> str:
        return rows_to_csv(self.rows())


@torch.inference_mode()
def qk_breakdown(model: GPTModel, tokens: TokenInput, layer: int, head: int, query: int, *,
                 tokenizer: TokenizerLike | None = None, label_fn: LabelFn | None = None) -> QKBreakdown:
    """Take apart row ``query`` of head ``head`` in layer ``layer`` (negative ``query`` counts from the end).

    One forward pass, stopped at block ``layer``'s ``norm1`` output; the rest is computed here
    from the weights, so every number shown is one the reader could recompute.
    """
    layer = check_layer(model, layer)
    H = model.cfg.n_heads
    if not 0 <= int(head) < H:
        raise ValueError(f"head {head} is out of range: each layer has heads 0..{H - 1}")
    prep = prepare(model, tokens, tokenizer=tokenizer, label_fn=label_fn)
    T = prep.n_tokens
    if not -T <= int(query) < T:
        raise ValueError(f"query position {query} is out of range: the prompt has tokens 0..{T - 1}")
    t = int(query) % T
    seen: dict[str, torch.Tensor] = {}

    def stop(x: torch.Tensor, name: str) -> None:                            # x: (1, T, E)
        seen["x"] = x[0]
        raise StopForward

    with eval_mode(model), hooks(model, {f"trf_blocks.{layer}.hook_norm1": this_thread_only(stop)}):
        try:
            model(prep.ids)
        except StopForward:
            pass
    att = model.trf_blocks[layer].att
    D = att.head_dim
    cols = slice(head * D, (head + 1) * D)
    x = seen["x"]                                                            # (T, E)
    q = torch.nn.functional.linear(x[t], att.W_query.weight[cols],
                                   None if att.W_query.bias is None else att.W_query.bias[cols])   # (D,)
    keys = torch.nn.functional.linear(x, att.W_key.weight[cols],
                                      None if att.W_key.bias is None else att.W_key.bias[cols])   # (T, D)
    products = q[:, None] * keys.t()                                         # (D, T)
    scores = products.sum(0) / math.sqrt(D)                                  # (T,)
    mask = torch.arange(T, device=x.device) > t                              # (T,)
    weights = torch.softmax(scores.masked_fill(mask, -torch.inf), dim=-1)   # (T,)
    f = lambda v: v.detach().float().cpu()                                   # noqa: E731
    return QKBreakdown(layer, int(head), t, f(q), f(keys), f(products), f(scores), mask.cpu(), f(weights),
                       prep.labels, prep.offset, prep.note)
