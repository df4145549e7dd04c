"""Tiny seeded models for tests (import as ``from tests.factories import make_model``)."""
from __future__ import annotations

import torch

from playground.config import GPTConfig
from playground.model import GPTModel

TINY = GPTConfig(vocab_size=50257, context_length=32, emb_dim=32, n_heads=4, n_layers=2,
                 drop_rate=0.0, qkv_bias=True, tie_embeddings=True)


def make_model(cfg: GPTConfig = TINY, seed: int = 0) -> GPTModel:
    torch.manual_seed(seed)
    model = GPTModel(cfg).eval()
    # Larger-than-default weights so attention patterns and logits are not flat.
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.2)
    return model
