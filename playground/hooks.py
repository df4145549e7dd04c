"""Hook points: identity modules that intermediate tensors pass through.

TransformerLens's idea in a few lines. The model calls ``self.hook_x(tensor)``
at each interesting place; normally that is a no-op. A caller that wants the
tensor registers a forward hook for the duration of one ``with`` block, and the
hook is always removed afterwards, even if the forward pass raises.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Mapping

import torch
from torch import nn

HookFn = Callable[[torch.Tensor, str], "torch.Tensor | None"]


class HookPoint(nn.Identity):
    """Identity module; its ``name`` is its dotted path in the model."""

    def __init__(self) -> None:
        super().__init__()
        self.name = ""

    def has_hooks(self) -> bool:
        """Any forward hook or forward pre-hook (either needs the explicit attention path)."""
        return bool(self._forward_hooks or self._forward_pre_hooks)


def name_hook_points(model: nn.Module) -> None:
    """Give every HookPoint its dotted module path (called once by the model)."""
    for name, module in model.named_modules():
        if isinstance(module, HookPoint):
            module.name = name


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    return {name: m for name, m in model.named_modules() if isinstance(m, HookPoint)}


@contextmanager
def hooks(model: nn.Module, fns: Mapping[str, HookFn]) -> Iterator[None]:
    """Attach ``fn(tensor, name)`` to the named hook points for one block.

    A hook may return a tensor to replace the value (for interventions) or None.
    """
    points = hook_points(model)
    missing = sorted(set(fns) - set(points))
    if missing:
        raise KeyError(f"no hook point named {missing[0]!r}")
    handles = []
    try:
        for name, fn in fns.items():
            def _hook(module: nn.Module, args: tuple, output: torch.Tensor, _fn=fn, _name=name):
                return _fn(output, _name)
            handles.append(points[name].register_forward_hook(_hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture(model: nn.Module, names: "list[str] | Callable[[str], bool]") -> Iterator[dict[str, torch.Tensor]]:
    """Record the (detached) tensors passing through the chosen hook points.

    ``names`` is a list of hook-point names or a predicate on names. The dict
    yielded fills in during the forward pass run inside the block.
    """
    points = hook_points(model)
    chosen = [n for n in points if names(n)] if callable(names) else list(names)
    store: dict[str, torch.Tensor] = {}

    def _record(t: torch.Tensor, name: str) -> None:
        store[name] = t.detach()

    with hooks(model, {n: _record for n in chosen}):
        yield store
