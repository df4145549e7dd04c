"""The server's settings, read from the environment in one place.

``app.py`` reads them once at import (:func:`from_env`). A value that cannot be used is logged with
the default used instead, never an error: a mistyped setting on a Space must not stop the app
from starting.

========================== ======================================================= ===============
variable                   meaning                                                 default
========================== ======================================================= ===============
PLAYGROUND_WEIGHTS         weights file to serve (or gpt2, gpt2-medium, ...)       bundled model
PLAYGROUND_DEVICE          cpu / cuda / cuda:1                                     cuda when there
PLAYGROUND_LOCK_MODEL      1: hide the Model tab's load/upload/download controls   off; on when
                           (0 turns them on again on a Hugging Face Space)         SPACE_ID is set
PLAYGROUND_QUEUE_SIZE      requests waiting at most ("Queue is full" beyond)       64
PLAYGROUND_MAX_UPLOAD_MB   largest upload in MB                                    1024
PLAYGROUND_MAX_BATCH       generations decoded together at most                    16
PLAYGROUND_BATCH_WAIT_S    seconds a generation may wait to join the batch         30
PLAYGROUND_BATCH_CACHE_MB  KV-cache memory of all batched rows together            1024
PLAYGROUND_TRAIN_MAX_S     seconds of training one Train-tab run may take          300
PLAYGROUND_TRAIN_MAX_STEPS steps one Train-tab run may ask for                     5000
PLAYGROUND_TRAIN_THREADS   torch threads of the training (the views keep theirs)   1
PLAYGROUND_TRAIN_QUEUE     runs waiting behind the one training, at most           8
========================== ======================================================= ===============
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from .batching import (CACHE_MB_ENV, DEFAULT_CACHE_MB, DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_S, MAX_BATCH_ENV,
                       MAX_WAIT_ENV, Batcher)
from .paths import DEFAULT_WEIGHTS
from .training.live_spec import Limits
from .training.registry import TrainingLine

log = logging.getLogger("playground.settings")

WEIGHTS_ENV = "PLAYGROUND_WEIGHTS"
DEVICE_ENV = "PLAYGROUND_DEVICE"
LOCK_ENV = "PLAYGROUND_LOCK_MODEL"
QUEUE_ENV = "PLAYGROUND_QUEUE_SIZE"
UPLOAD_ENV = "PLAYGROUND_MAX_UPLOAD_MB"
TRAIN_MAX_S_ENV = "PLAYGROUND_TRAIN_MAX_S"
TRAIN_MAX_STEPS_ENV = "PLAYGROUND_TRAIN_MAX_STEPS"
TRAIN_THREADS_ENV = "PLAYGROUND_TRAIN_THREADS"
TRAIN_QUEUE_ENV = "PLAYGROUND_TRAIN_QUEUE"
DEFAULT_QUEUE_SIZE = 64
DEFAULT_UPLOAD_MB = 1024
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    weights: Path | str = DEFAULT_WEIGHTS
    device: str | None = None
    lock_model: bool = False
    queue_size: int = DEFAULT_QUEUE_SIZE
    max_upload_mb: int = DEFAULT_UPLOAD_MB
    max_batch: int = DEFAULT_MAX_BATCH
    batch_wait_s: float = DEFAULT_MAX_WAIT_S
    batch_cache_mb: float = DEFAULT_CACHE_MB
    train_max_s: float = Limits.max_s
    train_max_steps: int = Limits.max_steps
    train_threads: int = Limits.threads
    train_queue: int = Limits.max_waiting

    def batcher(self) -> Batcher:
        """A :class:`Batcher` with these batch settings."""
        return Batcher(max_batch=self.max_batch, max_wait_s=self.batch_wait_s,
                       cache_budget_bytes=int(self.batch_cache_mb * 2**20))

    def training_line(self) -> TrainingLine:
        """The Train tab's line with these caps (a paused run waits at most as long as one may train)."""
        return TrainingLine(Limits(max_s=self.train_max_s, max_steps=self.train_max_steps, threads=self.train_threads,
                                   max_waiting=self.train_queue, max_pause_s=self.train_max_s))


def _positive(kind: Callable[[str], float], what: str) -> Callable[[str], float | None]:
    """A parser of a finite number above 0 of ``kind`` (int or float); None when it is not one."""
    def parse(raw: str) -> float | None:
        try:
            value = kind(raw)
        except ValueError:
            return None
        return value if math.isfinite(value) and value > 0 else None
    parse.what = what               # type: ignore[attr-defined]  # said in the log line
    return parse


def _flag(raw: str) -> bool | None:
    text = raw.lower()
    return True if text in TRUE else False if text in FALSE else None


_flag.what = "one of " + ", ".join(TRUE + FALSE)      # type: ignore[attr-defined]


def read(env: Mapping[str, str], name: str, parse: Callable[[str], object], default: object) -> object:
    """``env[name]`` parsed, or ``default`` when unset or blank; an unusable value is logged with the default."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    value = parse(raw)
    if value is None:
        log.warning("$%s must be %s, got %r: using the default, %s", name, getattr(parse, "what", "valid"),
                    raw, default)
        return default
    return value


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    """The settings of ``env`` (default: ``os.environ``, read now)."""
    env = os.environ if env is None else env
    whole = _positive(int, "a whole number above 0")
    return Settings(
        weights=env.get(WEIGHTS_ENV, "").strip() or DEFAULT_WEIGHTS,
        device=env.get(DEVICE_ENV, "").strip() or None,
        # On a Hugging Face Space (SPACE_ID set) any visitor could swap the model for every open page, mid-talk:
        # locked unless the owner turns it on with PLAYGROUND_LOCK_MODEL=0.
        lock_model=bool(read(env, LOCK_ENV, _flag, bool(env.get("SPACE_ID", "").strip()))),
        queue_size=int(read(env, QUEUE_ENV, whole, DEFAULT_QUEUE_SIZE)),
        max_upload_mb=int(read(env, UPLOAD_ENV, whole, DEFAULT_UPLOAD_MB)),
        max_batch=int(read(env, MAX_BATCH_ENV, whole, DEFAULT_MAX_BATCH)),
        batch_wait_s=float(read(env, MAX_WAIT_ENV, _positive(float, "a number above 0"), DEFAULT_MAX_WAIT_S)),
        batch_cache_mb=float(read(env, CACHE_MB_ENV, _positive(float, "a number above 0"), DEFAULT_CACHE_MB)),
        train_max_s=float(read(env, TRAIN_MAX_S_ENV, _positive(float, "a number above 0"), Limits.max_s)),
        train_max_steps=int(read(env, TRAIN_MAX_STEPS_ENV, whole, Limits.max_steps)),
        train_threads=int(read(env, TRAIN_THREADS_ENV, whole, Limits.threads)),
        train_queue=int(read(env, TRAIN_QUEUE_ENV, whole, Limits.max_waiting)),
    )
