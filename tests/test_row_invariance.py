"""The measured bound on rows per product that keeps every row as it is alone, and the split."""
from __future__ import annotations

import torch

from playground.row_invariance import in_chunks, rows_exact

W = torch.randn(24, 16, generator=torch.Generator().manual_seed(1))


def row_by_row(x: torch.Tensor, residual) -> torch.Tensor:
    """Exact at any size: every row computed by itself."""
    return torch.stack([W @ r for r in x])


def drifts_above(limit: int):
    """Like a library that switches kernels above ``limit`` rows: the same maths, other last bits."""
    def product(x: torch.Tensor, residual) -> torch.Tensor:
        out = row_by_row(x, residual)
        return out * (1 + 2 ** -20) if x.shape[0] > limit else out
    return product


def test_the_bound_is_the_largest_size_that_keeps_rows_exact():
    assert rows_exact(row_by_row, 16, 24, torch.float32) == 256
    assert rows_exact(drifts_above(40), 16, 24, torch.float32) == 32     # the candidates: ..., 64, 32, ...
    assert rows_exact(drifts_above(20), 16, 24, torch.float32) == 16
    assert rows_exact(drifts_above(1), 16, 24, torch.float32) == 1
    # a kernel that changes between n // 2 + 1 and n rows is caught too
    assert rows_exact(drifts_above(16), 16, 24, torch.float32, candidates=(32, 16)) == 16


def test_the_residual_goes_with_its_rows():
    seen = []

    def product(x, residual):
        seen.append(residual is not None and residual.shape == (x.shape[0], 24))
        return row_by_row(x, residual) + residual
    assert rows_exact(product, 16, 24, torch.float32, with_residual=True, candidates=(8,)) == 8
    assert seen and all(seen)


def test_products_are_split_evenly_with_their_other_inputs():
    x, r = torch.arange(10.0)[:, None], torch.arange(10.0, 20.0)[:, None]
    sizes = []

    def add(a, b):
        sizes.append(a.shape[0])
        return a + b
    assert torch.equal(in_chunks(add, 4, x, r), x + r)
    assert sizes == [3, 3, 4]                                  # not 4, 4, 2
    sizes.clear()
    assert torch.equal(in_chunks(add, None, x, r), x + r) and sizes == [10]
    sizes.clear()
    in_chunks(add, 10, x, r)
    assert sizes == [10]
