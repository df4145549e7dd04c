"""Circuit experiment (under Experiments): the heads and MLPs that carry a behaviour, as a graph, with the
fraction of the behaviour the circuit really keeps (exact, by patching) and how that grows with its size."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ...inspection.circuits import DEFAULT_EDGES
from ...inspection.figures import circuits as figs
from .. import validate as v
from ..common import (LIGHT, MODEL_QUEUE, PRIVATE, AppContext, export_file, guarded, stage_bar, stage_more,
                      wire_view)
from ..theme import style_figure
from ..views import circuits as circuit_view

TAB_ID = "circuit"
EXAMPLE_CHOICES = [("induction (any model)", "induction"), ("indirect object (GPT-2 size)", "ioi"),
                   ("greater-than (GPT-2 size)", "greater-than")]
EDGE_COLUMNS = ["rank", "edge", "score", "in the circuit"]


@dataclass
class CircuitTab:
    tab: gr.Tab
    clean: gr.Textbox
    corrupted: gr.Textbox
    target: gr.Textbox
    distractor: gr.Textbox
    edges: gr.Slider
    button: gr.Button
    example: gr.Dropdown
    check_heads: gr.Checkbox
    figure: gr.Plot
    summary: gr.Markdown
    hint: gr.Markdown
    curve: gr.Plot
    heads_fig: gr.Plot
    table: gr.Dataframe
    json: gr.DownloadButton
    csv: gr.DownloadButton
    key: gr.State

    def inputs(self, ctx: AppContext) -> list:
        return [self.clean, self.corrupted, self.target, self.distractor, self.edges, self.check_heads, ctx.present]

    def outputs(self) -> list:
        return [self.figure, self.summary, self.curve, self.heads_fig, self.table, self.json, self.csv, self.key]

    def link_controls(self) -> dict[str, Any]:
        return {"clean": self.clean, "corrupted": self.corrupted, "target": self.target,
                "distractor": self.distractor, "edges": self.edges, "check_heads": self.check_heads}


def build(ctx: AppContext) -> CircuitTab:
    ex = circuit_view.EXAMPLES[circuit_view.DEFAULT_EXAMPLE]
    with gr.Tab("Circuit", id=TAB_ID, elem_id="tab-circuit") as tab:
        with stage_bar():
            clean = gr.Textbox(value=ex.clean, label="Clean prompt", lines=1, max_lines=3, scale=3,
                               max_length=v.MAX_PROMPT_CHARS, elem_id="circuit-clean")
            corrupted = gr.Textbox(value=ex.corrupted, label="Corrupted prompt (same length)", lines=1,
                                   max_lines=3, scale=3, max_length=v.MAX_PROMPT_CHARS, elem_id="circuit-corrupted")
            target = gr.Textbox(value=ex.target, label="Target", scale=1, min_width=120, elem_id="circuit-target")
            distractor = gr.Textbox(value=ex.distractor, label="Distractor", scale=1, min_width=130,
                                    elem_id="circuit-distractor")
            edges = gr.Slider(1, 500, value=DEFAULT_EDGES, step=1, label="Edges kept (N)", scale=2, min_width=160,
                              elem_id="circuit-edges")
            button = gr.Button("Find the circuit", variant="primary", elem_id="circuit-btn")
        with gr.Row(elem_id="circuit-main"):
            with gr.Column(scale=3):
                figure = gr.Plot(label="Circuit", elem_id="circuit-fig")
            with gr.Column(scale=2):
                summary = gr.Markdown(elem_id="circuit-summary")
                curve = gr.Plot(label="Recovered fraction against N", elem_id="circuit-curve")
        hint = gr.Markdown(ex.note and f"**What to look at:** {ex.note}", elem_classes="example-note",
                           elem_id="circuit-hint")
        with stage_more("More: examples, the check of each head, the edge table and downloads"):
            with gr.Row():
                example = gr.Dropdown(EXAMPLE_CHOICES, value=circuit_view.DEFAULT_EXAMPLE, label="Example",
                                      elem_id="circuit-example")
                check_heads = gr.Checkbox(label="Check each head by patching (slower)", value=False,
                                          elem_id="circuit-check-heads")
            heads_fig = gr.Plot(label="Attribution against patching, per head", elem_id="circuit-heads")
            table = gr.Dataframe(headers=EDGE_COLUMNS, interactive=False, max_height=360, elem_id="circuit-table")
            with gr.Row():
                json_btn = gr.DownloadButton("Download JSON", size="sm")
                csv_btn = gr.DownloadButton("Download CSV", size="sm")
        key = gr.State(None)
    return CircuitTab(tab, clean, corrupted, target, distractor, edges, button, example, check_heads, figure,
                      summary, hint, curve, heads_fig, table, json_btn, csv_btn, key)


def summary_line(c) -> str:
    rec = "undefined (the two prompts give the same metric)" if c.recovered is None else f"**{c.recovered:.0%}**"
    lines = [f"M = logit({c.target['token']!r}) − logit({c.distractor['token']!r}): clean **{c.m_clean:.2f}**, "
             f"corrupted **{c.m_corrupted:.2f}**, circuit **{c.m_circuit:.2f}**.",
             f"The circuit of {len(c.circuit_edges())} edges keeps {rec} of the difference, measured by patching "
             f"every other edge with its corrupted value ({c.seconds.get('total', 0.0):.2f} s)."]
    return "\n\n".join(lines + ([c.note] if c.note else []))


def compute(t: CircuitTab, ctx: AppContext):
    """The view's handler (also run by deep links and presentation mode): ``fn(*inputs, key) -> dict``."""

    @guarded
    def ui_circuit(clean, corrupted, target, distractor, n_edges, check_heads, present_on, key=None):
        snap = ctx.need_model()
        new_key = (snap.uid, clean, corrupted, target, distractor, n_edges, bool(check_heads), bool(present_on))
        if key == new_key:
            return {t.key: gr.skip()}
        c = circuit_view.circuit_view(snap, clean, corrupted, target, distractor, n_edges, check_heads)
        rows = [[e["rank"], e["edge"], round(e["score"], 4), "✓" if e["in_circuit"] else ""] for e in c.edges[:200]]
        return {t.figure: style_figure(figs.circuit_graph_figure(c), present_on),
                t.summary: summary_line(c),
                t.curve: style_figure(figs.recovered_curve_figure(c), present_on),
                t.heads_fig: style_figure(figs.head_check_figure(c), present_on) if c.heads else None,
                t.table: rows, t.json: export_file("circuit", "json", c.to_json()),
                t.csv: export_file("circuit", "csv", c.to_csv()), t.key: new_key}
    return ui_circuit


def wire(t: CircuitTab, ctx: AppContext) -> None:
    ui_circuit = compute(t, ctx)
    wire_view(t, ctx, ui_circuit, [t.button.click, t.edges.release, t.check_heads.input, t.target.submit,
                                   t.distractor.submit])

    @guarded
    def ui_example(name):
        ex = circuit_view.EXAMPLES.get(name) or circuit_view.EXAMPLES[circuit_view.DEFAULT_EXAMPLE]
        snap = ctx.holder.current()
        warn = circuit_view.size_note(snap, ex.name) if snap else ""
        return {t.clean: ex.clean, t.corrupted: ex.corrupted, t.target: ex.target, t.distractor: ex.distractor,
                t.hint: f"**What to look at:** {ex.note}" + (f"\n\n⚠️ {warn}" if warn else "")}
    t.example.input(ui_example, [t.example], [t.clean, t.corrupted, t.target, t.distractor, t.hint],
                    **LIGHT, **PRIVATE).then(ui_circuit, t.inputs(ctx), t.outputs(), **MODEL_QUEUE, **PRIVATE)
