"""Initialisation, optimizer and learning-rate schedule of a training run."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from ..model import GPTModel


def init_weights(model: GPTModel, std: float = 0.02, generator: torch.Generator | None = None) -> None:
    """GPT-2 initialisation.

    PyTorch's default ``nn.Embedding`` init is N(0, 1): with a tied head that
    gives logits of size ~sqrt(emb_dim) and a first loss far above ln(V).
    Residual projections get ``std / sqrt(2 * n_layers)`` so the residual
    stream's variance does not grow with depth.
    """
    resid_std = std / math.sqrt(2 * model.cfg.n_layers)
    for name, p in model.named_parameters():
        if name.endswith(("norm1.scale", "norm2.scale", "final_norm.scale")):
            torch.nn.init.ones_(p)
        elif p.ndim == 1:
            torch.nn.init.zeros_(p)
        elif name.endswith(("att.out_proj.weight", "ff.layers.2.weight")):
            torch.nn.init.normal_(p, 0.0, resid_std, generator=generator)
        else:
            torch.nn.init.normal_(p, 0.0, std, generator=generator)


def make_optimizer(model: GPTModel, lr: float, weight_decay: float,
                   betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.AdamW:
    """AdamW; decay only matrices (embeddings, linear weights), as in GPT-2 / nanoGPT."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=1e-8)


def lr_at(progress: float, step: int, lr: float, min_lr: float, warmup_steps: int) -> float:
    """Linear warmup over ``warmup_steps``, then cosine from ``lr`` to ``min_lr`` as progress 0 -> 1."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(max(progress, 0.0), 1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def bf16_available(device: torch.device) -> bool:
    """bf16 autocast only where the hardware computes it natively (else it is slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return False
