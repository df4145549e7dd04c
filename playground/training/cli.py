"""Train a GPTModel on UTF-8 text files: ``python -m playground.train --data FILES... --out W``.

What the loop does, and why:
- AdamW, weight decay on matrices only (biases and LayerNorm scale/shift stay free);
- linear warmup, then cosine decay to ``--min-lr``. With ``--max-minutes`` the
  cosine runs on *wall time* rather than steps, so a run on shared cores still
  ends on time with a fully decayed learning rate;
- gradient clipping; bf16 autocast where the hardware has it (CUDA, or a CPU
  with AVX512-BF16/AMX);
- a validation loss on held-out *documents* (see :mod:`playground.training.data`);
- checkpoints (safetensors + JSON, no pickle) every few minutes; rerunning the
  same command resumes from the last one;
- optional extras for small models: rows that teach induction heads
  (``--induction-fraction``), rows in which a real passage is shown twice
  (``--passage-fraction``: in-context copying on natural text), and
  sequence-level unlikelihood against greedy loops (``--unlikelihood``,
  :mod:`playground.training.unlikelihood`).
"""
from __future__ import annotations

import argparse
from typing import Any, Sequence

import torch

from .data import DEFAULT_CACHE_DIR
from .loop import setup, train


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
    g.add_argument("--new-split", action="store_true",
                   help="allow --init weights trained against another held-out split (--seed, --val-fraction, "
                        "--doc-chars): their held-out scores stop meaning anything")
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
    g.add_argument("--ul-own-only", action="store_true",
                   help="penalise only repeats of the continuation's own n-grams, not copies of the prefix "
                        "(keeps --unlikelihood from fighting in-context copying)")
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
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return train(setup(args, argv, say))
    finally:
        torch.set_num_threads(threads)  # run() may be called in-process (tests, notebooks)


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
