"""Shapes tab: every step of a real forward pass with its shapes, as a table and a data-flow figure."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from .. import validate as v
from ..common import DEFAULT_PROMPT, LIGHT, PRIVATE, AppContext, export_file, guarded, stage_bar, stage_more, wire_view
from ..theme import style_figure
from ..views import shapes as shape_view

TAB_ID = "shapes"
TABLE_LABEL = {"en": "Steps (click a row for its explanation)", "zh": "步骤（点击一行查看说明）"}
COLUMNS = ["order", "block", "step", "input", "output", "params", "explanation"]
HEADERS = {"en": ["#", "block", "step", "input shape", "output shape", "parameters", "explanation"],
           "zh": ["#", "块", "步骤", "输入形状", "输出形状", "参数", "说明"]}


@dataclass
class ShapesTab:
    tab: gr.Tab
    prompt: gr.Textbox
    lang: gr.Radio          # the header's language switch: the explanations follow the page's language
    expand: gr.Checkbox
    button: gr.Button
    note: gr.Markdown
    table: gr.Dataframe
    detail: gr.Markdown
    figure: gr.Plot
    json: gr.DownloadButton
    csv: gr.DownloadButton
    rows: gr.State
    key: gr.State

    def inputs(self, ctx: AppContext) -> list:
        return [self.prompt, self.lang, self.expand, ctx.present]

    def outputs(self) -> list:
        return [self.table, self.figure, self.note, self.detail, self.json, self.csv, self.rows, self.key]

    def link_controls(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "expand": self.expand}


def build(ctx: AppContext) -> ShapesTab:
    with gr.Tab("Shapes", id=TAB_ID, elem_id="tab-shapes") as tab:
        with stage_bar():
            prompt = gr.Textbox(value=DEFAULT_PROMPT, label="Prompt", lines=1, max_lines=3, scale=5,
                                max_length=v.MAX_PROMPT_CHARS, elem_id="trace-prompt")
            expand = gr.Checkbox(label="Expand every block", value=False, scale=1, min_width=150,
                                 elem_id="trace-expand")
            button = gr.Button("Trace the forward pass", variant="primary", elem_id="trace-btn")
        figure = gr.Plot(label="Data flow", elem_id="trace-fig")
        note = gr.Markdown()
        detail = gr.Markdown(elem_id="trace-detail")
        table = gr.Dataframe(interactive=False, wrap=True, elem_id="trace-table", max_height=600,
                             label="Steps (click a row for its explanation)",
                             column_widths=["4%", "5%", "17%", "17%", "12%", "9%", "36%"])
        with stage_more("More: downloads"):
            with gr.Row():
                json_btn = gr.DownloadButton("Download JSON", size="sm")
                csv_btn = gr.DownloadButton("Download CSV", size="sm")
        rows = gr.State([])
        key = gr.State(None)
    return ShapesTab(tab, prompt, ctx.lang, expand, button, note, table, detail, figure, json_btn, csv_btn, rows, key)


def compute(t: ShapesTab, ctx: AppContext):
    @guarded
    def ui_trace(prompt, language, full, present_on, key=None):
        snap = ctx.need_model()
        new_key = (snap.uid, prompt, language, bool(full), bool(present_on))
        if key == new_key:
            return {t.key: gr.skip()}
        tv = shape_view.trace_view(snap, prompt, language, full)
        table = tv.table()
        rows = [[f"{r[c]:,}" if c == "params" and isinstance(r[c], int) else r[c] for c in COLUMNS] for r in table]
        n = len(tv.trace.token_ids)
        note = tv.note or (f"{n} 个词元；第 0 块展开。" if tv.lang == "zh" else
                           f"{n} tokens; block 0 expanded, the other blocks as one row.")
        return {t.table: gr.update(value=rows, headers=HEADERS[tv.lang], label=TABLE_LABEL[tv.lang]),
                t.figure: style_figure(tv.figure, present_on), t.note: note, t.detail: "",
                t.json: export_file("shape-trace", "json", tv.to_json()),
                t.csv: export_file("shape-trace", "csv", tv.to_csv()), t.rows: table, t.key: new_key}
    return ui_trace


def wire(t: ShapesTab, ctx: AppContext) -> None:
    def ui_trace_detail(rows, evt: gr.SelectData):
        idx = evt.index
        i = idx[0] if isinstance(idx, (list, tuple)) else idx
        if not rows or not isinstance(i, int) or not 0 <= i < len(rows):
            return gr.skip()
        r = rows[i]
        return (f"**{r['step']}** — `{r['module']}` · {r['input']} → {r['output']} · "
                f"`{r['symbolic']}`\n\n{r['explanation']}")

    wire_view(t, ctx, compute(t, ctx), [t.button.click, t.prompt.submit, t.expand.input])
    t.table.select(ui_trace_detail, [t.rows], [t.detail], **LIGHT, **PRIVATE)
