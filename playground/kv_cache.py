"""A preallocated key/value cache: prefill once, then append one token per step."""
from __future__ import annotations

import torch


class LayerCache:
    """Keys and values of one layer, ``(B, H, max_len, D)``, filled up to ``length``."""

    def __init__(self, owner: "KVCache", keys: torch.Tensor, values: torch.Tensor) -> None:
        self.owner = owner
        self.keys = keys
        self.values = values

    @property
    def length(self) -> int:
        return self.owner.length

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k, v`` (B, H, T, D) after the cached ones; return all so far (B, H, L+T, D)."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.keys.shape[2]:
            raise ValueError(f"KV cache full: {end} > {self.keys.shape[2]} positions")
        self.keys[:, :, start:end] = k
        self.values[:, :, start:end] = v
        return self.keys[:, :, :end], self.values[:, :, :end]


class _Filled:
    """How many positions of a preallocated cache hold keys and values."""

    length: int
    max_len: int

    def advance(self, n: int) -> None:
        self.length += n

    def reset(self) -> None:
        self.length = 0


class KVCache(_Filled):
    """Per-layer caches for the book model's forward (``model(idx, cache)``)."""

    def __init__(self, n_layers: int, batch_size: int, n_heads: int, max_len: int, head_dim: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        shape = (batch_size, n_heads, max_len, head_dim)
        self.length = 0
        self.max_len = max_len
        self.layers = [
            LayerCache(self, torch.empty(shape, device=device, dtype=dtype),
                       torch.empty(shape, device=device, dtype=dtype))
            for _ in range(n_layers)
        ]


class FusedKVCache(_Filled):
    """Keys and values of every layer for the fast path: ``kv[i]`` is ``(B, 2, H, max_len, D)``.

    Keys and values of a layer sit side by side so one copy stores both.
    """

    def __init__(self, n_layers: int, batch_size: int, n_heads: int, max_len: int, head_dim: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.length = 0
        self.max_len = max_len
        self.kv = [torch.empty((batch_size, 2, n_heads, max_len, head_dim), device=device, dtype=dtype)
                   for _ in range(n_layers)]
