"""Deep links: the page URL carries the view, so a speaker can prepare a sequence of links.

``?tab=attention&prompt=The+cat+sat&layer=3&head=5&view=head`` opens the
Attention tab on that prompt, layer and head. :func:`parse` turns query
parameters into a clean :class:`Link` (bad values are dropped, never an
error: a mistyped link still opens the app); :func:`build` does the reverse
for the "copy link" button.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping
from urllib.parse import urlencode

TABS = ("generate", "attention", "shapes", "parameters", "logit-lens", "next-token", "model")
TAB_ALIASES = {"shape": "shapes", "trace": "shapes", "params": "parameters", "lens": "logit-lens",
               "logit_lens": "logit-lens", "logitlens": "logit-lens", "next": "next-token",
               "next_token": "next-token", "nexttoken": "next-token", "gen": "generate"}
VIEWS = ("head", "layer", "aggregate")
VIEW_ALIASES = {"single": "head", "single head": "head", "heads": "layer", "all": "layer",
                "all heads": "layer", "mean": "aggregate", "max": "aggregate", "mean & max": "aggregate"}
MAX_PROMPT_CHARS = 2_000     # a link is not the place for a book chapter


@dataclass(frozen=True)
class Link:
    tab: str | None = None
    prompt: str | None = None
    layer: int | None = None
    head: int | None = None
    view: str | None = None
    lang: str | None = None
    preset: str | None = None
    present: bool | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


def _int(value: Any, hi: int = 10_000) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 <= number <= hi else None


def parse(params: Mapping[str, Any]) -> Link:
    """A :class:`Link` from query parameters; anything unusable becomes None."""
    get = {str(k).lower(): v for k, v in params.items()}
    tab = str(get.get("tab", "")).strip().lower() or None
    tab = TAB_ALIASES.get(tab, tab)
    view = str(get.get("view", "")).strip().lower() or None
    view = VIEW_ALIASES.get(view, view)
    lang = str(get.get("lang", "")).strip().lower() or None
    lang = {"zh": "zh", "中文": "zh", "cn": "zh", "en": "en", "english": "en"}.get(lang) if lang else None
    prompt = get.get("prompt")
    prompt = str(prompt)[:MAX_PROMPT_CHARS] if prompt not in (None, "") else None
    present = get.get("present")
    return Link(
        tab=tab if tab in TABS else None,
        prompt=prompt,
        layer=_int(get.get("layer")) if "layer" in get else None,
        head=_int(get.get("head")) if "head" in get else None,
        view=view if view in VIEWS else None,
        lang=lang,
        preset=str(get["preset"]).strip() or None if "preset" in get else None,
        present=(str(present).strip().lower() in ("1", "true", "yes", "on")) if present is not None else None,
    )


def build(tab: str | None, prompt: str | None = None, layer: Any = None, head: Any = None,
          view: str | None = None, lang: str | None = None, present: bool = False) -> str:
    """The query string (with its leading ``?``) for the current view; only what that tab uses.

    Values come from the page, or from anyone who posts to the queue: a non-text value is dropped."""
    tab, prompt, view, lang = (x if isinstance(x, str) else None for x in (tab, prompt, view, lang))
    tab = TAB_ALIASES.get(tab or "", tab) if tab else None
    params: dict[str, Any] = {}
    if tab in TABS:
        params["tab"] = tab
    if prompt and tab not in ("parameters", "model"):
        params["prompt"] = prompt[:MAX_PROMPT_CHARS]
    if tab == "attention":
        for key, value in (("layer", layer), ("head", head)):
            number = _int(value)
            if number is not None:
                params[key] = number
        if view in VIEWS:
            params["view"] = view
    if tab == "shapes" and lang in ("en", "zh"):
        params["lang"] = lang
    if present:
        params["present"] = 1
    return "?" + urlencode(params, errors="replace") if params else ""     # a lone surrogate becomes "?"
