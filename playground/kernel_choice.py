"""Which matrix-product layout is fastest here: measured once per machine, remembered.

The fast decoder can hold a weight matrix in four layouts for fp32 and bf16:

- ``onednn``: prepacked once into oneDNN's blocked layout for one-row products (GELU / residual
  add fused);
- ``onednn_b8``: the same, blocked for eight rows (measured on an Intel Xeon with AMX: 1.3x
  ``onednn`` for bf16 at one row as well as at eight, and 1.4x for fp32 at eight);
- ``dense``: the matrix as the model holds it, ``(out, in)``, called with ``F.linear``;
- ``dense_t``: transposed once to ``(in, out)`` and called with ``addmm``: for the
  wide vocabulary head (50,257 outputs) a one-row product reads it in order, which
  on some CPUs is several times faster than either of the others.

Which one wins depends on the CPU, the shape and the precision (measured: oneDNN
won on one AMD EPYC, plain ``F.linear`` on an Intel Xeon; ``dense_t`` was 1.8x
oneDNN and 4x ``F.linear`` for the head of the bundled model here). So at prepare
time each distinct (shape, precision) gets a short timed trial of the layouts on
the real weights, at one row (a user's decode step) and at eight rows (a classroom's
batch, and prefill). In fp32, where the two winners differ and the model is small enough
(:data:`DUAL_BYTES_ENV`), the matrix is kept in both and each product takes the layout
that won for its row count (measured on an Intel Xeon with AMX, gpt2 fp32: ``dense_t``
35 tok/s at one row but 88 at eight, ``onednn_b8`` 25 and 145); otherwise the one
with the least time per row, summed over the two, is used. A decode step reads
every weight once, so a big model's matrices come from memory, not from the cache: the trial runs
over as many distinct copies of the matrix as the model's weights would fill (up to 256 MiB,
:func:`stream_copies`), so it times the regime the decode runs in (timed alone, one repeated
matrix sits in the cache, and on one AMD EPYC that made plain ``F.linear`` win gpt2-medium's bf16
QKV, which ran at half oneDNN's speed in a real step). Winners are kept in memory and in
``$PLAYGROUND_KERNEL_CACHE`` (default ``~/.cache/gpt2-playground/kernels.json``),
keyed by CPU model, thread count and torch version, so the trial runs once per
machine. ``$PLAYGROUND_KERNELS`` (one of :data:`LAYOUTS`) forces one.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Callable

import torch

log = logging.getLogger("playground.kernels")

LAYOUTS = ("onednn", "onednn_b8", "dense", "dense_t")
CACHE_ENV = "PLAYGROUND_KERNEL_CACHE"
FORCE_ENV = "PLAYGROUND_KERNELS"
TRIAL_ROWS = (1, 8)
TRIAL_REPS = 5
STREAM_BYTES = 256 * 2**20      # at most this much weight is streamed per timed pass
MAX_COPIES = 48
DUAL_BYTES_ENV = "PLAYGROUND_DUAL_LAYOUT_MB"   # a second layout for many rows when the weights fit (MiB)
DEFAULT_DUAL_MB = 512

_lock = threading.Lock()
_chosen: dict[str, str] = {}
_loaded = False


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; elsewhere what ``platform`` says)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_key() -> str:
    return f"{cpu_name()} | {torch.get_num_threads()} threads | torch {torch.__version__}"


def cache_path() -> Path:
    raw = os.environ.get(CACHE_ENV, "").strip()
    return Path(raw) if raw else Path.home() / ".cache" / "gpt2-playground" / "kernels.json"


def _load() -> None:
    """(holding the lock) read the remembered winners once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    try:
        data = json.loads(cache_path().read_text())
        _chosen.update({k: v for k, v in data.items() if isinstance(v, str) and v in LAYOUTS})
    except (OSError, ValueError):
        pass


def _save() -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(_chosen, indent=1, sort_keys=True))
        tmp.replace(path)
    except OSError:
        log.warning("could not remember the kernel choice in %s", path, exc_info=True)


def forced() -> str | None:
    raw = os.environ.get(FORCE_ENV, "").strip().lower()
    if raw in ("", "auto"):
        return None
    if raw not in LAYOUTS:
        log.warning("$%s must be one of %s or auto, got %r: choosing by trial", FORCE_ENV, ", ".join(LAYOUTS), raw)
        return None
    return raw


def _time(fn: Callable[[], object], warm: int = 2, reps: int = TRIAL_REPS) -> float:
    for _ in range(warm):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def dual_allowed(working_set_bytes: int) -> bool:
    """Whether a model whose matrices take ``working_set_bytes`` may hold them twice (one layout for a
    single row, another for many): at most ``$PLAYGROUND_DUAL_LAYOUT_MB`` (default 512, 0 = never)."""
    raw = os.environ.get(DUAL_BYTES_ENV, "").strip()
    try:
        limit = float(raw) if raw else DEFAULT_DUAL_MB
    except ValueError:
        log.warning("$%s must be a number of MiB, got %r: using %d", DUAL_BYTES_ENV, raw, DEFAULT_DUAL_MB)
        limit = DEFAULT_DUAL_MB
    return 0 < working_set_bytes <= limit * 2**20


def stream_copies(matrix_bytes: int, working_set_bytes: int) -> int:
    """How many distinct copies of a ``matrix_bytes`` matrix the trial runs through: as many as the
    model's ``working_set_bytes`` of weights would fill, at most ``MAX_COPIES`` and ``STREAM_BYTES``."""
    if matrix_bytes <= 0:
        return 1
    return max(1, min(MAX_COPIES, STREAM_BYTES // matrix_bytes, working_set_bytes // matrix_bytes))


def choose(shape: tuple[int, int], precision: str, candidates: tuple[str, ...],
           build: Callable[[str], Callable[[torch.Tensor], torch.Tensor]], dtype: torch.dtype,
           copies: int = 1, rows: tuple[int, ...] = TRIAL_ROWS) -> str:
    """The fastest of ``candidates`` for a ``shape`` ``(out, in)`` matrix in ``precision``: remembered, or
    measured now with ``build(layout)`` (a callable computing ``x @ W.T + b`` in that layout, on its own
    copy of the weights each call), timed over ``copies`` of them in turn (:func:`stream_copies`), at
    each row count in ``rows``: the least time per row, summed over them, wins."""
    if len(candidates) == 1:
        return candidates[0]
    force = forced()
    if force is not None and force in candidates:
        return force
    copies = max(1, int(copies))
    key = (f"{machine_key()} | {precision} | {shape[0]}x{shape[1]}" + (f" | {copies} copies" if copies > 1 else "")
           + (f" | rows {','.join(map(str, rows))}" if tuple(rows) != TRIAL_ROWS else ""))
    with _lock:
        _load()
        if _chosen.get(key) in candidates:
            return _chosen[key]
    with torch.inference_mode():
        gen = torch.Generator().manual_seed(0)        # a private RNG: a trial in a background thread must not
        xs = [torch.randn(n, shape[1], generator=gen).to(dtype) for n in rows]   # move anyone's seeded stream
        seconds = {}
        for layout in candidates:
            fns = [build(layout) for _ in range(copies)]

            def one_pass(x: torch.Tensor) -> None:
                for fn in fns:
                    fn(x)
            warm, reps = (2, TRIAL_REPS) if copies == 1 else (1, 3)   # a pass over copies averages already
            seconds[layout] = sum(_time(lambda: one_pass(x), warm, reps) / (x.shape[0] * copies)  # per row
                                  for x in xs)
            del fns
    best = min(seconds, key=seconds.get)
    log.info("kernel for %s %dx%d at %s rows: %s (%s)", precision, shape[0], shape[1], "+".join(map(str, rows)), best,
             ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in seconds.items()))
    with _lock:
        _chosen[key] = best
        _save()
    return best


def forget() -> None:
    """Forget the winners in memory (tests; the file stays)."""
    global _loaded
    with _lock:
        _chosen.clear()
        _loaded = False


__all__ = ["LAYOUTS", "choose", "dual_allowed", "stream_copies", "cpu_name", "machine_key", "cache_path", "forced", "forget"]
