"""One training at a time per server, the others in line: the registry of live runs.

A run is found only by its id (a random 128-bit hex string that its page or API caller holds), so no
visitor can read, pause or use another's run; others see only that a training is running and their place
in line. Ended runs keep their weights (for "Use this model" and the downloads) until their owner resets
them, their page closes, or ``keep`` newer runs have ended.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque

from .live import LiveRun
from .live_spec import Limits, RunSpec, check


class LineFull(RuntimeError):
    """Too many runs are waiting already."""


class TrainingLine:
    def __init__(self, limits: Limits | None = None, keep: int = 8) -> None:
        self.limits = limits or Limits()
        self.keep = keep
        self._lock = threading.RLock()
        self._runs: dict[str, LiveRun] = {}
        self._active: LiveRun | None = None
        self._waiting: deque[LiveRun] = deque()
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._owners: dict[str, str] = {}            # a page's session -> its run's id (one run per page)

    def submit(self, spec: RunSpec, owner: str | None = None) -> LiveRun:
        """A new run: started at once when none is training, else put in line (ValueError for a bad spec,
        :class:`LineFull` when the line is full). An ``owner`` (a page's session) has one run: its previous
        one is discarded, and :meth:`discard_owner` discards it when the page closes."""
        check(spec, self.limits)
        run = LiveRun(spec, self.limits, on_end=self._ended_run)
        if owner is not None:
            self.discard(self._owners.get(owner))
        with self._lock:
            if self._active is not None and len(self._waiting) >= self.limits.max_waiting:
                raise LineFull(f"{len(self._waiting)} trainings are waiting already on this server; try again in a "
                               f"few minutes")
            self._runs[run.id] = run
            if self._active is None:
                self._active = run
                run.start()
            else:
                self._waiting.append(run)
            if owner is not None:
                self._owners[owner] = run.id
        return run

    def get(self, run_id: object) -> LiveRun | None:
        """The run with this id (and a sign of life for it), or None."""
        run = self._runs.get(run_id) if isinstance(run_id, str) else None
        if run is not None:
            run.touch()
        return run

    def position(self, run: LiveRun) -> int:
        """0 while it trains (or has ended), else its place in line (1 = next)."""
        with self._lock:
            try:
                return self._waiting.index(run) + 1
            except ValueError:
                return 0

    def active(self) -> LiveRun | None:
        return self._active

    def discard(self, run_id: object) -> None:
        """Stop the run and forget it (Reset, a closed page): its weights go with it."""
        run = self._runs.get(run_id) if isinstance(run_id, str) else None
        if run is None:
            return
        run.stop("Stopped: the run was reset.")
        with self._lock:
            if run in self._waiting:
                self._waiting.remove(run)
            self._runs.pop(run.id, None)
            self._ended.pop(run.id, None)
            for owner in [o for o, r in self._owners.items() if r == run.id]:
                del self._owners[owner]

    def discard_owner(self, owner: object) -> None:
        """The page ``owner`` closed: its run goes."""
        if isinstance(owner, str):
            self.discard(self._owners.pop(owner, None))

    def _ended_run(self, run: LiveRun) -> None:
        with self._lock:
            if run in self._waiting:
                self._waiting.remove(run)
            if run.id in self._runs:
                self._ended[run.id] = None
            while len(self._ended) > self.keep:
                old, _ = self._ended.popitem(last=False)
                self._runs.pop(old, None)
                for owner in [o for o, r in self._owners.items() if r == old]:
                    del self._owners[owner]
            if self._active is run:
                self._active = None
                while self._waiting:
                    nxt = self._waiting.popleft()
                    if not nxt.ended:
                        self._active = nxt
                        nxt.start()
                        break

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every run (the server is closing; tests)."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.stop("Stopped: the server is closing.")
        for run in runs:
            run.join(timeout)
