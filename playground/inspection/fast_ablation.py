"""The ablation's two greedy continuations on the fast decoder's prepared weights, where they are ready.

:func:`.ablation.ablate` continues the prompt greedily twice, intact and ablated. Through the book's modules
each step reads every weight in ``nn.Linear``'s layout; the fast decoder holds the same fp32 weights laid out
for this CPU (:mod:`playground.fast_decode`). Here both continuations run as one batch of two rows of its
forward, row 1 edited as the hooks would edit it: the ablated heads' columns of the merged context vectors
zeroed before ``out_proj``, the ablated MLPs' outputs zeroed. Same numbers up to float rounding (tested).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..fast_decode import fast_path_allowed, ready_fast_weights
from ..model import GPTModel

Head = tuple[int, int]


@torch.inference_mode()
def fast_greedy_pair(model: GPTModel, ids: torch.Tensor, n: int, heads: Sequence[Head], mlps: Sequence[int]
                     ) -> tuple[torch.Tensor, list[list[int]]] | None:
    """For ``ids (1, T)``: last-position logits ``(2, V)`` (row 0 intact, row 1 ablated) and each row's ``n``
    greedy tokens; None when the fp32 fast weights are not ready or the model's own forward would differ."""
    if model.dtype != torch.float32 or not fast_path_allowed(model):
        return None
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
    pair = ids.expand(2, -1)
    cache = fw.new_cache(2, ids.shape[1] + max(n, 1))
    logits = fw.forward(pair, cache, z_edit, ff_edit if zeroed else None)          # (2, V)
    first, steps = logits, []
    for step in range(n):
        nxt = torch.argmax(logits, dim=-1)                                          # (2,)
        steps.append(nxt.tolist())
        if step < n - 1:
            logits = fw.forward(nxt.unsqueeze(1), cache, z_edit, ff_edit if zeroed else None)
    return first, [list(row) for row in zip(*steps)] if steps else [[], []]
