"""What the load benchmarks share: the app served in its own process, its prompts, and a streaming caller of
``/generate`` through Gradio's HTTP API (:mod:`bench.load`, :mod:`bench.load_scaling`)."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [
    "Every effort moves you",
    "The capital of France is",
    "Once upon a time, there was a little robot who",
    "def fibonacci(n):",
    "1, 2, 3, 4, 5,",
    "The cat sat on the mat. The cat sat on the",
    "中文也可以吗？ 🙂",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def small_model(folder: Path) -> Path:
    """A random 2-layer model with GPT-2's vocabulary and a 128-token window."""
    import torch

    from playground.config import GPTConfig
    from playground.model import GPTModel
    from playground.checkpoints import save_model
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50257, context_length=128, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0,
                    qkv_bias=True, tie_embeddings=True)
    return save_model(GPTModel(cfg).eval(), folder / "load-test.safetensors")


class Server:
    """``app.py`` in a child process on a free loopback port."""

    def __init__(self, weights: Path, queue_size: int, log: Path, root: Path = ROOT, threads: int | None = 1) -> None:
        """``root``: the checkout whose ``app.py`` runs; ``threads``: torch's threads (None: its default)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
               "PLAYGROUND_QUEUE_SIZE": str(queue_size), "PLAYGROUND_DEVICE": "cpu"}
        if threads is not None:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        self.log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, str(Path(root) / "app.py"), "--weights", str(weights),
                                      "--host", "127.0.0.1", "--port", str(self.port)],
                                     cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}); see {self.log.name}")
            try:
                urllib.request.urlopen(self.url + "/config", timeout=2).read()
                return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("the server did not start")

    def rss(self) -> float:
        return rss_mb(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def messages(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """``(event, payload)`` of each message of one call's server-sent events (``event:
    generating|complete|error|heartbeat`` lines, each followed by its ``data:`` line), up to the complete one.
    Heartbeats (every 15 s while a request waits) are not messages of the call; an error event raises its text."""
    event = None
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event in ("generating", "complete", "error"):
            payload = json.loads(line[5:])
            if event == "error":
                raise RuntimeError(payload.get("error") if isinstance(payload, dict) else str(payload))
            yield event, payload
            if event == "complete":
                return


def read_stream(lines: Iterable[str], clock: Callable[[], float] = time.perf_counter) -> tuple[float | None, dict]:
    """``(clock() when the first token's message came, or None; the last message)`` of one call's
    :func:`messages`; a stream without its final record raises."""
    first, last = None, None
    for _, payload in messages(lines):
        if first is None:
            first = clock()
        last = payload[0] if isinstance(payload, list) and payload else payload
    if not (isinstance(last, dict) and last.get("done")):
        raise RuntimeError("the stream ended without its final message")
    return first, last


class ApiCaller:
    """Calls endpoints through Gradio's documented HTTP API: ``POST /gradio_api/call/NAME``, then that
    event's server-sent messages, on one kept-alive connection.

    Not ``gradio_client``: every ``submit`` there builds new HTTP clients with fresh TLS contexts (even
    for http://), which measured most of the 0.3 core the clients took from the two cores they share
    with the server; this costs a few lines of parsing a message.
    """

    def __init__(self, url: str, timeout: float = 600) -> None:
        import httpx
        self.http = httpx.Client(base_url=url, timeout=timeout)

    @contextlib.contextmanager
    def lines(self, name: str, data: list[Any]) -> Iterator[Iterator[str]]:
        """The lines of one call's server-sent events."""
        reply = self.http.post(f"/gradio_api/call/{name}", json={"data": data})
        if reply.status_code != 200:
            raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:200]}")
        with self.http.stream("GET", f"/gradio_api/call/{name}/{reply.json()['event_id']}") as stream:
            yield stream.iter_lines()

    def call(self, name: str, data: list[Any]) -> Any:
        """The complete message's data of one call; raises the server's error, or when the stream ended
        without it."""
        with self.lines(name, data) as lines:
            for event, payload in messages(lines):
                if event == "complete":
                    return payload
        raise RuntimeError(f"{name}: the stream ended without its result")

    def close(self) -> None:
        self.http.close()


class GenerateCaller(ApiCaller):
    """Streams ``/generate``."""

    def __call__(self, *data: Any) -> tuple[float | None, dict]:
        """``(perf_counter() when the first message came, or None; the last message)`` of one call
        with the endpoint's arguments ``data``; raises the server's error (its text), or when the
        stream ended without its final message."""
        with self.lines("generate", list(data)) as lines:
            return read_stream(lines)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]
