"""The ablation's two greedy continuations on the fast decoder's prepared weights, where they are ready.

:func:`.ablation.ablate` continues the prompt greedily twice, intact and ablated. Through the book's modules
each step reads every weight in ``nn.Linear``'s layout; the fast decoder holds the same fp32 weights laid out
for this CPU (:mod:`playground.fast_decode`). Here both continuations run as one batch of two rows of its
forward, row 1 edited as the hooks would edit it: the ablated heads' columns of the merged context vectors
zeroed before ``out_proj``, the ablated MLPs' outputs zeroed. Same numbers up to float rounding (tested).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..fast_decode import ready_fast_weights
from ..model import GPTModel

Head = tuple[int, int]


def fast_pair_forward(model: GPTModel, max_len: int, heads: Sequence[Head], mlps: Sequence[int]
                      ) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A forward for batches of two rows, row 0 intact and row 1 ablated, continuing its own cache of
    ``max_len`` positions: ``ids (2, T)`` -> last-position logits ``(2, V)``. None when the fp32 fast weights
    are not ready or the model's own forward would differ."""
    fw = ready_fast_weights(model, "fp32")
    if fw is None:
        return None
    d, e = model.cfg.head_dim, model.cfg.emb_dim
    columns: dict[int, torch.Tensor] = {}
    for layer, head in heads:
        columns[layer] = torch.cat([columns.get(layer, torch.empty(0, dtype=torch.long)),
                                    torch.arange(head * d, (head + 1) * d)])
    zeroed = set(mlps)

    def z_edit(i: int, z: torch.Tensor) -> torch.Tensor:              # (2*T, E): row 0's positions, then row 1's
        if i in columns:
            z.view(2, -1, e)[1, :, columns[i].to(z.device)] = 0
        return z

    def ff_edit(i: int, out: torch.Tensor) -> torch.Tensor:           # (2*T, E)
        if i in zeroed:
            out.view(2, -1, e)[1] = 0
        return out
    cache = fw.new_cache(2, max_len)
    return lambda ids: fw.forward(ids, cache, z_edit, ff_edit if zeroed else None)
