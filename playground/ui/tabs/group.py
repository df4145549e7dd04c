"""A group of views (``nav.GROUPS``): one top-level tab holding the tabs of its view modules."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..common import AppContext


@dataclass
class GroupTab:
    tab: gr.Tab
    inner: gr.Tabs
    children: dict[str, Any]           # what each view module's build returned, by tab id

    def link_controls(self) -> dict[str, Any]:
        return {}


class GroupModule:
    """A tab module (``TAB_ID``, ``CHILDREN``, ``build``, ``wire``) whose tab holds its children's tabs."""

    def __init__(self, tab_id: str, label: str, children: tuple) -> None:
        self.TAB_ID, self.label, self.CHILDREN = tab_id, label, children

    def build(self, ctx: AppContext) -> GroupTab:
        with gr.Tab(self.label, id=self.TAB_ID, elem_id=f"tab-{self.TAB_ID}") as tab:
            with gr.Tabs(elem_id=f"{self.TAB_ID}-tabs") as inner:
                children = {c.TAB_ID: c.build(ctx) for c in self.CHILDREN}
        return GroupTab(tab, inner, children)

    def wire(self, t: GroupTab, ctx: AppContext) -> None:
        """Each child wires itself (the app wires every child module)."""

    def __repr__(self) -> str:
        return f"GroupModule({self.TAB_ID!r})"
