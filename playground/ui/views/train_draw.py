"""Drawing a live run for the Train tab: the status line, the loss curves, the heads' scores over the steps,
the chosen head's pattern on the probe and the sample generations. Reads the run; never touches its model."""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from ...inspection.attention import AttentionCapture
from ...inspection.figures.attention import head_figure
from ...inspection.figures.training import head_score_figure, loss_figure
from ...training.live import LiveRun
from ...training.live_spec import RunSpec
from ...training.registry import TrainingLine
from ..deeplink import head_name as clean_head
from ..i18n import current_lang, tr

AUTO = {"best-induction": "induction", "best-previous": "previous_token"}
HEAD_CHOICE_LABELS = [("the best induction head", "best-induction"), ("the best previous-token head", "best-previous")]


def head_choices(n_layers: int, n_heads: int) -> list[tuple[str, str]]:
    """The head selector's choices: the two best heads (followed as they change), then every head (labels in
    the page's language: a choice sent after the page was built is not translated on the way)."""
    lang = current_lang()
    return ([(tr(label, lang), value) for label, value in HEAD_CHOICE_LABELS]
            + [(f"L{l}H{h}", f"L{l}H{h}") for l in range(n_layers) for h in range(n_heads)])


def chosen_head(run: LiveRun, choice: Any) -> tuple[int, int]:
    """The head to show: a named one (clamped to the model), or the best by a score at the last probe."""
    cfg = run.spec.config
    choice = clean_head(choice) or "best-induction"
    if choice in AUTO:
        if not run.probes:
            return (min(1, cfg.n_layers - 1), 0)
        grid = getattr(run.probes[-1], AUTO[choice])
        layer, head = np.unravel_index(int(np.argmax(grid)), grid.shape)
        return int(layer), int(head)
    layer, head = (int(x) for x in re.findall(r"\d+", choice))
    return min(layer, cfg.n_layers - 1), min(head, cfg.n_heads - 1)


def status_markdown(run: LiveRun | None, line: TrainingLine) -> str:
    """One line: where the run is, or (without one) whether the server is busy."""
    if run is None:
        other = line.active()
        if other is not None:
            return (f"Another training is running on this server (step {other.step:,} of {other.spec.steps:,}); "
                    f"a run you start waits in line.")
        return "No training yet: choose a task and a preset, then press Start."
    c = run.curves
    seconds = c.seconds[-1] if c.seconds else 0.0
    where = f"step {run.step:,} of {run.spec.steps:,}, {seconds:.0f} s"
    if run.status == "waiting":
        other = line.active()
        ahead = f" (step {other.step:,} of {other.spec.steps:,})" if other is not None else ""
        return f"⏳ Waiting: number {line.position(run)} in line behind another training{ahead}."
    if run.status in ("running", "paused"):
        verb = "Training" if run.status == "running" else "Paused at"
        loss = c.repeats[-1] if c.repeats else (c.loss[-1] if c.loss else None)
        what = "loss on the copies" if c.repeats else "loss"
        tail = f", {what} {np.mean((c.repeats or c.loss)[-10:]):.2f}" if loss is not None else ""
        icon = "▶" if run.status == "running" else "⏸"
        return f"{icon} **{verb}** {where}{tail}."
    return f"**{run.message}**"


def empty_loss_plot(spec: RunSpec) -> go.Figure:
    """The loss axes before a run: chance marked, the steps to come on the axis."""
    fig = loss_figure([], [], spec.config.vocab_size if spec.task == "copy" else 50257, total_steps=spec.steps)
    fig.add_annotation(x=0.5, y=0.45, xref="paper", yref="paper", showarrow=False,
                       text="press Start: the curves appear here as it trains")
    return fig


def loss_plot(run: LiveRun) -> go.Figure:
    c = run.curves
    phase = run.phase
    return loss_figure(c.steps, c.loss, run.spec.config.vocab_size if run.spec.task == "copy" else 50257,
                       first=c.first, repeats=c.repeats, phase_step=phase.step if phase else None,
                       phase_seconds=phase.seconds if phase else None, total_steps=run.spec.steps)


def heads_plot(run: LiveRun, chosen: tuple[int, int] | None = None) -> go.Figure:
    probes = list(run.probes)
    steps = [p.step for p in probes]
    prev = np.stack([p.previous_token for p in probes]) if probes else np.zeros((0, 0, 0))
    ind = np.stack([p.induction for p in probes]) if probes else np.zeros((0, 0, 0))
    return head_score_figure(steps, prev, ind, phase_step=run.phase.step if run.phase else None,
                             total_steps=run.spec.steps, chosen=chosen)


def pattern_plot(run: LiveRun, layer: int, head: int) -> go.Figure | None:
    """The head's weights on the probe's first sequence at the last probe (the Attention tab's figure)."""
    if not run.probes or run.probe is None or run.probes[-1].pattern.size == 0:
        return None
    last = run.probes[-1]
    ids = tuple(int(i) for i in run.probe.ids[0].tolist())
    cap = AttentionCapture(weights=torch.from_numpy(np.ascontiguousarray(last.pattern[layer:layer + 1])), layers=(layer,), token_ids=ids,
                           labels=tuple(str(i) for i in ids))
    fig = head_figure(cap, layer, head, label_every=max(1, len(ids) // 16))
    fig.update_layout(title=dict(text=f"Layer {layer}, head {head} on the probe<br><sup>step {last.step:,}: induction "
                                      f"{last.induction[layer, head]:.2f}, previous-token "
                                      f"{last.previous_token[layer, head]:.2f}</sup>"), height=500,
                      margin=dict(t=90))
    return fig


def samples_markdown(run: LiveRun | None) -> str:
    """The text task's sample generations, the newest first (the same prompt and seed each time)."""
    if run is None or not run.samples:
        return ""
    lines = ["**What it writes now** (the same prompt and seed every time; newest first):"]
    for step, text in reversed(run.samples[-6:]):
        shown = text.replace("\n", " ").replace("`", "'")
        lines.append(f"- step {step:,}: `{shown}`")
    return "\n".join(lines)
