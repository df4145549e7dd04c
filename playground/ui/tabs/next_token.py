"""Next token tab: the most likely next tokens before and after temperature, top-k and top-p."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from .. import validate as v
from ..common import DEFAULT_PROMPT, AppContext, export_file, guarded, wire_view
from ..theme import style_figure
from ..views import next_token as next_view

TAB_ID = "next-token"


@dataclass
class NextTokenTab:
    tab: gr.Tab
    prompt: gr.Textbox
    button: gr.Button
    temperature: gr.Slider
    top_k: gr.Slider
    top_p: gr.Slider
    show: gr.Slider
    stages: gr.Checkbox
    summary: gr.Markdown
    figure: gr.Plot
    table: gr.Dataframe
    json: gr.DownloadButton
    csv: gr.DownloadButton
    key: gr.State

    def inputs(self, ctx: AppContext) -> list:
        return [self.prompt, self.temperature, self.top_k, self.top_p, self.show, self.stages, ctx.present]

    def outputs(self) -> list:
        return [self.figure, self.summary, self.table, self.json, self.csv, self.key]

    def link_controls(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                "show": self.show, "stages": self.stages}


def build(ctx: AppContext) -> NextTokenTab:
    with gr.Tab("Next token", id=TAB_ID, elem_id="tab-next") as tab:
        with gr.Row():
            prompt = gr.Textbox(value=DEFAULT_PROMPT, label="Prompt", lines=2, scale=4,
                                max_length=v.MAX_PROMPT_CHARS, elem_id="next-prompt")
            button = gr.Button("Show next-token distribution", variant="primary", scale=1, elem_id="next-btn")
        with gr.Row():
            temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature", elem_id="next-temperature")
            top_k = gr.Slider(0, 200, value=0, step=1, label="Top-k (0 = off)", elem_id="next-top-k")
            top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p (1 = off)", elem_id="next-top-p")
            show = gr.Slider(1, 50, value=10, step=1, label="Candidates shown", elem_id="next-show")
            stages = gr.Checkbox(label="Show every stage", value=False, elem_id="next-stages")
        summary = gr.Markdown()
        figure = gr.Plot(label="Next-token distribution", elem_id="next-fig")
        table = gr.Dataframe(headers=next_view.NEXT_HEADERS, interactive=False)
        with gr.Row():
            json_btn = gr.DownloadButton("Download JSON", size="sm")
            csv_btn = gr.DownloadButton("Download CSV", size="sm")
        key = gr.State(None)
    return NextTokenTab(tab, prompt, button, temperature, top_k, top_p, show, stages, summary, figure, table,
                        json_btn, csv_btn, key)


def compute(t: NextTokenTab, ctx: AppContext):
    @guarded
    def ui_next(prompt, temp, k, p, show, stages, present_on, key=None):
        snap = ctx.need_model()
        new_key = (snap.uid, prompt, temp, k, p, show, stages, bool(present_on))
        if key == new_key:
            return {}
        nv = next_view.next_view(snap, prompt, temp, k, p, show, stages)
        return {t.figure: style_figure(nv.figure, present_on), t.summary: nv.summary(), t.table: nv.rows(),
                t.json: export_file("next-token", "json", nv.dist.to_json()),
                t.csv: export_file("next-token", "csv", nv.dist.to_csv()), t.key: new_key}
    return ui_next


def wire(t: NextTokenTab, ctx: AppContext) -> None:
    wire_view(t, ctx, compute(t, ctx), [t.button.click, t.prompt.submit, t.temperature.release, t.top_k.release,
                                        t.top_p.release, t.show.release, t.stages.input])
