"""How many rows one matrix product may hold while every row still comes out as it does alone.

A row of ``x @ W.T`` computed in a product of many rows is not always bit for bit
the row computed by itself: a matrix library picks its kernel (and with it the
order of the sums) by the number of rows. A last bit is enough to change a
sampled token after a few steps, in bf16 (rounded after every product) most of
all. The continuous batcher promises each request exactly the tokens it gets
alone, so its products hold at most as many rows as keep every row exact.

That number is measured, for the layout and machine at hand, by computing a
few random rows alone and inside products of ``n`` rows (``n`` and ``n // 2 + 1``,
since kernels change at row counts, not with the values). Measured on an Intel
Xeon with AMX (oneDNN, torch 2.13), gpt2's matrices: bf16 prepacked exact up to 32
rows, not from 33 on; int8 exact at every size tried; fp32 prepacked for eight rows
exact at every size for the 768-wide inputs but at none for ff_contract's 3072-wide.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

CANDIDATES: tuple[int, ...] = (256, 128, 64, 32, 16, 8, 4, 2)

# product(x (N, in), residual (N, out) or None) -> (N, out); residual is None when the op adds none
Product = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def rows_exact(product: Product, in_features: int, out_features: int, dtype: torch.dtype,
               device: "torch.device | str" = "cpu", with_residual: bool = False,
               candidates: Sequence[int] = CANDIDATES, seed: int = 0) -> int:
    """The largest ``n`` of ``candidates`` for which every row checked of an ``n``-row product (and of an
    ``n // 2 + 1``-row one) equals that row computed alone; 1 when none does."""
    gen = torch.Generator().manual_seed(seed)
    top = max(candidates)
    x = torch.randn(top, in_features, generator=gen).to(device, dtype)               # (top, in)
    res = torch.randn(top, out_features, generator=gen).to(device, dtype) if with_residual else None

    def rows(n: int) -> torch.Tensor:
        return product(x[:n].contiguous(), None if res is None else res[:n].contiguous())

    alone: dict[int, torch.Tensor] = {}

    def row_alone(i: int) -> torch.Tensor:
        if i not in alone:
            alone[i] = product(x[i:i + 1].contiguous(), None if res is None else res[i:i + 1].contiguous())[0]
        return alone[i]

    for n in sorted(candidates, reverse=True):
        if all(_exact(rows(m), m, row_alone) for m in {n, n // 2 + 1}):
            return n
    return 1


def _exact(out: torch.Tensor, n: int, row_alone: Callable[[int], torch.Tensor]) -> bool:
    return all(torch.equal(out[i], row_alone(i)) for i in sorted({0, n // 2, n - 1}))


def in_chunks(product: Callable[..., torch.Tensor], rows: int | None, x: torch.Tensor,
              *others: torch.Tensor) -> torch.Tensor:
    """``product(x, *others)`` with at most ``rows`` rows at a time (``others`` split alike; None: all at
    once). The pieces are as even as they can be, so none is much smaller than the others (a last
    piece of one row could run in another kernel)."""
    n = x.shape[0]
    if rows is None or n <= rows:
        return product(x, *others)
    pieces = -(-n // rows)
    bounds = [n * k // pieces for k in range(pieces + 1)]
    return torch.cat([product(x[a:b], *(o[a:b] for o in others)) for a, b in zip(bounds, bounds[1:])])


__all__ = ["CANDIDATES", "rows_exact", "in_chunks"]
