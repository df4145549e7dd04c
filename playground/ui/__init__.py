"""The Gradio app: a thin layer over the engine and ``playground.inspection``.

- ``app``: ``build_demo`` — the header, one tab per module, deep links, cross-tab wiring;
- ``tabs/``: one module per tab, each with its layout (``build``), events (``wire``) and link controls;
- ``views/``: what each tab and API endpoint computes, without any Gradio component;
- ``api``: the named HTTP endpoints; ``validate``: every incoming value checked;
- ``common``: the context, queues, error policy, caches and exports the tabs share;
- ``state``: the one shared model; ``deeplink``: view URLs; ``theme``: fonts, CSS, JS.
"""
from ..devices import pick_device
from .app import build_demo
from .state import ModelHolder
from .theme import launch_kwargs

__all__ = ["build_demo", "ModelHolder", "pick_device", "launch_kwargs"]
