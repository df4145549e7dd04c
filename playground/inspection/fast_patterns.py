"""Attention patterns from the fast decoder's prepared weights, where they are ready.

Capturing patterns through the hook points runs the book's modules one ``nn.Linear`` at a time. The fast
decoder already holds the same fp32 weights laid out for this CPU (``W_query``/``W_key``/``W_value`` stacked
into one product, GELU and the residual adds fused: :mod:`playground.fast_decode`), prepared in the background
when a model loads. This runs its blocks with an attention that computes the pattern as the book does
(``softmax(masked(q k^T) / sqrt(D))``) and keeps it: the same numbers up to float rounding (the tests compare),
about half the time at a dozen tokens, where streaming the weights is the cost.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..fast_decode import ready_fast_weights
from ..model import GPTModel


class _Done(Exception):
    """Raised from the last kept layer's attention: nothing after it is needed."""


@torch.inference_mode()
def fast_patterns(model: GPTModel, ids: torch.Tensor, layers: Sequence[int], out: torch.Tensor) -> bool:
    """Fill ``out (len(layers), H, T, T)`` with the patterns of ``layers`` (ascending) for ``ids (1, T)`` and
    return True; False (``out`` untouched) when the fp32 fast weights are not ready or the model's own
    forward would differ (training mode, hooks attached, forced explicit attention, not float32)."""
    fw = ready_fast_weights(model, "fp32")
    if fw is None:
        return False
    t, cfg = ids.shape[1], model.cfg
    h, d, e = cfg.n_heads, cfg.head_dim, cfg.emb_dim
    slot = {layer: i for i, layer in enumerate(layers)}
    last = layers[-1]
    future = torch.ones(t, t, dtype=torch.bool, device=ids.device).triu(1)           # (T, T)
    x = F.embedding(ids[0], fw.tok_emb) + fw.pos_emb[:t]                              # (T, E)

    def attend(i: int, qkv: torch.Tensor) -> torch.Tensor:                           # qkv: (T, 3E)
        q, k, v = qkv.view(t, 3, h, d).permute(1, 2, 0, 3)                           # each (H, T, D)
        if i not in slot:
            ctx = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1)           # (H, T, D)
        else:
            scores = (q @ k.transpose(1, 2)).masked_fill(future, -torch.inf)          # (H, T, T)
            weights = torch.softmax(scores / d ** 0.5, dim=-1)
            out[slot[i]].copy_(weights)
            if i == last:
                raise _Done
            ctx = weights @ v
        return ctx.transpose(0, 1).reshape(t, e)                                      # (T, E)
    try:
        fw.blocks(x, attend)
    except _Done:
        pass
    return True
