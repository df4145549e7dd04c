"""``python -m bench.load`` (``make load``): many users at once, on loopback.

Starts ``app.py`` in its own process (one torch thread), then N clients (16 by
default) call a mix of ``/generate`` (streamed, through Gradio's HTTP API: see
:class:`GenerateCaller`), ``/attention`` and ``/params`` (``gradio_client``) for a
fixed time, after a warm-up. Reports requests served,
p50/p95 latency per endpoint, errors (queue-full rejections counted apart:
they are the server saying "busy", not failing) and the server's resident
memory after the warm-up, at its peak and at the end.

Exits 1 when any request failed other than by a queue-full rejection, or when
memory grew more than ``--max-growth-mb`` after the warm-up.

Without ``--weights`` a small random model (2 layers, 128-token window) is
written to a temporary folder, so the run measures the server, not the model;
``--weights weights/default.safetensors`` loads the real one.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .serving import PROMPTS, ROOT, GenerateCaller, Server, percentile, small_model
from .serving import read_stream  # noqa: F401  (bench.load.read_stream: tests and scripts)

MIX = (("generate", 4), ("attention", 3), ("params", 3))      # endpoint, weight
PARAM_PRESETS = ("", "gpt2", "gpt2-medium", "book-124M")


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    first_token: list[float] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    queue_full: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)


def one_call(client: Any, caller: GenerateCaller, endpoint: str, rng: random.Random, tokens: int, tally: Tally,
             record: bool) -> None:
    prompt = rng.choice(PROMPTS) + " " * rng.randint(0, 2)          # vary the inputs past the caches
    start = time.perf_counter()
    first = None
    try:
        if endpoint == "generate":
            reached, _ = caller(prompt, tokens, 1.0, 50, 1.0, rng.randint(0, 10**6), 3, "fp32")
            first = None if reached is None else reached - start
        elif endpoint == "attention":
            out = client.predict(prompt, rng.randint(0, 1), rng.randint(0, 3),
                                 rng.choice(["single head", "all heads", "mean & max"]), api_name="/attention")
            assert out["tokens"], "no tokens"
        else:
            preset = rng.choice(PARAM_PRESETS)
            out = client.predict(50257, rng.choice([128, 1024]), rng.choice([64, 768]), 4, rng.randint(1, 24),
                                 False, True, preset, api_name="/params")
            assert out["summary"]["total"] > 0, "no total"
    except Exception as e:  # noqa: BLE001 - every failure is counted and shown
        text = f"{type(e).__name__}: {e}"
        with tally.lock:
            if "queue is full" in text.lower():
                tally.queue_full[endpoint] += int(record)
            elif record:
                tally.errors[endpoint].append(text[:300])
        return
    if record:
        with tally.lock:
            tally.latencies[endpoint].append(time.perf_counter() - start)
            if first is not None:
                tally.first_token.append(first)


def run_clients(url: str, clients: int, seconds: float, tokens: int, tally: Tally, record: bool,
                seed: int = 0) -> None:
    from gradio_client import Client
    names = [name for name, weight in MIX for _ in range(weight)]
    stop_at = time.perf_counter() + seconds

    def worker(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        try:
            client = Client(url, verbose=False)
        except Exception as e:  # noqa: BLE001
            with tally.lock:
                tally.errors["connect"].append(f"{type(e).__name__}: {e}"[:300])
            return
        caller = GenerateCaller(url)
        try:
            while time.perf_counter() < stop_at:
                one_call(client, caller, rng.choice(names), rng, tokens, tally, record)
        finally:
            client.close()
            caller.close()

    threads = [threading.Thread(target=worker, args=(i,), name=f"client-{i}") for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run(clients: int = 16, seconds: float = 30, warmup: float = 15, tokens: int = 20, weights: Path | None = None,
        queue_size: int = 64, max_growth_mb: float = 64, log: Path | None = None) -> dict[str, Any]:
    """Start a server, load it, stop it; the figures as a dict (see :func:`report`)."""
    with tempfile.TemporaryDirectory(prefix="load-") as tmp:
        path = Path(weights) if weights else small_model(Path(tmp))
        server = Server(path, queue_size, log or Path(tmp) / "server.log")
        try:
            server.wait_ready()
            boot_rss = server.rss()
            peak = [boot_rss]
            timeline: list[tuple[float, float]] = []          # (seconds since start, MiB) every 5 s
            sampling = threading.Event()
            t0 = time.perf_counter()

            def sample() -> None:
                while not sampling.wait(0.2):
                    now = server.rss()
                    peak[0] = max(peak[0], now)
                    if not timeline or time.perf_counter() - t0 - timeline[-1][0] >= 5:
                        timeline.append((round(time.perf_counter() - t0, 1), round(now, 1)))
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            warm = Tally()
            run_clients(server.url, clients, warmup, tokens, warm, record=False, seed=1)
            before = server.rss()
            tally = Tally()
            start = time.perf_counter()
            half = threading.Timer(seconds / 2, lambda: mid.append(server.rss()))
            mid: list[float] = []
            half.start()
            run_clients(server.url, clients, seconds, tokens, tally, record=True, seed=2)
            half.cancel()
            elapsed = time.perf_counter() - start
            after = server.rss()
            sampling.set()
            sampler.join()
            alive = server.proc.poll() is None
        finally:
            server.stop()
        return {
            "clients": clients, "seconds": round(elapsed, 1), "warmup_seconds": warmup, "tokens": tokens,
            "weights": str(weights) if weights else "random 2-layer model, 128-token window (bench.load)",
            "served": {k: len(v) for k, v in tally.latencies.items()},
            "total_served": sum(len(v) for v in tally.latencies.values()),
            "latency_s": {k: {"p50": round(percentile(v, 50), 3), "p95": round(percentile(v, 95), 3)}
                          for k, v in sorted(tally.latencies.items())},
            "generate_first_message_s": {"p50": round(percentile(tally.first_token, 50), 3),
                                         "p95": round(percentile(tally.first_token, 95), 3)},
            "errors": {k: len(v) for k, v in tally.errors.items()},
            "error_examples": sorted({e for v in tally.errors.values() for e in v})[:5],
            "queue_full": dict(tally.queue_full),
            "rss_mb": {"boot": round(boot_rss, 1), "after_warmup": round(before, 1), "peak": round(peak[0], 1),
                       "end": round(after, 1), "growth_after_warmup": round(after - before, 1),
                       "growth_second_half": round(after - mid[0], 1) if mid else None,
                       "timeline": timeline},
            "max_growth_mb": max_growth_mb,
            "server_alive": alive,
        }


def ok(result: dict[str, Any]) -> bool:
    return (result["server_alive"] and not sum(result["errors"].values())
            and result["rss_mb"]["growth_after_warmup"] <= result["max_growth_mb"])


def report(r: dict[str, Any]) -> str:
    lines = [f"Load test: {r['clients']} clients for {r['seconds']} s after a {r['warmup_seconds']} s warm-up; "
             f"generate streams {r['tokens']} tokens; model: {r['weights']}",
             "",
             "| endpoint | served | p50 s | p95 s | errors | queue full |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, _ in MIX:
        lat = r["latency_s"].get(name, {"p50": float("nan"), "p95": float("nan")})
        lines.append(f"| /{name} | {r['served'].get(name, 0)} | {lat['p50']:.3f} | {lat['p95']:.3f} | "
                     f"{r['errors'].get(name, 0)} | {r['queue_full'].get(name, 0)} |")
    m = r["rss_mb"]
    lines += ["",
              f"Served {r['total_served']} requests ({r['total_served'] / max(r['seconds'], 1e-9):.1f}/s); "
              f"first streamed token p50 {r['generate_first_message_s']['p50']:.3f} s, "
              f"p95 {r['generate_first_message_s']['p95']:.3f} s.",
              f"Server memory (RSS): {m['boot']:.0f} MiB at start, {m['after_warmup']:.0f} after the warm-up, "
              f"{m['peak']:.0f} at peak, {m['end']:.0f} at the end: {m['growth_after_warmup']:+.1f} MiB "
              f"after the warm-up (bound {r['max_growth_mb']:.0f}), {m['growth_second_half'] or 0:+.1f} MiB "
              "over the second half.",
              "Result: " + ("OK" if ok(r) else "FAILED")]
    lines += [f"  error: {e}" for e in r["error_examples"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--seconds", type=float, default=30, help="measured time (default 30)")
    p.add_argument("--warmup", type=float, default=15,
                   help="unmeasured time first, while caches and thread pools fill (default 15)")
    p.add_argument("--tokens", type=int, default=20, help="tokens per generation (default 20)")
    p.add_argument("--weights", type=Path, default=None, help="weights to serve (default: a small random model)")
    p.add_argument("--queue-size", type=int, default=64, help="the server's queue size (default 64)")
    p.add_argument("--max-growth-mb", type=float, default=64, help="allowed RSS growth after warm-up (default 64)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--scaling", action="store_true",
                   help="instead: only /generate, 1, 8 and 32 clients, on the bundled model and a random gpt2 "
                        "(bench.load_scaling); --tokens (default 50 there), --seconds per level")
    p.add_argument("--root", type=Path, default=ROOT, help="with --scaling: the checkout whose app.py is served")
    p.add_argument("--models", default="bundled,gpt2", help="with --scaling: bundled, gpt2 or both")
    p.add_argument("--precisions", default="fp32",
                   help="with --scaling: the /generate precisions measured, in turn (fp32, bf16, int8; default fp32)")
    args = p.parse_args(argv)
    if args.scaling:
        from . import load_scaling
        tokens = args.tokens if "--tokens" in (argv or sys.argv) else 50
        seconds = args.seconds if "--seconds" in (argv or sys.argv) else 20
        results = load_scaling.run(tokens, seconds, root=args.root, threads=None,
                                   models=tuple(args.models.split(",")), precisions=tuple(args.precisions.split(",")))
        print(load_scaling.report(results, args.root))
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        return 0 if load_scaling.ok(results) else 1
    result = run(args.clients, args.seconds, args.warmup, args.tokens, args.weights, args.queue_size,
                 args.max_growth_mb)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if ok(result) else 1


if __name__ == "__main__":
    sys.exit(main())
