"""The Train tab's computation (and the ``/train_*`` endpoints): a run's settings checked into a
:class:`~playground.training.live_spec.RunSpec`, started in the server's one training line, controlled,
its model used by every tab, and its record exported. Drawing a run: :mod:`.train_draw`."""
from __future__ import annotations

import math
import uuid
from typing import Any

from ...config import GPTConfig
from ...inspection.export import dumps, rows_to_csv
from ...inspection.params import fmt_int
from ...training.live import LiveRun
from ...training.live_spec import MAX_BATCH, MAX_SEED, PRESETS, RunSpec, check, parameter_count
from ...training.registry import LineFull, TrainingLine
from .. import validate as v
from ..common import EXPORT_DIR, prune_exports
from ..state import ModelHolder
from ..validate import InputError
from . import model as model_view
from .learned import ask

TASKS = {"copy": "copy", "copying": "copy", "induction": "copy", "text": "text"}
SOURCES = {"corpus": "corpus", "corpus sample": "corpus", "yours": "yours", "your text": "yours", "pasted": "yours"}
# Every setting of a run, in the order the tab's controls and the API's arguments give them.
FIELDS = ("task", "vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "drop_rate", "qkv_bias",
          "tie_embeddings", "seed", "lr", "train_steps", "batch_size", "min_len", "max_len", "text_source", "text",
          "text_tokens", "sample_every")
LIMITS = {"vocab_size": (2, 50257), "context_length": (4, 1024), "emb_dim": (1, 1024), "n_heads": (1, 64),
          "n_layers": (1, 24), "min_len": (1, 512), "max_len": (1, 512), "text_tokens": (1, 200_000),
          "sample_every": (1, 10_000)}
LABELS = {"vocab_size": "Vocabulary size", "context_length": "Context length", "emb_dim": "Embedding dim",
          "n_heads": "Heads", "n_layers": "Layers", "min_len": "Shortest sequence", "max_len": "Longest sequence",
          "text_tokens": "Tokens of text", "sample_every": "Steps between samples"}
BUSY_TITLE = "The training line is full"


def preset_values(name: Any) -> dict[str, Any]:
    """Every field of a named preset, as the tab's controls and the API take them."""
    key = v.choice(name, "Preset", {k: k for k in PRESETS})
    spec = PRESETS[key]
    cfg = spec.config
    return {"task": spec.task, **{f: getattr(cfg, f) for f in ("vocab_size", "context_length", "emb_dim",
                                                              "n_heads", "n_layers", "drop_rate", "qkv_bias",
                                                              "tie_embeddings")},
            "seed": spec.seed, "lr": spec.lr, "train_steps": spec.steps, "batch_size": spec.batch_size,
            "min_len": spec.min_len, "max_len": spec.max_len, "text_source": "corpus" if spec.text is None else "yours",
            "text": spec.text or "", "text_tokens": spec.text_tokens, "sample_every": spec.sample_every}


def check_config(values: dict[str, Any]) -> GPTConfig:
    ints = {k: v.whole(values[k], LABELS[k], *LIMITS[k]) for k in ("vocab_size", "context_length", "emb_dim",
                                                                    "n_heads", "n_layers")}
    if ints["emb_dim"] % ints["n_heads"]:
        raise InputError(f"Embedding dim ({ints['emb_dim']:,}) must be divisible by the number of heads "
                         f"({ints['n_heads']:,}): each head gets emb_dim / heads numbers.")
    return GPTConfig(**ints, drop_rate=v.real(values["drop_rate"], "Dropout", 0.0, 0.9, default=0.0),
                     qkv_bias=v.flag(values["qkv_bias"], "QKV bias"),
                     tie_embeddings=v.flag(values["tie_embeddings"], "Tied output head"))


def check_spec(line: TrainingLine, *values: Any) -> RunSpec:
    """The run the controls (or an API call: values in :data:`FIELDS` order) ask for, or a clear InputError."""
    got = dict(zip(FIELDS, values))
    task = v.choice(got["task"], "Task", TASKS)
    cfg = check_config(got)
    source = v.choice(got["text_source"], "Text", SOURCES, default="corpus")
    text = got["text"]
    if task == "text" and source == "yours" and not isinstance(text, str):
        raise InputError("The text must be text.")
    spec = RunSpec(
        task=task, config=cfg, seed=v.whole(got["seed"], "Seed", 0, MAX_SEED, default=0),
        lr=v.real(got["lr"], "Learning rate", 0.0, 1.0, lo_open=True),
        steps=v.whole(got["train_steps"], "Steps", 1, line.limits.max_steps),
        batch_size=v.whole(got["batch_size"], "Batch size", 1, MAX_BATCH),
        min_len=v.whole(got["min_len"], LABELS["min_len"], *LIMITS["min_len"], default=8),
        max_len=v.whole(got["max_len"], LABELS["max_len"], *LIMITS["max_len"], default=32),
        text=text if task == "text" and source == "yours" else None,
        text_tokens=v.whole(got["text_tokens"], LABELS["text_tokens"], *LIMITS["text_tokens"], default=20_000),
        sample_every=v.whole(got["sample_every"], LABELS["sample_every"], *LIMITS["sample_every"], default=50))
    ask(lambda: check(spec, line.limits))
    return spec


def start(line: TrainingLine, spec: RunSpec, owner: str | None = None) -> LiveRun:
    """The run, training or in line; a full line is a plain message."""
    try:
        return line.submit(spec, owner=owner)
    except LineFull as e:
        import gradio as gr
        raise gr.Error(f"{str(e)[:1].upper()}{str(e)[1:]}.", title=BUSY_TITLE, print_exception=False) from None


def find(line: TrainingLine, run_id: Any, required: bool = True) -> LiveRun | None:
    run = line.get(run_id)
    if run is None and required:
        raise InputError("No training run with this id on this server (it was reset, its page was closed, "
                         "or newer runs replaced it). Start a new one.")
    return run


def control(line: TrainingLine, run_id: Any, action: Any) -> LiveRun:
    """Pause, resume or stop a run (an action that does not apply now changes nothing)."""
    act = v.choice(action, "Action", {"pause": "pause", "resume": "resume", "stop": "stop"})
    run = find(line, run_id)
    {"pause": run.pause, "resume": run.resume, "stop": lambda: run.stop("Stopped.")}[act]()
    return run


def parameters_line(cfg: GPTConfig) -> str:
    return (f"{cfg.n_layers} layers × {cfg.n_heads} heads, emb {cfg.emb_dim}, context {cfg.context_length}, "
            f"vocab {cfg.vocab_size:,}: **{fmt_int(parameter_count(cfg))} parameters**")


# --------------------------------------------------------------------------- the record


def curves_data(run: LiveRun, since: int = 0) -> dict[str, Any]:
    """What ``/train_curves`` returns: the run's state, its per-step curves from step ``since`` on, every
    probe's head scores, the phase change and the sample generations."""
    c = run.curves
    i = next((k for k, s in enumerate(c.steps) if s > since), len(c.steps))
    probes = list(run.probes)
    return {
        "run_id": run.id, "status": run.status, "message": run.message, "step": run.step,
        "total_steps": run.spec.steps, "seconds": round(c.seconds[-1], 3) if c.seconds else 0.0,
        "curves": {"step": c.steps[i:], "seconds": [round(s, 3) for s in c.seconds[i:]],
                   "loss": _finite(c.loss[i:]), "first_copy": _finite(c.first[i:]),
                   "repeats": _finite(c.repeats[i:])},
        "probe_steps": [p.step for p in probes],
        "previous_token": [p.previous_token.round(4).tolist() for p in probes],
        "induction": [p.induction.round(4).tolist() for p in probes],
        "phase_change": None if run.phase is None else {"step": run.phase.step,
                                                        "seconds": round(run.phase.seconds, 3)},
        "samples": [{"step": s, "text": t} for s, t in run.samples],
        "settings": run.spec.to_dict(), "parameters": parameter_count(run.spec.config),
    }


def _finite(values: list[float]) -> list[float | None]:
    return [round(x, 5) if math.isfinite(x) else None for x in values]


def run_json(run: LiveRun) -> str:
    return dumps(curves_data(run))


def run_csv(run: LiveRun) -> str:
    """One row per step: its time and losses, and at the steps the heads were measured, every head's scores."""
    c = run.curves
    probes = {p.step: p for p in run.probes}
    cfg = run.spec.config
    heads = [(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
    rows = []
    for k, step in enumerate(c.steps):
        row = {"step": step, "seconds": round(c.seconds[k], 3), "loss": c.loss[k],
               "loss_first_copy": c.first[k] if c.first else "", "loss_repeats": c.repeats[k] if c.repeats else ""}
        p = probes.get(step)
        for l, h in heads:
            row[f"previous_token_L{l}H{h}"] = float(p.previous_token[l, h]) if p else ""
            row[f"induction_L{l}H{h}"] = float(p.induction[l, h]) if p else ""
        rows.append(row)
    return rows_to_csv(rows)


def save_weights(run: LiveRun) -> str:
    """The run's weights now, in our own safetensors format, in a fresh export folder (pruned like the
    others: an hour, a few hundred files)."""
    prune_exports(EXPORT_DIR)
    folder = EXPORT_DIR / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True, exist_ok=True)
    name = f"trained-{run.spec.task}-seed{run.spec.seed}-step{run.step}.safetensors"
    return str(run.save(folder / name))


def use_model(holder: ModelHolder, run: LiveRun, allowed: bool) -> tuple[bool, str]:
    """Load the run's weights for every tab, as the Model tab loads a file (refused on a locked server)."""
    if not allowed:
        return False, ("✗ Changing the model is switched off on this server (PLAYGROUND_LOCK_MODEL=1), so the "
                       "trained model cannot replace the one everyone uses. Download it instead.")
    if run.model is None or run.step == 0:
        return False, "✗ The run has not trained a step yet: there is no model to use."
    path = save_weights(run)
    ok, message = model_view.load_weights(holder, path)
    if ok and run.spec.config.vocab_size < 50257:
        message += (f"\n\nIt knows {run.spec.config.vocab_size:,} tokens, not GPT-2's 50,257: in the other tabs "
                    f"write a prompt as token ids, e.g. 5 17 42 99 5 17 42 99.")
    return ok, message
