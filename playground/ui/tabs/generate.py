"""Generate tab: prompt and sampling controls, the text streaming in, each token's alternatives."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ...inspection.figures.alternatives import alternatives_figure
from .. import validate as v
from ..common import (DEFAULT_PROMPT, LIGHT, PRIVATE, AppContext, example_hint, example_prompts, export_file,
                      generate_queue, guarded, stage_bar, stage_more)
from ..theme import style_figure
from ..views import generate as gen_view

TAB_ID = "generate"
TEXT_EVERY_S = 0.1             # page updates while streaming, however fast the model is
TOKENS_EVERY_S = 0.5
ALTERNATIVES = 10


@dataclass
class GenerateTab:
    tab: gr.Tab
    prompt: gr.Textbox
    max_new: gr.Slider
    temperature: gr.Slider
    top_k: gr.Slider
    top_p: gr.Slider
    seed: gr.Number
    precision: gr.Radio
    button: gr.Button
    stop: gr.Button
    text: gr.Textbox
    stats: gr.Markdown
    tokens: gr.HighlightedText
    alt_caption: gr.Markdown
    alt_table: gr.Dataframe
    alt_fig: gr.Plot
    json: gr.DownloadButton
    csv: gr.DownloadButton
    state: gr.State

    def link_controls(self) -> dict[str, Any]:
        """Controls a deep link can set, named as the ``/generate`` API's arguments."""
        return {"prompt": self.prompt, "max_new_tokens": self.max_new, "temperature": self.temperature,
                "top_k": self.top_k, "top_p": self.top_p, "seed": self.seed, "precision": self.precision}


def build(ctx: AppContext) -> GenerateTab:
    """The tab's components (call inside ``gr.Tabs``)."""
    with gr.Tab("Generate", id=TAB_ID, elem_id="tab-generate") as tab:
        with stage_bar():
            prompt = gr.Textbox(value=DEFAULT_PROMPT, label="Prompt", lines=1, max_lines=3, scale=5,
                                max_length=v.MAX_PROMPT_CHARS, elem_id="gen-prompt")
            max_new = gr.Slider(1, v.MAX_NEW_TOKENS, value=50, step=1, label="Max new tokens", scale=2,
                                min_width=150, elem_id="max-new")
            temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature", scale=2, min_width=150,
                                    elem_id="gen-temperature")
            button = gr.Button("Generate", variant="primary", elem_id="generate-btn")
            stop = gr.Button("Stop", variant="secondary", elem_id="stop-btn")
        example_hint(TAB_ID, prompt)
        with gr.Row(elem_id="gen-main"):
            with gr.Column(scale=3):
                text = gr.Textbox(label="Text (prompt + continuation)", lines=6, interactive=False,
                                  elem_id="gen-text", buttons=["copy"])
                stats = gr.Markdown(elem_id="gen-stats")
                tokens = gr.HighlightedText(
                    label="Generated tokens, coloured by the probability they were drawn with",
                    color_map=gen_view.PROB_COLORS, show_legend=True, show_inline_category=False,
                    combine_adjacent=False, elem_id="gen-tokens")
                gr.Markdown("Click a token to see what else it could have been.", elem_classes="token-help")
            with gr.Column(scale=2):
                alt_caption = gr.Markdown(elem_id="alt-caption")
                alt_fig = gr.Plot(label="Alternatives", elem_id="alt-fig")
        with stage_more("More: sampling settings, examples, the table and downloads"):
            with gr.Row():
                top_k = gr.Slider(0, 200, value=50, step=1, label="Top-k", info="0 = off", elem_id="gen-top-k")
                top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p", info="1 = off",
                                  elem_id="gen-top-p")
                seed = gr.Number(value=-1, label="Seed (-1 = random; any other number repeats the same text)",
                                 precision=0, minimum=-1, maximum=v.MAX_SEED, elem_id="gen-seed")
            precision = gr.Radio(
                [(label, name) for name, label in gen_view.PRECISION_LABELS.items()], value="fp32",
                label="Precision of the fast decoder",
                info="fp32 gives the book model's exact numbers; bf16 and int8 weights read fewer "
                     "bytes per token, so they run faster on GPUs and on CPUs with bf16 instructions "
                     "(AVX-512 BF16, AMX; elsewhere fp32 is fastest), and greedy text can differ slightly.",
                elem_id="gen-precision")
            example_prompts(TAB_ID, prompt)
            alt_table = gr.Dataframe(headers=["rank", "token", "id", "probability", "drawn"],
                                     interactive=False, elem_id="alt-table", max_height=360)
            with gr.Row():
                json_btn = gr.DownloadButton("Download JSON", size="sm")
                csv_btn = gr.DownloadButton("Download CSV", size="sm")
        state = gr.State(None)
    return GenerateTab(tab, prompt, max_new, temperature, top_k, top_p, seed, precision, button, stop, text,
                       stats, tokens, alt_caption, alt_table, alt_fig, json_btn, csv_btn, state)


def wire(t: GenerateTab, ctx: AppContext) -> None:
    """The tab's events: the text streams; Stop cancels at once and keeps what was generated so far."""
    finished_outputs = [t.alt_caption, t.alt_table, t.alt_fig, t.json, t.csv]

    def alternatives(gv: gen_view.GenerationView | None, step: int | None, present_on: bool) -> dict:
        if gv is None:
            return {t.alt_caption: "", t.alt_table: [], t.alt_fig: None}
        caption, rows = gv.alternatives(step)
        return {t.alt_caption: caption, t.alt_table: rows,
                t.alt_fig: style_figure(alternatives_figure(rows), present_on)}

    def finished(gv: gen_view.GenerationView, present_on: bool) -> dict:
        return {**alternatives(gv, None, present_on),
                t.json: export_file("generation", "json", gv.to_json()),
                t.csv: export_file("generation", "csv", gv.to_csv())}

    @guarded
    def ui_generate(prompt, max_new_tokens, temp, k, p, s, precision, present_on):
        snap = ctx.need_model()
        try:
            req = gen_view.check_generate(snap, prompt, max_new_tokens, temp, k, p, s, ALTERNATIVES, precision)
        except v.InputError as e:
            # Said in a notice, and the event succeeds: a failed event would cover every output with an
            # "Error" pill and hide the text generated before, which the user keeps.
            gr.Warning(e.message, title="Check your input")
            yield {t.stats: gr.skip()}
            return
        last_text = last_tokens = 0.0
        gv = None
        for gv in gen_view.stream_generation(snap, req, ctx.batcher):
            if gv.stopped or gv.done:
                break
            now = time.monotonic()
            if now - last_text < TEXT_EVERY_S:
                continue
            last_text = now
            update = {t.text: req.prompt + gv.text, t.stats: gv.stats(), t.state: gv}
            if now - last_tokens >= TOKENS_EVERY_S:     # the coloured tokens are the heavy part
                update[t.tokens], last_tokens = gv.highlighted(), now
            yield update
        if gv is not None:
            gv.done = True
            yield {t.text: req.prompt + gv.text, t.tokens: gv.highlighted(), t.stats: gv.stats(), t.state: gv,
                   **finished(gv, present_on)}

    @guarded
    def ui_pick_token(gv, present_on, evt: gr.SelectData):
        if gv is None or evt.index is None:
            return {t.alt_caption: gr.skip()}
        i = evt.index if isinstance(evt.index, int) else evt.index[0]
        if i == 0:          # the prompt itself
            return {t.alt_caption: gr.skip()}
        return alternatives(gv, i - 1, present_on)

    @guarded
    def ui_stopped(gv, present_on):
        """Stop: the running generation is cancelled (``cancels=``) and also told to stop, so that
        whichever ends it, the page shows what was generated so far, marked as stopped."""
        if gv is None or (gv.done and not gv.stopped):
            return {t.text: gr.skip()}
        gv.stopped = gv.done = True
        return {t.text: gv.prompt + gv.text, t.tokens: gv.highlighted(), t.stats: gv.stats(),
                **finished(gv, present_on)}

    gen_io = dict(fn=ui_generate, inputs=[t.prompt, t.max_new, t.temperature, t.top_k, t.top_p, t.seed,
                                          t.precision, ctx.present],
                  outputs=[t.text, t.tokens, t.stats, t.state, *finished_outputs], **generate_queue(ctx.batcher),
                  **PRIVATE)
    gen_event = t.button.click(**gen_io)
    gen_submit = t.prompt.submit(**gen_io)
    t.stop.click(ui_stopped, [t.state, ctx.present], [t.text, t.tokens, t.stats, *finished_outputs],
                 cancels=[gen_event, gen_submit], **LIGHT, **PRIVATE)
    t.tokens.select(ui_pick_token, [t.state, ctx.present], [t.alt_caption, t.alt_table, t.alt_fig],
                    **LIGHT, **PRIVATE)
