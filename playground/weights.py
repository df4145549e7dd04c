"""Weights in safetensors only: our own self-describing format, and loading with clear errors.

Own format: tensors named as our modules (``trf_blocks.0.att.W_query.weight`` ...),
the config as JSON in the file header (``metadata["config"]``), a tied head
stored once (``out_head.weight`` omitted) and re-tied on load.

Hugging Face / OpenAI GPT-2 files are recognised by their keys and converted
by :mod:`playground.hf_convert`. Nothing is ever unpickled.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import GPTConfig
from .model import GPTModel

FORMAT_NAME = "gpt2-playground"
FORMAT_VERSION = "1"
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class WeightsError(ValueError):
    """A weights file that cannot be used; the message names the problem."""


@dataclass
class LoadedWeights:
    model: GPTModel
    layout: str            # "own" or "huggingface"
    path: Path
    metadata: dict[str, str]
    file_dtype: torch.dtype


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


def read_header(path: "str | os.PathLike") -> tuple[dict[str, str], dict[str, tuple[str, tuple[int, ...]]]]:
    """Metadata and ``{key: (dtype, shape)}`` from the header alone, after sanity checks.

    Reads only the header, so a bad file is rejected before anything is loaded.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise WeightsError(f"cannot open the weights file {path.name}: {e.strerror or e}") from e
    except ValueError:     # a NUL byte in the name
        raise WeightsError("the weights file name is not a valid file name") from None
    if path.is_dir():
        raise WeightsError(f"{path.name} is a folder, not a weights file")
    if size == 0:
        raise WeightsError(f"{path.name} is empty (0 bytes)")
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise WeightsError(f"{path.name} is not a safetensors file: only {size} bytes")
        if head[:2] == b"PK":
            raise WeightsError(f"{path.name} is a zip archive (a PyTorch .pt/.bin checkpoint?), "
                               "not a safetensors file; only safetensors weights are accepted")
        if head[:1] == b"\x80":
            raise WeightsError(f"{path.name} is a Python pickle, not a safetensors file; "
                               "pickles are never loaded (they can run code)")
        n = int.from_bytes(head, "little")
        if n > size - 8:
            raise WeightsError(f"{path.name} is not a valid safetensors file: its header claims "
                               f"{n} bytes but the file has {size - 8} after the length field "
                               "(truncated or not safetensors)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise WeightsError(f"{path.name} is not a valid safetensors file: "
                               "its header is not JSON") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path.name} is not a valid safetensors file: its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    entries: dict[str, tuple[str, tuple[int, ...]]] = {}
    data_len = size - 8 - n
    for key, info in header.items():
        try:
            dtype, shape, (start, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise WeightsError(f"{path.name}: the header entry for {key!r} is malformed") from None
        if not (0 <= start <= end <= data_len):
            raise WeightsError(f"{path.name}: tensor {key!r} points outside the file "
                               f"(bytes {start}..{end} of {data_len}); the file is truncated or corrupt")
        entries[key] = (dtype, shape)
    if not isinstance(metadata, dict):
        metadata = {}
    return metadata, entries


def _check_values(name: str, t: torch.Tensor, fname: str) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise WeightsError(f"{fname}: tensor {name!r} has dtype {str(t.dtype).replace('torch.', '')}; "
                           "weights must be float32, float16 or bfloat16")
    # One reduction instead of a full boolean copy: NaN/inf make the sum non-finite.
    # A non-finite sum of finite values (overflow) falls through to the exact check.
    if not bool(torch.isfinite(t.sum(dtype=torch.float32))) and not bool(torch.isfinite(t).all()):
        raise WeightsError(f"{fname}: tensor {name!r} contains NaN or infinite values")


def _config_from_metadata(metadata: dict[str, str], fname: str) -> GPTConfig:
    try:
        return GPTConfig.from_json(metadata["config"])
    except KeyError:
        raise WeightsError(f"{fname}: own-format file without a config in its metadata") from None
    except (ValueError, TypeError) as e:
        raise WeightsError(f"{fname}: the config in its metadata is invalid: {e}") from None


def load_state(path: Path, names: list[str]) -> dict[str, torch.Tensor]:
    """Load the named tensors (memory-mapped by safetensors)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in names}
    except Exception as e:  # safetensors raises its own error types
        raise WeightsError(f"{path.name}: could not read tensors: {e}") from None


def check_keys(fname: str, found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]],
               what: str = "") -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise WeightsError(f"{fname}: missing key {missing[0]!r}{more}{what}")
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise WeightsError(f"{fname}: unexpected key {unexpected[0]!r}{more}{what}")
    for k, shape in expected.items():
        if tuple(found[k]) != tuple(shape):
            raise WeightsError(f"{fname}: wrong shape for {k!r}: {list(found[k])}, "
                               f"expected {list(shape)}{what}")


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
    from . import hf_convert  # local import: hf_convert imports this module

    path = Path(path)
    fname = path.name
    metadata, entries = read_header(path)
    if not entries:
        raise WeightsError(f"{fname}: the file holds no tensors")
    shapes = {k: shape for k, (_, shape) in entries.items()}
    if metadata.get("format") == FORMAT_NAME or "config" in metadata:
        layout = "own"
        cfg = _config_from_metadata(metadata, fname)
        check_keys(fname, shapes, expected_own_shapes(cfg), " for the config in its metadata")
        state = load_state(path, list(entries))
    elif hf_convert.looks_like_hf(shapes):
        layout = "huggingface"
        cfg = hf_convert.infer_config(shapes, path, n_heads=n_heads)
        hf_state = load_state(path, list(entries))
        cfg, state = hf_convert.convert(hf_state, cfg, fname)
    else:
        sample = ", ".join(sorted(entries)[:3])
        raise WeightsError(f"{fname}: not a GPT-2 checkpoint this app knows: keys like {sample} "
                           "match neither our own format nor Hugging Face GPT-2")
    for name, t in state.items():
        _check_values(name, t, fname)
    file_dtype = next(iter(state.values())).dtype
    model = build_model(cfg, state, dtype, device)
    return LoadedWeights(model, layout, path, dict(metadata), file_dtype)
