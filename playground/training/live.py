"""A training run that lives in the app: the book's GPTModel trained in a background thread, step by step,
with Pause, Resume and Stop, caps on time, and everything a page draws while it runs.

The engine is the command line's (:mod:`.optim` for the initialisation and AdamW, :mod:`.step` for each
step, :mod:`.data` for the batches, :mod:`playground.checkpoints` for the saved weights); the data is a
:mod:`.tasks` task and the heads are measured on a fixed :mod:`.probe`. Nothing is seeded globally: the
weights come from a ``torch.Generator`` and the batches from a NumPy generator, both seeded with the
run's seed, so the same seed and settings give the same losses while other requests share the process
(dropout, when asked for, is the exception: it draws from torch's shared generator).

Threads: ``torch.set_num_threads`` in the training thread sets that thread's own OpenMP and MKL threads,
and the process's default for threads created later; the default is put back at once from a short-lived
helper thread, so the views keep all their threads and the training uses ``limits.threads``.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..checkpoints import save_model
from ..model import GPTModel
from .live_spec import Limits, RunSpec
from .optim import init_weights, make_optimizer
from .probe import PhaseChange, Probe, ProbeResult, find_phase_change
from .samples import sample_text
from .step import Diverged, apply_step
from .tasks import CopyTask, Task, TextTask, text_tokens

log = logging.getLogger("playground.training")
ENDED = ("stopped", "finished", "failed")


def _limit_threads(n: int, default: int) -> None:
    """This thread computes with ``n`` threads; threads created later keep ``default`` (see the module doc)."""
    if n >= default:
        return
    torch.get_num_threads()                  # this thread's own pool is set up first, then shrunk
    torch.set_num_threads(n)
    helper = threading.Thread(target=torch.set_num_threads, args=(default,), name="threads-default")
    helper.start()
    helper.join()


def build_task(spec: RunSpec) -> Task:
    cfg = spec.config
    if spec.task == "copy":
        return CopyTask(cfg.vocab_size, cfg.context_length, spec.min_len, spec.max_len)
    tokens, source = text_tokens(spec.text, spec.text_tokens)
    return TextTask(tokens, cfg.context_length, source=source)


@dataclass
class Curves:
    """Per step: the training loss, and for copying the loss on the first copy and on the copies after it."""

    steps: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)       # training time at the end of the step
    loss: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    repeats: list[float] = field(default_factory=list)


class LiveRun:
    """One visitor's run. ``start`` runs it in a daemon thread; the page reads it with :meth:`view`."""

    def __init__(self, spec: RunSpec, limits: Limits, on_end: Callable[["LiveRun"], None] | None = None) -> None:
        self.id = uuid.uuid4().hex               # the only handle: a page or an API caller holds its own
        self.spec, self.limits, self.on_end = spec, limits, on_end
        self.status = "waiting"
        self.message = ""
        self.curves = Curves()
        self.probes: list[ProbeResult] = []      # every probe's scores; only the last keeps its pattern
        self.samples: list[tuple[int, str]] = []
        self.phase: PhaseChange | None = None
        self.model: GPTModel | None = None
        self.probe: Probe | None = None
        self.version = 0                         # bumps whenever something a page draws changed
        self.last_seen = time.monotonic()
        self.created = time.time()
        self._opt: torch.optim.Optimizer | None = None
        self._task: Task | None = None
        self._lock = threading.RLock()           # held by each step; the weights are read under it
        self._running = threading.Event()        # cleared while paused
        self._stop = threading.Event()
        self._done = threading.Event()           # set when the run has ended, however
        self._thread: threading.Thread | None = None
        self._stop_reason = ""
        # Read here, in the thread that asks for the run: a training thread (which may start the next run in
        # line) has shrunk its own count.
        self._default_threads = torch.get_num_threads()
        self.threads_used = 0

    # ----------------------------------------------------------------- control (any thread)

    def start(self) -> None:
        self._running.set()
        self._thread = threading.Thread(target=self._main, args=(self._default_threads,), name=f"train-{self.id[:8]}",
                                        daemon=True)
        self.status = "running"
        self._bump()
        self._thread.start()

    def pause(self) -> bool:
        if self.status != "running":
            return False
        self._running.clear()
        self.status = "paused"
        self._bump()
        return True

    def resume(self) -> bool:
        if self.status != "paused":
            return False
        self.status = "running"
        self._running.set()
        self._bump()
        return True

    def stop(self, reason: str = "Stopped.") -> None:
        """Ask the thread to stop after the step it is in (a run still waiting just ends)."""
        self._stop_reason = self._stop_reason or reason
        self._stop.set()
        self._running.set()
        if self._thread is None and self.status == "waiting":
            self._end("stopped", reason)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the run has ended (a waiting run: started and ended); True once it has."""
        if not self._done.wait(timeout):
            return False
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return True

    def touch(self) -> None:
        """Someone looked: a run nobody reads for ``limits.idle_s`` stops (a closed page, a gone API caller)."""
        self.last_seen = time.monotonic()

    @property
    def step(self) -> int:
        return self.curves.steps[-1] if self.curves.steps else 0

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    # ----------------------------------------------------------------- the thread

    def _main(self, default_threads: int) -> None:
        try:
            _limit_threads(self.limits.threads, default_threads)
            self.threads_used = torch.get_num_threads()
            self._setup()
            self._loop()
        except Diverged as e:
            self._end("failed", f"The training diverged at step {self.step + 1}: {e}. Try a smaller learning "
                                f"rate (it was {self.spec.lr:g}). The weights of step {self.step}, the last good "
                                f"one, are kept.")
        except Exception as e:                     # a bug: logged with its traceback, said in one line
            log.error("live training run %s failed", self.id, exc_info=True)
            self._end("failed", f"The training stopped on an internal error ({type(e).__name__}); the weights of "
                                f"step {self.step} are kept.")
        else:
            if not self.ended:
                self._end("stopped" if self._stop.is_set() else "finished",
                          self._stop_reason if self._stop.is_set() else
                          f"Finished: {self.step:,} steps in {self._seconds():.0f} s.")

    def _setup(self) -> None:
        spec, cfg = self.spec, self.spec.config
        self._task = build_task(spec)
        model = GPTModel(cfg)
        init_weights(model, generator=torch.Generator().manual_seed(spec.seed))
        model.train()
        self._opt = make_optimizer(model, spec.lr, spec.weight_decay)
        self._rng = np.random.default_rng(spec.seed)
        self.probe = Probe.for_model(cfg.context_length, self._task.vocab)
        with self._lock:
            self.model = model
        self._record_probe(0)

    def _loop(self) -> None:
        spec = self.spec
        self._t0, self._paused_s = time.perf_counter(), 0.0
        while self.step < spec.steps:
            if not self._wait_while_paused() or self._over_caps():
                return
            with self._lock:
                batch = self._task.sample(spec.batch_size, self._rng)
                done = apply_step(self.model, self._opt, spec.lr, iter([(batch.x, batch.y)]), 1, clip=spec.clip,
                                  per_token=True, check_finite=True)
            self._record_step(done.loss, done.token_losses[0], batch.first)
            step = self.step
            if step % spec.probe_every == 0 or step == spec.steps:
                self._record_probe(step)
            if isinstance(self._task, TextTask) and (step % spec.sample_every == 0 or step == spec.steps):
                self._record_sample(step)

    def _wait_while_paused(self) -> bool:
        """False when the run must end (Stop, or a cap while paused)."""
        if self._running.is_set() and not self._stop.is_set():
            return True
        began = time.perf_counter()
        while not self._running.wait(0.25):
            if time.perf_counter() - began > self.limits.max_pause_s:
                self.stop(f"Stopped: paused for more than {self.limits.max_pause_s:.0f} s (this server's limit).")
            elif self._idle():
                self.stop(self._idle_reason())
        self._paused_s += time.perf_counter() - began
        return not self._stop.is_set()

    def _over_caps(self) -> bool:
        if self._seconds() > self.limits.max_s:
            self.stop(f"Stopped at this server's limit of {self.limits.max_s:.0f} s of training, at step "
                      f"{self.step:,}.")
        elif self._idle():
            self.stop(self._idle_reason())
        return self._stop.is_set()

    def _idle(self) -> bool:
        return time.monotonic() - self.last_seen > self.limits.idle_s

    def _idle_reason(self) -> str:
        return (f"Stopped: nobody has looked at this run for {self.limits.idle_s:.0f} s (its page was closed, or "
                f"the API caller stopped reading it).")

    def _seconds(self) -> float:
        return time.perf_counter() - self._t0 - self._paused_s

    # ----------------------------------------------------------------- records

    def _record_step(self, loss: float, losses: torch.Tensor, first: torch.Tensor | None) -> None:
        c = self.curves
        with self._lock:
            c.steps.append(self.step + 1)
            c.seconds.append(self._seconds())
            c.loss.append(loss)
            if first is not None:                               # (B, T) losses split by the first copy's mask
                c.first.append(float(losses[first].mean()))
                c.repeats.append(float(losses[~first].mean()))
                if self.phase is None and len(c.repeats) >= 20 and c.steps[-1] % 10 == 0:
                    self.phase = find_phase_change(c.steps, c.repeats, c.seconds, self._task.vocab)
        self._bump()

    def _record_probe(self, step: int) -> None:
        result = self.probe.measure(self.model, step)
        with self._lock:
            if self.probes:                                     # the pattern of the last probe only
                last = self.probes[-1]
                self.probes[-1] = ProbeResult(last.step, last.previous_token, last.induction, np.empty(0))
            self.probes.append(result)
        self._bump()

    def _record_sample(self, step: int) -> None:
        text = sample_text(self.model, self._task.prompt(), seed=self.spec.seed)
        with self._lock:
            self.samples.append((step, text))
        self._bump()

    def _end(self, status: str, message: str) -> None:
        with self._lock:
            self.status, self.message = status, message
            self._opt, self._task = None, None      # the optimizer's moments and the data go; the weights stay
        self._bump()
        self._done.set()
        if self.on_end is not None:
            self.on_end(self)

    def _bump(self) -> None:
        self.version += 1

    # ----------------------------------------------------------------- reading (any thread)

    def weights_copy(self) -> GPTModel | None:
        """A copy of the model as it is between two steps (None before the first)."""
        with self._lock:
            if self.model is None:
                return None
            copy = GPTModel(self.model.cfg)
            copy.load_state_dict(self.model.state_dict())
            return copy.eval()

    def save(self, path: "str | Path") -> Path:
        """The weights as they are now, in our own safetensors format, the run described in the header."""
        with self._lock:
            if self.model is None:
                raise ValueError("the run has no weights yet")
            meta = {"training": json.dumps(self.summary())}
            return save_model(self.model, path, metadata=meta)

    def summary(self) -> dict:
        """The run in a few numbers: its settings, where it got, its phase change."""
        c = self.curves
        out = {"id_prefix": self.id[:8], "status": self.status, "message": self.message, "step": self.step,
               "seconds": round(c.seconds[-1], 2) if c.seconds else 0.0, **self.spec.to_dict(),
               "loss_last": c.loss[-1] if c.loss else None,
               "phase_change": None if self.phase is None else {"step": self.phase.step,
                                                                "seconds": round(self.phase.seconds, 2)}}
        if c.repeats:
            out.update(first_copy_loss_last=c.first[-1], repeats_loss_last=c.repeats[-1])
        return out

