"""Timing side by side, peak memory, memory bandwidth, machine facts.

Every comparison is interleaved (A, B, C, A, B, C, ...; the order rotates each
round so nobody always runs first or last) and summarised by its median, so a
noisy neighbour slows all contenders alike and the ratios stay meaningful.
"""
from __future__ import annotations

import ctypes
import os
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import torch

from playground.kernel_choice import cpu_name

Fn = Callable[[], object]


def interleaved(contenders: dict[str, Fn], reps: int,
                warm: dict[str, Fn] | None = None) -> dict[str, list[float]]:
    """Seconds per call of each contender, ``reps`` rounds, order rotated every round.

    Each contender is first called once untimed: ``warm[name]`` if given (a shorter
    run that still touches every code path), else the contender itself.
    """
    names = list(contenders)
    for name in names:
        (warm or {}).get(name, contenders[name])()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(reps):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


# ------------------------------------------------------------------ memory

def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def return_freed_memory() -> None:
    """Make glibc hand big freed blocks back to the OS (mmap threshold fixed at 1 MiB),
    so the resident-set size follows what torch holds and peaks can be measured."""
    libc = _libc()
    if libc is not None:
        M_MMAP_THRESHOLD = -3
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def peak_memory(fn: Fn) -> tuple[float, int]:
    """(seconds, peak resident bytes above the level before the call) of one call.

    Resets the kernel's high-water mark (``/proc/self/clear_refs``, Linux) first.
    Returns -1 bytes where that is not possible.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kib("VmRSS")
    except OSError:
        before = None
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    if before is None:
        return seconds, -1
    peak = _status_kib("VmHWM")
    del result
    return seconds, max(0, peak - before) * 1024


# ------------------------------------------------------------------ bandwidth

def read_bandwidth(gib: float = 1.0, reps: int = 7) -> float:
    """Bytes per second that ``sum`` streams from DRAM with the current threads (median).

    The buffer is far larger than the last-level cache, as decoding's weights are.
    """
    x = torch.ones(int(gib * 2**30) // 4, dtype=torch.float32)
    x.sum()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        x.sum()
        times.append(time.perf_counter() - start)
    return x.numel() * 4 / median(times)


def gemv_bandwidth(gib: float = 0.5, reps: int = 7) -> float:
    """Bytes per second of an fp32 matrix-vector product over a matrix far larger than the
    cache: the access pattern of decoding one token (weights read once, row by row)."""
    k = 4096
    w = torch.ones(int(gib * 2**30) // (4 * k), k, dtype=torch.float32)
    x = torch.ones(1, k)
    torch.nn.functional.linear(x, w)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        torch.nn.functional.linear(x, w)
        times.append(time.perf_counter() - start)
    return w.numel() * 4 / median(times)


# ------------------------------------------------------------------ load and machine

@contextmanager
def competing_load(n: int = 1) -> Iterator[list[subprocess.Popen]]:
    """``n`` CPU-bound processes (a busy loop each) for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


@contextmanager
def threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine_info() -> dict:
    import transformers

    flags = cpu_flags()
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": any(f.startswith("amx") for f in flags),
        "onednn": torch.backends.mkldnn.is_available(),
        "cuda": torch.cuda.is_available(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
