"""What every tab and the API share: the app context, queues, error policy, caches, exports.

Error policy: a :class:`~.validate.InputError` (the validation layer's own
type) is the user's to fix and is shown as it is. Anything else is a bug: it
is logged with its traceback and the user sees "internal error", never a
traceback and never a misleading "check your input".
"""
from __future__ import annotations

import functools
import inspect
import re
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from .. import examples as ex
from ..examples import EXAMPLE_PROMPTS
from ..inspection.inputs import visible
from ..tokenizer import get_tokenizer
from ..batching import Batcher
from ..training.registry import TrainingLine
from .i18n import current_lang, tr, tr_outputs
from .state import ModelHolder, Snapshot
from .validate import InputError

log = logging.getLogger("playground.ui")

EXAMPLES = EXAMPLE_PROMPTS
DEFAULT_PROMPT = EXAMPLES[0]
# Everything that runs the model's own forward shares one queue, one at a time: inspection attaches
# hooks to the shared model, so two passes must never overlap. Generations run on the batcher's
# prepared weights, which hooks never touch, in their own queue (:func:`generate_queue`).
# Arithmetic-only events skip both.
MODEL_QUEUE: dict[str, Any] = dict(concurrency_id="model", concurrency_limit=1)
LIGHT: dict[str, Any] = dict(concurrency_id="light", concurrency_limit=None)
PRIVATE: dict[str, Any] = dict(api_visibility="private")


@dataclass
class AppContext:
    """What a tab needs from the app around it."""

    holder: ModelHolder
    weights_dir: Path
    allow_model_change: bool
    upload_mb: int
    batcher: Batcher = field(default_factory=Batcher)  # every generation decodes in its shared batch
    training: TrainingLine = field(default_factory=TrainingLine)   # the server's one training at a time
    present: gr.Checkbox | None = None       # the header's presentation-mode switch
    current_tab: gr.Textbox | None = None    # the header's hidden field naming the open tab
    lang: gr.Radio | None = None             # the header's language switch ("en" / "zh")
    badge: gr.Markdown | None = None         # the header's model line

    def need_model(self) -> Snapshot:
        return self.holder.require()


def generate_queue(batcher: Batcher) -> dict[str, Any]:
    """The queue of the page's Generate and the ``/generate`` endpoint: as many running at once as the
    batcher decodes together; the rest wait in Gradio's queue, with their place shown."""
    return dict(concurrency_id="generate", concurrency_limit=batcher.max_batch)


# =========================================================================== errors

class InternalError(gr.Error):
    """A bug, already logged with its traceback; the user gets one plain sentence."""

    def __init__(self, where: str) -> None:
        super().__init__(f"Something went wrong inside the app while computing {where} (an internal error, "
                         "logged on the server). Your inputs are kept; try again or change them.",
                         title="Internal error", print_exception=False)


def guarded(fn: Callable) -> Callable:
    """``fn`` (a plain function or a generator) with the error policy above."""
    where = fn.__name__.removeprefix("ui_").replace("_", " ")

    def convert(e: BaseException) -> BaseException:
        if isinstance(e, gr.Error):          # InputError, "no model loaded", queue messages...
            return e
        log.error("internal error in %s", fn.__qualname__, exc_info=e)
        return InternalError(where)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            lang = current_lang()
            try:
                for out in fn(*args, **kwargs):
                    yield tr_outputs(out, lang)
            except GeneratorExit:
                raise
            except Exception as e:
                raise localized(convert(e), lang) from None
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        lang = current_lang()
        try:
            return tr_outputs(fn(*args, **kwargs), lang)
        except Exception as e:
            raise localized(convert(e), lang) from None
    return wrapper


def localized(e: BaseException, lang: str) -> BaseException:
    """A user-facing error's title and message in ``lang`` (the same class, so the policy above holds)."""
    if lang == "en" or not isinstance(e, gr.Error):
        return e
    e.message = tr(e.message, lang)
    e.title = tr(e.title, lang) if getattr(e, "title", None) else e.title
    return e


def lang_keyed(t: Any, fn: Callable) -> Callable:
    """``fn(*inputs, key=...)`` whose key also holds the language it drew in: a view drawn in English is
    drawn again when the page has switched to 中文 since."""
    def keyed(*args: Any, key: Any = None) -> Any:
        lang = current_lang()
        inner = key[1] if isinstance(key, tuple) and len(key) == 2 and key[0] == lang else None
        out = fn(*args, key=inner)
        if isinstance(out, dict) and t.key in out and not _is_skip(out[t.key]):
            out = {**out, t.key: (lang, out[t.key])}
        return out
    # Its name, not its signature (functools.wraps would show Gradio the inner ``key`` parameter as one more
    # input to fill): the page's events and the fuzz tests find a handler by name.
    keyed.__name__, keyed.__qualname__ = fn.__name__, getattr(fn, "__qualname__", fn.__name__)
    return keyed


def _is_skip(value: Any) -> bool:
    return isinstance(value, dict) and value.get("__type__") == "update" and len(value) == 1


def wire_view(t: Any, ctx: AppContext, fn: Callable, triggers: list) -> None:
    """The events every view tab has: each trigger (click, submit, release...) recomputes the view in
    the model queue, and opening the tab recomputes it only if its inputs (or the page's language)
    changed since it was drawn (``fn(*inputs, key=...)`` returns ``{}`` then)."""
    inputs, outputs = t.inputs(ctx), t.outputs()
    keyed = lang_keyed(t, fn)
    for trigger in triggers:
        trigger(keyed, inputs, outputs, trigger_mode="always_last", **MODEL_QUEUE, **PRIVATE)
    t.tab.select(lambda *a: keyed(*a[:-1], key=a[-1]), inputs + [t.key], outputs, **MODEL_QUEUE, **PRIVATE)


def examples_with_note(tab_id: str, prompt: gr.Textbox) -> gr.Markdown:
    """The tab's example prompts under ``prompt`` and a line saying what to look at in the chosen one
    (call inside the tab's layout; it follows the prompt box, empty for the user's own text)."""
    example_prompts(tab_id, prompt)
    return example_hint(tab_id, prompt)


def example_prompts(tab_id: str, prompt: gr.Textbox) -> None:
    """The tab's example prompts, filling ``prompt`` when clicked."""
    gr.Examples(ex.prompts(tab_id), inputs=[prompt], label="Example prompts", cache_examples=False,
                api_visibility="private")


def example_hint(tab_id: str, prompt: gr.Textbox) -> gr.Markdown:
    """A line saying what to look at in the chosen example (empty for the user's own text)."""
    note = gr.Markdown(_note_text(tab_id, prompt.value), elem_id=f"{tab_id}-example-note",
                       elem_classes="example-note")
    prompt.change(lambda p: _note_text(tab_id, p), [prompt], [note], show_progress="hidden", **LIGHT, **PRIVATE)
    return note


# =========================================================================== the stage layout
# Every view: a thin bar with the prompt, the main button and the one or two controls that matter, the
# figure under it filling the screen, everything else (examples, advanced settings, tables, downloads) in a
# collapsed section below. At 1280x720 in presentation mode the bar and the figure fit one screen.

def stage_bar() -> gr.Row:
    """The compact bar above a view's figure (use as ``with stage_bar():``)."""
    return gr.Row(equal_height=True, elem_classes=["stage-bar"])


def stage_more(label: str = "More: examples, settings, tables and downloads", elem_id: str | None = None
               ) -> gr.Accordion:
    """The collapsed section under a view's figure."""
    return gr.Accordion(label, open=False, elem_classes=["stage-more"], elem_id=elem_id)


def _note_text(tab_id: str, prompt: Any) -> str:
    text = ex.note_for(tab_id, prompt) if isinstance(prompt, str) else ""
    return tr(f"**What to look at:** {text}", current_lang()) if text else ""


# =========================================================================== caches

class LRU:
    """A tiny thread-safe LRU for results derived from (model identity, prompt, ...).

    A key being made is made once: a second caller waits for the first's value (a view asked for while the
    same result is prepared in the background at load does not compute it twice)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._making: dict[Any, threading.Lock] = {}

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            own = self._making.setdefault(key, threading.Lock())
        with own:                                   # one maker per key; the others wait here, then read it
            with self._lock:
                if key in self._data:
                    self._data.move_to_end(key)
                    return self._data[key]
            try:
                value = make()
            except BaseException:
                with self._lock:
                    self._making.pop(key, None)
                raise
            with self._lock:
                self._data[key] = value
                self._making.pop(key, None)
                while len(self._data) > self.size:
                    self._data.popitem(last=False)
        return value


# =========================================================================== prompts

_ID_LIST = re.compile(r"\s*\d+(?:[\s,]+\d+)*\s*")


def encode(snap: Snapshot, text: str) -> list[int]:
    """Token ids of ``text``; ids the loaded model does not know are a plain error. A model with a smaller
    vocabulary than GPT-2's (one trained in the Train tab on the copying task) reads its prompt as token ids
    when it is only numbers (``5 17 42 5 17 42``): GPT-2's tokens of ordinary text are beyond it."""
    tok = get_tokenizer()
    vocab = snap.model.cfg.vocab_size
    small = vocab < tok.n_vocab
    if small and _ID_LIST.fullmatch(text):
        ids = [int(x) for x in re.findall(r"\d+", text)]
        bad = next((i for i in ids if i >= vocab), None)
        if bad is not None:
            raise InputError(f"This model knows only {vocab:,} different tokens (ids 0 to {vocab - 1:,}); "
                             f"{bad:,} is not one of them.")
        return ids
    ids = tok.encode(text)
    bad = next((i for i in ids if i >= vocab), None)
    if bad is not None:
        shown = visible(tok.token_text(bad))
        if small:
            raise InputError(f"This model knows only {vocab:,} different tokens, and your text uses token {bad:,} "
                             f"({shown!r}). Write the prompt as token ids from 0 to {vocab - 1:,} instead, e.g. "
                             f"5 17 42 5 17 42.")
        raise InputError(f"This model knows only {vocab:,} different tokens, and your text uses token "
                         f"{bad:,} ({shown!r}). Try plainer text.")
    return ids


def crop_note(ids: list[int], limit: int, what: str) -> tuple[list[int], str]:
    """The last ``limit`` ids, and a sentence saying what was left out (empty if nothing)."""
    if len(ids) <= limit:
        return ids, ""
    return ids[-limit:], (f"Your text is {len(ids):,} tokens; the {what} shows the last {limit:,} "
                          f"(the first {len(ids) - limit:,} are left out).")


# =========================================================================== exports

EXPORT_DIR = Path(tempfile.gettempdir()) / "gpt2-playground-exports"
EXPORT_MAX_AGE_S = 3600
EXPORT_MAX_FILES = 300          # a busy public Space writes 2-3 files per view
_export_lock = threading.Lock()


def prune_exports(folder: Path = EXPORT_DIR, max_age_s: float = EXPORT_MAX_AGE_S,
                  max_files: int = EXPORT_MAX_FILES) -> int:
    """Delete export folders older than ``max_age_s`` and the oldest beyond ``max_files``; returns
    how many were removed. Each export is one folder holding one file."""
    try:
        entries = [(p.stat().st_mtime, p) for p in folder.iterdir()]
    except OSError:
        return 0
    entries.sort()
    now = time.time()
    doomed = [p for t, p in entries if now - t > max_age_s]
    kept = [p for t, p in entries if now - t <= max_age_s]
    doomed += kept[:max(0, len(kept) - max_files)]
    for p in doomed:
        try:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        except OSError:
            log.warning("could not remove the old export %s", p, exc_info=True)
    return len(doomed)


def export_file(stem: str, suffix: str, text: str) -> str:
    """Write ``text`` to a fresh file for download; the folder stays bounded in age and count."""
    with _export_lock:
        EXPORT_DIR.mkdir(parents=True, exist_ok=True)
        prune_exports(EXPORT_DIR, max_files=EXPORT_MAX_FILES - 1)
        folder = EXPORT_DIR / uuid.uuid4().hex[:12]
        folder.mkdir()
    path = folder / f"{stem}.{suffix}"
    path.write_text(text, encoding="utf-8")
    return str(path)
