"""``python -m bench.load --scaling``: a classroom at once, only ``/generate``.

For 1, 8 and 32 concurrent clients (each its own connection, as students'
browsers are; Gradio's HTTP API, see :class:`bench.load.GenerateCaller`) against
one ``app.py``: aggregate tokens/s, time to the
first token and per request (p50/p95), errors and the server's RSS; on the
bundled model and on a random gpt2 (124M, OpenAI's shape, Hugging Face layout).
Every request uses seeded sampling, so its text is fixed by (prompt, seed): a
sample of the requests served under load is then asked again by one client
alone, and the texts must be identical.

``--root`` serves another checkout's ``app.py`` (the same API), for before/after.
"""
from __future__ import annotations

import random
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .serving import PROMPTS, ROOT, GenerateCaller, Server, percentile

LEVELS = (1, 8, 32)


@dataclass
class Served:
    key: tuple[str, int]           # (prompt, seed): fixes the text
    start: float
    first: float | None
    end: float
    tokens: int
    text: str


def gpt2_weights(folder: Path) -> Path:
    """A random gpt2 (124M) saved by transformers, as a Space would serve OpenAI's."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(folder / "gpt2")
    return folder / "gpt2" / "model.safetensors"


def ask(caller: GenerateCaller, prompt: str, seed: int, tokens: int, precision: str = "fp32") -> Served:
    start = time.perf_counter()
    first, last = caller(prompt, tokens, 1.0, 50, 1.0, seed, 3, precision)
    end = time.perf_counter()
    return Served((prompt, seed), start, first if first is not None else end, end,
                  int(last["generated_tokens"]), last["generated_text"])


def level(url: str, clients: int, seconds: float, tokens: int, seed: int, precision: str = "fp32") -> dict[str, Any]:
    """``clients`` clients each asking again as soon as served, for ``seconds`` (requests started by then
    run to their end); the figures."""
    served: list[Served] = []
    errors: list[str] = []
    lock = threading.Lock()
    connected = threading.Barrier(clients + 1)
    go = threading.Event()
    window: dict[str, float] = {}

    def worker(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        client = None
        try:
            client = GenerateCaller(url)
            client.http.get("/config").raise_for_status()
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(f"connect: {type(e).__name__}: {e}"[:200])
        connected.wait()
        go.wait()
        if client is None:
            return
        try:
            while time.perf_counter() < window["stop"]:
                try:
                    s = ask(client, rng.choice(PROMPTS), rng.randint(0, 10**6), tokens, precision)
                except Exception as e:  # noqa: BLE001 - counted and shown
                    with lock:
                        errors.append(f"{type(e).__name__}: {e}"[:200])
                    continue
                with lock:
                    served.append(s)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    connected.wait()                # every client connected: the window starts now
    window["start"] = time.perf_counter()
    window["stop"] = window["start"] + seconds
    go.set()
    for t in threads:
        t.join()
    t0, t1 = window["start"], window["stop"]
    in_window = 0.0
    for s in served:               # tokens streamed inside the window, spread evenly from first to end
        span = max(s.end - s.first, 1e-9)
        overlap = max(0.0, min(s.end, t1) - max(s.first, t0))
        in_window += s.tokens * (overlap / span if s.end > s.first else float(t0 <= s.end <= t1))
    return {"clients": clients, "seconds": seconds, "requests": len(served),
            "tokens_per_s": round(in_window / seconds, 1),
            "first_token_s": {"p50": round(percentile([s.first - s.start for s in served], 50), 3),
                              "p95": round(percentile([s.first - s.start for s in served], 95), 3)},
            "request_s": {"p50": round(percentile([s.end - s.start for s in served], 50), 3),
                          "p95": round(percentile([s.end - s.start for s in served], 95), 3)},
            "errors": len(errors), "error_examples": sorted(set(errors))[:3],
            "_served": served}


def check_alone(url: str, served: list[Served], tokens: int, n: int, seed: int = 0,
                precision: str = "fp32") -> dict[str, Any]:
    """Ask ``n`` of the requests served under load again, one at a time: the same text each time?"""
    sample = random.Random(seed).sample(served, min(n, len(served)))
    client = GenerateCaller(url)
    try:
        same = sum(ask(client, s.key[0], s.key[1], tokens, precision).text == s.text for s in sample)
    finally:
        client.close()
    return {"checked": len(sample), "identical": same}


def run_model(weights: Path, name: str, tokens: int, seconds: float, warmup: float, root: Path,
              threads: int | None, log: Path, precisions: tuple[str, ...] = ("fp32",)) -> list[dict[str, Any]]:
    """One server for ``weights``; every level in each precision in turn. A result per precision."""
    out = []
    server = Server(weights, queue_size=256, log=log, root=root, threads=threads)
    try:
        server.wait_ready()
        for precision in precisions:
            level(server.url, 2, warmup, tokens, seed=99, precision=precision)   # load, prepare, warm caches
            results = []
            for clients in LEVELS:
                r = level(server.url, clients, seconds, tokens, seed=clients, precision=precision)
                r["rss_mb"] = round(server.rss(), 1)
                results.append(r)
            loaded = [s for r in results if r["clients"] > 1 for s in r.pop("_served")]
            results[0].pop("_served")
            identity = check_alone(server.url, loaded, tokens, 8, precision=precision)
            one = results[0]["tokens_per_s"] or float("nan")
            for r in results:
                r["vs_one_client"] = round(r["tokens_per_s"] / one, 2)
            out.append({"model": name, "precision": precision, "weights": str(weights), "tokens": tokens,
                        "levels": results, "identity": identity})
    finally:
        server.stop()
    return out


def run(tokens: int = 50, seconds: float = 20, warmup: float = 6, root: Path = ROOT, threads: int | None = None,
        models: tuple[str, ...] = ("bundled", "gpt2"), precisions: tuple[str, ...] = ("fp32",)
        ) -> list[dict[str, Any]]:
    out = []
    with tempfile.TemporaryDirectory(prefix="load-scaling-") as tmp:
        for name in models:
            weights = ROOT / "weights" / "default.safetensors" if name == "bundled" else gpt2_weights(Path(tmp))
            out += run_model(weights, name, tokens, seconds, warmup, Path(root), threads,
                             Path(tmp) / f"server-{name}.log", precisions)
    return out


def report(results: list[dict[str, Any]], root: Path = ROOT) -> str:
    lines = [f"Scaling: concurrent /generate clients, seeded sampling, {results[0]['tokens']} new tokens per "
             f"request; server: {root}/app.py", "",
             "| model | precision | clients | tokens/s (all clients) | vs 1 client | first token p50 / p95 s | "
             "request p50 / p95 s | requests | errors | RSS MiB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in results:
        for r in m["levels"]:
            lines.append(f"| {m['model']} | {m.get('precision', 'fp32')} | {r['clients']} | {r['tokens_per_s']:.1f} | {r['vs_one_client']:.2f}x | "
                         f"{r['first_token_s']['p50']:.2f} / {r['first_token_s']['p95']:.2f} | "
                         f"{r['request_s']['p50']:.2f} / {r['request_s']['p95']:.2f} | {r['requests']} | "
                         f"{r['errors']} | {r['rss_mb']:.0f} |")
    lines.append("")
    for m in results:
        i = m["identity"]
        lines.append(f"{m['model']} {m.get('precision', 'fp32')}: {i['identical']} of {i['checked']} requests served under load gave the "
                     "same text when asked again alone.")
        for r in m["levels"]:
            lines += [f"  error ({r['clients']} clients): {e}" for e in r["error_examples"]]
    return "\n".join(lines)


def ok(results: list[dict[str, Any]]) -> bool:
    return all(not r["errors"] for m in results for r in m["levels"]) and all(
        m["identity"]["identical"] == m["identity"]["checked"] for m in results)
