"""Continuous batching: many generations decoded together, one token of each per step.

Decoding is memory-bound: one step reads every weight once whether it computes
one row or sixteen. So concurrent requests are merged into one running batch:
each request hands its prompt and settings to the :class:`Batcher`, whose one
thread runs the fast decode path for every active row at once, and streams
each row's tokens back to its own caller as they come.

Rows join and leave between steps. Each row keeps its own KV cache (its own
length and positions), its own sampling settings and its own generator, and is
computed as :func:`playground.generation.stream_ids` computes a batch of one:
its prompt through its empty cache, then one token per step through the cache,
the last window through an emptied cache once the context is full. One step is
one forward of every row together (:meth:`FastWeights.forward_segments`): a
token of each decoding row and the whole prompt of each joining one, so a
joining prompt costs the others no extra read of the weights. Only the matrix
products are shared; attention runs per row over that row's own keys, so no
row ever sees padding or another row's keys. The next tokens of rows with the
same settings are drawn together, each from its own generator.

The batch runs on :mod:`playground.fast_decode`'s prepared weights, never on
the model's own forward: hooks attached by an inspection view running at the
same time are never seen by a batched row (and a batched row never fires them).

Limits: at most ``max_batch`` rows run at once and their caches hold at most
``cache_budget_bytes``; a request that cannot join within ``max_wait_s`` gets
:class:`BatcherFull`. A row whose caller falls behind (a slow client) waits,
holding at most ``backlog`` undelivered steps; the others go on.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator

import torch

from .fast_decode import DEFAULT_PRECISION, FastWeights, fast_weights
from .kv_cache import FusedKVCache
from .model import GPTModel
from .sampling import IdStep, SamplingParams, pick_next

log = logging.getLogger("playground.batching")

MAX_BATCH_ENV = "PLAYGROUND_MAX_BATCH"            # rows decoded together at most (default 16)
MAX_WAIT_ENV = "PLAYGROUND_BATCH_WAIT_S"          # seconds a request may wait to join (default 30)
CACHE_MB_ENV = "PLAYGROUND_BATCH_CACHE_MB"        # KV-cache memory of all rows together (default 1024)
DEFAULT_MAX_BATCH = 16
DEFAULT_MAX_WAIT_S = 30.0
DEFAULT_CACHE_MB = 1024


class BatcherFull(RuntimeError):
    """The batch stayed full for longer than the request may wait."""


_END = object()


@dataclass(eq=False)
class _Row:
    """One request inside the batcher. Only the batcher's thread touches the tensors."""

    model: GPTModel
    prompt: torch.Tensor                       # (1, T) the prompt ids
    max_new_tokens: int
    params: SamplingParams
    generator: torch.Generator | None
    stop_id: int | None
    precision: str
    cache_len: int
    cache_bytes: int
    submitted: float = field(default_factory=time.monotonic)
    out: "queue.Queue" = field(default_factory=queue.Queue)
    cancelled: bool = False
    # set by the batcher thread
    weights: FastWeights | None = None
    cache: FusedKVCache | None = None
    ids: list[int] = field(default_factory=list)          # the prompt's ids, then each new one
    logits: torch.Tensor | None = None                   # (1, V) the next token is drawn from these
    cropped: bool = False
    steps: int = 0


class Batcher:
    """Runs every submitted generation in one shared batch (see the module's docstring).

    The thread starts with the first request and sleeps while nothing runs.
    ``stream`` is the whole interface: it has :func:`~playground.generation.stream_ids`'s
    contract for one prompt, and closing its iterator removes the row at once.
    """

    def __init__(self, max_batch: int = DEFAULT_MAX_BATCH, max_wait_s: float = DEFAULT_MAX_WAIT_S,
                 cache_budget_bytes: int = DEFAULT_CACHE_MB * 2**20, backlog: int = 8) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.cache_budget_bytes = cache_budget_bytes
        self.backlog = backlog
        self._cond = threading.Condition()
        self._waiting: deque[_Row] = deque()
        self._active: list[_Row] = []
        self._thread: threading.Thread | None = None
        self.steps_run = 0                     # batched decode steps so far
        self.rows_per_step_max = 0             # the most rows one step decoded together

    @classmethod
    def from_env(cls) -> "Batcher":
        """Settings from ``$PLAYGROUND_MAX_BATCH``, ``$PLAYGROUND_BATCH_WAIT_S``, ``$PLAYGROUND_BATCH_CACHE_MB``
        (a value that is not a number above 0 is logged and the default used: the app still starts)."""
        def number(name: str, default: float, kind: type) -> float:
            raw = os.environ.get(name, "").strip()
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                value = 0
            if not value > 0 or value == float("inf"):
                log.warning("$%s must be a number above 0, got %r: using %g", name, raw, default)
                return default
            return value
        return cls(max_batch=int(number(MAX_BATCH_ENV, DEFAULT_MAX_BATCH, int)),
                   max_wait_s=number(MAX_WAIT_ENV, DEFAULT_MAX_WAIT_S, float),
                   cache_budget_bytes=int(number(CACHE_MB_ENV, DEFAULT_CACHE_MB, float) * 2**20))

    # ------------------------------------------------------------------ callers' side

    def stream(self, model: GPTModel, idx: torch.Tensor, max_new_tokens: int, params: SamplingParams,
               generator: torch.Generator | None = None, stop_id: int | None = None,
               precision: str | None = None) -> Iterator[IdStep]:
        """One :class:`IdStep` (batch of one) per new token of the prompt ``idx`` ``(1, T)``, computed in
        the shared batch. Raises :class:`BatcherFull` when the row could not join in time."""
        if idx.ndim != 2 or idx.shape[0] != 1 or idx.shape[1] == 0:
            raise ValueError("the batcher takes one prompt of at least one token, shape (1, T)")
        if model.training:
            raise ValueError("the batcher decodes models in eval mode only")
        precision = precision or {torch.bfloat16: "bf16"}.get(model.dtype, DEFAULT_PRECISION)
        cfg = model.cfg
        cache_len = min(cfg.context_length, idx.shape[1] + max_new_tokens)
        cache_bytes = cfg.n_layers * 2 * cfg.n_heads * cache_len * cfg.head_dim * 4   # float32 caches
        row = _Row(model, idx.detach().to("cpu", torch.long), max_new_tokens, params, generator, stop_id,
                   precision, cache_len, cache_bytes)
        if max_new_tokens <= 0:
            return
        self._submit(row)
        try:
            while True:
                item = row.out.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                if row.out.qsize() == self.backlog - 1:   # this take made room: the row may go on
                    self._wake()
                yield item
        finally:
            row.cancelled = True
            self._wake()

    def active_rows(self) -> int:
        with self._cond:
            return len(self._active)

    def waiting_rows(self) -> int:
        with self._cond:
            return len(self._waiting)

    def _submit(self, row: _Row) -> None:
        with self._cond:
            self._waiting.append(row)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ the batcher's thread

    def _run(self) -> None:
        while True:
            try:
                with torch.inference_mode():
                    self._loop()
            except Exception:          # a bug in the loop itself: every row gets it, the thread restarts
                log.exception("the batcher's loop failed")
                with self._cond:
                    rows = self._active + list(self._waiting)
                    self._active, self._waiting = [], deque()
                for row in rows:
                    row.out.put(RuntimeError("the batch decoding these tokens failed (logged on the server)"))

    def _loop(self) -> None:
        while True:
            passes: dict[int, list[tuple[_Row, torch.Tensor]]] = {}     # rows per prepared weights
            for row in self._admit():                                    # joining: the whole prompt
                if self._guard([row], self._start):
                    passes.setdefault(id(row.weights), []).append((row, self._window(row)))
            ready = [r for r in self._active if r.logits is not None and not r.cancelled
                     and r.out.qsize() < self.backlog]
            if not ready and not passes:
                with self._cond:
                    self._drop_cancelled()
                    if not self._waiting or not self._fits(self._waiting[0]):
                        self._cond.wait(timeout=0.05 if self._active or self._waiting else None)
                continue
            for row, next_id in self._emit(ready):
                row.ids.append(next_id)
                if row.cache.length < row.model.cfg.context_length:
                    segment = torch.tensor([next_id], dtype=torch.long, device=row.weights.device)
                else:                  # the window is full: the last context_length ids again, from empty
                    row.cropped = True
                    row.cache.reset()
                    segment = self._window(row)
                passes.setdefault(id(row.weights), []).append((row, segment))
            for segments in passes.values():
                self._step(segments)

    def _fits(self, row: _Row) -> bool:
        used = sum(r.cache_bytes for r in self._active)
        return len(self._active) < self.max_batch and (not self._active or used + row.cache_bytes
                                                       <= self.cache_budget_bytes)

    def _admit(self) -> list[_Row]:
        """Move waiting rows into the batch while it has room; fail those that waited too long."""
        joining: list[_Row] = []
        late: list[_Row] = []
        with self._cond:
            self._drop_cancelled()
            while self._waiting and self._fits(self._waiting[0]):
                row = self._waiting.popleft()
                self._active.append(row)
                joining.append(row)
            now = time.monotonic()
            while self._waiting and now - self._waiting[0].submitted > self.max_wait_s:
                late.append(self._waiting.popleft())
        for row in late:
            row.out.put(BatcherFull(
                f"The server is busy: {len(self._active)} generations are running and the batch is full. "
                f"Yours waited {self.max_wait_s:g} s; try again in a moment."))
        return joining

    def _drop_cancelled(self) -> None:
        """(holding the lock) forget rows whose caller has gone."""
        self._active = [r for r in self._active if not r.cancelled]
        self._waiting = deque(r for r in self._waiting if not r.cancelled)

    def _finish(self, row: _Row, item: object = _END) -> None:
        """The row leaves the batch, then its caller gets ``item`` (the end, or an error)."""
        row.cache = None
        row.logits = None
        with self._cond:
            if row in self._active:
                self._active.remove(row)
        row.out.put(item)

    def _guard(self, rows: list[_Row], work) -> bool:
        """Run ``work(rows)``; an error ends those rows (with the error) and no others. True if it ran."""
        try:
            work(rows)
            return True
        except Exception as e:  # noqa: BLE001 - delivered to the callers, logged here
            log.exception("batched decoding failed for %d row(s)", len(rows))
            for row in rows:
                self._finish(row, e)
            return False

    def _start(self, rows: list[_Row]) -> None:
        """(one joining row) its prepared weights, its cache and its ids."""
        (row,) = rows
        row.weights = fast_weights(row.model, row.precision)
        row.cache = row.weights.new_cache(1, row.cache_len)
        row.ids = row.prompt[0].tolist()
        row.cropped = len(row.ids) > row.model.cfg.context_length

    @staticmethod
    def _window(row: _Row) -> torch.Tensor:
        """The ids a row's empty cache is filled with: its prompt, or after a full window the last
        ``context_length`` ids, ``(T,)``."""
        return torch.tensor(row.ids[-row.model.cfg.context_length:], dtype=torch.long, device=row.weights.device)

    def _emit(self, rows: list[_Row]) -> list[tuple[_Row, int]]:
        """Draw each row's next token from its logits and hand it to its caller: rows with the same
        settings are drawn together (each from its own generator: the same ids and probabilities as
        drawn alone). The rows that go on, with their new ids; the others are done and have left."""
        groups: dict[tuple[SamplingParams, int], list[_Row]] = {}
        for row in rows:
            groups.setdefault((row.params, row.logits.shape[-1]), []).append(row)
        going_on = []
        for (params, _), group in groups.items():
            logits = torch.cat([r.logits for r in group])                             # (G, V)
            next_ids, probs = pick_next(logits, params, [r.generator for r in group])  # (G,), (G, V)
            for i, row in enumerate(group):
                row.logits = None
                row.out.put(IdStep(next_ids[i:i + 1], probs[i:i + 1], row.cropped))
                row.steps += 1
                next_id = int(next_ids[i])
                if row.steps >= row.max_new_tokens or (row.stop_id is not None and next_id == row.stop_id):
                    self._finish(row)
                else:
                    going_on.append((row, next_id))
        return going_on

    def _step(self, segments: list[tuple[_Row, torch.Tensor]]) -> None:
        """One forward for rows on the same prepared weights: a token of each decoding row and the
        whole window of each joining (or re-filled) one, their matrix products shared. Should it fail,
        each row is run again alone, so an error ends only the row it belongs to."""
        rows = [r for r, _ in segments]
        try:
            logits = rows[0].weights.forward_segments([(ids, r.cache) for r, ids in segments])  # (S, V)
        except Exception as e:  # noqa: BLE001 - delivered to the callers, logged here
            log.exception("a batched step of %d row(s) failed", len(rows))
            if len(segments) == 1:
                self._finish(rows[0], e)
                return
            for segment in segments:             # the caches did not advance: each row again, alone
                self._guard([segment[0]], lambda _, seg=segment: self._step_alone(seg))
            return
        self.steps_run += 1
        self.rows_per_step_max = max(self.rows_per_step_max, len(rows))
        for i, row in enumerate(rows):
            row.logits = logits[i:i + 1]

    @staticmethod
    def _step_alone(segment: tuple[_Row, torch.Tensor]) -> None:
        row, ids = segment
        row.logits = row.weights.forward_segments([(ids, row.cache)])                  # (1, V)


__all__ = ["Batcher", "BatcherFull", "MAX_BATCH_ENV", "MAX_WAIT_ENV", "CACHE_MB_ENV"]
