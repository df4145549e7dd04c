"""One optimizer step, shared by the command-line trainer (:mod:`.loop`) and the app's live runs
(:mod:`.live`): set the learning rate, accumulate the gradients of a few micro-batches, clip, step."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from ..model import GPTModel
from .evaluate import batch_loss


class Diverged(RuntimeError):
    """The loss or the gradient norm was NaN or infinite: the step was not taken, the weights are those of
    the last good step."""

    def __init__(self, what: str, value: float) -> None:
        super().__init__(f"the {what} became {value} (not a finite number)")
        self.what, self.value = what, value


@dataclass
class StepResult:
    loss: float                                                   # mean training loss of the step
    token_losses: list[torch.Tensor] = field(default_factory=list)   # per micro-batch (B, T), if asked for
    extra: float = 0.0                                            # what ``extra`` returned
    grad_norm: float | None = None                                # before clipping, when clipped


def token_losses(model: GPTModel, x: torch.Tensor, y: torch.Tensor, amp: bool) -> torch.Tensor:
    """``(B, T)`` next-token cross-entropy of ``x`` -> ``y`` at every position (what the curves split)."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = model(x)                                                         # (B, T, V)
    return F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none").view(y.shape)


def apply_step(model: GPTModel, opt: torch.optim.Optimizer, lr: float,
               batches: Iterable[tuple[torch.Tensor, torch.Tensor]], n_batches: int, *,
               device: torch.device | str = "cpu", amp: bool = False, clip: float = 0.0,
               extra: Callable[[], float] | None = None, per_token: bool = False,
               check_finite: bool = False) -> StepResult:
    """One step over ``n_batches`` micro-batches ``(x, y)`` (drawn lazily, in order, from ``batches``).

    ``extra``: called after the micro-batches, before clipping; it may add gradients of its own (the
    unlikelihood term) and returns a number kept in the result. ``per_token``: also keep each
    micro-batch's ``(B, T)`` losses. ``check_finite``: raise :class:`Diverged` *before* the optimizer
    moves when the loss or the gradient norm is not finite, so the weights stay the last good ones.
    """
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    result = StepResult(loss=0.0)
    for _, (x, y) in zip(range(n_batches), batches):
        x, y = x.to(device), y.to(device)
        if per_token:
            losses = token_losses(model, x, y, amp)                                # (B, T)
            loss = losses.mean()
            result.token_losses.append(losses.detach())
        else:
            loss = batch_loss(model, x, y, amp)
        if check_finite and not math.isfinite(loss.item()):
            opt.zero_grad(set_to_none=True)
            raise Diverged("loss", loss.item())
        (loss / n_batches).backward()
        result.loss += loss.item() / n_batches
    if extra is not None:
        result.extra = extra()
    if clip > 0:
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
        result.grad_norm = norm
        if check_finite and not math.isfinite(norm):
            opt.zero_grad(set_to_none=True)
            raise Diverged("gradient norm", norm)
    opt.step()
    return result
