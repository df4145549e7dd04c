"""The first request after a model loads, as fast as the next: each kind of pass the views run is run once,
in the background, on a short text (torch's first call of an operator on a new model pays for allocations
and kernel setup that later calls do not)."""
from __future__ import annotations

from ..state import Snapshot
from . import learned as learned_view
from . import logit_lens as lens_view
from . import next_token as next_view
from . import walkthrough as walk_view

WARM_TEXT = "The first request after a load should be as fast as the next one, and"


def warm_up(snap: Snapshot) -> None:
    """One pass of each kind: the head on one position and on all, hooks with the explicit attention,
    the lens's products, a gradient. The results land in the views' caches only for this text."""
    next_view.next_view(snap, WARM_TEXT, 1.0, 0, 1.0, 10)
    lens_view.lens_view(snap, WARM_TEXT, 5)
    walk_view.walkthrough_view(snap, WARM_TEXT, 0, 0)
    learned_view.saliency(snap, WARM_TEXT, "", "gradient_x_input", 1)
