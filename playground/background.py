"""Background work that the interpreter waits for when it exits.

The app prepares things per model in daemon threads (the fast decoder's weights, the views' first passes):
a request must never wait for them, and a server stopping must not either. But a daemon thread still inside
a torch operator when the interpreter finalises aborts the process ("terminate called without an active
exception", exit code 134): a test run, or ``python -c`` that loads a model and returns, would fail for it.
So each such thread is started here, and at exit the ones still running are waited for (a bounded time).
"""
from __future__ import annotations

import atexit
import threading
from typing import Callable

EXIT_WAIT_S = 120.0
_threads: list[threading.Thread] = []
_lock = threading.Lock()


def start(target: Callable[[], object], name: str) -> threading.Thread:
    """Run ``target`` in a daemon thread that the interpreter's exit waits for."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    with _lock:
        _threads[:] = [t for t in _threads if t.is_alive()]
        _threads.append(thread)
    thread.start()
    return thread


@atexit.register
def _wait_at_exit() -> None:
    with _lock:
        running = [t for t in _threads if t.is_alive()]
    for t in running:
        t.join(EXIT_WAIT_S)
