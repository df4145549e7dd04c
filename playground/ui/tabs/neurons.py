"""Neurons (under Learned): one MLP neuron — its activation on your text, the contexts of a reference text
where it fires most, and the tokens it pushes up or down; or, for a token of your text, its top neurons."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ...inspection.figures import learned as figs
from ...inspection.neuron_index import IndexJob
from ...tokenizer import get_tokenizer
from .. import validate as v
from ..common import (LIGHT, MODEL_QUEUE, PRIVATE, AppContext, export_file, guarded, stage_bar, stage_more,
                      wire_view)
from ..i18n import current_lang, tr_html
from ..theme import style_figure
from ..views import learned as lv

TAB_ID = "neurons"
DEFAULT_TEXT = ("1. A word that means one thing. 2. A word that means another. Mr. Darcy and President "
                "Lincoln met Sir Walter in the garden.")
# Measured on the bundled model's held-out text (the card's model): each neuron's top contexts share one story.
PRESETS = [("L5 N271: the number of a definition after a blank line", (5, 271)),
           ("L5 N230: a first name or title before a surname", (5, 230)),
           ("L1 N261: names of people", (1, 261))]
POLL_S = 2.0


@dataclass
class NeuronsTab:
    tab: gr.Tab
    prompt: gr.Textbox
    layer: gr.Slider
    neuron: gr.Number
    button: gr.Button
    text_fig: gr.Plot
    effect_fig: gr.Plot
    contexts: gr.HTML
    note: gr.Markdown
    preset: gr.Dropdown
    position: gr.Number
    top_button: gr.Button
    top_fig: gr.Plot
    json: gr.DownloadButton
    csv: gr.DownloadButton
    timer: gr.Timer
    key: gr.State

    def inputs(self, ctx: AppContext) -> list:
        return [self.prompt, self.layer, self.neuron, ctx.present]

    def outputs(self) -> list:
        return [self.text_fig, self.effect_fig, self.contexts, self.note, self.json, self.csv, self.timer, self.key]

    def link_controls(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "layer": self.layer, "neuron": self.neuron, "position": self.position}


def build(ctx: AppContext) -> NeuronsTab:
    with gr.Tab("Neurons", id=TAB_ID, elem_id="tab-neurons") as tab:
        with stage_bar():
            prompt = gr.Textbox(value=DEFAULT_TEXT, label="Your text", lines=1, max_lines=3, scale=5,
                                max_length=v.MAX_PROMPT_CHARS, elem_id="neuron-prompt")
            layer = gr.Slider(0, 11, value=PRESETS[0][1][0], step=1, label="Layer", scale=2, min_width=150,
                              elem_id="neuron-layer")
            neuron = gr.Number(value=PRESETS[0][1][1], precision=0, label="Neuron", scale=1, min_width=110,
                               elem_id="neuron-index")
            preset = gr.Dropdown([(label, f"{l},{n}") for label, (l, n) in PRESETS], value=None,
                                 label="Neurons worth a look", scale=3, min_width=200, elem_id="neuron-preset")
            button = gr.Button("Show the neuron", variant="primary", elem_id="neuron-btn")
        with gr.Row(elem_id="neuron-main"):
            with gr.Column(scale=3):
                contexts = gr.HTML(elem_id="neuron-contexts")
            with gr.Column(scale=2):
                effect_fig = gr.Plot(label="Direct effect on the output", elem_id="neuron-effect")
        text_fig = gr.Plot(label="Activation on your text", elem_id="neuron-text")
        gr.Markdown("Click a token's bar to list the 20 neurons (all layers) most active there.",
                    elem_classes="token-help")
        note = gr.Markdown(elem_id="neuron-note")
        with stage_more("More: the top neurons at a token of your text, downloads", elem_id="neuron-more"):
            with gr.Row():
                position = gr.Number(value=-1, precision=0, label="Token position (-1 = the last)",
                                     elem_id="neuron-position")
                top_button = gr.Button("Top neurons at this token", elem_id="neuron-top-btn")
            top_fig = gr.Plot(label="Top neurons at a token", elem_id="neuron-top")
            with gr.Row():
                json_btn = gr.DownloadButton("Download JSON", size="sm")
                csv_btn = gr.DownloadButton("Download CSV", size="sm")
        timer = gr.Timer(POLL_S, active=False)
        key = gr.State(None)
    return NeuronsTab(tab, prompt, layer, neuron, button, text_fig, effect_fig, contexts, note, preset, position,
                      top_button, top_fig, json_btn, csv_btn, timer, key)


def _contexts_html(found: Any) -> tuple[str, bool]:
    """The contexts' HTML, or a progress line while the index builds; and whether to keep polling."""
    if isinstance(found, IndexJob):
        return (f"<p class='neuron-progress'>Finding the contexts where each neuron fires most, over the "
                f"reference text: {found.progress:.0%} done. They appear here when ready; every other view "
                f"works meanwhile.</p>", True)
    tok = get_tokenizer()
    return figs.neuron_contexts_html(found, decode=lambda ids: tok.decode(ids).replace("\n", "↵")), False


def compute(t: NeuronsTab, ctx: AppContext):
    @guarded
    def ui_neuron(prompt, layer, neuron, present_on, key=None):
        snap = ctx.need_model()
        lay, i = lv.layer_neuron(snap, layer, neuron)
        found = lv.contexts(snap, lay, i)
        html, building = _contexts_html(found)
        new_key = (snap.uid, prompt, lay, i, bool(present_on), building)
        if key == new_key and not building:
            return {t.key: gr.skip()}
        acts = lv.activations(snap, prompt)
        effect = lv.direct_effect(snap, lay, i)
        peak = float(acts.neuron(lay, i).max())
        note = (f"L{lay} N{i}: its highest activation on your text is {peak:.2f}, "
                f"at '{acts.labels[int(acts.neuron(lay, i).argmax())]}'. {acts.note}").strip()
        return {t.text_fig: style_figure(figs.neuron_activation_figure(acts, lay, i), present_on),
                t.effect_fig: style_figure(figs.direct_effect_figure(effect), present_on),
                t.contexts: tr_html(html, current_lang()), t.note: note,
                t.json: export_file(f"neuron-L{lay}-N{i}", "json", acts.to_json(lay, i)),
                t.csv: export_file(f"neuron-L{lay}-N{i}", "csv", acts.to_csv(lay, i)),
                t.timer: gr.Timer(active=building), t.key: new_key}
    return ui_neuron


def wire(t: NeuronsTab, ctx: AppContext) -> None:
    ui_neuron = compute(t, ctx)
    wire_view(t, ctx, ui_neuron, [t.button.click, t.prompt.submit, t.layer.release, t.neuron.submit])

    def ui_preset(choice):
        if not choice:
            return gr.skip(), gr.skip()
        lay, i = (int(x) for x in str(choice).split(","))
        return lay, i
    t.preset.input(ui_preset, [t.preset], [t.layer, t.neuron], **LIGHT, **PRIVATE).then(
        ui_neuron, t.inputs(ctx), t.outputs(), **MODEL_QUEUE, **PRIVATE)

    @guarded
    def ui_poll(layer, neuron):
        """While the index builds: its progress, then the contexts once ready (and the timer stops)."""
        snap = ctx.need_model()
        html, building = _contexts_html(lv.contexts(snap, layer, neuron))
        return {t.contexts: tr_html(html, current_lang()), t.timer: gr.Timer(active=building)}
    t.timer.tick(ui_poll, [t.layer, t.neuron], [t.contexts, t.timer], show_progress="hidden", **LIGHT, **PRIVATE)

    @guarded
    def ui_top(prompt, position, present_on):
        top = lv.top_neurons(ctx.need_model(), prompt, position)
        return style_figure(figs.top_neurons_figure(top), present_on)
    t.top_button.click(ui_top, [t.prompt, t.position, ctx.present], [t.top_fig], **MODEL_QUEUE, **PRIVATE)
