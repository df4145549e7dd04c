"""Next token tab: the most likely next tokens before and after temperature, top-k and top-p."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from .. import validate as v
from ...inspection.figures.walkthrough import sampling_tree_figure
from ..common import (DEFAULT_PROMPT, MODEL_QUEUE, PRIVATE, AppContext, example_hint, example_prompts,
                      export_file, guarded, stage_bar, stage_more, wire_view)
from ..validate import InputError
from ..views import walkthrough as walk_view
from ..theme import style_figure
from ..views import next_token as next_view

TAB_ID = "next-token"
# Top-p below 1 by default, so the two bars of each candidate differ from the start (the tab's hint names 0.9).
DEFAULT_TOP_P = 0.9


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
    tree_depth: gr.Slider
    tree_branch: gr.Slider
    tree_button: gr.Button
    tree_fig: gr.Plot
    tree_leaf: gr.Radio
    tree_continue: gr.Button
    tree_text: gr.Textbox
    tree_state: gr.State

    def inputs(self, ctx: AppContext) -> list:
        return [self.prompt, self.temperature, self.top_k, self.top_p, self.show, self.stages, ctx.present]

    def outputs(self) -> list:
        return [self.figure, self.summary, self.table, self.json, self.csv, self.key]

    def link_controls(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                "show": self.show, "stages": self.stages}


def build(ctx: AppContext) -> NextTokenTab:
    with gr.Tab("Next token", id=TAB_ID, elem_id="tab-next") as tab:
        with stage_bar():
            prompt = gr.Textbox(value=DEFAULT_PROMPT, label="Prompt", lines=1, max_lines=3, scale=5,
                                max_length=v.MAX_PROMPT_CHARS, elem_id="next-prompt")
            temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature", scale=2, min_width=150,
                                    elem_id="next-temperature")
            top_p = gr.Slider(0.05, 1, value=DEFAULT_TOP_P, step=0.05, label="Top-p (1 = off)", scale=2,
                              min_width=150, elem_id="next-top-p")
            button = gr.Button("Show next-token distribution", variant="primary", elem_id="next-btn")
        example_hint(TAB_ID, prompt)
        figure = gr.Plot(label="Next-token distribution", elem_id="next-fig")
        summary = gr.Markdown()
        with stage_more("More: top-k, candidates, every stage, examples, the table and downloads"):
            with gr.Row():
                top_k = gr.Slider(0, 200, value=0, step=1, label="Top-k (0 = off)", elem_id="next-top-k")
                show = gr.Slider(1, 50, value=10, step=1, label="Candidates shown", elem_id="next-show")
                stages = gr.Checkbox(label="Show every stage", value=False, elem_id="next-stages")
            example_prompts(TAB_ID, prompt)
            table = gr.Dataframe(headers=next_view.NEXT_HEADERS, interactive=False)
            with gr.Row():
                json_btn = gr.DownloadButton("Download JSON", size="sm")
                csv_btn = gr.DownloadButton("Download CSV", size="sm")
        key = gr.State(None)
        with gr.Accordion("Sampling tree: the likely continuations two or three tokens deep", open=False,
                          elem_id="tree-accordion"):
            gr.Markdown("Each branch is a token the sampler could draw, with its probability under the "
                        "temperature, top-k and top-p above; the greedy path is marked. Pick a leaf to continue "
                        "generating from it.")
            with gr.Row():
                tree_depth = gr.Slider(1, 3, value=2, step=1, label="Depth", elem_id="tree-depth")
                tree_branch = gr.Slider(1, 5, value=3, step=1, label="Branches per node", elem_id="tree-branch")
                tree_button = gr.Button("Draw the tree", variant="primary", elem_id="tree-btn")
            tree_fig = gr.Plot(label="Sampling tree", elem_id="tree-fig")
            with gr.Row():
                tree_leaf = gr.Radio([], label="Leaves (path probability)", elem_id="tree-leaf", scale=3)
                tree_continue = gr.Button("Continue from this leaf (greedy)", elem_id="tree-continue", scale=1)
            tree_text = gr.Textbox(label="Prompt + leaf + 30 greedy tokens", lines=3, interactive=False,
                                   elem_id="tree-text")
            tree_state = gr.State(None)
    return NextTokenTab(tab, prompt, button, temperature, top_k, top_p, show, stages, summary, figure, table,
                        json_btn, csv_btn, key, tree_depth, tree_branch, tree_button, tree_fig, tree_leaf,
                        tree_continue, tree_text, tree_state)


def compute(t: NextTokenTab, ctx: AppContext):
    @guarded
    def ui_next(prompt, temp, k, p, show, stages, present_on, key=None):
        snap = ctx.need_model()
        new_key = (snap.uid, prompt, temp, k, p, show, stages, bool(present_on))
        if key == new_key:
            return {t.key: gr.skip()}
        nv = next_view.next_view(snap, prompt, temp, k, p, show, stages)
        return {t.figure: style_figure(nv.figure, present_on), t.summary: nv.summary(), t.table: nv.rows(),
                t.json: export_file("next-token", "json", nv.dist.to_json()),
                t.csv: export_file("next-token", "csv", nv.dist.to_csv()), t.key: new_key}
    return ui_next


def wire_tree(t: NextTokenTab, ctx: AppContext) -> None:
    @guarded
    def ui_tree(prompt, temp, k, p, depth, branch, present_on):
        tree = walk_view.tree_view(ctx.need_model(), prompt, temp, k, p, depth, branch)
        choices = walk_view.leaf_choices(tree)
        return {t.tree_fig: style_figure(sampling_tree_figure(tree), present_on), t.tree_state: tree,
                t.tree_leaf: gr.update(choices=choices, value=choices[0][1] if choices else None)}

    @guarded
    def ui_continue(tree, leaf):
        if tree is None:
            raise InputError("Draw the tree first.")
        return walk_view.continue_leaf(ctx.need_model(), tree, leaf)

    t.tree_button.click(ui_tree, [t.prompt, t.temperature, t.top_k, t.top_p, t.tree_depth, t.tree_branch,
                                  ctx.present], [t.tree_fig, t.tree_state, t.tree_leaf], **MODEL_QUEUE, **PRIVATE)
    t.tree_continue.click(ui_continue, [t.tree_state, t.tree_leaf], [t.tree_text], **MODEL_QUEUE, **PRIVATE)


def wire(t: NextTokenTab, ctx: AppContext) -> None:
    wire_tree(t, ctx)
    wire_view(t, ctx, compute(t, ctx), [t.button.click, t.prompt.submit, t.temperature.release, t.top_k.release,
                                        t.top_p.release, t.show.release, t.stages.input])
