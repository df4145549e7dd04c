"""Resumable checkpoints of a training run: model, optimizer moments, RNG states, counters.

Safetensors + JSON only (nothing is pickled). ``run_dir/checkpoint/`` is
replaced atomically, so a run killed mid-write resumes from the previous one.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..checkpoints import load_model, save_model
from ..model import GPTModel

CKPT_DIR = "checkpoint"


def start_from(model: GPTModel, weights: "str | Path") -> None:
    """Copy the parameters of a saved model with the same config into ``model``
    (``--init`` and checkpoints); another config is a ValueError naming both."""
    loaded = load_model(weights, dtype=None).model
    if loaded.cfg != model.cfg:
        raise ValueError(f"{weights}: its config {loaded.cfg.to_json()} differs from "
                         f"the run's {model.cfg.to_json()}")
    model.load_state_dict(loaded.state_dict())


@dataclass
class TrainState:
    """Everything besides tensors that a resumed run needs (saved as JSON)."""

    step: int = 0
    tokens_seen: int = 0
    elapsed_s: float = 0.0                 # training wall time over all sessions
    best_val_loss: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)   # one entry per log/eval point
    np_rng: dict[str, Any] | None = None
    finished: bool = False


def save_checkpoint(run_dir: Path, model: GPTModel, opt: torch.optim.Optimizer, state: TrainState,
                    args_dict: dict[str, Any], rng: np.random.Generator) -> Path:
    """Write ``run_dir/checkpoint/`` atomically: model.safetensors, optim.safetensors, state.json."""
    final = run_dir / CKPT_DIR
    tmp = run_dir / (CKPT_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, tmp / "model.safetensors")
    names = {id(p): n for n, p in model.named_parameters()}
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    for group in opt.param_groups:
        for p in group["params"]:
            for key, value in opt.state.get(p, {}).items():
                if torch.is_tensor(value):
                    tensors[f"{names[id(p)]}.{key}"] = value.detach().cpu().contiguous()
    save_file(tensors, str(tmp / "optim.safetensors"))
    state.np_rng = rng.bit_generator.state
    (tmp / "state.json").write_text(json.dumps({"state": state.__dict__, "args": args_dict}, indent=1))
    old = run_dir / (CKPT_DIR + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (``.old`` survives a crash between the two renames)."""
    for name in (CKPT_DIR, CKPT_DIR + ".old"):
        d = run_dir / name
        if (d / "state.json").exists():
            return d
    return None


def load_checkpoint(ckpt: Path, model: GPTModel, opt: torch.optim.Optimizer,
                    rng: np.random.Generator) -> TrainState:
    """Restore model, optimizer moments, RNGs and counters in place."""
    start_from(model, ckpt / "model.safetensors")
    tensors = load_file(str(ckpt / "optim.safetensors"))
    torch.set_rng_state(tensors.pop("rng.torch"))
    params = dict(model.named_parameters())
    for key, value in tensors.items():
        pname, _, skey = key.rpartition(".")
        opt.state[params[pname]][skey] = value.to(params[pname].device) if skey != "step" else value
    raw = json.loads((ckpt / "state.json").read_text())["state"]
    state = TrainState(**raw)
    if state.np_rng is not None:
        rng.bit_generator.state = state.np_rng
    return state
