"""Our own weights format: tensors named as our modules, the config in the header.

``trf_blocks.0.att.W_query.weight`` ..., the config as JSON in the safetensors
metadata (``metadata["config"]``), a tied head stored once (``out_head.weight``
omitted: safetensors refuses tensors that share memory) and re-tied on load.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..config import GPTConfig
from ..model import GPTModel
from .files import WeightsError

FORMAT_NAME = "gpt2-playground"
FORMAT_VERSION = "1"


def own_state_dict(model: GPTModel) -> dict[str, torch.Tensor]:
    """The tensors we store: parameters and persistent buffers, a tied head once."""
    state = model.state_dict()
    if model.cfg.tie_embeddings:
        state.pop("out_head.weight", None)
    return state


def save_model(model: GPTModel, path: "str | os.PathLike", dtype: torch.dtype | None = None,
               metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` in our own format; ``dtype`` casts floating tensors (e.g. fp16 to ship)."""
    path = Path(path)
    tensors = {}
    for name, t in own_state_dict(model).items():
        t = t.detach()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[name] = t.contiguous().cpu()
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": model.cfg.to_json()}
    meta.update(metadata or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)  # readable like any other file (the temp file may be created 0600)
    os.replace(tmp, path)  # never leave a half-written file under the final name
    return path


def expected_own_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor an own-format file for ``cfg`` must hold."""
    with torch.device("meta"):
        model = GPTModel(cfg)
    return {k: tuple(v.shape) for k, v in own_state_dict(model).items()}


def config_from_metadata(metadata: dict[str, str], fname: str) -> GPTConfig:
    try:
        return GPTConfig.from_json(metadata["config"])
    except KeyError:
        raise WeightsError(f"{fname}: own-format file without a config in its metadata") from None
    except (ValueError, TypeError) as e:
        raise WeightsError(f"{fname}: the config in its metadata is invalid: {e}") from None


def is_own_format(metadata: dict[str, str]) -> bool:
    return metadata.get("format") == FORMAT_NAME or "config" in metadata
