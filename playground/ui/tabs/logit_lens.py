"""Logit lens tab: the top prediction after the embeddings and after every block, at each position."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from .. import validate as v
from ..common import (DEFAULT_PROMPT, AppContext, example_hint, example_prompts, export_file, guarded, stage_bar,
                      stage_more, wire_view)
from ..theme import style_figure
from ..views import logit_lens as lens_view

TAB_ID = "logit-lens"


@dataclass
class LogitLensTab:
    tab: gr.Tab
    prompt: gr.Textbox
    position: gr.Number
    button: gr.Button
    note: gr.Markdown
    figure: gr.Plot
    trajectory: gr.Plot
    json: gr.DownloadButton
    csv: gr.DownloadButton
    key: gr.State

    def inputs(self, ctx: AppContext) -> list:
        return [self.prompt, self.position, ctx.present]

    def outputs(self) -> list:
        return [self.figure, self.trajectory, self.note, self.json, self.csv, self.key]

    def link_controls(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "position": self.position}


def build(ctx: AppContext) -> LogitLensTab:
    with gr.Tab("Logit lens", id=TAB_ID, elem_id="tab-lens") as tab:
        with stage_bar():
            prompt = gr.Textbox(value=DEFAULT_PROMPT, label="Prompt", lines=1, max_lines=3, scale=5,
                                max_length=v.MAX_PROMPT_CHARS, elem_id="lens-prompt")
            position = gr.Number(value=-1, precision=0, label="Follow the prediction at position (-1 = last)",
                                 scale=2, min_width=180, elem_id="lens-pos")
            button = gr.Button("Show logit lens", variant="primary", elem_id="lens-btn")
        example_hint(TAB_ID, prompt)
        figure = gr.Plot(label="Logit lens", elem_id="lens-fig")
        note = gr.Markdown()
        gr.Markdown("␣ is a space at the start of a token and ↵ a line break. The row *embeddings* is the "
                    "prediction from each token alone, before any block has mixed in the context: it guesses the "
                    "commonest next token overall. The books in the bundled model's corpus break lines every "
                    "70 characters or so, so its middle blocks often guess ↵ until the last ones sharpen the "
                    "prediction.", elem_classes="token-help")
        trajectory = gr.Plot(label="One prediction through the layers", elem_id="lens-traj")
        with stage_more("More: examples and downloads"):
            example_prompts(TAB_ID, prompt)
            with gr.Row():
                json_btn = gr.DownloadButton("Download JSON", size="sm")
                csv_btn = gr.DownloadButton("Download CSV", size="sm")
        key = gr.State(None)
    return LogitLensTab(tab, prompt, position, button, note, figure, trajectory, json_btn, csv_btn, key)


def compute(t: LogitLensTab, ctx: AppContext):
    @guarded
    def ui_lens(prompt, pos, present_on, key=None):
        snap = ctx.need_model()
        new_key = (snap.uid, prompt, pos, bool(present_on))
        if key == new_key:
            return {t.key: gr.skip()}
        lv = lens_view.lens_view(snap, prompt, 5, pos)
        return {t.figure: style_figure(lv.figure, present_on), t.trajectory: style_figure(lv.trajectory, present_on),
                t.note: lv.note or f"{lv.lens.n_tokens} tokens.",
                t.json: export_file("logit-lens", "json", lv.lens.to_json()),
                t.csv: export_file("logit-lens", "csv", lv.lens.to_csv()), t.key: new_key}
    return ui_lens


def wire(t: LogitLensTab, ctx: AppContext) -> None:
    wire_view(t, ctx, compute(t, ctx), [t.button.click, t.prompt.submit, t.position.submit])
