"""The one model this app serves, shared by every browser session.

Policy: one model per app. Loading another file replaces it for everyone
(the Model tab says so); a request already running keeps the model it
started with, because handlers take a :class:`Snapshot` once and use only
that. Memory stays bounded by one model (two for a moment during a swap).
A file that fails to load changes nothing.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .. import background
from ..fast_decode import prepare_in_background, prepared_kernels
from ..packed_linear import layouts_missing
from ..kernel_choice import cpu_name
from ..model import GPTModel
from ..model_card import ModelCard, card_for
from ..checkpoints import WeightsError, load_model, sha256_file
from ..checkpoints.hub import HUB_REPOS, HubUnavailableError, download_gpt2
from ..devices import pick_device


@dataclass
class Snapshot:
    """What one request works with: the model and facts about where it came from."""

    model: GPTModel
    name: str
    path: Path
    layout: str
    file_dtype: torch.dtype
    file_size: int
    device: str
    generation: int                    # bumps on every load of this holder
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    _sha256: list[str | None] = field(default_factory=lambda: [None])
    _card: list[ModelCard | None] = field(default_factory=lambda: [None])   # set with the sha256
    # Unique across holders and processes' lifetimes: the cache key of everything derived from this model
    # (``generation`` restarts at 1 in every holder, so two holders' models would share cache entries).
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def sha256(self) -> str | None:
        return self._sha256[0]

    @property
    def card(self) -> ModelCard | None:
        """The file's model card (``<weights>.card.json``), once its sha256 is known and matches
        (read once, when the file is hashed: the header asks for it on every refresh)."""
        return self._card[0]

    def info(self) -> dict[str, Any]:
        cfg = self.model.cfg
        return {
            "loaded": True,
            "name": self.name,
            "file": self.path.name,
            "layout": self.layout,
            "config": cfg.to_dict(),
            "parameters": self.model.num_parameters(),
            "dtype": str(self.model.dtype).replace("torch.", ""),
            "file_dtype": str(self.file_dtype).replace("torch.", ""),
            "device": self.device,
            "file_size_bytes": self.file_size,
            "sha256": self.sha256,
            "sha256_prefix": self.sha256[:12] if self.sha256 else None,
            "load_seconds": round(self.load_seconds, 3),
            "card": None if self.card is None else {"name": self.card.name, "short": self.card.short},
            # The fast decoder's layout per matrix, measured on this machine (playground.kernel_choice).
            "kernels": prepared_kernels(self.model),
            "cpu": cpu_name() if self.device == "cpu" else None,
            # Layouts this CPU cannot run for a prepared precision, and why (then another one runs).
            "kernels_missing": {p: missing for p in prepared_kernels(self.model)
                                if (missing := layouts_missing(p, self.device))},
        }


log = logging.getLogger("playground.ui")


def is_hub_name(path: "str | Path") -> bool:
    """``gpt2``, ``gpt2-medium``, ...: a size to fetch from the Hub, unless a file of that name exists."""
    p = Path(path)
    return str(p) in HUB_REPOS and not p.exists()


class ModelHolder:
    """Thread-safe holder of the current :class:`Snapshot` (or none yet).

    The default file is loaded on first need (or eagerly by ``app.py``); loads
    are serialised by one lock, so a request that arrives while the default is
    loading waits for it instead of loading it a second time.
    """

    def __init__(self, default_path: "str | Path | None" = None, device: str | None = None,
                 dtype: torch.dtype = torch.float32, hash_in_background: bool = True,
                 prepare_fast_weights: bool = True) -> None:
        self.default_path = Path(default_path) if default_path else None
        self.device = pick_device(device)
        self.dtype = dtype
        self.hash_in_background = hash_in_background
        self.prepare_fast_weights = prepare_fast_weights
        self._load_lock = threading.RLock()
        self._snapshot: Snapshot | None = None
        self._generation = 0
        self._tried_default = False
        self.startup_error: str | None = None
        # Per-model work a view would otherwise do on its first request (e.g. head scores on random tokens),
        # run in one background thread after every load, in this order.
        self.after_load: list[Callable[[Snapshot], object]] = []

    # ----------------------------------------------------------------- reading

    def current(self) -> Snapshot | None:
        return self._snapshot

    def require(self) -> Snapshot:
        """The current snapshot (loading the default on first need), or a plain-language error."""
        snap = self.ensure_loaded()
        if snap is None:
            import gradio as gr
            raise gr.Error(self.missing_message(), title="No model loaded", print_exception=False)
        return snap

    def missing_message(self) -> str:
        why = f" ({self.startup_error})" if self.startup_error else ""
        return ("No model is loaded yet" + why + ". Open the Model tab to pick a weights file, "
                "upload one, or download GPT-2.")

    def info(self) -> dict[str, Any]:
        snap = self.ensure_loaded()
        if snap is None:
            return {"loaded": False, "message": self.missing_message(), "device": self.device}
        return snap.info()

    # ----------------------------------------------------------------- loading

    def load(self, path: "str | Path", name: str | None = None) -> Snapshot:
        """Load ``path`` and make it the current model; raises WeightsError and keeps the old one."""
        path = Path(path)
        with self._load_lock:
            start = time.perf_counter()
            loaded = load_model(path, dtype=self.dtype, device=self.device)
            seconds = time.perf_counter() - start
            self._generation += 1
            snap = Snapshot(model=loaded.model, name=name or path.stem, path=path, layout=loaded.layout,
                            file_dtype=loaded.file_dtype, file_size=path.stat().st_size,
                            device=self.device, generation=self._generation, load_seconds=seconds)
            self._snapshot = snap
            self._tried_default = True
            self.startup_error = None
        self._hash(snap)
        if self.prepare_fast_weights:
            prepare_in_background(snap.model)   # the first Generate finds the fp32 decoder ready
        self._prepare_views(snap)
        return snap

    def _prepare_views(self, snap: Snapshot) -> None:
        def work() -> None:
            for fn in list(self.after_load):
                if self._snapshot is not snap:
                    return                          # another model came meanwhile: its own thread prepares it
                try:
                    fn(snap)
                except Exception:
                    log.error("preparing %s for the views failed (they will compute it on first need)",
                              getattr(fn, "__name__", fn), exc_info=True)
        if self.after_load:
            background.start(work, "prepare-views")

    def ensure_loaded(self) -> Snapshot | None:
        """The current snapshot, trying the default file once if nothing is loaded yet.

        A missing or bad default leaves ``startup_error`` (shown in the UI), not a crash.
        """
        if self._snapshot is not None:
            return self._snapshot
        with self._load_lock:      # waits for a load in progress (e.g. the default, at start-up)
            if self._snapshot is None and not self._tried_default:
                self._tried_default = True
                path = self.default_path
                if path is not None and is_hub_name(path):
                    path = self._download_default(str(path))
                    if path is None:
                        return None
                if path is None:
                    self.startup_error = self.startup_error or "no default weights file configured"
                elif not path.exists():
                    self.startup_error = f"{path.name} was not found in {path.parent}"
                else:
                    try:
                        self.load(path, name=self.default_name)
                    except (WeightsError, OSError) as e:
                        self.startup_error = str(e)
                    except Exception as e:  # e.g. CUDA out of memory: say so, keep the traceback in the log
                        log.error("loading %s failed", path, exc_info=True)
                        self.startup_error = f"{type(e).__name__}: {e}"
        return self._snapshot

    @property
    def default_name(self) -> str | None:
        """A Hub size given as the default (``--weights gpt2``) names the model; a file names itself."""
        return str(self.default_path) if self.default_path is not None and is_hub_name(self.default_path) else None

    def _download_default(self, size: str) -> Path | None:
        """``--weights gpt2`` (or any OpenAI size): the cached file, else one download, with progress in
        the log. ``None`` (and ``startup_error``) when it cannot be had."""
        log.info("the default model is %s: looking in the Hub cache, else downloading it", size)
        try:
            return download_gpt2(size)
        except HubUnavailableError as e:
            log.error("%s", e)
            self.startup_error = str(e)
            return None

    def _hash(self, snap: Snapshot) -> None:
        def work() -> None:
            try:
                digest = sha256_file(snap.path)
            except OSError:
                digest = None
            snap._card[0] = card_for(snap.path, digest)     # before the sha256: a reader never sees one
            snap._sha256[0] = digest                         # without the other

        if self.hash_in_background:
            threading.Thread(target=work, name="sha256", daemon=True).start()
        else:
            work()
