"""``python -m bench.run`` (``make bench``): our engine against its peers, side by side.

Writes ``bench/results/latest.md`` (the table the README quotes) and
``latest.json`` (every repetition, machine facts). ``--quick`` is a smoke run
(gpt2 only, 2 repetitions, short generations) for checking the script itself.
"""
from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import torch

from bench import contenders as C
from bench.measure import (gemv_bandwidth, machine_info, read_bandwidth, return_freed_memory, threads)
from bench.report import Table, write
from bench.sections_decode import DecodeSections
from bench.sections_inspect import InspectionSections
from bench.sections_peer import PeerSections

ROOT = Path(__file__).resolve().parent.parent


class Bench(DecodeSections, InspectionSections, PeerSections):
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.reps = args.reps
        self.tables: list[Table] = []
        self.summary: list[str] = []
        self.raw: dict = {}
        self.bandwidth = 0.0
        self.section_seconds: dict[str, float] = {}

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    @contextlib.contextmanager
    def timed(self, what: str):
        """Record how long the block took: the run-time table shows where the minutes go."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.section_seconds[what] = time.perf_counter() - start

    def add_timings(self, total: float) -> None:
        t = Table("Run time by section", ["section", "seconds", "share"])
        for what, sec in self.section_seconds.items():
            t.add(what, sec, f"{100 * sec / total:.0f}%")
        t.add("whole run", total, "100%")
        self.raw["section_seconds"] = dict(self.section_seconds)
        self.tables.append(t)

    def add(self, table: Table) -> None:
        self.tables.append(table)
        print(table.markdown() + "\n", flush=True)

    # -------------------------------------------------------------- bandwidth

    def run_bandwidth(self) -> None:
        t = Table("Memory bandwidth (median of 7)", ["threads", "read, `sum` over 1 GiB (GiB/s)",
                                                     "fp32 GEMV over a 0.5 GiB matrix (GiB/s)"])
        for n in sorted({1, torch.get_num_threads()}):
            with threads(n):
                bw = read_bandwidth(0.25 if self.args.quick else 1.0)
                gemv = gemv_bandwidth(0.125 if self.args.quick else 0.5)
            t.add(n, bw / 2**30, gemv / 2**30)
            self.raw[f"bandwidth_{n}"] = bw
            self.raw[f"gemv_bandwidth_{n}"] = gemv
        t.note = ("Bounds below use the `sum` figure (the most this machine streamed); "
                  "a library GEMV reaches the second figure.")
        self.bandwidth = self.raw[f"bandwidth_{torch.get_num_threads()}"]
        self.add(t)

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help="comma-separated: gpt2,gpt2-medium (default both)")
    p.add_argument("--sections",
                   default="bandwidth,fidelity,decode,levers,prefill,batch,attention,misc,patching,memory,threads,"
                           "peer,views")
    p.add_argument("--lever-steps", type=int, default=16)
    p.add_argument("--weights", default=str(ROOT / "weights" / "default.safetensors"),
                   help="the shipped model, for the fidelity section")
    p.add_argument("--fidelity-tokens", type=int, default=40)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--book-tokens", type=int, default=16,
                   help="new tokens for the (slow) book loop, run on gpt2 only")
    p.add_argument("--large-new-tokens", type=int, default=64,
                   help="new tokens per decode run for models larger than gpt2 (keeps the run near 10 minutes)")
    p.add_argument("--screen-tokens", type=int, default=32,
                   help="new tokens of the one run that picks transformers' best variant")
    p.add_argument("--batch-tokens", type=int, default=32)
    p.add_argument("--thread-tokens", type=int, default=8)
    p.add_argument("--prefill-lengths", default="32,256,1024")
    p.add_argument("--book-prefill-max", type=int, default=256)
    p.add_argument("--large-prefill-lengths", default="256",
                   help="prefill lengths for models larger than gpt2 (3 repetitions each)")
    p.add_argument("--attention-lengths", default="64,256,1024")
    p.add_argument("--app-reps", type=int, default=2)
    p.add_argument("--view-reps", type=int, default=3, help="calls per view after its first (views section)")
    p.add_argument("--views-before", default=None,
                   help="a git revision whose views are measured too, in the same run (before/after table)")
    p.add_argument("--skip-app", action="store_true")
    p.add_argument("--quick", action="store_true", help="smoke run: gpt2, 2 reps, short generations")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--stem", default=None, help="file name of the results (default latest, or quick with --quick); "
                                                 "a run of some sections can keep the full run's files")
    args = p.parse_args(argv)
    if args.quick:
        args.models, args.reps = args.models or "gpt2", 2
        args.new_tokens, args.book_tokens, args.batch_tokens, args.thread_tokens = 16, 4, 8, 4
        args.large_new_tokens = 16
        args.prefill_lengths, args.attention_lengths, args.app_reps = "32,256", "64", 1
        args.fidelity_tokens, args.lever_steps, args.view_reps = 8, 4, 1
    args.models = args.models or "gpt2,gpt2-medium"
    args.prefill_lengths = [int(x) for x in args.prefill_lengths.split(",")]
    args.large_prefill_lengths = [int(x) for x in args.large_prefill_lengths.split(",")]
    args.attention_lengths = [int(x) for x in args.attention_lengths.split(",")]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    return_freed_memory()
    torch.manual_seed(0)
    bench = Bench(args)
    machine = machine_info()
    bench.log(f"machine: {machine}")
    sections = args.sections.split(",")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        with bench.timed("bandwidth"):
            if "bandwidth" in sections:
                bench.run_bandwidth()
            else:
                bench.bandwidth = read_bandwidth(0.25)
        if "fidelity" in sections:
            with bench.timed("fidelity"):
                bench.run_fidelity()
        for name in args.models.split(","):
            bench.log(f"building {name}")
            with bench.timed(f"building {name} (random weights, saved and loaded both ways)"):
                pair = C.make_pair(name, Path(tmp))
            for section in ("decode", "levers", "prefill", "batch", "attention", "misc", "patching", "memory",
                            "threads", "peer", "views"):
                if section not in sections:
                    continue
                if section in ("levers", "batch", "attention", "misc", "patching", "memory", "threads", "peer",
                               "views") and name != "gpt2":
                    continue  # the 124M model only, to keep the run near 10 minutes
                with bench.timed(f"{section} {name}"):
                    getattr(bench, f"run_{section}")(pair)
            del pair
    seconds = time.perf_counter() - start
    bench.add_timings(seconds)
    stem = args.stem or ("quick" if args.quick else "latest")
    md, js = write(Path(args.out), machine, bench.tables, bench.summary, bench.raw, seconds, stem)
    bench.log(f"wrote {md} and {js} ({seconds / 60:.1f} min)")
    print(md.read_text())


if __name__ == "__main__":
    main()
