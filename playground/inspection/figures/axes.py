"""Token axes that stay readable for long prompts.

Positions are numeric axis values with token labels as tick text: a
categorical axis would merge repeated tokens (two "the"s become one row).
Past ``EVERY_LABEL_UP_TO`` tokens only every n-th one is labelled, prefixed with its
position so the reader keeps their bearings.
"""
from __future__ import annotations

import math
from typing import Sequence

EVERY_LABEL_UP_TO = 64    # every token labelled up to this many
MAX_LABELS = 32           # past it, about this many labels
MAX_LABEL_CHARS = 14


def label_step(n: int, max_labels: int = MAX_LABELS) -> int:
    """1 up to ``EVERY_LABEL_UP_TO`` tokens, then a step that keeps about ``max_labels`` labels."""
    return 1 if n <= EVERY_LABEL_UP_TO else math.ceil(n / max_labels)


def fit_step(n: int, px: float, label_px: float = 22) -> int:
    """The smallest label step that gives each labelled row at least ``label_px`` of ``px`` pixels, so
    labels at presentation size (18 px) never overlap."""
    return max(1, math.ceil(n * label_px / max(px, 1.0)))


def short(label: str, limit: int = MAX_LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def token_ticks(positions: Sequence[int], labels: Sequence[str], every: int | None = None) -> dict:
    """Plotly axis settings labelling ``positions`` (indices into ``labels``), every n-th if many."""
    positions = list(positions)
    step = every or label_step(len(positions))
    picked = positions[::step]
    text = [short(labels[p]) if step == 1 else f"{p} {short(labels[p])}" for p in picked]
    return dict(tickmode="array", tickvals=picked, ticktext=text)


def window(n: int, win: "tuple[int, int] | None", limit: int | None) -> tuple[int, int]:
    """Resolve a ``(start, stop)`` window (python slice rules, negatives allowed) on ``n`` positions.

    Without one, the last ``limit`` positions (all if ``limit`` is None).
    """
    if win is None:
        return (max(0, n - limit) if limit else 0), n
    start, stop, _ = slice(*win).indices(n)
    if stop <= start:
        raise ValueError(f"empty window {win} on {n} positions")
    if limit and stop - start > limit:
        start = stop - limit
    return start, stop
