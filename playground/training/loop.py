"""The training loop in four parts: :func:`setup` (data, model, optimizer, resume),
:func:`step` (one optimizer step, :mod:`.step`'s, which the app's live runs share), :func:`periodic_eval` (held-out loss, copying,
heads) and :func:`finish` (full evaluation, weights, plot, summary).

:func:`train` strings them together; the command line (:mod:`.cli`) only parses.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..checkpoints import save_model
from ..config import GPTConfig, get_preset
from ..devices import pick_device
from ..model import GPTModel
from .checkpoint import TrainState, find_checkpoint, load_checkpoint, save_checkpoint, start_from
from .data import BatchSampler, SourceTokens, load_source, parse_weights, validation_windows
from .evaluate import copy_score, evaluate, head_summary, held_out_passages
from .loss_plot import write_loss_plot
from .optim import bf16_available, init_weights, lr_at, make_optimizer
from .step import apply_step
from .unlikelihood import unlikelihood_loss

Say = Callable[..., None]


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


@dataclass
class Run:
    """Everything one training run holds between steps."""

    args: argparse.Namespace
    argv: Sequence[str] | None
    say: Say
    device: torch.device
    amp: bool
    cfg: GPTConfig
    out: Path
    run_dir: Path
    plot_path: Path
    sources: list[SourceTokens]
    seq_len: int
    sampler: BatchSampler
    prefix_sampler: BatchSampler | None                 # text prefixes for --unlikelihood
    val_small: dict[str, torch.Tensor]                  # periodic estimate
    val_full: dict[str, torch.Tensor]                   # the final evaluation
    head_text: torch.Tensor | None                      # (T,) held-out prose for the previous-token score
    copy_passages: torch.Tensor                         # (N, L) held-out passages for the copying score
    model: GPTModel
    opt: torch.optim.Optimizer
    rng: np.random.Generator
    state: TrainState
    tokens_per_step: int
    budget_s: float | None
    window: dict[str, float] = field(default_factory=dict)   # running means between log lines

    def progress(self) -> float:
        parts = []
        if self.args.steps:
            parts.append(self.state.step / self.args.steps)
        if self.budget_s:
            parts.append(self.state.elapsed_s / self.budget_s)
        return max(parts)


def split_of(args: Any) -> dict[str, Any]:
    """What decides which documents are held out (``data.is_validation``): saved with the weights."""
    return {"seed": args.seed, "val_fraction": args.val_fraction, "doc_chars": args.doc_chars,
            "clean_whitespace": bool(args.clean_whitespace)}


def read_split(weights: "str | Path") -> dict[str, Any] | None:
    """The held-out split the weights were trained against, if they say (older files do not)."""
    try:
        from safetensors import safe_open
        with safe_open(str(weights), "pt") as f:
            training = json.loads((f.metadata() or {}).get("training", "{}"))
        return training.get("split")
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def check_same_split(args: Any, split: dict[str, Any] | None, say: Any) -> None:
    """Continuing from weights on another split would train on their held-out documents and score on
    documents they trained on: every later perplexity would be a training loss. Refused unless
    ``--new-split``; weights that do not say their split get a warning."""
    if split is None:
        say(f"note: {args.init} does not record its held-out split: if its run used another --seed, "
            f"--val-fraction or --doc-chars, its held-out documents are now training data "
            f"(the bundled model's run: --seed 1337, the defaults; weights/README.md)")
        return
    ours = split_of(args)
    differ = [k for k in ("seed", "val_fraction", "doc_chars") if split.get(k) != ours[k]]
    if differ and not getattr(args, "new_split", False):
        raise SystemExit(
            f"--init {args.init} was trained against another held-out split ("
            + ", ".join(f"{k} {split.get(k)} there, {ours[k]} here" for k in differ)
            + "): its held-out documents would become training data and every held-out score a training "
              "score. Pass the same values, or --new-split to do it anyway.")


def setup(args: argparse.Namespace, argv: Sequence[str] | None, say: Say) -> Run:
    """Data, model, optimizer; resumed from ``run_dir``'s checkpoint when there is one."""
    device = torch.device(pick_device(args.device))
    amp = args.amp == "bf16" or (args.amp == "auto" and bf16_available(device))
    overrides = {k: getattr(args, k) for k in ("context_length", "emb_dim", "n_heads", "n_layers", "drop_rate")}
    cfg = resolve_config(args.preset, args.config, overrides)
    out = Path(args.out)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / out.stem
    run_dir.mkdir(parents=True, exist_ok=True)
    plot_path = Path(args.plot) if args.plot else out.with_name(out.stem + "_loss.svg")

    sources = [load_source(f, args.val_fraction, args.seed, args.doc_chars, args.cache_dir,
                           clean_whitespace=args.clean_whitespace) for f in args.data]
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
    say("sources (train tokens, share): " + ", ".join(
        f"{s.name} {s.train.size} {sampler.shares().get(s.name, 0):.1%}" for s in sources))

    torch.manual_seed(args.seed)
    model = GPTModel(cfg)
    init_weights(model)
    if args.init:
        try:
            start_from(model, args.init)
        except ValueError as e:
            raise SystemExit(f"--init {e}") from None
        check_same_split(args, read_split(args.init), say)
        say(f"initialised from {args.init}")
    model.to(device).train()
    opt = make_optimizer(model, args.lr, args.weight_decay)
    rng = np.random.default_rng(args.seed)
    state = TrainState()
    ckpt = None if args.no_resume else find_checkpoint(run_dir)
    if ckpt is not None:
        state = load_checkpoint(ckpt, model, opt, rng)
        say(f"resumed from {ckpt} at step {state.step} ({state.tokens_seen} tokens, "
            f"{_hms(state.elapsed_s)} elapsed)")
    say(f"config {cfg.to_json()}; {model.num_parameters():,} parameters; amp bf16={amp}; "
        f"threads {torch.get_num_threads()}; device {device}")
    return Run(args=args, argv=argv, say=say, device=device, amp=amp, cfg=cfg, out=out, run_dir=run_dir,
               plot_path=plot_path, sources=sources, seq_len=seq_len, sampler=sampler,
               prefix_sampler=prefix_sampler, val_small=val_small,
               val_full=validation_windows(sources, cfg.context_length),
               head_text=next((w[0, :-1] for w in val_small.values()), None),
               copy_passages=held_out_passages(sources, min(48, cfg.context_length // 2)),
               model=model, opt=opt, rng=rng, state=state,
               tokens_per_step=args.batch_size * args.grad_accum * seq_len,
               budget_s=args.max_minutes * 60 if args.max_minutes else None)


def step(run: Run) -> tuple[float, float, float]:
    """One optimizer step (:func:`.step.apply_step`); returns (mean training loss, learning rate, share of
    greedy tokens in repeated 4-grams for --unlikelihood, else 0)."""
    args, model = run.args, run.model
    lr = lr_at(run.progress(), run.state.step, args.lr, args.min_lr, args.warmup_steps)
    batches = (run.sampler.sample(args.batch_size, run.rng) for _ in range(args.grad_accum))

    def unlikelihood() -> float:
        prefixes, _ = run.prefix_sampler.sample(args.batch_size, run.rng)
        ul, share = unlikelihood_loss(model, prefixes.to(run.device), args.ul_new, amp=run.amp,
                                      own_only=args.ul_own_only)
        (args.unlikelihood * ul).backward()
        return share

    done = apply_step(model, run.opt, lr, batches, args.grad_accum, device=run.device, amp=run.amp,
                      clip=args.clip, extra=unlikelihood if run.prefix_sampler is not None else None)
    run.state.step += 1
    run.state.tokens_seen += run.tokens_per_step
    return done.loss, lr, done.extra


def log_line(run: Run, lr: float, now: float) -> None:
    """Append the running means to the history and print one progress line."""
    w, state = run.window, run.state
    tok_s = w["tokens"] / max(now - w["t"], 1e-9)
    p = run.progress()
    eta = state.elapsed_s * (1 - p) / p if p > 0 else float("inf")
    entry = {"step": state.step, "tokens": state.tokens_seen, "elapsed_s": round(state.elapsed_s, 1), "lr": lr,
             "train_loss": w["loss"] / w["steps"], "tok_s": round(tok_s, 1)}
    line = progress_line(state.step, p, w["loss"] / w["steps"], lr, tok_s, state.elapsed_s, eta)
    if run.prefix_sampler is not None:
        entry["greedy_repeat_share"] = round(w["ul"] / w["steps"], 4)
        line += f" repeats {w['ul'] / w['steps']:.1%}"
    state.history.append(entry)
    run.say(line)


def periodic_eval(run: Run) -> None:
    """Held-out estimate, best heads and copying, into the history and the log."""
    t0 = time.perf_counter()
    model, state = run.model, run.state
    val = evaluate(model, run.val_small, run.amp, device=run.device)
    heads = head_summary(model, run.head_text, run.seq_len)
    copying = copy_score(model, run.copy_passages, device=run.device)
    state.history.append({"step": state.step, "tokens": state.tokens_seen,
                          "elapsed_s": round(state.elapsed_s, 1), "val_loss": val["all"], **heads,
                          "copy_mean_p": round(copying["mean_p"], 4), "copy_top1": round(copying["top1"], 4)})
    run.say(f"  val loss {val['all']:.4f} (ppl {math.exp(val['all']):.1f}); best heads: "
            f"previous-token {heads['previous_token_head']} {heads['previous_token']:.2f}, "
            f"induction {heads['induction_head']} {heads['induction']:.2f}; "
            f"copying p {copying['mean_p']:.3f} top-1 {copying['top1']:.2f} "
            f"[{time.perf_counter() - t0:.1f}s]")
    run.window["t"] += time.perf_counter() - t0  # keep eval time out of tok/s


def _new_window(now: float) -> dict[str, float]:
    return {"loss": 0.0, "steps": 0, "t": now, "tokens": 0, "ul": 0.0}


def train(run: Run) -> dict[str, Any]:
    """Steps until the budget is spent (or ``--stop-after``), then :func:`finish`."""
    args, state = run.args, run.state
    session_start = time.perf_counter()
    elapsed_at_start = state.elapsed_s
    last_ckpt = time.perf_counter()
    run.window = _new_window(time.perf_counter())
    session_steps = 0
    while not state.finished and run.progress() < 1.0:
        if args.stop_after is not None and session_steps >= args.stop_after:
            save_checkpoint(run.run_dir, run.model, run.opt, state, vars(args).copy(), run.rng)
            run.say(f"stopped after {session_steps} steps (step {state.step}); rerun to resume")
            return {"stopped": True, "steps": state.step, "tokens_seen": state.tokens_seen}
        loss, lr, share = step(run)
        session_steps += 1
        state.elapsed_s = elapsed_at_start + time.perf_counter() - session_start
        w = run.window
        w["loss"] += loss
        w["steps"] += 1
        w["tokens"] += run.tokens_per_step
        w["ul"] += share
        if state.step % args.log_every == 0 or run.progress() >= 1.0:
            now = time.perf_counter()
            log_line(run, lr, now)
            run.window = _new_window(now)
        if state.step % args.eval_every == 0:
            periodic_eval(run)
        if time.perf_counter() - last_ckpt > args.ckpt_minutes * 60:
            save_checkpoint(run.run_dir, run.model, run.opt, state, vars(args).copy(), run.rng)
            last_ckpt = time.perf_counter()
    return finish(run)


def finish(run: Run) -> dict[str, Any]:
    """Full held-out evaluation, the weights to ship, the loss plot, a last checkpoint, summary.json."""
    args, model, state = run.args, run.model, run.state
    val = evaluate(model, run.val_full, run.amp, device=run.device)
    state.history.append({"step": state.step, "tokens": state.tokens_seen,
                          "elapsed_s": round(state.elapsed_s, 1), "val_loss": val["all"], "final": True})
    state.best_val_loss = val["all"]
    recent = [h["train_loss"] for h in state.history if "train_loss" in h][-10:]
    train_loss = sum(recent) / len(recent) if recent else float("nan")
    state.finished = True
    save_checkpoint(run.run_dir, model, run.opt, state, vars(args).copy(), run.rng)
    save_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.save_dtype]
    summary = {
        "config": run.cfg.to_dict(), "parameters": model.num_parameters(), "steps": state.step,
        "tokens_seen": state.tokens_seen, "wall_time_s": round(state.elapsed_s, 1),
        "train_loss_last": train_loss, "val_loss": val["all"], "val_ppl": math.exp(val["all"]),
        "val_loss_by_source": {k: v for k, v in val.items() if k != "all"},
        "source_shares": run.sampler.shares(), "amp_bf16": run.amp, "device": str(run.device),
        "command": "python -m playground.train " + " ".join(sys.argv[1:] if run.argv is None else run.argv),
    }
    meta = {"training": json.dumps({**{k: summary[k] for k in ("steps", "tokens_seen", "wall_time_s",
                                                              "val_loss", "train_loss_last")},
                                    "split": split_of(run.args)})}
    save_model(model.cpu(), run.out, dtype=save_dtype, metadata=meta)
    try:
        write_loss_plot(state.history, run.plot_path, title=f"{run.out.stem}: loss")
        summary["plot"] = str(run.plot_path)
    except Exception as e:  # a missing image backend must not lose the weights
        run.say(f"could not write the loss plot {run.plot_path}: {e}")
    (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    run.say(f"done: step {state.step}, {state.tokens_seen:,} tokens, train {train_loss:.4f}, "
            f"val {val['all']:.4f} (ppl {math.exp(val['all']):.1f}); wrote {run.out}")
    return summary


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
