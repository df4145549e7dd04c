"""Saliency (under Experiments): which input tokens drove the prediction — gradient × input and integrated
gradients, as coloured text and as bars, with integrated gradients' completeness gap."""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ...inspection.figures import learned as figs
from ...inspection.figures.palette import DIVERGING
from ...inspection.inputs import visible
from .. import validate as v
from ..common import AppContext, export_file, guarded, stage_bar, stage_more, wire_view
from ..theme import style_figure
from ..views import learned as lv

TAB_ID = "saliency"
DEFAULT_TEXT = "Mr. Darcy walked into the garden and spoke to Elizabeth. Then Mr. Darcy walked into the garden and spoke to"
METHOD_CHOICES = [("integrated gradients", "integrated_gradients"), ("gradient × input", "gradient_x_input")]
NOTE = ("**What to look at:** with the text shown twice, the earlier ' Elizabeth' and the tokens around the "
        "first copy light up: the model predicts the name by looking back at where it came before. Integrated "
        "gradients' scores add up to f(x) − f(0) as n grows (the gap shrinks).")


@dataclass
class SaliencyTab:
    tab: gr.Tab
    prompt: gr.Textbox
    target: gr.Textbox
    method: gr.Radio
    button: gr.Button
    text: gr.HTML
    figure: gr.Plot
    steps: gr.Slider
    json: gr.DownloadButton
    csv: gr.DownloadButton
    key: gr.State

    def inputs(self, ctx: AppContext) -> list:
        return [self.prompt, self.target, self.method, self.steps, ctx.present]

    def outputs(self) -> list:
        return [self.text, self.figure, self.json, self.csv, self.key]

    def link_controls(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "target": self.target, "method": self.method, "steps": self.steps}


def build(ctx: AppContext) -> SaliencyTab:
    with gr.Tab("Saliency", id=TAB_ID, elem_id="tab-saliency") as tab:
        with stage_bar():
            prompt = gr.Textbox(value=DEFAULT_TEXT, label="Text", lines=1, max_lines=3, scale=5,
                                max_length=v.MAX_PROMPT_CHARS, elem_id="saliency-prompt")
            target = gr.Textbox(value="", label="Target token (empty = the top prediction)", scale=2,
                                min_width=150, elem_id="saliency-target")
            method = gr.Radio(METHOD_CHOICES, value="integrated_gradients", label="Method", scale=3,
                              elem_id="saliency-method")
            button = gr.Button("Explain the prediction", variant="primary", elem_id="saliency-btn")
        text = gr.HTML(elem_id="saliency-text")
        figure = gr.Plot(label="Saliency per token", elem_id="saliency-fig")
        gr.Markdown(NOTE, elem_classes="example-note")
        with stage_more("More: integrated gradients' steps, downloads"):
            steps = gr.Slider(1, lv.IG_STEPS_MAX, value=32, step=1, label="Integrated gradients: steps n",
                              elem_id="saliency-steps")
            with gr.Row():
                json_btn = gr.DownloadButton("Download JSON", size="sm")
                csv_btn = gr.DownloadButton("Download CSV", size="sm")
        key = gr.State(None)
    return SaliencyTab(tab, prompt, target, method, button, text, figure, steps, json_btn, csv_btn, key)


def coloured_text(labels: tuple[str, ...], scores: list[float]) -> str:
    """The text, each token's background by its score (diverging: blue raises the target, red lowers it)."""
    from plotly.colors import sample_colorscale
    lim = max((abs(s) for s in scores), default=1.0) or 1.0
    spans = []
    for label, s in zip(labels, scores):
        colour = sample_colorscale(DIVERGING, [0.5 + 0.5 * s / lim])[0]
        ink = "#fff" if abs(s) / lim > 0.6 else "#000"
        spans.append(f"<span title='{s:+.4f}' style='background:{colour};color:{ink};padding:2px 1px;"
                     f"border-radius:3px'>{html.escape(visible(label))}</span>")
    return (f"<div class='saliency-text' style='display:flex;flex-wrap:wrap;row-gap:6px;font-size:20px;"
            f"line-height:1.6'>{''.join(spans)}</div>")


def compute(t: SaliencyTab, ctx: AppContext):
    @guarded
    def ui_saliency(prompt, target, method, steps, present_on, key=None):
        snap = ctx.need_model()
        new_key = (snap.uid, prompt, target, method, steps, bool(present_on))
        if key == new_key:
            return {t.key: gr.skip()}
        s = lv.saliency(snap, prompt, target, method, steps)
        return {t.text: coloured_text(s.labels, s.scores.tolist()),
                t.figure: style_figure(figs.saliency_figure(s), present_on),
                t.json: export_file("saliency", "json", s.to_json()),
                t.csv: export_file("saliency", "csv", s.to_csv()), t.key: new_key}
    return ui_saliency


def wire(t: SaliencyTab, ctx: AppContext) -> None:
    wire_view(t, ctx, compute(t, ctx), [t.button.click, t.prompt.submit, t.target.submit, t.method.input,
                                         t.steps.release])
