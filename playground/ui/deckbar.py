"""Giving a talk from the app: the deck bar, moving from slide to slide, and what the speaker window reads.

The deck (``deck.py``) lives in the page's session (``DeckBar.deck``, the slide shown in ``DeckBar.index``,
-1 before the first). Moving to a slide applies its deep link exactly as a page load does
(:class:`~.linking.LinkApplier`), then draws its view live (the app's ``draw``), then hands the speaker
window the slide's notes (``deck_js.PUBLISH_JS``). ``?deck=NAME&slide=N`` opens a shipped deck at a slide,
in presentation mode unless the link says ``present=0``; ``?deck=NAME&notes=1`` is the speaker window.
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import gradio as gr

from . import deck as dk
from . import deeplink
from .common import LIGHT, MODEL_QUEUE, PRIVATE, AppContext, guarded
from .deck_js import PUBLISH_JS, READY_JS, SPEAKER_HTML, SPEAKER_JS
from .i18n import current_lang, tr
from .linking import LinkApplier


@dataclass
class DeckBar:
    row: gr.Row
    prev: gr.Button
    title: gr.HTML
    next: gr.Button
    speaker: gr.Button
    close: gr.Button
    warning: gr.HTML
    deck: gr.State              # the deck in use (deck.Deck) or None
    index: gr.State             # the slide shown (0-based), -1 before the first
    sync: gr.Textbox            # hidden: what the speaker window shows (JSON, see payload())


def build_bar() -> DeckBar:
    """The deck's part of the header (call inside the header row; shown while a deck is open). The line under
    the header for what a slide needs, and the speaker window's panel, come with :func:`build_rest`."""
    with gr.Row(visible=False, equal_height=True, elem_id="deck-bar") as row:
        prev = gr.Button("◀", size="sm", scale=0, min_width=48, elem_id="deck-prev")
        title = gr.HTML(elem_id="deck-title", container=False)
        nxt = gr.Button("▶", size="sm", scale=0, min_width=48, elem_id="deck-next")
        speaker = gr.Button("Speaker view", size="sm", scale=0, min_width=60, elem_id="deck-speaker")
        close = gr.Button("✕", size="sm", scale=0, min_width=40, elem_id="deck-close")
    return DeckBar(row, prev, title, nxt, speaker, close, None, gr.State(None), gr.State(-1), None)


def build_rest(bar: DeckBar) -> None:
    """Under the header: what the slide needs (shown when the loaded model is too small, or a deck failed to
    open). At the page's end: the speaker window's panel and the payload it reads."""
    bar.warning = gr.HTML(visible=False, elem_id="deck-warning", container=False)


def build_speaker(bar: DeckBar) -> None:
    gr.HTML(SPEAKER_HTML, elem_id="speaker-view", container=False)
    bar.sync = gr.Textbox(value="", visible="hidden", elem_id="deck-sync")


def payload(deck: dk.Deck | None, i: int, cfg: Any, lang: str) -> str:
    """What the speaker window shows, as JSON: the slide's title and notes (HTML), the next slide's title,
    what the slide needs, and the window's own labels in the page's language."""
    labels = {k: tr(v, lang) for k, v in (
        ("next", "Next:"), ("last", "(the last slide)"), ("talk", "talk"), ("slide", "this slide"),
        ("reset", "Reset the timer"), ("prev_btn", "◀ Previous"), ("next_btn", "Next ▶"),
        ("waiting", "Waiting for the talk: open a deck in the main window."),
        ("not_started", "Not started: press → in the main window (or Next here) for the first slide."))}
    out: dict[str, Any] = {"active": deck is not None, "labels": labels, "lang": lang}
    if deck is None:
        return json.dumps(out, ensure_ascii=False)
    n = len(deck.slides)
    out.update(name=deck.name, deck_title=deck.title, index=i, count=n)
    if 0 <= i < n:
        s = deck.slides[i]
        out.update(title=s.shown_title(), notes_html=dk.notes_html(s.notes), warning=_unmet(deck, i, cfg, lang),
                   next_title=deck.slides[i + 1].shown_title() if i + 1 < n else "")
    return json.dumps(out, ensure_ascii=False)


def _unmet(deck: dk.Deck, i: int, cfg: Any, lang: str, why: bool = True) -> str:
    """What slide ``i`` needs and the loaded model lacks (empty if nothing); ``why``: with the deck's reason
    (the speaker window has room for it, the projector's one line has not)."""
    needs = deck.needs(i)
    text = tr(dk.unmet(needs, cfg), lang)
    return f"{text} {needs.why}".strip() if text and why else text


def bar_updates(bar: DeckBar, deck: dk.Deck | None, i: int, cfg: Any, lang: str, message: str = "") -> dict:
    """The bar, the session's deck and slide, and the speaker window's payload."""
    out: dict[Any, Any] = {bar.deck: deck, bar.index: i, bar.sync: payload(deck, i, cfg, lang),
                           bar.row: gr.update(visible=deck is not None)}
    if deck is None:
        out[bar.title] = ""
        out[bar.warning] = _warning(tr(message, lang) if message else "")
        return out
    n = len(deck.slides)
    if 0 <= i < n:
        head = (f"<b>{i + 1} / {n}</b> · {html.escape(deck.slides[i].shown_title())}")
    else:
        head = f"<b>{html.escape(deck.title)}</b> · " + html.escape(
            tr(f"Slides: {n} · press → to begin", lang) if n else tr("no slides yet", lang))
    warn = _unmet(deck, i, cfg, lang, why=False) if 0 <= i < n else ""
    text = " ".join(x for x in (tr(message, lang) if message else "", warn) if x)
    out[bar.title] = f"<div class='deck-head'>{head}</div>"
    out[bar.warning] = _warning(text)
    return out


def _warning(text: str) -> dict:
    return gr.update(value=f"<p class='deck-msg'>⚠️ {html.escape(text)}</p>" if text else "", visible=bool(text))


@dataclass
class Opened:
    """What a page's URL asks of the deck: the deck, the slide to show (-1: none), whether this page is the
    speaker window, and a message when the deck named is not there."""
    deck: dk.Deck | None = None
    index: int = -1
    speaker: bool = False
    message: str = ""


def from_query(query: Mapping[str, Any], lang: str) -> Opened:
    get = {str(k).lower(): v for k, v in query.items()}
    speaker = deeplink.FIELDS["expand"](get.get("notes", "0")) is True
    if not get.get("deck"):
        return Opened(speaker=speaker)
    try:
        deck = dk.load_shipped(str(get["deck"]), lang)
    except dk.DeckError as e:
        return Opened(speaker=speaker, message=str(e))
    n = len(deck.slides)
    slide = deeplink.FIELDS["position"](get.get("slide", "1"))
    index = min(max((slide or 1) - 1, 0), n - 1) if n else -1
    return Opened(deck, index, speaker)


class DeckFlow:
    """Moving through the deck: every way of reaching a slide (the bar's arrows, a link, the editor) ends in
    :meth:`wire_go`'s chain: apply the slide's link, hand the speaker window its notes, draw the view."""

    def __init__(self, ctx: AppContext, bar: DeckBar, applier: LinkApplier,
                 draw: tuple[Callable, list, list]) -> None:
        self.ctx, self.bar, self.applier, self.draw = ctx, bar, applier, draw

    def cfg(self) -> Any:
        snap = self.ctx.holder.current()
        return snap.model.cfg if snap else None

    def outputs(self) -> list:
        b = self.bar
        return list(dict.fromkeys(self.applier.outputs() + [b.deck, b.index, b.sync, b.row, b.title, b.warning]))

    def go(self, deck: dk.Deck | None, i: int, present_on: bool, *, start: bool = False) -> dict:
        """The updates that show slide ``i`` of ``deck`` (clamped); ``start``: presentation mode on."""
        lang = current_lang()
        if deck is None or not deck.slides:
            return bar_updates(self.bar, deck, -1, self.cfg(), lang)
        i = min(max(int(i), 0), len(deck.slides) - 1)
        present = True if start else bool(present_on)
        link = deeplink.Link(tab=deck.slides[i].tab, present=True if start else None, values=deck.slides[i].values)
        update = self.applier.updates(link, lang, page_load=False, present_on=present)
        return update | bar_updates(self.bar, deck, i, self.cfg(), lang)

    def wire_go(self, trigger: Callable, fn: Callable, inputs: list, extra_outputs: list | None = None) -> Any:
        """``trigger(fn)`` where ``fn`` returns :meth:`go`'s updates, then the speaker window and the view."""
        b = self.bar
        ev = trigger(guarded(fn), inputs, self.outputs() + (extra_outputs or []), **LIGHT, **PRIVATE)
        published = ev.then(None, [b.sync], None, js=PUBLISH_JS, **PRIVATE)
        draw_fn, draw_in, draw_out = self.draw

        def ui_slide_view(*values):
            """The slide's view; one that cannot be drawn on the loaded model (a head it lacks) says why in a
            notice, and the talk goes on (an error would stop the events that follow)."""
            try:
                return draw_fn(*values)
            except gr.Error as e:
                gr.Warning(e.message, title=getattr(e, "title", None) or "Check your input")
                return {draw_out[0]: gr.skip()}
        drawn = published.then(ui_slide_view, draw_in, draw_out, **MODEL_QUEUE, **PRIVATE)
        drawn.then(None, [b.sync], None, js=READY_JS, **PRIVATE)
        return ev

    def wire(self) -> None:
        b, present = self.bar, self.ctx.present

        def ui_deck_prev(deck, i, present_on):
            return self.go(deck, (i if i >= 0 else 1) - 1, present_on)

        def ui_deck_next(deck, i, present_on):
            return self.go(deck, i + 1, present_on, start=i < 0)

        self.wire_go(b.prev.click, ui_deck_prev, [b.deck, b.index, present])
        self.wire_go(b.next.click, ui_deck_next, [b.deck, b.index, present])

        @guarded
        def ui_deck_close():
            return bar_updates(b, None, -1, self.cfg(), current_lang())
        b.close.click(ui_deck_close, None, [b.deck, b.index, b.sync, b.row, b.title, b.warning], **LIGHT,
                      **PRIVATE).then(None, [b.sync], None, js=PUBLISH_JS, **PRIVATE)
        b.speaker.click(None, [b.sync], None, js=SPEAKER_JS, **PRIVATE)
