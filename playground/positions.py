"""Positions of a forward pass, shared by the book model and the fast decode path:
the context-length check and the causal mask over cached and new keys."""
from __future__ import annotations

import torch


def check_context(end: int, context_length: int) -> None:
    """A ValueError when positions up to ``end`` do not fit the model's window."""
    if end > context_length:
        raise ValueError(f"{end} positions exceed the context length {context_length}")


def future_mask(n_query: int, n_key: int, past: int, device: torch.device | str) -> torch.Tensor:
    """``(T, Tk)`` bool, True where query i (absolute position past+i) would see a later key."""
    q_pos = torch.arange(past, past + n_query, device=device).unsqueeze(1)
    k_pos = torch.arange(n_key, device=device).unsqueeze(0)
    return k_pos > q_pos
