"""One place that checks and converts every value that reaches a handler.

Values arrive from sliders, from text boxes and from the HTTP API, where they
can be anything JSON can carry: strings for numbers, ``None``, NaN, booleans,
lists, a 100,000-character prompt. Each function here accepts that, returns
a clean Python value, or raises :class:`gradio.Error` with a sentence a
non-expert can act on. Nothing here touches the model.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping

import gradio as gr

MAX_PROMPT_CHARS = 100_000       # longer text is refused before it is tokenized
MAX_NEW_TOKENS = 500
MAX_TEMPERATURE = 5.0
MAX_SEED = 2**32 - 1
MAX_ALTERNATIVES = 20
# Views that draw T x T tables keep the last tokens of a long prompt and say so.
ATTENTION_TOKENS = 256
TRACE_TOKENS = 1024
LENS_TOKENS = 64
# The parameter calculator accepts anything a config can be, within reason.
PARAM_LIMITS: dict[str, tuple[int, int]] = {
    "vocab_size": (1, 1_000_000),
    "context_length": (1, 1_000_000),
    "emb_dim": (1, 100_000),
    "n_heads": (1, 1_000),
    "n_layers": (1, 1_000),
}


# Uploaded weights: refused above this size by the server (Gradio's max_file_size) and by the
# upload handler. GPT-2 small is 548 MB in fp32, medium 1.5 GB (710 MB in fp16).
UPLOAD_ENV = "PLAYGROUND_MAX_UPLOAD_MB"
DEFAULT_UPLOAD_MB = 1024
UPLOAD_SUFFIX = ".safetensors"


def upload_limit_mb(env: Mapping[str, str] = os.environ) -> int:
    """The upload limit in MB (2**20 bytes, as Gradio counts them): ``$PLAYGROUND_MAX_UPLOAD_MB`` or 1024."""
    raw = env.get(UPLOAD_ENV, "").strip()
    if not raw:
        return DEFAULT_UPLOAD_MB
    try:
        mb = int(raw)
    except ValueError:
        raise ValueError(f"{UPLOAD_ENV} must be a whole number of megabytes (got {raw!r})") from None
    if mb < 1:
        raise ValueError(f"{UPLOAD_ENV} must be at least 1 (got {mb})")
    return mb


class InputError(gr.Error):
    """A value the user (or an API caller) sent that cannot be used; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, title="Please check your input", print_exception=False)


def _number(value: Any, label: str) -> float | int:
    """Any JSON-ish scalar -> int or float; everything else is an InputError."""
    if isinstance(value, bool):
        raise InputError(f"{label} must be a number, not {str(value).lower()}.")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"{label} must be an ordinary number (got {value}).")
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            shown = text if len(text) <= 20 else text[:20] + "…"
            raise InputError(f"{label} must be a number (got {shown!r}).") from None
        return _number(number, label)
    raise InputError(f"{label} must be a number (got {type(value).__name__}).")


def whole(value: Any, label: str, lo: int, hi: int, default: int | None = None) -> int:
    """A whole number in ``[lo, hi]``; ``None``/"" give ``default`` when there is one."""
    if (value is None or value == "") and default is not None:
        return default
    if value is None or value == "":
        raise InputError(f"{label} is missing: enter a whole number from {lo} to {hi}.")
    number = _number(value, label)
    if isinstance(number, float):
        if not number.is_integer():
            raise InputError(f"{label} must be a whole number (got {number:g}).")
        number = int(number)
    if not lo <= number <= hi:
        raise InputError(f"{label} must be between {lo:,} and {hi:,} (got {number:,}).")
    return number


def real(value: Any, label: str, lo: float, hi: float, default: float | None = None,
         lo_open: bool = False) -> float:
    """A finite number in ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``)."""
    if (value is None or value == "") and default is not None:
        return default
    if value is None or value == "":
        raise InputError(f"{label} is missing: enter a number from {lo:g} to {hi:g}.")
    try:
        number = float(_number(value, label))
    except OverflowError:          # an integer with hundreds of digits
        raise InputError(f"{label} must be at most {hi:g}.") from None
    if number > hi or number < lo or (lo_open and number == lo):
        bound = f"above {lo:g}" if lo_open else f"at least {lo:g}"
        raise InputError(f"{label} must be {bound} and at most {hi:g} (got {number:g}).")
    return number


def flag(value: Any, label: str, default: bool = False) -> bool:
    """True/False; also 0/1 and "true"/"false" as an API caller might send them."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
        return value.strip().lower() in ("true", "1", "yes", "on")
    raise InputError(f"{label} must be true or false.")


def choice(value: Any, label: str, options: Mapping[str, str], default: str | None = None) -> str:
    """One of ``options`` (keys are accepted spellings, lower-case; values the canonical name)."""
    if (value is None or value == "") and default is not None:
        return default
    key = value.strip().lower() if isinstance(value, str) else None
    if key in options:
        return options[key]
    names = ", ".join(dict.fromkeys(options.values()))
    raise InputError(f"{label} must be one of: {names}.")


def seed(value: Any) -> int | None:
    """A seed for reproducible sampling; empty, None or -1 mean "a new random one each time"."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    number = whole(value, "Seed", -1, MAX_SEED)
    return None if number == -1 else number


def prompt(value: Any, label: str = "Prompt") -> str:
    """Non-empty text of at most MAX_PROMPT_CHARS characters (lone surrogates are tolerated)."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InputError(f"{label} must be text.")
    if not value.strip():
        raise InputError(f"{label} is empty: type some text first.")
    if len(value) > MAX_PROMPT_CHARS:
        raise InputError(f"{label} is too long: {len(value):,} characters; the limit is "
                         f"{MAX_PROMPT_CHARS:,}. Paste a shorter passage.")
    return value


def prompt_fits(n_tokens: int, context_length: int, label: str = "Prompt") -> None:
    """Generation needs the prompt inside the model's window (views crop instead)."""
    if n_tokens > context_length:
        raise InputError(f"{label} is {n_tokens:,} tokens long, but this model reads at most "
                         f"{context_length:,} tokens at a time. Shorten it.")


def index(value: Any, label: str, count: int, default: int | None = 0) -> int:
    """A layer or head number of the loaded model: 0 .. count-1."""
    if value is None or value == "":
        return whole(value, label, 0, count - 1, default)
    try:
        return whole(value, label, 0, count - 1, default)
    except InputError as e:
        raise InputError(f"{e.message} This model has {count} {label.lower()}s, numbered 0 to {count - 1}.") from None


LANGUAGES = {"en": "en", "english": "en", "zh": "zh", "中文": "zh", "chinese": "zh", "zh-cn": "zh"}
