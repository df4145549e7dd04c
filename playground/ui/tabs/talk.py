"""Talk: make the deck — open a shipped one, upload or download its JSON, reorder, delete, give each slide a
title and speaker notes, and start the talk. Slides come from the header's "Add to deck" (this view, as a
deep link would carry it)."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from .. import deck as dk
from .. import deeplink, nav
from ..common import LIGHT, PRIVATE, AppContext, export_file, guarded
from ..deck_js import PUBLISH_JS
from ..deckbar import DeckBar, DeckFlow, bar_updates
from ..i18n import current_lang, tr
from ..validate import InputError

TAB_ID = "talk"
INTRO = ("A talk is a deck: an ordered list of live views, each with a title and notes for the speaker. Press **→** "
         "or **PageDown** (what a presenter's clicker sends) for the next slide and **←** or **PageUp** for the "
         "previous one; every slide is recomputed, and a change you make on one stays until you leave it. The "
         "**Speaker view** opens a second window with the notes, the next slide and a timer.")
COLUMNS = ["#", "title", "view", "link"]
NEW_TITLE = "My talk"


@dataclass
class TalkTab:
    tab: gr.Tab
    shipped: gr.Dropdown
    open: gr.Button
    start: gr.Button
    new: gr.Button
    upload: gr.UploadButton
    download: gr.DownloadButton
    message: gr.Markdown
    deck_title: gr.Textbox
    table: gr.Dataframe
    sel: gr.Number                 # the slide being edited, 1-based (0: none)
    up: gr.Button
    down: gr.Button
    delete: gr.Button
    show: gr.Button
    title: gr.Textbox
    notes: gr.Textbox

    def link_controls(self) -> dict[str, Any]:
        return {}


def _choices() -> list[tuple[str, str]]:
    out = []
    for name in dk.shipped():
        d = dk.load_shipped(name, "en")
        out.append((d.title, name))
    return out


def build(ctx: AppContext) -> TalkTab:
    with gr.Tab("Talk", id=TAB_ID, elem_id="tab-talk") as tab:
        gr.Markdown(INTRO)
        choices = _choices()
        with gr.Row(equal_height=True):
            shipped = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Decks that come with the app",
                                  scale=3, elem_id="deck-shipped")
            open_btn = gr.Button("Open this deck", scale=1, elem_id="deck-open")
            start = gr.Button("Start the talk", variant="primary", scale=1, elem_id="deck-start")
        message = gr.Markdown(elem_id="deck-message")
        with gr.Row(equal_height=True):
            upload = gr.UploadButton("Upload a deck (JSON)", file_count="single", scale=1, elem_id="deck-upload")
            download = gr.DownloadButton("Download the deck (JSON)", scale=1, elem_id="deck-download")
            new = gr.Button("New empty deck", scale=1, elem_id="deck-new")
        deck_title = gr.Textbox(label="Deck title", elem_id="deck-name")
        table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True, max_height=420, elem_id="deck-slides",
                             label="Slides (click one to edit it)", column_widths=["5%", "35%", "20%", "40%"])
        with gr.Row(equal_height=True):
            sel = gr.Number(value=0, precision=0, minimum=0, label="Slide being edited", scale=1, elem_id="deck-sel")
            up = gr.Button("Move up", scale=1, elem_id="deck-up")
            down = gr.Button("Move down", scale=1, elem_id="deck-down")
            delete = gr.Button("Delete", variant="stop", scale=1, elem_id="deck-delete")
            show = gr.Button("Show this slide", scale=1, elem_id="deck-show")
        title = gr.Textbox(label="Slide title", elem_id="deck-slide-title")
        notes = gr.Textbox(label="Speaker notes (Markdown)", lines=6, max_lines=20, elem_id="deck-slide-notes")
    return TalkTab(tab, shipped, open_btn, start, new, upload, download, message, deck_title, table, sel, up, down,
                   delete, show, title, notes)


def rows(deck: dk.Deck | None, lang: str) -> list[list[Any]]:
    if deck is None:
        return []
    return [[i + 1, s.title, tr(nav.label(s.tab), lang), s.query()] for i, s in enumerate(deck.slides)]


class Editor:
    """The editor's events; each one that changes the deck updates the bar, the list, the download and the
    speaker window together."""

    def __init__(self, t: TalkTab, ctx: AppContext, bar: DeckBar, flow: DeckFlow) -> None:
        self.t, self.ctx, self.bar, self.flow = t, ctx, bar, flow

    def outputs(self) -> list:
        t, b = self.t, self.bar
        return [b.deck, b.index, b.sync, b.row, b.title, b.warning, t.table, t.download, t.deck_title, t.sel,
                t.title, t.notes, t.message]

    def updates(self, deck: dk.Deck | None, index: int, sel: int, message: str = "") -> dict:
        """Everything the deck shows; ``sel``: the slide being edited (1-based, 0 for none)."""
        t, lang = self.t, current_lang()
        n = len(deck.slides) if deck else 0
        sel = min(max(int(sel or 0), 0), n)
        slide = deck.slides[sel - 1] if deck and sel else None
        out = bar_updates(self.bar, deck, min(index, n - 1), self.flow.cfg(), lang)
        out.update({t.table: gr.update(value=rows(deck, lang), headers=[tr(c, lang) for c in COLUMNS]),
                    t.download: export_file("deck", "json", dk.dumps(deck)) if deck else None,
                    t.deck_title: deck.title if deck else "", t.sel: sel,
                    t.title: slide.title if slide else "", t.notes: slide.notes if slide else "",
                    t.message: message})
        return out

    def wire(self, add_view: gr.Button, current_tab: gr.Textbox, link_fields: list) -> None:
        t, b = self.t, self.bar
        run = dict(**LIGHT, **PRIVATE)

        def on(trigger: Any, fn: Any, inputs: list, **kw: Any) -> None:
            trigger(guarded(fn), inputs, self.outputs(), **run, **kw).then(None, [b.sync], None, js=PUBLISH_JS,
                                                                           **PRIVATE)

        def ui_deck_open(name):
            deck = self.shipped(name)
            return self.updates(deck, -1, 1, f"Opened “{deck.title}”: {len(deck.slides)} slides. Press "
                                              f"Start the talk (or →) to begin.")

        def ui_deck_new():
            return self.updates(dk.Deck(title=tr(NEW_TITLE, current_lang()), lang=current_lang()), -1, 0,
                                "A new empty deck: open any view and press “Add to deck”.")

        def ui_deck_upload(path, deck, index, sel):
            return self._upload(path, deck, index, sel)

        def ui_deck_select(deck, index, evt: gr.SelectData):
            row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            return self.updates(deck, index, (row if isinstance(row, int) else 0) + 1)

        def ui_deck_edit(deck, index, sel, deck_title, title, notes):
            if deck is None:
                return {b.deck: gr.skip()}
            slides = list(deck.slides)
            i = int(sel or 0) - 1
            if 0 <= i < len(slides):
                slides[i] = replace(slides[i], title=str(title)[:dk.MAX_TITLE], notes=str(notes)[:dk.MAX_NOTES])
            deck = replace(deck, title=str(deck_title)[:dk.MAX_TITLE], slides=tuple(slides))
            return self.updates(deck, index, sel)

        def ui_deck_move(delta):
            def move(deck, index, sel):
                i = int(sel or 0) - 1
                if deck is None or not 0 <= i < len(deck.slides):
                    return self.updates(deck, index, sel, "Choose a slide first (click it in the list).")
                moved, j = dk.moved(deck, i, delta)
                follow = {i: j} | ({j: i} if j != i else {})       # the slide shown keeps being shown
                return self.updates(moved, follow.get(index, index), j + 1)
            move.__name__ = "ui_deck_move_up" if delta < 0 else "ui_deck_move_down"
            return move

        def ui_deck_delete(deck, index, sel):
            i = int(sel or 0) - 1
            if deck is None or not 0 <= i < len(deck.slides):
                return self.updates(deck, index, sel, "Choose a slide first (click it in the list).")
            slides = deck.slides[:i] + deck.slides[i + 1:]
            shown = index - 1 if index > i else min(index, len(slides) - 1)
            return self.updates(dk.with_slides(deck, slides), shown, min(int(sel), len(slides)))

        def ui_add_view(deck, index, tab, *values):
            tab_id = deeplink.clean_tab(tab) or "generate"
            if tab_id == TAB_ID:
                return self.updates(deck, index, 0, "Open the view you want on a slide, then press “Add to deck”.")
            named = {name: v for (t_id, name, _), v in zip(link_fields, values) if t_id == tab_id}
            slide = dk.slide_from_query(deeplink.build(tab_id, named), title=tr(nav.label(tab_id), current_lang()))
            deck = deck or dk.Deck(title=tr(NEW_TITLE, current_lang()), lang=current_lang())
            at = index + 1 if 0 <= index < len(deck.slides) else len(deck.slides)
            deck = dk.with_slides(deck, deck.slides[:at] + (slide,) + deck.slides[at:])
            gr.Info(tr(f"Added to the deck as slide {at + 1} of {len(deck.slides)}.", current_lang()))
            return self.updates(deck, index, at + 1)

        state = [b.deck, b.index, t.sel]
        on(t.open.click, ui_deck_open, [t.shipped])
        on(t.new.click, ui_deck_new, [])
        on(t.upload.upload, ui_deck_upload, [t.upload, b.deck, b.index, t.sel])
        on(t.table.select, ui_deck_select, [b.deck, b.index])
        for box in (t.deck_title, t.title, t.notes):
            on(box.input, ui_deck_edit, state + [t.deck_title, t.title, t.notes], trigger_mode="always_last")
        on(t.up.click, ui_deck_move(-1), state)
        on(t.down.click, ui_deck_move(1), state)
        on(t.delete.click, ui_deck_delete, state)
        on(add_view.click, ui_add_view, [b.deck, b.index, current_tab] + [c for _, _, c in link_fields])

        def ui_deck_start(deck, name, present_on):
            return self.flow.go(deck or self.shipped(name), 0, present_on, start=True)

        def ui_deck_show(deck, sel, present_on):
            return self.flow.go(deck, int(sel or 1) - 1, present_on)
        self.flow.wire_go(t.start.click, ui_deck_start, [b.deck, t.shipped, self.ctx.present])
        self.flow.wire_go(t.show.click, ui_deck_show, [b.deck, t.sel, self.ctx.present])

    @staticmethod
    def shipped(name: Any) -> dk.Deck:
        try:
            return dk.load_shipped(str(name), current_lang())
        except dk.DeckError as e:
            raise InputError(str(e)) from None

    def _upload(self, path: Any, deck: dk.Deck | None, index: int, sel: int) -> dict:
        name = os.path.basename(str(path)) if path else ""
        try:
            if not path or not os.path.isfile(str(path)):
                raise dk.DeckError("No file arrived; try the upload again.")
            size = os.path.getsize(str(path))
            if size > dk.MAX_BYTES:           # said before reading it
                raise dk.DeckError(f"The file is {size / 1e6:,.1f} MB; a deck file is at most "
                                   f"{dk.MAX_BYTES / 1e6:g} MB (a deck holds links and notes, not data: is this "
                                   "the right file?).")
            with open(str(path), "rb") as f:
                new = dk.parse_deck(f.read())
        except dk.DeckError as e:
            kept = f"The deck in use (“{deck.title}”) is kept." if deck else "No deck is open."
            return self.updates(deck, index, sel, f"⚠️ **Could not open {name}.**\n\n{e}\n\n{kept}")
        return self.updates(new, -1, 1 if new.slides else 0,
                            f"Opened “{new.title}”: {len(new.slides)} slides. Press Start the talk (or →) to begin.")
