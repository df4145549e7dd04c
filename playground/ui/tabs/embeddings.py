"""Embeddings (under Learned): where tokens, positions and the prompt's residual stream sit, by PCA."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ...inspection.figures import learned as figs
from ...inspection.embeddings import PointsPCA
from .. import validate as v
from ..common import AppContext, export_file, guarded, stage_bar, stage_more, wire_view
from ..theme import style_figure
from ..views import learned as lv

TAB_ID = "embeddings"
VIEW_CHOICES = [("tokens and word lists", "tokens"), ("positions", "positions"),
                ("your text through the layers", "residual")]
DEFAULT_TEXT = ""       # no prompt tokens by default: the word lists' clusters are the point
HINTS = {
    "tokens": "Months sit together, and so do numbers and colours: the model placed words it uses alike near "
              "each other. Type a token in 'Neighbours of' to list its closest tokens by cosine.",
    "positions": "Each point is one position of the context window, coloured from the first to the last: "
                 "neighbouring positions lie next to each other on a smooth curve.",
    "residual": "Each line is one token of your text, from its embedding to the last block: one PCA fitted "
                "on all of them, so the lines can be compared.",
}


@dataclass
class EmbeddingsTab:
    tab: gr.Tab
    view: gr.Dropdown
    prompt: gr.Textbox
    lists: gr.CheckboxGroup
    neighbours: gr.Textbox
    dims: gr.Radio
    button: gr.Button
    figure: gr.Plot
    hint: gr.Markdown
    words: gr.Textbox
    table: gr.Dataframe
    json: gr.DownloadButton
    csv: gr.DownloadButton
    key: gr.State

    def inputs(self, ctx: AppContext) -> list:
        return [self.view, self.prompt, self.lists, self.neighbours, self.words, self.dims, ctx.present]

    def outputs(self) -> list:
        return [self.figure, self.hint, self.table, self.json, self.csv, self.key]

    def link_controls(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "embedding": self.view, "lists": self.lists, "neighbours": self.neighbours,
                "words": self.words, "dims": self.dims}


def build(ctx: AppContext) -> EmbeddingsTab:
    with gr.Tab("Embeddings", id=TAB_ID, elem_id="tab-embeddings") as tab:
        with stage_bar():
            view = gr.Dropdown(VIEW_CHOICES, value="tokens", label="What to place", scale=3, min_width=200,
                               elem_id="emb-view")
            lists = gr.CheckboxGroup(list(lv.WORD_LISTS), value=["numbers", "months"], label="Word lists",
                                     scale=4, elem_id="emb-lists")
            neighbours = gr.Textbox(value=" king", label="Neighbours of", scale=1, min_width=120,
                                    elem_id="emb-neighbours")
            dims = gr.Radio([("2-D", 2), ("3-D", 3)], value=2, label="Axes", scale=1, min_width=110,
                            elem_id="emb-dims")
            button = gr.Button("Place them", variant="primary", elem_id="emb-btn")
        figure = gr.Plot(label="Embeddings (PCA)", elem_id="emb-fig")
        hint = gr.Markdown(elem_classes="example-note", elem_id="emb-hint")
        with stage_more("More: your text and words, the neighbour table, downloads"):
            prompt = gr.Textbox(value=DEFAULT_TEXT, label="Your text (its tokens are placed too; the residual view "
                                "follows it through the layers)", lines=1, max_length=v.MAX_PROMPT_CHARS,
                                elem_id="emb-prompt")
            words = gr.Textbox(value="", label="Your words (comma-separated; each must be one token with its "
                               "leading space)", elem_id="emb-words")
            table = gr.Dataframe(headers=["token", "cosine"], interactive=False, max_height=360,
                                 label="Nearest neighbours (cosine over the whole vocabulary)", elem_id="emb-table")
            with gr.Row():
                json_btn = gr.DownloadButton("Download JSON", size="sm")
                csv_btn = gr.DownloadButton("Download CSV", size="sm")
        key = gr.State(None)
    return EmbeddingsTab(tab, view, prompt, lists, neighbours, dims, button, figure, hint, words, table, json_btn,
                         csv_btn, key)


def compute(t: EmbeddingsTab, ctx: AppContext):
    @guarded
    def ui_embeddings(view, prompt, lists, neighbours, words, dims, present_on, key=None):
        snap = ctx.need_model()
        new_key = (snap.uid, view, prompt, tuple(lists or ()), neighbours, words, dims, bool(present_on))
        if key == new_key:
            return {t.key: gr.skip()}
        kind = v.choice(view, "View", {"tokens": "tokens", "positions": "positions", "residual": "residual"},
                        default="tokens")
        n_dims = v.whole(dims, "Axes", 2, 3, default=2)
        result = lv.embeddings(snap, kind, prompt, lists, neighbours, words=words)
        if isinstance(result, PointsPCA):
            fig = figs.embedding_pca_figure(result, n_dims)
            rows = [[r["token"], round(float(r["cosine"]), 4)] for r in result.neighbours]
        else:
            fig, rows = figs.residual_pca_figure(result, n_dims), []
        return {t.figure: style_figure(fig, present_on), t.hint: f"**What to look at:** {HINTS[kind]}",
                t.table: rows, t.json: export_file(f"embeddings-{kind}", "json", result.to_json()),
                t.csv: export_file(f"embeddings-{kind}", "csv", result.to_csv()), t.key: new_key}
    return ui_embeddings


def wire(t: EmbeddingsTab, ctx: AppContext) -> None:
    wire_view(t, ctx, compute(t, ctx), [t.button.click, t.view.input, t.lists.input, t.dims.input,
                                         t.neighbours.submit, t.words.submit, t.prompt.submit])
