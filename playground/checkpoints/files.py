"""Checks on a weights file before anything is loaded, and the error they raise.

Every problem becomes a :class:`WeightsError` whose message names it in one
sentence (truncated, header not JSON, a pickle in disguise, wrong dtype, NaN).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import safe_open

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class WeightsError(ValueError):
    """A weights file that cannot be used; the message names the problem."""


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


def check_values(name: str, t: torch.Tensor, fname: str) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise WeightsError(f"{fname}: tensor {name!r} has dtype {str(t.dtype).replace('torch.', '')}; "
                           "weights must be float32, float16 or bfloat16")
    # One reduction instead of a full boolean copy: NaN/inf make the sum non-finite.
    # A non-finite sum of finite values (overflow) falls through to the exact check.
    if not bool(torch.isfinite(t.sum(dtype=torch.float32))) and not bool(torch.isfinite(t).all()):
        raise WeightsError(f"{fname}: tensor {name!r} contains NaN or infinite values")


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


def sha256_file(path: "str | os.PathLike", chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (gpt2-xl is 6 GB: never read it whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
