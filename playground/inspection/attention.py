"""Attention weights out of one forward pass (the scores per head: :mod:`.head_scores`).

Capture goes through the model's hook points (``trf_blocks.{i}.att.hook_pattern``):
only the layers asked for get a hook, so only they leave the fast SDPA path,
only their weights are kept, and the forward pass stops after the last of them
(later blocks and the vocabulary-sized head are never computed). Hooks are
removed on the way out, error or not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..hooks import hooks
from ..model import GPTModel
from .export import dumps, rows_to_csv
from .fast_patterns import fast_patterns
from .inputs import (LabelFn, StopForward, TokenInput, TokenizerLike, crop, eval_mode, join_notes,
                     prepare, this_thread_only)

DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB of captured weights, then the prompt is cropped


def pattern_hook_name(layer: int) -> str:
    return f"trf_blocks.{layer}.att.hook_pattern"


# --------------------------------------------------------------------------- capture


@dataclass(frozen=True)
class AttentionCapture:
    """Softmax weights of the captured layers for one prompt.

    ``weights[i]`` belongs to layer ``layers[i]``; rows are queries, columns
    keys; each row sums to 1 and the upper triangle (future keys) is 0.
    Positions are positions in ``token_ids`` (the prompt after cropping;
    ``offset`` tokens were dropped from its front).
    """

    weights: torch.Tensor           # (L_captured, H, T, T)
    layers: tuple[int, ...]
    token_ids: tuple[int, ...]
    labels: tuple[str, ...]
    offset: int = 0
    note: str = ""

    @property
    def cropped(self) -> bool:
        return self.offset > 0

    @property
    def n_heads(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_tokens(self) -> int:
        return int(self.weights.shape[-1])

    def layer(self, layer: int) -> torch.Tensor:
        """``(H, T, T)`` weights of one model layer (its model index, not its slot)."""
        try:
            return self.weights[self.layers.index(layer)]
        except ValueError:
            raise KeyError(f"layer {layer} was not captured (captured: {list(self.layers)})") from None

    def head(self, layer: int, head: int) -> torch.Tensor:
        """``(T, T)`` weights of one head."""
        return self.layer(layer)[head]

    def rows(self, layer: int, head: int) -> list[dict]:
        """Long format, causal cells only: one row per (query, key) with its weight."""
        w = self.head(layer, head).float().cpu()
        out = []
        for q in range(self.n_tokens):
            for k in range(q + 1):
                out.append({"layer": layer, "head": head, "query": q, "key": k,
                            "query_token": self.labels[q], "key_token": self.labels[k],
                            "weight": float(w[q, k])})
        return out

    def to_json(self, layer: int | None = None, head: int | None = None) -> str:
        """JSON of all captured weights, one layer, or one head (nested lists)."""
        if layer is None:
            layers, w = list(self.layers), self.weights
        elif head is None:
            layers, w = [layer], self.layer(layer)
        else:
            layers, w = [layer], self.head(layer, head)
        return dumps({
            "layers": layers, "head": head, "token_ids": list(self.token_ids),
            "labels": list(self.labels), "offset": self.offset, "note": self.note,
            "weights": w.float().cpu().tolist(),
        })

    def to_csv(self, layer: int, head: int) -> str:
        return rows_to_csv(self.rows(layer, head))


def _resolve_layers(model: GPTModel, layers: Sequence[int] | int | None) -> tuple[int, ...]:
    n = model.cfg.n_layers
    if layers is None:
        return tuple(range(n))
    if isinstance(layers, int):
        layers = [layers]
    chosen = sorted({int(l) + n if int(l) < 0 else int(l) for l in layers})
    if not chosen or chosen[0] < 0 or chosen[-1] >= n:
        raise ValueError(f"layers must be in 0..{n - 1}, got {list(layers)}")
    return tuple(chosen)


@torch.inference_mode()
def capture_attention(model: GPTModel, tokens: TokenInput, *,
                      layers: Sequence[int] | int | None = None,
                      tokenizer: TokenizerLike | None = None, label_fn: LabelFn | None = None,
                      max_tokens: int | None = None, dtype: torch.dtype | None = None,
                      max_bytes: int = DEFAULT_MAX_BYTES, fast: bool = True) -> AttentionCapture:
    """Run the prompt once and keep the attention weights of ``layers`` (default: all).

    With ``fast`` (the default) the pass runs on the fast decoder's prepared fp32 weights when they are ready
    (:mod:`.fast_patterns`: same numbers up to float rounding), else through the hook points.

    ``layers=[3]`` keeps one ``(H, T, T)`` block and runs blocks 0..3 only —
    the call a one-layer view should make. Weights stay on the model's device
    in ``dtype`` (default: the model's). If the kept weights would exceed
    ``max_bytes``, the prompt is cropped to its last tokens that fit and
    ``note`` says so; so is a prompt longer than the context or ``max_tokens``.
    """
    chosen = _resolve_layers(model, layers)
    prep = prepare(model, tokens, tokenizer=tokenizer, label_fn=label_fn, max_tokens=max_tokens)
    dtype = dtype or model.dtype
    heads = model.cfg.n_heads
    itemsize = torch.empty((), dtype=dtype).element_size()
    fit = int(math.isqrt(max(1, max_bytes // (len(chosen) * heads * itemsize))))
    note = prep.note
    if prep.n_tokens > fit:
        note = join_notes(note, (
            f"{len(chosen)} layer(s) x {heads} heads of {prep.n_tokens}x{prep.n_tokens} weights would "
            f"exceed {max_bytes / 2**20:.3g} MiB; kept the last {fit} tokens (capture fewer layers to see more)."))
        prep = crop(prep, fit)
    t = prep.n_tokens
    out = torch.empty((len(chosen), heads, t, t), dtype=dtype, device=model.device)  # (L, H, T, T)
    last = chosen[-1]

    def keep(slot: int, layer: int):
        def fn(pattern: torch.Tensor, name: str) -> None:      # pattern: (1, H, T, T)
            out[slot].copy_(pattern[0])
            if layer == last:
                raise StopForward
        return this_thread_only(fn)

    if not (fast and dtype == model.dtype and fast_patterns(model, prep.ids, chosen, out)):
        with eval_mode(model), hooks(model, {pattern_hook_name(l): keep(i, l) for i, l in enumerate(chosen)}):
            try:
                model(prep.ids)
            except StopForward:
                pass
    return AttentionCapture(out, chosen, tuple(prep.token_ids), prep.labels,
                            offset=prep.offset, note=note)
