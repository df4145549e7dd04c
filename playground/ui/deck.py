"""Talk decks: a talk as an ordered list of live views, each with a title and speaker notes.

A deck is a JSON file (schema version 1)::

    {"format": "gpt2-playground-deck", "version": 1, "title": "GPT-2 from the inside", "lang": "en",
     "requires": {"n_layers": 12, "n_heads": 12, "emb_dim": 768, "why": "..."},
     "slides": [{"title": "A head's pattern", "notes": "Markdown for the speaker.",
                 "view": {"tab": "attention", "prompt": "The cat sat", "layer": 3, "head": 2}}]}

- ``view`` is a deep link's content (``deeplink.py``): ``tab`` and any of that tab's controls, named and
  valued as in its URL. A slide may give ``link`` instead: a deep link pasted whole (``?tab=...`` or the
  full address; the page's own ``lang`` and ``present`` in it are ignored).
- ``requires`` (deck or slide, at least these sizes) makes the deck bar say so when the loaded model is
  smaller; ``why`` says what is lost.
- A missing field gets its default (version 1, title "Untitled talk", lang "en", no slides; a slide's title
  and notes empty, its view the Generate tab); a field this version does not know is kept as it is and
  written back. Anything else wrong is a :class:`DeckError` naming the slide and the field.

Pure: no Gradio. The page's deck bar, editor and speaker view are ``deckbar.py`` and ``tabs/talk.py``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from markdown_it import MarkdownIt

from ..paths import PROJECT_ROOT
from . import deeplink, nav
from .i18n import clean_lang

FORMAT = "gpt2-playground-deck"
VERSION = 1
MAX_BYTES = 1_000_000             # a deck is text and links: a bigger file is the wrong file
MAX_SLIDES = 300
MAX_TITLE = 200
MAX_NOTES = 20_000
DECK_DIR = PROJECT_ROOT / "playground" / "assets" / "decks"
SIZES = ("n_layers", "n_heads", "emb_dim")
NOT_VIEW = ("deck", "slide", "notes") + deeplink.PAGE_FIELDS      # page parameters a pasted link may carry


class DeckError(ValueError):
    """What is wrong with a deck file, in one sentence a speaker can act on."""


@dataclass(frozen=True)
class Requires:
    """The smallest model a deck (or a slide) shows what it says on."""
    n_layers: int = 0
    n_heads: int = 0
    emb_dim: int = 0
    why: str = ""
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Slide:
    tab: str = "generate"
    values: dict = field(default_factory=dict)      # the tab's controls, as deeplink.parse gives them
    title: str = ""
    notes: str = ""
    requires: Requires | None = None
    extra: dict = field(default_factory=dict)       # fields this version does not know, kept

    @property
    def link(self) -> deeplink.Link:
        return deeplink.Link(tab=self.tab, values=dict(self.values))

    def query(self) -> str:
        return deeplink.build(self.tab, self.values)

    def shown_title(self) -> str:
        """Its title, or the name of its view when it has none."""
        return self.title or nav.label(self.tab)


@dataclass(frozen=True)
class Deck:
    title: str = "Untitled talk"
    slides: tuple[Slide, ...] = ()
    lang: str = "en"
    requires: Requires | None = None
    version: int = VERSION
    extra: dict = field(default_factory=dict)
    name: str = ""                 # a shipped deck's name (``?deck=NAME``); not part of the file

    def needs(self, i: int) -> Requires | None:
        """What slide ``i`` needs: its own requirement, else the deck's."""
        return self.slides[i].requires or self.requires


# ----------------------------------------------------------------------------------------- slide <-> link

def slide_from_link(link: deeplink.Link, title: str = "", notes: str = "") -> Slide:
    """The slide of a deep link's view (the page's own fields, ``lang`` and ``present``, are not a view's)."""
    tab = link.tab or "generate"
    keep = deeplink.TAB_ACCEPTS[tab]
    return Slide(tab=tab, values={k: v for k, v in link.values.items() if k in keep}, title=title, notes=notes)


def slide_from_query(query: str, title: str = "", notes: str = "") -> Slide:
    """The slide of a link (``?tab=attention&layer=3`` or a whole address); lenient, as a URL is."""
    params = parse_qsl(urlsplit(query).query or query.lstrip("?"), keep_blank_values=True)
    return slide_from_link(deeplink.parse(dict(params)), title, notes)


# ----------------------------------------------------------------------------------------- reading

def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")


def _text(obj: dict, key: str, where: str, limit: int, default: str = "") -> str:
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise DeckError(f"{where}: `{key}` must be text, not {_kind(value)}.")
    if len(value) > limit:
        raise DeckError(f"{where}: `{key}` is {len(value):,} characters long; at most {limit:,}.")
    return value


def _requires(value: Any, where: str) -> Requires | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DeckError(f"{where}: \"requires\" must be an object (of n_layers, n_heads, emb_dim), not {_kind(value)}.")
    sizes = {}
    for key in SIZES:
        n = value.get(key, 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise DeckError(f"{where}: `requires.{key}` must be a whole number, not {json.dumps(n)[:40]}.")
        sizes[key] = n
    why = _text(value, "why", where, MAX_NOTES)
    return Requires(**sizes, why=why, extra={k: v for k, v in value.items() if k not in (*SIZES, "why")})


def _view(raw: Any, where: str) -> tuple[str, dict]:
    """``(tab, values)`` of a slide's ``view``: every name a control of that tab, every value one it takes."""
    if not isinstance(raw, dict):
        raise DeckError(f"{where}: \"view\" must be an object (a \"tab\" and that tab's controls), not {_kind(raw)}.")
    if "tab" not in raw:
        raise DeckError(f"{where}: its view names no \"tab\" (one of: {', '.join(deeplink.TABS)}).")
    tab = deeplink.clean_tab(raw["tab"])
    if tab is None:
        raise DeckError(f"{where}: the tab {json.dumps(raw['tab'], ensure_ascii=False)[:60]} does not exist. The tabs are: "
                        f"{', '.join(deeplink.TABS)}.")
    accepts = deeplink.TAB_ACCEPTS[tab]
    values = {}
    for key, value in raw.items():
        if key == "tab":
            continue
        if key not in accepts:
            has = f"its controls are: {', '.join(accepts)}" if accepts else "it has no controls a link sets"
            raise DeckError(f"{where}: the {nav.label(tab)} view has no control `{key[:60]}` ({has}).")
        clean = deeplink.FIELDS[key](value)
        if clean is None:
            raise DeckError(f"{where}: `{key}` = {json.dumps(value, ensure_ascii=False)[:80]} is not a value the "
                            f"{nav.label(tab)} view's `{key}` takes.")
        values[key] = clean
    return tab, values


def _link_view(raw: Any, where: str) -> dict:
    if not isinstance(raw, str) or len(raw) > 20_000:
        raise DeckError(f"{where}: \"link\" must be a deep link (text like \"?tab=attention&layer=3\").")
    params = dict(parse_qsl(urlsplit(raw).query or raw.strip().lstrip("?"), keep_blank_values=True))
    view = {k.lower(): v for k, v in params.items() if k.lower() not in NOT_VIEW}
    return {"tab": "generate"} | view                   # a link without a tab opens Generate


def slide_from_dict(raw: Any, where: str) -> Slide:
    if not isinstance(raw, dict):
        raise DeckError(f"{where} must be an object with a \"view\", not {_kind(raw)}.")
    title = _text(raw, "title", where, MAX_TITLE)
    named = f"{where} (“{title}”)" if title else where
    if "view" in raw and "link" in raw:
        raise DeckError(f"{named}: give its view as \"view\" or as \"link\", not both.")
    view = _link_view(raw["link"], named) if "link" in raw else raw.get("view", {"tab": "generate"})
    tab, values = _view(view, named)
    known = ("title", "notes", "view", "link", "requires")
    return Slide(tab=tab, values=values, title=title, notes=_text(raw, "notes", named, MAX_NOTES),
                 requires=_requires(raw.get("requires"), named),
                 extra={k: v for k, v in raw.items() if k not in known})


def deck_from_dict(data: Any) -> Deck:
    if not isinstance(data, dict):
        raise DeckError(f"A deck is a JSON object with a list of \"slides\"; this file holds {_kind(data)}.")
    if data.get("format", FORMAT) != FORMAT:
        raise DeckError(f"This JSON is not a deck: its \"format\" is {json.dumps(data['format'])[:60]}; a deck's is "
                        f"\"{FORMAT}\".")
    if "format" not in data and "slides" not in data:
        raise DeckError(f"This JSON is not a deck: it has no \"slides\" (a deck has \"format\": \"{FORMAT}\" and "
                        "a list of slides).")
    version = data.get("version", VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DeckError(f"The deck's \"version\" must be a whole number from 1, not {json.dumps(version)[:40]}.")
    if version > VERSION:
        raise DeckError(f"This deck is version {version}; this app reads decks up to version {VERSION} "
                        "(a newer app wrote it).")
    slides = data.get("slides", [])
    if not isinstance(slides, list):
        raise DeckError(f"The deck's \"slides\" must be a list, not {_kind(slides)}.")
    if len(slides) > MAX_SLIDES:
        raise DeckError(f"The deck has {len(slides):,} slides; at most {MAX_SLIDES}.")
    lang = data.get("lang", "en")
    if clean_lang(lang) is None:
        raise DeckError(f"The deck's \"lang\" must be \"en\" or \"zh\", not {json.dumps(lang)[:40]}.")
    known = ("format", "version", "title", "lang", "requires", "slides")
    return Deck(title=_text(data, "title", "The deck", MAX_TITLE, "Untitled talk"),
                slides=tuple(slide_from_dict(s, f"Slide {i + 1}") for i, s in enumerate(slides)),
                lang=clean_lang(lang), requires=_requires(data.get("requires"), "The deck"), version=version,
                extra={k: v for k, v in data.items() if k not in known})


def parse_deck(content: bytes | str) -> Deck:
    """A deck from a file's bytes (or text), or a :class:`DeckError` saying what is wrong with it."""
    size = len(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
    if size > MAX_BYTES:
        raise DeckError(f"The file is {size / 1e6:,.1f} MB; a deck file is at most {MAX_BYTES / 1e6:g} MB "
                        "(a deck holds links and notes, not data: is this the right file?).")
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DeckError(f"The file is not text (not UTF-8 at byte {e.start:,}); a deck is a JSON text "
                            "file.") from None
    if not content.strip():
        raise DeckError("The file is empty; a deck is a JSON text file.")
    try:
        data = json.loads(content)
    except json.JSONDecodeError as e:
        raise DeckError(f"The file is not JSON: line {e.lineno}, column {e.colno}: {e.msg}.") from None
    except RecursionError:
        raise DeckError("The file is not a deck: its JSON is nested too deeply.") from None
    return deck_from_dict(data)


# ----------------------------------------------------------------------------------------- writing

def _requires_dict(r: Requires | None) -> dict | None:
    if r is None:
        return None
    out: dict[str, Any] = {k: getattr(r, k) for k in SIZES if getattr(r, k)}
    if r.why:
        out["why"] = r.why
    return out | r.extra


def slide_to_dict(s: Slide) -> dict:
    view = {"tab": s.tab, **{k: v for k, v in s.values.items()}}
    out: dict[str, Any] = {"title": s.title, "notes": s.notes, "view": view}
    if s.requires is not None:
        out["requires"] = _requires_dict(s.requires)
    return out | {k: v for k, v in s.extra.items() if k not in out}


def deck_to_dict(d: Deck) -> dict:
    out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "title": d.title, "lang": d.lang}
    if d.requires is not None:
        out["requires"] = _requires_dict(d.requires)
    out["slides"] = [slide_to_dict(s) for s in d.slides]
    return out | {k: v for k, v in d.extra.items() if k not in out}


def dumps(d: Deck) -> str:
    return json.dumps(deck_to_dict(d), ensure_ascii=False, indent=1) + "\n"


# ----------------------------------------------------------------------------------------- editing

def with_slides(d: Deck, slides: list[Slide] | tuple[Slide, ...]) -> Deck:
    return replace(d, slides=tuple(slides))


def moved(d: Deck, i: int, delta: int) -> tuple[Deck, int]:
    """The deck with slide ``i`` moved by ``delta`` places, and where it is now."""
    j = min(max(i + delta, 0), len(d.slides) - 1)
    slides = list(d.slides)
    slides.insert(j, slides.pop(i))
    return with_slides(d, slides), j


def unmet(needs: Requires | None, cfg: Any) -> str:
    """A sentence when the model ``cfg`` is smaller than ``needs`` (empty when it is big enough); the deck's
    own ``why`` goes after it (``deckbar``), in the deck's language."""
    if needs is None or cfg is None or all(getattr(cfg, k) >= getattr(needs, k) for k in SIZES):
        return ""
    return (f"This slide needs a model of at least {needs.n_layers} layers × {needs.n_heads} heads, width "
            f"{needs.emb_dim}; the loaded model has {cfg.n_layers} layers × {cfg.n_heads} heads, width "
            f"{cfg.emb_dim}. Load gpt2 in the Model tab to show it as meant.")


_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")     # raw HTML in notes stays text


def notes_html(text: str) -> str:
    return _MARKDOWN.render(text or "")


# ----------------------------------------------------------------------------------------- shipped decks

def shipped() -> dict[str, dict[str, Path]]:
    """The decks that come with the app: ``{name: {lang: path}}`` (``decks/NAME.LANG.json``)."""
    out: dict[str, dict[str, Path]] = {}
    for path in sorted(DECK_DIR.glob("*.json")):
        name, _, lang = path.stem.rpartition(".")
        if name and clean_lang(lang):
            out.setdefault(name, {})[clean_lang(lang)] = path
    return out


def load_shipped(name: str, lang: str = "en") -> Deck:
    """A shipped deck in ``lang`` (else in English); a :class:`DeckError` for a name that is not one."""
    found = shipped().get(str(name).strip().lower())
    if not found:
        raise DeckError(f"There is no deck named “{str(name)[:60]}”; the decks are: {', '.join(shipped())}.")
    path = found.get(clean_lang(lang) or "en") or found.get("en") or next(iter(found.values()))
    return replace(parse_deck(path.read_bytes()), name=str(name).strip().lower())
