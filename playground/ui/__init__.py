"""The Gradio app: a thin layer over the engine and ``playground.inspection``.

``validate`` checks every incoming value; ``handlers`` computes each view
without Gradio components; ``layout`` builds the page and wires events;
``api`` adds the named endpoints; ``state`` holds the shared model;
``deeplink`` reads and writes view URLs; ``theme`` has fonts, CSS, JS.
"""
from .layout import build_demo
from .state import ModelHolder, pick_device
from .theme import launch_kwargs

__all__ = ["build_demo", "ModelHolder", "pick_device", "launch_kwargs"]
