"""The one place that picks a device: the name asked for, else CUDA when present, else the CPU."""
from __future__ import annotations

import torch


def pick_device(name: str | None = None) -> str:
    """``name`` unless it is empty or ``"auto"``; otherwise ``"cuda"`` when a GPU is present, else ``"cpu"``."""
    if name and name != "auto":
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"
