"""Learned: what the model has learned across text — its MLP neurons and its embedding spaces, each a tab
of its own module (tabs/neurons.py, tabs/embeddings.py) inside this one."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..common import AppContext
from . import embeddings, neurons

TAB_ID = "learned"
CHILDREN = (neurons, embeddings)


@dataclass
class LearnedTab:
    tab: gr.Tab
    inner: gr.Tabs
    children: dict[str, Any]

    def link_controls(self) -> dict[str, Any]:
        return {}


def build(ctx: AppContext) -> LearnedTab:
    with gr.Tab("Learned", id=TAB_ID, elem_id="tab-learned") as tab:
        with gr.Tabs(elem_id="learned-tabs") as inner:
            children = {c.TAB_ID: c.build(ctx) for c in CHILDREN}
    return LearnedTab(tab, inner, children)


def wire(t: LearnedTab, ctx: AppContext) -> None:
    """Each child wires itself (the app wires every child module)."""
