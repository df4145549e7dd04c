"""The sequences the induction score is measured on: random token ids, repeated twice.

From the second copy on, every token is predictable only by induction (find the
earlier occurrence of the current token, copy the one after it).
"""
from __future__ import annotations

from typing import Sequence

import torch


def repeated_random_tokens(vocab_size: int, seq_len: int, *, batch: int = 1, seed: int = 0,
                           generator: torch.Generator | None = None, prefix_id: int | None = None,
                           low: int = 0, high: int | None = None,
                           pool: "Sequence[int] | torch.Tensor | None" = None) -> torch.Tensor:
    """``(batch, P + 2*seq_len)``: ``[prefix_id] + r + r`` with ``r`` uniform in ``[low, high)``,
    or uniform over the ids in ``pool`` when given (e.g. the tokens a small model has seen).

    Drawn from ``generator`` if given, else from a fresh one seeded with
    ``seed`` (nothing global is touched), so the same seed gives the same
    sequence everywhere. ``high`` defaults to ``vocab_size``.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(int(seed))
    if pool is not None:
        ids = torch.as_tensor(pool, dtype=torch.long).flatten()
        if ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= vocab_size:
            raise ValueError(f"pool must hold token ids in [0, {vocab_size})")
        pick = torch.randint(0, ids.numel(), (batch, seq_len), generator=generator, device=generator.device)
        r = ids.to(pick.device)[pick]
    else:
        high = vocab_size if high is None else high
        if not 0 <= low < high <= vocab_size:
            raise ValueError(f"need 0 <= low < high <= vocab_size, got low={low}, high={high}")
        r = torch.randint(low, high, (batch, seq_len), generator=generator, device=generator.device)
    parts = [r, r]
    if prefix_id is not None:
        parts.insert(0, torch.full((batch, 1), int(prefix_id), dtype=r.dtype, device=r.device))
    return torch.cat(parts, dim=1)
