"""Attention tab: one head, a layer's heads or their mean & max; the head-score grid (click to open)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ...inspection.figures.attention import head_scores_figure
from ...inspection.figures.learned import qk_figure
from .. import validate as v
from ..common import (DEFAULT_PROMPT, LIGHT, MODEL_QUEUE, PRIVATE, AppContext, example_hint, example_prompts,
                      export_file, guarded, stage_bar, stage_more, wire_view)
from ..theme import style_figure
from ..views import attention as att_view
from ..views import learned as learned_view

TAB_ID = "attention"
VIEW_CHOICES = [("single head", "head"), ("all heads of the layer", "layer"), ("mean & max over heads", "aggregate")]
SCORE_CHOICES = [(att_view.SCORE_LABELS[n], n) for n in ("previous_token", "first_token", "induction",
                                                         "prompt_induction", "entropy", "current_token")]


@dataclass
class AttentionTab:
    tab: gr.Tab
    prompt: gr.Textbox
    button: gr.Button
    layer: gr.Slider
    head: gr.Slider
    view: gr.Radio
    tokens_shown: gr.Slider
    window_start: gr.Number
    log_scale: gr.Checkbox
    hide_first: gr.Checkbox
    note: gr.Markdown
    figure: gr.Plot
    score: gr.Radio
    grid: gr.Dataframe
    scores_fig: gr.Plot
    json: gr.DownloadButton
    csv: gr.DownloadButton
    scores_csv: gr.DownloadButton
    scores: gr.State
    key: gr.State
    qk_query: gr.Number
    qk_button: gr.Button
    qk_fig: gr.Plot
    qk_note: gr.Markdown

    def inputs(self, ctx: AppContext) -> list:
        return [self.prompt, self.layer, self.head, self.view, self.score, self.window_start, self.tokens_shown,
                self.log_scale, self.hide_first, ctx.present]

    def outputs(self) -> list:
        return [self.figure, self.note, self.grid, self.scores_fig, self.json, self.csv, self.scores_csv,
                self.scores, self.key]

    def link_controls(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "layer": self.layer, "head": self.head, "view": self.view,
                "score": self.score, "tokens_shown": self.tokens_shown, "window_start": self.window_start,
                "log_scale": self.log_scale, "hide_first": self.hide_first}


def build(ctx: AppContext) -> AttentionTab:
    with gr.Tab("Attention", id=TAB_ID, elem_id="tab-attention") as tab:
        with stage_bar():
            prompt = gr.Textbox(value=DEFAULT_PROMPT, label="Prompt (follows the Generate prompt)", lines=1,
                                max_lines=3, scale=5, max_length=v.MAX_PROMPT_CHARS, elem_id="att-prompt")
            layer = gr.Slider(0, 11, value=0, step=1, label="Layer", scale=2, min_width=150, elem_id="att-layer")
            head = gr.Slider(0, 11, value=0, step=1, label="Head", scale=2, min_width=150, elem_id="att-head")
            view = gr.Dropdown(VIEW_CHOICES, value="head", label="View", scale=2, min_width=150, elem_id="att-view")
            button = gr.Button("Show attention", variant="primary", scale=1, min_width=170, elem_id="att-btn")
        example_hint(TAB_ID, prompt)
        figure = gr.Plot(label="Attention weights", elem_id="att-fig")
        note = gr.Markdown(elem_id="att-note")
        with stage_more("Head scores: what kind of head is each one?"):
            gr.Markdown("Click a cell of the table to open that head above. "
                        + " ".join(f"**{att_view.SCORE_LABELS[n]}**: {doc}." for n, doc in att_view.SCORE_DOCS.items()))
            score = gr.Radio(SCORE_CHOICES, value="previous_token", label="Score shown in the table",
                             elem_id="att-score")
            with gr.Row():
                grid = gr.Dataframe(interactive=False, label="layer x head (click a cell)", elem_id="score-grid",
                                    max_height=420)
                scores_fig = gr.Plot(label="Score grid", elem_id="scores-fig")
        with stage_more("Why this weight? One row of the pattern taken apart", elem_id="qk-accordion"):
            gr.Markdown("The head's query vector q of one token, each earlier token's key k, their products q ⊙ k "
                        "dimension by dimension, the score Σ(q ⊙ k)/√head_dim, the causal mask and the softmax: "
                        "its row is the row of the pattern above. Click a cell of the pattern to take its row apart.",
                        elem_classes="token-help")
            with gr.Row():
                qk_query = gr.Number(value=-1, precision=0, label="Query position (-1 = the last token)",
                                     elem_id="qk-query")
                qk_button = gr.Button("Take this row apart", elem_id="qk-btn")
            qk_fig = gr.Plot(label="Why this weight", elem_id="qk-fig")
            qk_note = gr.Markdown(elem_id="qk-note")
        with stage_more("More: examples, long prompts, downloads"):
            example_prompts(TAB_ID, prompt)
            with gr.Row():
                tokens_shown = gr.Slider(2, v.ATTENTION_TOKENS, value=64, step=1,
                                         label="Tokens shown (the last N unless a start is set)")
                window_start = gr.Number(value=None, precision=0, label="Window starts at token (0 = the first of your text; empty = the end)")
                log_scale = gr.Checkbox(label="Log colour scale", value=False)
                hide_first = gr.Checkbox(label="Hide the first-token column (attention sink)", value=False)
            with gr.Row():
                json_btn = gr.DownloadButton("Download JSON (weights + scores)", size="sm")
                csv_btn = gr.DownloadButton("Download CSV (this head)", size="sm")
                scores_csv = gr.DownloadButton("Download CSV (head scores)", size="sm")
        scores = gr.State(None)
        key = gr.State(None)
    return AttentionTab(tab, prompt, button, layer, head, view, tokens_shown, window_start, log_scale, hide_first,
                        note, figure, score, grid, scores_fig, json_btn, csv_btn, scores_csv, scores, key, qk_query,
                        qk_button, qk_fig, qk_note)


def compute(t: AttentionTab, ctx: AppContext):
    """The view's handler (also run by deep links and presentation mode): ``fn(*inputs, key) -> dict``."""

    @guarded
    def ui_attention(prompt, lay, hd, kind, sc, start, shown, log, hide, present_on, key=None):
        snap = ctx.need_model()
        req = att_view.check_attention(snap, prompt, lay, hd, kind, sc, start, shown, log, hide)
        new_key = (snap.uid, req, bool(present_on))
        if key == new_key:
            return {t.key: gr.skip()}
        av = att_view.attention_view(snap, req)
        headers, rows = av.grid()
        return {t.figure: style_figure(av.figure, present_on), t.note: av.note or f"{len(req.prompt_ids)} tokens.",
                t.grid: gr.update(value=rows, headers=headers),
                t.scores_fig: style_figure(av.scores_figure, present_on),
                t.json: export_file("attention", "json", av.to_json()),
                t.csv: export_file(f"attention-L{req.layer}-H{req.head}", "csv", av.to_csv()),
                t.scores_csv: export_file("head-scores", "csv", av.scores.to_csv()),
                t.scores: av.scores, t.key: new_key}
    return ui_attention


def wire(t: AttentionTab, ctx: AppContext) -> None:
    ui_attention = compute(t, ctx)
    inputs, outputs = t.inputs(ctx), t.outputs()

    @guarded
    def ui_regrid(scores, sc, present_on):
        """One selector for the table and the figure: both show the chosen score."""
        if scores is None:
            return {t.grid: gr.skip()}
        name = v.choice(sc, "Score", att_view.SCORE_CHOICES, default="previous_token")
        headers = ["layer"] + [f"head {i}" for i in range(scores.n_heads)]
        rows = [[l] + [round(float(x), 3) for x in scores.score(name)[l]] for l in range(scores.n_layers)]
        return {t.grid: gr.update(value=rows, headers=headers),
                t.scores_fig: style_figure(head_scores_figure(scores, name), present_on)}

    def ui_pick_head(evt: gr.SelectData):
        idx = evt.index
        if not isinstance(idx, (list, tuple)) or len(idx) != 2 or idx[1] < 1:
            return {t.layer: gr.skip()}
        return {t.layer: idx[0], t.head: idx[1] - 1, t.view: "head"}

    wire_view(t, ctx, ui_attention, [t.button.click, t.prompt.submit, t.layer.release, t.head.release,
                                     t.view.input, t.tokens_shown.release, t.window_start.submit,
                                     t.log_scale.input, t.hide_first.input])
    @guarded
    def ui_qk(prompt, lay, hd, query, present_on):
        b = learned_view.qk(ctx.need_model(), prompt, lay, hd, query)
        top = int(b.weights.argmax())
        return {t.qk_fig: style_figure(qk_figure(b), present_on),
                t.qk_note: f"Query {b.query} '{b.labels[b.query]}': its largest weight, {float(b.weights[top]):.3f}, "
                           f"goes to key {top} '{b.labels[top]}'."}
    t.qk_button.click(ui_qk, [t.prompt, t.layer, t.head, t.qk_query, ctx.present], [t.qk_fig, t.qk_note],
                      **MODEL_QUEUE, **PRIVATE)
    t.score.input(ui_regrid, [t.scores, t.score, ctx.present], [t.grid, t.scores_fig], **LIGHT, **PRIVATE)
    t.grid.select(ui_pick_head, None, [t.layer, t.head, t.view], **LIGHT, **PRIVATE).then(
        ui_attention, inputs, outputs, **MODEL_QUEUE, **PRIVATE)
