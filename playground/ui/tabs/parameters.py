"""Parameters tab: change any config value and the count, the book's formulas and the figures follow."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ...config import PRESETS, GPTConfig
from ...inspection.export import dumps
from .. import validate as v
from ..common import LIGHT, PRIVATE, AppContext, export_file, guarded, stage_bar, stage_more
from ..i18n import current_lang, tr
from ..theme import style_figure
from ..views import parameters as param_view

TAB_ID = "parameters"
FIELDS = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "qkv_bias", "tie_embeddings")


@dataclass
class ParametersTab:
    tab: gr.Tab
    presets: list[gr.Button]
    fields: dict[str, gr.components.Component]     # FIELDS -> slider / checkbox
    summary: gr.Markdown
    compare: gr.Markdown
    treemap: gr.Plot
    bar: gr.Plot
    table: gr.Dataframe
    derivation: gr.Textbox
    json: gr.DownloadButton
    csv: gr.DownloadButton

    def outputs(self) -> list:
        return [self.summary, self.compare, self.treemap, self.bar, self.table, self.derivation, self.json, self.csv]

    def link_controls(self) -> dict[str, Any]:
        return dict(self.fields)


def build(ctx: AppContext) -> ParametersTab:
    base = PRESETS["gpt2"]
    with gr.Tab("Parameters", id=TAB_ID, elem_id="tab-parameters") as tab:
        with gr.Row(elem_classes=["stage-bar"], elem_id="p-presets"):
            presets = [gr.Button(name, size="sm", elem_id=f"preset-{name}") for name in PRESETS]
        with stage_bar():
            vocab = gr.Slider(1, 200_000, value=base.vocab_size, step=1, label="Vocabulary size", elem_id="p-vocab")
            ctx_len = gr.Slider(1, 8192, value=base.context_length, step=1, label="Context length", elem_id="p-ctx")
            emb = gr.Slider(1, 4096, value=base.emb_dim, step=1, label="Embedding dim", elem_id="p-emb")
            heads = gr.Slider(1, 64, value=base.n_heads, step=1, label="Heads", elem_id="p-heads")
            layers = gr.Slider(1, 96, value=base.n_layers, step=1, label="Layers", elem_id="p-layers")
            with gr.Column(min_width=170, scale=0, elem_id="p-flags"):
                bias = gr.Checkbox(value=base.qkv_bias, label="QKV bias", elem_id="p-bias")
                tie = gr.Checkbox(value=base.tie_embeddings, label="Tied output head", elem_id="p-tie")
        initial = param_view.params_view(base, None)
        tree_fig, bar_fig = initial.figures()
        with gr.Row(elem_id="p-figs"):
            treemap = gr.Plot(tree_fig, label="Where the parameters are", elem_id="p-treemap")
            bar = gr.Plot(bar_fig, label="Per part", elem_id="p-bar")
        summary = gr.Markdown(initial.summary_markdown(), elem_id="p-summary")
        compare = gr.Markdown(elem_id="p-compare")
        gr.Markdown("Change any value: the count, the formulas and the figures follow at once.",
                    elem_classes="token-help")
        with stage_more("More: the count step by step, the book's derivation, downloads"):
            table = gr.Dataframe(initial.rows(), headers=param_view.PARAM_HEADERS, interactive=False, wrap=True,
                                 label="Step by step")
            derivation = gr.Textbox(initial.derivation(), label="The derivation, as in the book", lines=8,
                                    interactive=False, buttons=["copy"])
            with gr.Row():
                json_btn = gr.DownloadButton("Download JSON", size="sm")
                csv_btn = gr.DownloadButton("Download CSV", size="sm")
    fields = dict(zip(FIELDS, (vocab, ctx_len, emb, heads, layers, bias, tie)))
    return ParametersTab(tab, presets, fields, summary, compare, treemap, bar, table, derivation, json_btn, csv_btn)


def config_values(cfg: GPTConfig) -> list[Any]:
    return [getattr(cfg, f) for f in FIELDS]


def config_from_link(values: dict[str, Any]) -> GPTConfig | None:
    """The config a deep link asks for: its ``preset`` (else gpt2) with any fields it sets; None when it
    sets none, or the result is not a valid config."""
    fields = {k: values[k] for k in FIELDS if k in values}
    if not fields and not values.get("preset"):
        return None
    base = PRESETS.get(values.get("preset") or "gpt2", PRESETS["gpt2"])
    merged = {**dict(zip(FIELDS, config_values(base))), **fields}
    try:
        return param_view.check_params(*(merged[f] for f in FIELDS))
    except v.InputError:
        return None


def outputs_for(t: ParametersTab, ctx: AppContext, cfg: GPTConfig, present_on: bool) -> dict:
    """Every output of the tab for ``cfg`` (also used by deep links with ``preset=``)."""
    pv = param_view.params_view(cfg, ctx.holder.current())
    tree, bar = pv.figures()
    lang = current_lang()        # the part names and the derivation are interface text, not the user's
    rows = [[tr(row[0], lang), *row[1:]] for row in pv.rows()]
    derivation = "\n".join(tr(line, lang) for line in pv.derivation().split("\n"))
    return {t.summary: pv.summary_markdown(), t.compare: pv.comparison, t.treemap: style_figure(tree, present_on),
            t.bar: style_figure(bar, present_on), t.table: rows, t.derivation: derivation,
            t.json: export_file("parameters", "json", dumps(pv.data())),
            t.csv: export_file("parameters", "csv", pv.breakdown.to_csv())}


def wire(t: ParametersTab, ctx: AppContext) -> None:
    """Live, no button. Pure arithmetic: not in the model queue."""
    inputs = [t.fields[f] for f in FIELDS] + [ctx.present]
    outputs = t.outputs()

    @guarded
    def ui_params(vocab, ctx_len, emb, heads, layers, bias, tie, present_on):
        try:
            cfg = param_view.check_params(vocab, ctx_len, emb, heads, layers, bias, tie)
        except v.InputError as e:   # live updates: say it in place, no pop-up on every slider step
            # The figures, table and downloads were for the last valid config: cleared, not left stale.
            return {t.summary: f"## ⚠️ {e.message}\n\nThe figures and the table come back when the config is valid.",
                    t.compare: "", t.treemap: None, t.bar: None, t.table: [], t.derivation: "",
                    t.json: None, t.csv: None}
        return outputs_for(t, ctx, cfg, present_on)

    def preset(name: str):
        @guarded
        def ui_preset(present_on):
            cfg = PRESETS[name]
            return {**dict(zip((t.fields[f] for f in FIELDS), config_values(cfg))),
                    **outputs_for(t, ctx, cfg, present_on)}
        return ui_preset

    for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
        t.fields[name].input(ui_params, inputs, outputs, trigger_mode="always_last", show_progress="hidden",
                             **LIGHT, **PRIVATE)
    for name in ("qkv_bias", "tie_embeddings"):
        t.fields[name].input(ui_params, inputs, outputs, show_progress="hidden", **LIGHT, **PRIVATE)
    for name, btn in zip(PRESETS, t.presets):
        btn.click(preset(name), [ctx.present], [t.fields[f] for f in FIELDS] + outputs, **LIGHT, **PRIVATE)
    t.tab.select(ui_params, inputs, outputs, show_progress="hidden", **LIGHT, **PRIVATE)
