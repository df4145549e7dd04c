"""Deep links: the page URL carries the whole view, so a speaker can prepare a sequence of links.

``?tab=generate&prompt=Once+upon&max_new_tokens=40&temperature=0.8&top_k=40&seed=7`` opens the
Generate tab with every control set; ``?tab=attention&prompt=...&layer=3&head=5&view=head``
the Attention tab on that head. Every control of every tab has a parameter, named as the
API's argument (``max_new_tokens``, ``temperature``, ``top_k``, ``top_p``, ``seed``,
``precision``, ``layer``, ``head``, ``view``, ``score``, ``tokens_shown``, ``window_start``,
...). :func:`parse` turns query parameters into a clean :class:`Link` (a bad value is dropped,
never an error: a mistyped link still opens the app); :func:`build` does the reverse for the
"Copy link" button, writing every control of the open tab.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import urlencode

from ..config import PRESETS
from ..inspection.walkthrough import STEP_IDS
from ..training.live_spec import PRESETS as TRAIN_PRESETS
from .i18n import clean_lang

TABS = ("generate", "attention", "shapes", "walkthrough", "parameters", "logit-lens", "next-token", "experiments",
        "surprisal", "ablate", "attribute", "patch", "compare", "circuit", "saliency", "learned", "neurons",
        "embeddings", "train", "model", "talk")
TAB_ALIASES = {"shape": "shapes", "trace": "shapes", "params": "parameters", "lens": "logit-lens",
               "logit_lens": "logit-lens", "logitlens": "logit-lens", "next": "next-token",
               "next_token": "next-token", "nexttoken": "next-token", "gen": "generate", "step": "walkthrough",
               "steps": "walkthrough", "step-by-step": "walkthrough", "tour": "walkthrough", "circuits": "circuit",
               "neuron": "neurons", "embedding": "embeddings", "pca": "embeddings", "ablation": "ablate",
               "attribution": "attribute", "dla": "attribute", "patching": "patch", "comparison": "compare",
               "deck": "talk", "slides": "talk", "training": "train", "learn": "train"}
VIEWS = ("head", "layer", "aggregate")
VIEW_ALIASES = {"single": "head", "single head": "head", "heads": "layer", "all": "layer",
                "all heads": "layer", "mean": "aggregate", "max": "aggregate", "mean & max": "aggregate"}
SCORES = ("previous_token", "first_token", "induction", "entropy", "current_token")
SCORE_ALIASES = {"previous-token": "previous_token", "previous": "previous_token", "first-token": "first_token",
                 "sink": "first_token", "current-token": "current_token", "current": "current_token"}
MAX_PROMPT_CHARS = 2_000     # a link is not the place for a book chapter
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def _int(lo: int, hi: int) -> Callable[[Any], int | None]:
    def parse(value: Any) -> int | None:
        try:
            number = float(str(value).strip())
        except (TypeError, ValueError):
            return None
        if not math.isfinite(number) or not number.is_integer():
            return None
        number = int(number)
        return number if lo <= number <= hi else None
    return parse


def _real(lo: float, hi: float, lo_open: bool = False) -> Callable[[Any], float | None]:
    def parse(value: Any) -> float | None:
        try:
            number = float(str(value).strip())
        except (TypeError, ValueError):
            return None
        if not math.isfinite(number) or number < lo or number > hi or (lo_open and number == lo):
            return None
        return int(number) if number.is_integer() else round(number, 6)
    return parse


def _choice(names: tuple[str, ...] | list[str], aliases: Mapping[str, str] | None = None
            ) -> Callable[[Any], str | None]:
    lookup = {n.lower(): n for n in names} | {k.lower(): v for k, v in (aliases or {}).items()}
    return lambda value: lookup.get(str(value).strip().lower()) if isinstance(value, (str, int)) else None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in TRUE else False if text in FALSE else None


def _prompt(value: Any) -> str | None:
    if not isinstance(value, str) or value == "":
        return None
    return value[:MAX_PROMPT_CHARS]


def _text(value: Any) -> str | None:
    """A text a view may leave empty (no MLPs to ablate, no distractor): empty is a value, not a missing one."""
    if not isinstance(value, str):
        return None
    return value[:MAX_PROMPT_CHARS]


def _names(names: tuple[str, ...]) -> Callable[[Any], list[str] | None]:
    """A comma-separated list of some of ``names`` (``lists=months,colours``); unknown names are dropped."""
    def parse(value: Any) -> list[str] | None:
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        kept = [n for n in (str(x).strip().lower() for x in items) if n in names]
        return list(dict.fromkeys(kept)) if kept else None
    return parse


def head_name(value: Any) -> str | None:
    """The Train tab's head on show: ``best-induction``, ``best-previous`` or ``L1H2``."""
    text = str(value).strip()
    if text.lower() in ("best-induction", "best-previous"):
        return text.lower()
    m = re.fullmatch(r"[Ll](\d{1,3})[Hh](\d{1,3})", text)
    return f"L{int(m.group(1))}H{int(m.group(2))}" if m else None


def _step(value: Any) -> int | None:
    """A walkthrough step by number (0-based) or by id (``attn_weights``)."""
    if isinstance(value, str) and value.strip().lower() in STEP_IDS:
        return STEP_IDS.index(value.strip().lower())
    return _int(0, len(STEP_IDS) - 1)(value)


# Every parameter a link can carry: name -> parser (raw value -> clean value, or None to drop it).
FIELDS: dict[str, Callable[[Any], Any]] = {
    "prompt": _prompt,
    "max_new_tokens": _int(1, 500), "temperature": _real(0.0, 5.0), "top_k": _int(0, 1_000_000),
    "top_p": _real(0.0, 1.0, lo_open=True), "seed": _int(-1, 2**32 - 1),
    "precision": _choice(("fp32", "bf16", "int8")),
    "layer": _int(0, 10_000), "head": _int(0, 10_000), "view": _choice(VIEWS, VIEW_ALIASES),
    "score": _choice(SCORES, SCORE_ALIASES), "tokens_shown": _int(2, 256), "window_start": _int(0, 1_000_000),
    "log_scale": _flag, "hide_first": _flag,
    "lang": clean_lang, "expand": _flag,
    "preset": _choice(tuple(PRESETS), {"medium": "gpt2-medium", "large": "gpt2-large", "xl": "gpt2-xl",
                                       "book": "book-124M", "124m": "book-124M"}),
    "vocab_size": _int(1, 200_000), "context_length": _int(1, 8192), "emb_dim": _int(1, 4096),
    "n_heads": _int(1, 64), "n_layers": _int(1, 96), "qkv_bias": _flag, "tie_embeddings": _flag,
    "position": _int(-100_000, 100_000),
    "show": _int(1, 50), "stages": _flag,
    "step": _step,
    "heads": _text, "mlps": _text, "target": _text, "distractor": _text, "clean": _prompt,
    "corrupted": _prompt, "prompt_b": _prompt,
    "edges": _int(1, 500), "check_heads": _flag,
    "neuron": _int(0, 100_000), "embedding": _choice(("tokens", "positions", "residual")),
    "lists": _names(("numbers", "months", "days", "colours", "countries")), "neighbours": _text, "words": _text,
    "dims": _int(2, 3), "method": _choice(("integrated_gradients", "gradient_x_input"),
                                         {"ig": "integrated_gradients", "gxi": "gradient_x_input"}),
    "steps": _int(1, 256),
    "train_preset": _choice(tuple(TRAIN_PRESETS)), "task": _choice(("copy", "text"), {"copying": "copy",
                                                                                      "induction": "copy"}),
    "drop_rate": _real(0.0, 0.9), "lr": _real(0.0, 1.0, lo_open=True), "train_steps": _int(1, 1_000_000),
    "batch_size": _int(1, 512), "min_len": _int(1, 512), "max_len": _int(1, 512),
    "text_source": _choice(("corpus", "yours")), "text": _prompt, "text_tokens": _int(1, 200_000),
    "sample_every": _int(1, 10_000), "train_head": head_name,
}
# What "Copy link" writes for each tab (the tab's controls, as the API names them).
TAB_FIELDS: dict[str, tuple[str, ...]] = {
    "generate": ("prompt", "max_new_tokens", "temperature", "top_k", "top_p", "seed", "precision"),
    "attention": ("prompt", "layer", "head", "view", "score", "tokens_shown", "window_start", "log_scale",
                  "hide_first"),
    "shapes": ("prompt", "expand"),          # the language ("lang") is the whole page's, added by the header
    "walkthrough": ("prompt", "layer", "head", "step"),
    "parameters": ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "qkv_bias", "tie_embeddings"),
    "logit-lens": ("prompt", "position"),
    "next-token": ("prompt", "temperature", "top_k", "top_p", "show", "stages"),
    "experiments": ("prompt", "heads", "mlps", "target", "distractor", "clean", "corrupted"),   # older links
    "surprisal": ("prompt",),
    "ablate": ("prompt", "heads", "mlps"),
    "attribute": ("prompt", "target", "distractor"),
    "patch": ("clean", "corrupted", "target", "distractor"),
    "compare": ("prompt", "prompt_b"),
    "circuit": ("clean", "corrupted", "target", "distractor", "edges", "check_heads"),
    "saliency": ("prompt", "target", "method", "steps"),
    "learned": (),
    "neurons": ("prompt", "layer", "neuron", "position"),
    "embeddings": ("prompt", "embedding", "lists", "neighbours", "words", "dims"),
    "train": ("train_preset", "task", "vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "drop_rate",
              "qkv_bias", "tie_embeddings", "seed", "lr", "train_steps", "batch_size", "min_len", "max_len",
              "text_source", "text", "text_tokens", "sample_every", "train_head"),
    "model": (),
    "talk": (),
}

# What a link to each tab may carry: its controls, and for Parameters a preset to start from.
TAB_ACCEPTS: dict[str, tuple[str, ...]] = {tab: names + (("preset",) if tab == "parameters" else ())
                                           for tab, names in TAB_FIELDS.items()}
PAGE_FIELDS = ("lang", "present")        # the whole page's, not one view's


@dataclass(frozen=True)
class Link:
    tab: str | None = None
    present: bool | None = None
    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def __getattr__(self, name: str) -> Any:
        """``link.prompt``, ``link.layer``, ...: any field by name (None when the link lacks it)."""
        if name in FIELDS:
            return self.values.get(name)
        raise AttributeError(name)

    def is_empty(self) -> bool:
        return self.tab is None and self.present is None and not self.values


def clean_tab(tab: Any) -> str | None:
    if not isinstance(tab, str):
        return None
    name = tab.strip().lower()
    name = TAB_ALIASES.get(name, name)
    return name if name in TABS else None


def parse(params: Mapping[str, Any]) -> Link:
    """A :class:`Link` from query parameters; anything unusable is left out."""
    get = {str(k).lower(): v for k, v in params.items()}
    values = {}
    for name, parser in FIELDS.items():
        if name in get:
            value = parser(get[name])
            if value is not None:
                values[name] = value
    present = _flag(get["present"]) if "present" in get else None
    return Link(tab=clean_tab(get.get("tab")), present=present, values=values)


def build(tab: Any, values: Mapping[str, Any] | None = None, present: Any = False, lang: Any = None) -> str:
    """The query string (with its leading ``?``) for the open tab: every control it has, and the page's
    language when given (``lang``: "en" or "zh").

    Values come from the page, or from anyone who posts to the queue: one that does not parse
    is left out, never an error."""
    name = clean_tab(tab)
    params: dict[str, Any] = {}
    if name is not None:
        params["tab"] = name
        given = values if isinstance(values, Mapping) else {}
        for key in TAB_ACCEPTS[name]:
            if key in given and given[key] is not None:
                value = FIELDS[key](given[key])
                if value is not None:
                    params[key] = (int(value) if isinstance(value, bool) else ",".join(value)
                                   if isinstance(value, list) else value)
    if present is True:
        params["present"] = 1
    if lang is not None and FIELDS["lang"](lang) is not None:
        params["lang"] = FIELDS["lang"](lang)
    return "?" + urlencode(params, errors="replace") if params else ""     # a lone surrogate becomes "?"
