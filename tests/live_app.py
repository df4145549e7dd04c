"""Helpers for tests that launch the app and talk to it as a browser or an HTTP client does.

``gradio_client`` reaches only the public endpoints; the page's own events (upload, load a
file) are private, so :func:`page_event` speaks the queue protocol the browser uses.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
import torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def imported_app(env: dict[str, str]) -> Iterator[Any]:
    """``import app`` afresh with ``env`` set (as a Space would), removed again afterwards."""
    mp = pytest.MonkeyPatch()
    for k, val in env.items():
        mp.setenv(k, val)
    sys.modules.pop("app", None)
    try:
        yield importlib.import_module("app")
    finally:
        mp.undo()
        sys.modules.pop("app", None)


@contextlib.contextmanager
def served(demo: Any, **launch: Any) -> Iterator[str]:
    """Launch ``demo`` on a free loopback port (one torch thread), yield its URL, always close."""
    from playground.ui import launch_kwargs
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    kwargs = {**launch_kwargs(), **launch}
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                            quiet=True, **kwargs)
    try:
        yield url.rstrip("/")
    finally:
        demo.close()
        torch.set_num_threads(before)


def fn_index(demo: Any, name: str) -> int:
    """The index of the page event whose function is called ``name`` (the first one)."""
    return next(i for i, f in demo.fns.items() if f.fn is not None and f.fn.__name__ == name)


def upload(url: str, path: Path, name: str | None = None) -> httpx.Response:
    """POST a file to Gradio's upload route, as the File component does."""
    with httpx.Client(timeout=60) as http, open(path, "rb") as f:
        return http.post(f"{url}/gradio_api/upload", files={"files": (name or path.name, f)})


def file_data(server_path: str, name: str) -> dict:
    return {"path": server_path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def page_event(url: str, index: int, data: list, timeout: float = 60) -> dict:
    """Run one page event through the queue (join, then read the event stream); the last message."""
    session = uuid.uuid4().hex[:12]
    with httpx.Client(timeout=timeout) as http:
        r = http.post(f"{url}/gradio_api/queue/join",
                      json={"data": data, "fn_index": index, "session_hash": session, "event_data": None,
                            "trigger_id": None})
        r.raise_for_status()
        last: dict = {}
        with http.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session}) as s:
            for line in s.iter_lines():
                if line.startswith("data:"):
                    last = json.loads(line[5:])
                    if last.get("msg") == "process_completed":
                        break
    return last


def call_raw(url: str, api_name: str, body: str, timeout: float = 60) -> str:
    """POST to the plain HTTP API (what curl sends) and return the whole event stream."""
    base = f"{url}/gradio_api/call/{api_name}"
    with httpx.Client(timeout=timeout) as http:
        r = http.post(base, content=body, headers={"content-type": "application/json"})
        r.raise_for_status()
        return http.get(f"{base}/{r.json()['event_id']}").text


def stream_events(text: str) -> list[tuple[str, Any]]:
    """``[(event, data), ...]`` of an event stream from :func:`call_raw`."""
    out, event = [], None
    for line in text.splitlines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:") and event:
            out.append((event, json.loads(line[5:])))
            event = None
    return out


def settled(read: Callable[[], int], wait: float = 0.5) -> int:
    """``read()`` once it stops moving (a batcher's step count, a run's token count: nothing runs any more)."""
    before = -1
    while (now := read()) != before:
        before = now
        time.sleep(wait)
    return before


def settled_steps(batcher: Any, wait: float = 0.5) -> int:
    """The batcher's step count once it stops moving."""
    return settled(lambda: batcher.steps_run, wait)
