"""Step by step tab: one forward pass with its real numbers beside the book's code, and the KV cache
filling token by token during a generation."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ...inspection.figures.walkthrough import kv_cache_figure, step_figure
from ...inspection.walkthrough import STEP_IDS, Walkthrough
from .. import validate as v
from ...inspection.export import dumps
from ..common import DEFAULT_PROMPT, MODEL_QUEUE, PRIVATE, AppContext, export_file, guarded, stage_bar
from ..i18n import current_lang, tr
from ..theme import style_figure
from ..views import walkthrough as walk_view

TAB_ID = "walkthrough"
PLAY_SECONDS = 3.0            # per step when playing the tour


@dataclass
class WalkthroughTab:
    tab: gr.Tab
    prompt: gr.Textbox
    layer: gr.Slider
    head: gr.Slider
    step: gr.Slider
    prev: gr.Button
    next: gr.Button
    play: gr.Button
    pause: gr.Button
    title: gr.Markdown
    figure: gr.Plot
    code: gr.HTML
    explanation: gr.Markdown
    note: gr.Markdown
    kv_new: gr.Slider
    kv_button: gr.Button
    kv_fig: gr.Plot
    kv_text: gr.Markdown
    json: gr.DownloadButton
    key: gr.State             # which walkthrough (model, prompt, block, head) the page shows

    def inputs(self, ctx: AppContext) -> list:
        return [self.prompt, self.layer, self.head, self.step, ctx.present]

    def outputs(self) -> list:
        return [self.step, self.title, self.figure, self.code, self.explanation, self.note, self.json, self.key]

    def link_controls(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "layer": self.layer, "head": self.head, "step": self.step}


def build(ctx: AppContext) -> WalkthroughTab:
    n = len(STEP_IDS)
    with gr.Tab("Step by step", id=TAB_ID, elem_id="tab-walkthrough") as tab:
        with stage_bar():
            prev = gr.Button("◀ Prev", size="sm", elem_id="walk-prev", min_width=80)
            nxt = gr.Button("Next ▶", size="sm", variant="primary", elem_id="walk-next", min_width=80)
            play = gr.Button("Play ▶▶", size="sm", elem_id="walk-play", min_width=80)
            pause = gr.Button("Pause ▮▮", size="sm", elem_id="walk-pause", min_width=80)
            step = gr.Slider(0, n - 1, value=0, step=1, label=f"Step (0-{n - 1})", elem_id="walk-step", scale=3,
                             min_width=200)
            prompt = gr.Textbox(value=DEFAULT_PROMPT, label="Prompt (the first 8 tokens are used)", lines=1,
                                max_lines=2, scale=3, max_length=v.MAX_PROMPT_CHARS, elem_id="walk-prompt")
        title = gr.Markdown(elem_id="walk-title")
        with gr.Row(elem_id="walk-main"):
            with gr.Column(scale=3):
                figure = gr.Plot(label="This step's tensor", elem_id="walk-fig", show_label=False)
            with gr.Column(scale=2):
                code = gr.HTML(elem_id="walk-code")
                explanation = gr.Markdown(elem_id="walk-explanation")
        with gr.Row(elem_id="walk-controls"):
            layer = gr.Slider(0, 11, value=0, step=1, label="Block shown", elem_id="walk-layer")
            head = gr.Slider(0, 11, value=0, step=1, label="Head shown", elem_id="walk-head")
        note = gr.Markdown(elem_id="walk-note")
        with gr.Accordion("The KV cache during a generation", open=False, elem_id="kv-accordion"):
            gr.Markdown("Greedy generation through the model's own KV cache: after the prompt is read once "
                        "(prefill), each new token adds one key and one value per layer and head, and attends "
                        "over the cache instead of recomputing every position as the book's loop does.")
            with gr.Row():
                kv_new = gr.Slider(1, 100, value=24, step=1, label="New tokens", elem_id="kv-new")
                kv_button = gr.Button("Run and watch the cache", variant="primary", elem_id="kv-btn")
            kv_fig = gr.Plot(label="Cache and work per token", elem_id="kv-fig")
            kv_text = gr.Markdown(elem_id="kv-text")
        json_btn = gr.DownloadButton("Download JSON (all steps)", size="sm")
        key = gr.State(None)
    return WalkthroughTab(tab, prompt, layer, head, step, prev, nxt, play, pause, title, figure, code,
                          explanation, note, kv_new, kv_button, kv_fig, kv_text, json_btn, key)


def step_outputs(t: WalkthroughTab, wt: Walkthrough, i: int, present_on: bool) -> dict:
    """What the tab shows for step ``i`` of ``wt``."""
    s = wt.steps[i]
    shape = " × ".join(str(x) for x in s.shape)
    fig = style_figure(step_figure(wt, s.id), present_on)
    if current_lang() == "zh":        # each step carries its own 中文 title and explanation
        fig.layout.title.text = fig.layout.title.text.replace(s.title, s.title_zh, 1)
        return {t.step: i, t.title: f"## 第 {i + 1} 步（共 {len(wt.steps)} 步）：{s.title_zh}\n"
                                    f"`{s.id}` · 形状 ({shape}) · {tr(s.view, 'zh')}",
                t.figure: fig, t.code: walk_view.code_html(s), t.explanation: s.explanation["zh"]}
    return {t.step: i, t.title: f"## Step {i + 1} of {len(wt.steps)}: {s.title}\n"
                                f"`{s.id}` · shape ({shape}) · {s.view}",
            t.figure: fig, t.code: walk_view.code_html(s), t.explanation: s.explanation["en"]}


def compute(t: WalkthroughTab, ctx: AppContext):
    """The step's handler, ``fn(*inputs, key)``: a step of the walkthrough of (model, prompt, block, head).

    The walkthrough itself is cached per model and input (``views.walkthrough``); its JSON download is
    written only when ``key`` says the page shows another walkthrough, not on every step."""
    @guarded
    def ui_show(prompt, layer, head, step, present_on, key=None):
        snap = ctx.need_model()
        wt = walk_view.walkthrough_view(snap, prompt, layer, head)
        out = step_outputs(t, wt, walk_view.step_index(step), present_on)
        new_key = (snap.uid, prompt, wt.layer, wt.head)
        if key != new_key:
            out.update({t.note: wt.note, t.json: export_file("walkthrough", "json", dumps(wt.data())),
                        t.key: new_key})
        return out
    return ui_show


def wire(t: WalkthroughTab, ctx: AppContext) -> None:
    ui_show = compute(t, ctx)

    def move(delta: int):
        @guarded
        def ui_move(prompt, layer, head, step, present_on, key):
            i = min(max(walk_view.step_index(step) + delta, 0), len(STEP_IDS) - 1)
            return ui_show(prompt, layer, head, i, present_on, key)
        return ui_move

    @guarded
    def ui_play(prompt, layer, head, step, present_on, key):
        start = walk_view.step_index(step)
        start = 0 if start >= len(STEP_IDS) - 1 else start
        for i in range(start, len(STEP_IDS)):
            out = ui_show(prompt, layer, head, i, present_on, key)
            key = out.get(t.key, key)
            yield out
            if i + 1 < len(STEP_IDS):
                time.sleep(PLAY_SECONDS)

    @guarded
    def ui_kv(prompt, n_new, present_on):
        trace = walk_view.kv_view(ctx.need_model(), prompt, n_new)
        last = trace.steps[-1]
        w = last.work
        text = (f"After {len(trace.steps) - 1} new tokens the cache holds **{last.cache_length}** positions: "
                f"keys and values of shape {tuple(last.kv_shape)} (layers, 2, heads, T, head_dim), "
                f"**{last.bytes_used / 1024:,.1f} KiB** used of {last.bytes_allocated / 1024:,.1f} KiB allocated. "
                f"The last token cost {w.total:,} multiply-adds with the cache against {w.total_recompute:,} "
                f"for the book's loop, which recomputes all {w.n_key} positions "
                f"({w.total_recompute / max(w.total, 1):,.1f}x). Generated: "
                f"{''.join(trace.generated_tokens)!r}. {trace.note}")
        return {t.kv_fig: style_figure(kv_cache_figure(trace), present_on), t.kv_text: text}

    inputs, outputs = t.inputs(ctx) + [t.key], t.outputs()
    run = dict(**MODEL_QUEUE, **PRIVATE)
    for trig in (t.prompt.submit, t.layer.release, t.head.release, t.step.release):
        trig(ui_show, inputs, outputs, trigger_mode="always_last", **run)
    t.prev.click(move(-1), inputs, outputs, **run)
    t.next.click(move(+1), inputs, outputs, **run)
    playing = t.play.click(ui_play, inputs, outputs, **run)
    t.pause.click(None, None, None, cancels=[playing], **PRIVATE)
    t.kv_button.click(ui_kv, [t.prompt, t.kv_new, ctx.present], [t.kv_fig, t.kv_text], **run)
    t.tab.select(ui_show, inputs, outputs, **run)

