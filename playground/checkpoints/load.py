"""Load any weights file this app knows: one dispatcher over our own format and HF GPT-2.

The layout is recognised from the header alone (our metadata, or HF's key
names); the tensors are checked (keys, shapes, dtype, finite values) before a
model is built, so nothing is half-loaded. Nothing is ever unpickled.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import GPTConfig
from ..model import GPTModel
from . import hf_gpt2
from .files import WeightsError, check_keys, check_values, load_state, read_header
from .own_format import config_from_metadata, expected_own_shapes, is_own_format


@dataclass
class LoadedWeights:
    model: GPTModel
    layout: str            # "own" or "huggingface"
    path: Path
    metadata: dict[str, str]
    file_dtype: torch.dtype


def build_model(cfg: GPTConfig, state: dict[str, torch.Tensor], dtype: torch.dtype | None,
                device: "torch.device | str") -> GPTModel:
    """A model holding ``state`` (converted to ``dtype``), in eval mode, without random init."""
    with torch.device("meta"):
        model = GPTModel(cfg)
    tensors = {k: (v.to(dtype) if dtype is not None else v) for k, v in state.items()}
    if cfg.tie_embeddings:
        tensors.pop("out_head.weight", None)
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    assert not unexpected, unexpected
    assert set(missing) <= {"out_head.weight"}, missing
    if cfg.tie_embeddings:
        model.out_head.weight = model.tok_emb.weight
    return model.to(device).eval()


def load_model(path: "str | os.PathLike", dtype: torch.dtype | None = torch.float32,
               device: "torch.device | str" = "cpu", n_heads: int | None = None) -> LoadedWeights:
    """Load a safetensors file in our own or Hugging Face GPT-2 layout.

    ``dtype`` None keeps the file's dtype (bit-exact round trips); the default
    upcasts fp16/bf16 files to fp32. ``n_heads`` is only needed for a Hugging
    Face file with an unusual width and no ``config.json`` beside it.
    Raises :class:`WeightsError` for anything else; nothing is half-loaded.
    """
    path = Path(path)
    fname = path.name
    metadata, entries = read_header(path)
    if not entries:
        raise WeightsError(f"{fname}: the file holds no tensors")
    shapes = {k: shape for k, (_, shape) in entries.items()}
    if is_own_format(metadata):
        layout = "own"
        cfg = config_from_metadata(metadata, fname)
        check_keys(fname, shapes, expected_own_shapes(cfg), " for the config in its metadata")
        state = load_state(path, list(entries))
    elif hf_gpt2.looks_like_hf(shapes):
        layout = "huggingface"
        cfg = hf_gpt2.infer_config(shapes, path, n_heads=n_heads)
        hf_state = load_state(path, list(entries))
        cfg, state = hf_gpt2.convert(hf_state, cfg, fname)
    else:
        sample = ", ".join(sorted(entries)[:3])
        raise WeightsError(f"{fname}: not a GPT-2 checkpoint this app knows: keys like {sample} "
                           "match neither our own format nor Hugging Face GPT-2")
    for name, t in state.items():
        check_values(name, t, fname)
    file_dtype = next(iter(state.values())).dtype
    model = build_model(cfg, state, dtype, device)
    return LoadedWeights(model, layout, path, dict(metadata), file_dtype)
