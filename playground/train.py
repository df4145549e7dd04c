"""Train a GPTModel on UTF-8 text files: ``python -m playground.train --data FILES... --out W``.

What the loop does, and why:
- AdamW, weight decay on matrices only (biases and LayerNorm scale/shift stay free);
- linear warmup, then cosine decay to ``--min-lr``. With ``--max-minutes`` the
  cosine runs on *wall time* rather than steps, so a run on shared cores still
  ends on time with a fully decayed learning rate;
- gradient clipping; bf16 autocast where the hardware has it (CUDA, or a CPU
  with AVX512-BF16/AMX);
- a validation loss on held-out *documents* (see :mod:`playground.train_data`);
- checkpoints (safetensors + JSON, no pickle) every few minutes; rerunning the
  same command resumes from the last one;
- optional extras for small models: rows that teach induction heads
  (``--induction-fraction``), and sequence-level unlikelihood against greedy
  loops (``--unlikelihood``, :mod:`playground.unlikelihood`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from .config import GPTConfig, get_preset
from .inspection.attention import head_scores
from .loss_plot import write_loss_plot
from .model import GPTModel
from .train_data import (DEFAULT_CACHE_DIR, BatchSampler, SourceTokens, load_source, parse_weights,
                         validation_windows)
from .unlikelihood import unlikelihood_loss
from .weights import load_model, save_model

CKPT_DIR = "checkpoint"


# --------------------------------------------------------------------------- setup

def init_weights(model: GPTModel, std: float = 0.02) -> None:
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
            torch.nn.init.normal_(p, 0.0, resid_std)
        else:
            torch.nn.init.normal_(p, 0.0, std)


def start_from(model: GPTModel, weights: "str | Path") -> None:
    """Copy the parameters of a saved model with the same config into ``model``
    (``--init`` and checkpoints); another config is a ValueError naming both."""
    loaded = load_model(weights, dtype=None).model
    if loaded.cfg != model.cfg:
        raise ValueError(f"{weights}: its config {loaded.cfg.to_json()} differs from "
                         f"the run's {model.cfg.to_json()}")
    model.load_state_dict(loaded.state_dict())


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


def resolve_config(preset: str | None, config: str | None, overrides: dict[str, Any]) -> GPTConfig:
    """``--preset NAME`` or ``--config JSON`` (inline text or a file), then field overrides."""
    if preset and config:
        raise ValueError("give --preset or --config, not both")
    if config:
        text = Path(config).read_text() if Path(config).is_file() else config
        cfg = GPTConfig.from_json(text)
    elif preset:
        cfg = get_preset(preset)
    else:
        raise ValueError("give --preset NAME or --config JSON")
    return cfg.replace(**{k: v for k, v in overrides.items() if v is not None})


# --------------------------------------------------------------------------- state

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


# --------------------------------------------------------------------------- loop pieces

def batch_loss(model: GPTModel, x: torch.Tensor, y: torch.Tensor, amp: bool) -> torch.Tensor:
    """Mean next-token cross-entropy of ``x`` -> ``y``, both ``(B, T)``."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(x)                                             # (B, T, V)
    return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())


@torch.no_grad()
def evaluate(model: GPTModel, windows: dict[str, torch.Tensor], amp: bool, batch_size: int = 16,
             device: torch.device | str = "cpu") -> dict[str, float]:
    """Mean loss per source and over all tokens (``"all"``) on fixed ``(N, T+1)`` windows."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for name, rows in windows.items():
        total, n = 0.0, 0
        for i in range(0, rows.shape[0], batch_size):
            chunk = rows[i:i + batch_size].to(device)
            x, y = chunk[:, :-1], chunk[:, 1:]
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x)
            total += float(F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum"))
            n += y.numel()
        sums[name], counts[name] = total, n
    model.train(was_training)
    out = {name: sums[name] / counts[name] for name in sums}
    out["all"] = sum(sums.values()) / max(1, sum(counts.values()))
    return out


def held_out_passages(sources: Sequence[SourceTokens], length: int = 48,
                      per_source: int = 8) -> torch.Tensor:
    """``(N, length)`` int64: evenly spaced, non-overlapping passages of each held-out stream."""
    rows = []
    for s in sources:
        count = s.val.size // length
        if count == 0:
            continue
        pick = np.linspace(0, count - 1, min(per_source, count)).round().astype(int)
        for k in pick:
            rows.append(np.asarray(s.val[k * length:(k + 1) * length], dtype=np.int64))
    if not rows:
        return torch.empty(0, length, dtype=torch.int64)
    return torch.from_numpy(np.stack(rows))


@torch.no_grad()
def copy_score(model: GPTModel, passages: torch.Tensor, batch_size: int = 16,
               device: torch.device | str = "cpu") -> dict[str, float]:
    """In-context copying on natural text: each passage ``P`` is shown twice (``P P``)
    and the model predicts the second copy.

    ``mean_p``: mean probability of the right next token at the positions of the
    second copy after its first token (``P[1:]`` given ``P`` and ``P[:k]``);
    ``top1``: how often that token is the model's top prediction. A model that
    copies scores near 1; one that only knows the language scores what its
    prior gives the text (about 0.1-0.2 for a small model).
    """
    n, length = passages.shape
    if n == 0 or 2 * length > model.cfg.context_length:
        return {"mean_p": float("nan"), "top1": float("nan"), "passages": n, "length": length}
    was_training = model.training
    model.eval()
    p_sum, top_sum, count = 0.0, 0.0, 0
    for i in range(0, n, batch_size):
        rows = passages[i:i + batch_size].to(device)                            # (B, L)
        x = torch.cat([rows, rows], dim=1)                                       # (B, 2L)
        logits = model(x[:, :-1]).float()                                        # (B, 2L-1, V)
        pred = logits[:, length:]                                                # predicts x[:, L+1:]
        target = x[:, length + 1:]                                               # (B, L-1)
        probs = pred.softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)    # (B, L-1)
        p_sum += float(probs.sum())
        top_sum += float((pred.argmax(-1) == target).sum())
        count += target.numel()
    model.train(was_training)
    return {"mean_p": p_sum / count, "top1": top_sum / count, "passages": n, "length": length}


@torch.no_grad()
def head_summary(model: GPTModel, text_ids: torch.Tensor | None, window: int | None = None) -> dict[str, Any]:
    """Best previous-token head (on ``text_ids``, else on random ids) and best induction head (on random ids
    repeated twice, as in the attention tab), to watch heads form during training.

    The random sequence is at most 100 tokens and fits twice in ``window`` (the
    training window; default the context), so a head that works within the
    windows trained so far shows up.
    """
    was_training = model.training
    model.eval()
    seq_len = min(100, (window or model.cfg.context_length) // 2)
    tokens = None if text_ids is None else text_ids.tolist()
    scores = head_scores(model, tokens, seq_len=seq_len, batch=4, seed=0)
    model.train(was_training)
    out: dict[str, Any] = {}
    for kind in ("previous_token", "induction"):
        layer, head, value = scores.top(kind, k=1)[0]
        out[kind] = round(value, 4)
        out[kind + "_head"] = f"L{layer}H{head}"
    return out


def progress_line(step: int, progress: float, loss: float, lr: float, tok_s: float,
                  elapsed: float, eta: float, width: int = 24) -> str:
    """A one-line text progress bar (works in a terminal and in a log file)."""
    filled = int(round(width * min(max(progress, 0.0), 1.0)))
    bar = "#" * filled + "." * (width - filled)
    return (f"[{bar}] {100 * progress:5.1f}% step {step:6d} loss {loss:.4f} lr {lr:.2e} "
            f"{tok_s:7.0f} tok/s elapsed {_hms(elapsed)} ETA {_hms(eta)}")


def _hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# --------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m playground.train", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data", nargs="+", required=True, help="UTF-8 text files; each file is one source")
    g.add_argument("--weight", action="append", default=[], metavar="NAME=W",
                   help="sampling weight of a source (file stem), relative to its natural share")
    g.add_argument("--val-fraction", type=float, default=0.01, help="share of documents held out")
    g.add_argument("--doc-chars", type=int, default=4000, help="documents are cut at about this size")
    g.add_argument("--repeat-fraction", type=float, default=0.0,
                   help="share of training rows in which a span of the row is repeated later "
                        "(teaches copying / induction heads); held-out windows are never changed")
    g.add_argument("--repeat-len", type=int, nargs=2, default=(8, 96), metavar=("MIN", "MAX"),
                   help="length range of the repeated span, tokens")
    g.add_argument("--repeat-random", type=float, default=0.0,
                   help="share of those spans made of random corpus tokens (predictable only by copying)")
    g.add_argument("--induction-fraction", type=float, default=0.0,
                   help="share of training rows replaced by random tokens repeated end to end "
                        "(predictable only by copying: grows induction heads)")
    g.add_argument("--induction-len", type=int, nargs=2, default=(4, 32), metavar=("MIN", "MAX"),
                   help="length range of the repeated random sequence, tokens")
    g.add_argument("--passage-fraction", type=float, default=0.0,
                   help="share of training rows in which a real passage (whole sentences) of the row "
                        "is shown again later (teaches in-context copying on natural text)")
    g.add_argument("--passage-len", type=int, nargs=2, default=(8, 96), metavar=("MIN", "MAX"),
                   help="length range of the doubled passage, tokens")
    g.add_argument("--seq-len", type=int,
                   help="training window length (default: the context length); shorter windows "
                        "make the induction rows easier to learn; validation always uses the full context")
    g.add_argument("--clean-whitespace", action="store_true",
                   help="strip indentation and cut runs of spaces in every document (train and held-out; "
                        "the split stays the same)")
    g.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    g = p.add_argument_group("model")
    g.add_argument("--preset", help="a named config from playground.config.PRESETS")
    g.add_argument("--init", metavar="WEIGHTS",
                   help="start from these weights (same config) instead of a random init; "
                        "a checkpoint in the run dir still wins")
    g.add_argument("--config", help="GPTConfig as JSON text or a JSON file")
    for name, typ in (("context_length", int), ("emb_dim", int), ("n_heads", int), ("n_layers", int),
                      ("drop_rate", float)):
        g.add_argument("--" + name.replace("_", "-"), type=typ, help=f"override {name}")
    g = p.add_argument_group("optimisation")
    g.add_argument("--unlikelihood", type=float, default=0.0, metavar="ALPHA",
                   help="add ALPHA x sequence-level unlikelihood: the model continues text prefixes "
                        "greedily and tokens of repeated 4-grams are penalised (against greedy loops)")
    g.add_argument("--ul-prefix", type=int, default=32, help="prefix tokens for --unlikelihood")
    g.add_argument("--ul-new", type=int, default=48, help="greedy tokens generated for --unlikelihood")
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--grad-accum", type=int, default=1)
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--min-lr", type=float, default=1e-4)
    g.add_argument("--warmup-steps", type=int, default=100)
    g.add_argument("--weight-decay", type=float, default=0.1)
    g.add_argument("--clip", type=float, default=1.0, help="max global gradient norm (0: off)")
    g.add_argument("--steps", type=int, help="total optimizer steps (the cosine runs over steps)")
    g.add_argument("--max-minutes", type=float,
                   help="wall-time budget; the cosine runs over time and training stops at it")
    g.add_argument("--amp", choices=("auto", "bf16", "off"), default="auto")
    g.add_argument("--seed", type=int, default=1337)
    g.add_argument("--threads", type=int, help="torch.set_num_threads")
    g.add_argument("--device", default="auto")
    g = p.add_argument_group("output")
    g.add_argument("--out", required=True, help="final weights (.safetensors)")
    g.add_argument("--run-dir", help="checkpoints and logs (default runs/<out stem>)")
    g.add_argument("--save-dtype", choices=("fp32", "fp16", "bf16"), default="fp16")
    g.add_argument("--plot", help="loss curve: .svg (self-contained), .html (interactive, plotly.js embedded) "
                        "or .png (needs kaleido); default <out stem>_loss.svg")
    g.add_argument("--log-every", type=int, default=10)
    g.add_argument("--eval-every", type=int, default=200, help="steps between validation losses")
    g.add_argument("--eval-windows", type=int, default=16, help="windows per source for periodic eval")
    g.add_argument("--ckpt-minutes", type=float, default=5.0)
    g.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    g.add_argument("--stop-after", type=int, metavar="N",
                   help="checkpoint and exit after N steps in this session (rerun to continue)")
    g.add_argument("--quiet", action="store_true")
    return p


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, train, save; returns a summary dict (also written to the run dir)."""
    args = build_parser().parse_args(argv)
    if args.steps is None and args.max_minutes is None:
        raise SystemExit("give --steps and/or --max-minutes")
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _train(args, argv)
    finally:
        torch.set_num_threads(threads)  # run() may be called in-process (tests, notebooks)


def _train(args: argparse.Namespace, argv: Sequence[str] | None) -> dict[str, Any]:
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    amp = args.amp == "bf16" or (args.amp == "auto" and bf16_available(device))

    overrides = {k: getattr(args, k) for k in ("context_length", "emb_dim", "n_heads", "n_layers", "drop_rate")}
    cfg = resolve_config(args.preset, args.config, overrides)
    out = Path(args.out)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / out.stem
    run_dir.mkdir(parents=True, exist_ok=True)
    plot_path = Path(args.plot) if args.plot else out.with_name(out.stem + "_loss.svg")

    sources: list[SourceTokens] = [load_source(f, args.val_fraction, args.seed, args.doc_chars,
                                               args.cache_dir, clean_whitespace=args.clean_whitespace)
                                   for f in args.data]
    seq_len = args.seq_len or cfg.context_length
    if not 2 <= seq_len <= cfg.context_length:
        raise SystemExit(f"--seq-len must be between 2 and the context length {cfg.context_length}, "
                         f"got {seq_len}")
    source_weights = parse_weights(args.weight)
    sampler = BatchSampler(sources, seq_len, source_weights,
                           repeat_fraction=args.repeat_fraction, repeat_len=tuple(args.repeat_len),
                           repeat_random=args.repeat_random, induction_fraction=args.induction_fraction,
                           induction_len=tuple(args.induction_len), vocab_size=cfg.vocab_size,
                           passage_fraction=args.passage_fraction, passage_len=tuple(args.passage_len))
    if args.unlikelihood < 0 or (args.unlikelihood and not (
            1 <= args.ul_prefix and 1 <= args.ul_new and args.ul_prefix + args.ul_new <= cfg.context_length)):
        raise SystemExit("--unlikelihood must be >= 0, and --ul-prefix + --ul-new within the context length")
    # Prefixes for --unlikelihood: plain text rows only (never induction rows, where copying is right).
    prefix_sampler = BatchSampler(sources, args.ul_prefix, source_weights) if args.unlikelihood else None
    val_small = validation_windows(sources, cfg.context_length, args.eval_windows)
    val_full = validation_windows(sources, cfg.context_length)
    # Previous-token score on held-out prose (the first source with a full window).
    head_text = next((w[0, :-1] for w in val_small.values()), None)          # (T,) or None
    copy_passages = held_out_passages(sources, min(48, cfg.context_length // 2))   # (N, L)
    say(f"sources (train tokens, share): " + ", ".join(
        f"{s.name} {s.train.size} {sampler.shares().get(s.name, 0):.1%}" for s in sources))

    torch.manual_seed(args.seed)
    model = GPTModel(cfg)
    init_weights(model)
    if args.init:
        try:
            start_from(model, args.init)
        except ValueError as e:
            raise SystemExit(f"--init {e}") from None
        say(f"initialised from {args.init}")
    model.to(device).train()
    opt = make_optimizer(model, args.lr, args.weight_decay)
    rng = np.random.default_rng(args.seed)
    state = TrainState()
    args_dict = vars(args).copy()
    ckpt = None if args.no_resume else find_checkpoint(run_dir)
    if ckpt is not None:
        state = load_checkpoint(ckpt, model, opt, rng)
        say(f"resumed from {ckpt} at step {state.step} ({state.tokens_seen} tokens, "
            f"{_hms(state.elapsed_s)} elapsed)")
    say(f"config {cfg.to_json()}; {model.num_parameters():,} parameters; amp bf16={amp}; "
        f"threads {torch.get_num_threads()}; device {device}")

    tokens_per_step = args.batch_size * args.grad_accum * seq_len
    budget_s = args.max_minutes * 60 if args.max_minutes else None

    def progress() -> float:
        parts = []
        if args.steps:
            parts.append(state.step / args.steps)
        if budget_s:
            parts.append(state.elapsed_s / budget_s)
        return max(parts)

    session_start = time.perf_counter()
    elapsed_at_start = state.elapsed_s
    last_ckpt = time.perf_counter()
    window_loss, window_steps, window_t, window_tokens = 0.0, 0, time.perf_counter(), 0
    window_ul = 0.0  # share of greedy tokens in repeated 4-grams (--unlikelihood)
    session_steps = 0
    while not state.finished and progress() < 1.0:
        if args.stop_after is not None and session_steps >= args.stop_after:
            save_checkpoint(run_dir, model, opt, state, args_dict, rng)
            say(f"stopped after {session_steps} steps (step {state.step}); rerun to resume")
            return {"stopped": True, "steps": state.step, "tokens_seen": state.tokens_seen}
        lr = lr_at(progress(), state.step, args.lr, args.min_lr, args.warmup_steps)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for _ in range(args.grad_accum):
            x, y = sampler.sample(args.batch_size, rng)
            loss = batch_loss(model, x.to(device), y.to(device), amp)
            (loss / args.grad_accum).backward()
            loss_sum += loss.item() / args.grad_accum
        if prefix_sampler is not None:
            prefixes, _ = prefix_sampler.sample(args.batch_size, rng)
            ul, share = unlikelihood_loss(model, prefixes.to(device), args.ul_new, amp=amp)
            (args.unlikelihood * ul).backward()
            window_ul += share
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        state.step += 1
        session_steps += 1
        state.tokens_seen += tokens_per_step
        state.elapsed_s = elapsed_at_start + time.perf_counter() - session_start
        window_loss += loss_sum
        window_steps += 1
        window_tokens += tokens_per_step

        if state.step % args.log_every == 0 or progress() >= 1.0:
            now = time.perf_counter()
            tok_s = window_tokens / max(now - window_t, 1e-9)
            p = progress()
            eta = state.elapsed_s * (1 - p) / p if p > 0 else float("inf")
            state.history.append({"step": state.step, "tokens": state.tokens_seen,
                                  "elapsed_s": round(state.elapsed_s, 1), "lr": lr,
                                  "train_loss": window_loss / window_steps, "tok_s": round(tok_s, 1)})
            line = progress_line(state.step, p, window_loss / window_steps, lr, tok_s, state.elapsed_s, eta)
            if prefix_sampler is not None:
                state.history[-1]["greedy_repeat_share"] = round(window_ul / window_steps, 4)
                line += f" repeats {window_ul / window_steps:.1%}"
            say(line)
            window_loss, window_steps, window_t, window_tokens, window_ul = 0.0, 0, now, 0, 0.0
        if state.step % args.eval_every == 0:
            t0 = time.perf_counter()
            val = evaluate(model, val_small, amp, device=device)
            heads = head_summary(model, head_text, seq_len)
            copying = copy_score(model, copy_passages, device=device)
            state.history.append({"step": state.step, "tokens": state.tokens_seen,
                                  "elapsed_s": round(state.elapsed_s, 1), "val_loss": val["all"], **heads,
                                  "copy_mean_p": round(copying["mean_p"], 4),
                                  "copy_top1": round(copying["top1"], 4)})
            say(f"  val loss {val['all']:.4f} (ppl {math.exp(val['all']):.1f}); best heads: "
                f"previous-token {heads['previous_token_head']} {heads['previous_token']:.2f}, "
                f"induction {heads['induction_head']} {heads['induction']:.2f}; "
                f"copying p {copying['mean_p']:.3f} top-1 {copying['top1']:.2f} "
                f"[{time.perf_counter() - t0:.1f}s]")
            window_t += time.perf_counter() - t0  # keep eval time out of tok/s
        if time.perf_counter() - last_ckpt > args.ckpt_minutes * 60:
            save_checkpoint(run_dir, model, opt, state, args_dict, rng)
            last_ckpt = time.perf_counter()

    # Final: full held-out evaluation, weights to ship, plot, checkpoint, summary.
    val = evaluate(model, val_full, amp, device=device)
    state.history.append({"step": state.step, "tokens": state.tokens_seen,
                          "elapsed_s": round(state.elapsed_s, 1), "val_loss": val["all"], "final": True})
    state.best_val_loss = val["all"]
    recent = [h["train_loss"] for h in state.history if "train_loss" in h][-10:]
    train_loss = sum(recent) / len(recent) if recent else float("nan")
    state.finished = True
    save_checkpoint(run_dir, model, opt, state, args_dict, rng)
    save_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.save_dtype]
    summary = {
        "config": cfg.to_dict(), "parameters": model.num_parameters(), "steps": state.step,
        "tokens_seen": state.tokens_seen, "wall_time_s": round(state.elapsed_s, 1),
        "train_loss_last": train_loss, "val_loss": val["all"], "val_ppl": math.exp(val["all"]),
        "val_loss_by_source": {k: v for k, v in val.items() if k != "all"},
        "source_shares": sampler.shares(), "amp_bf16": amp, "device": str(device),
        "command": "python -m playground.train " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    meta = {"training": json.dumps({k: summary[k] for k in ("steps", "tokens_seen", "wall_time_s",
                                                           "val_loss", "train_loss_last")})}
    save_model(model.cpu(), out, dtype=save_dtype, metadata=meta)
    try:
        write_loss_plot(state.history, plot_path, title=f"{out.stem}: loss")
        summary["plot"] = str(plot_path)
    except Exception as e:  # a missing image backend must not lose the weights
        say(f"could not write the loss plot {plot_path}: {e}")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    say(f"done: step {state.step}, {state.tokens_seen:,} tokens, train {train_loss:.4f}, "
        f"val {val['all']:.4f} (ppl {math.exp(val['all']):.1f}); wrote {out}")
    return summary


def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed memory instead of returning it to the OS.

    Each step allocates and frees ~1 GB of logits (B*T x 50257 floats). By
    default glibc serves such blocks with fresh ``mmap`` pages, so every step
    page-faults them all in again; on a small VM that kernel time was ~45% of
    the CPU and halved throughput. Same as ``MALLOC_MMAP_MAX_=0
    MALLOC_TRIM_THRESHOLD_=<huge>`` in the environment. No-op off glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def main() -> None:
    keep_freed_memory()
    run()


if __name__ == "__main__":
    main()
