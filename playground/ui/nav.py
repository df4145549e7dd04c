"""Where every view sits: the top bar holds a few groups, each group the tabs of its views.

With a dozen views and more, one tab per view no longer fits one row on a projector, and a newcomer reads
a long row slowly. The top bar holds the groups (Generate · Look inside · Experiments · Learned · Train ·
Model · Talk); a group of one view is that view's own tab. Deep links still name the view
(``?tab=attention``); the page opens its group around it (``app.PARENT_OF``, ``LinkApplier.path``).

Pure data, no Gradio: the page (``app.py``) builds the tabs from it, the deck editor and the tests read it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Group:
    id: str                      # the top-level tab's id (a view's own id for a group of one)
    label: str
    views: tuple[str, ...]       # the tab ids of its views, in order (a view module not loaded is left out)


GROUPS: tuple[Group, ...] = (
    Group("generate", "Generate", ("generate",)),
    Group("inside", "Look inside", ("attention", "walkthrough", "shapes", "logit-lens", "next-token", "parameters")),
    Group("experiments", "Experiments", ("experiments",)),   # a tab with tabs of its own (tabs/experiments.py)
    Group("learned", "Learned", ("neurons", "embeddings")),
    Group("train", "Train", ("train",)),                      # tabs/train.py, once it is there
    Group("model", "Model", ("model",)),
    Group("talk", "Talk", ("talk",)),                         # the deck: a talk as a list of views
)

# Every view's name on its tab (English; the page shows it in its language), for the deck editor's lists.
TAB_LABELS: dict[str, str] = {
    "generate": "Generate", "attention": "Attention", "walkthrough": "Step by step", "shapes": "Shapes",
    "logit-lens": "Logit lens", "next-token": "Next token", "parameters": "Parameters",
    "experiments": "Experiments", "surprisal": "Surprisal", "ablate": "Ablate", "attribute": "Attribute",
    "patch": "Patch", "compare": "Compare", "circuit": "Circuit", "saliency": "Saliency",
    "learned": "Learned", "neurons": "Neurons", "embeddings": "Embeddings", "train": "Train", "model": "Model",
    "talk": "Talk",
}


def arrange(available: set[str] | frozenset[str]) -> list[Group]:
    """The groups of the top bar, each with only the views that are ``available``; an empty group is left
    out, and a view no group names gets a group of its own at the end (a new tab always shows)."""
    out = []
    placed: set[str] = set()
    for g in GROUPS:
        views = tuple(v for v in g.views if v in available)
        placed.update(views)
        if views:
            out.append(Group(views[0] if len(views) == 1 else g.id, g.label, views))
    out += [Group(v, TAB_LABELS.get(v, v), (v,)) for v in sorted(available - placed)]
    return out


def label(tab: str) -> str:
    return TAB_LABELS.get(tab, tab)
