"""The Step by step / Next token views of ``playground.ui.views.walkthrough``: the sampling tree's
"continue from this leaf" on models whose window is smaller, equal or larger than the continuation."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from playground.generation import generate
from playground.tokenizer import get_tokenizer
from playground.ui.state import Snapshot
from playground.ui.views import walkthrough as walk_view
from tests.factories import TINY, make_model

PROMPT = ("The cat sat on the mat and looked at the dog. " * 4).strip()    # 48 tokens, the leaves 50


def snapshot(context_length: int) -> Snapshot:
    model = make_model(TINY.replace(context_length=context_length))
    return Snapshot(model, "tiny", Path("tiny.safetensors"), "openai", torch.float32, 0, "cpu", 1)


@pytest.mark.parametrize("context_length, kept_tokens", [(16, 16), (32, 32), (64, 34), (1024, 50)])
def test_continue_from_a_leaf_keeps_the_end_the_model_can_see(context_length, kept_tokens):
    """The leaf's own tokens end the text the continuation starts from, and the model sees as much
    of it as its window allows while leaving room for the 30 new tokens where the window is large
    enough (a 16-token window used to give an empty prompt and an error; 32 the last 2 tokens)."""
    snap = snapshot(context_length)
    tok = get_tokenizer()
    tree = walk_view.tree_view(snap, PROMPT, 1.0, 0, 1.0, 2, 2)
    for index, path in enumerate(tree.leaf_paths()):
        assert len(path) == 50
        text = walk_view.continue_leaf(snap, tree, index, n_new=30)
        kept = path[-kept_tokens:]
        greedy = generate(snap.model, kept, 30, temperature=0.0, stop_at_eot=False)
        assert text == tok.decode(kept) + greedy.text


def test_continue_from_a_leaf_of_a_short_prompt_in_a_small_window():
    """5 prompt tokens in a 16-token window: the whole path is the prompt (it used to be empty: an error)."""
    snap = snapshot(16)
    tree = walk_view.tree_view(snap, "The cat sat on the", 0.0, 0, 1.0, 1, 1)
    (path,) = tree.leaf_paths()
    greedy = generate(snap.model, path, 30, temperature=0.0, stop_at_eot=False)
    assert walk_view.continue_leaf(snap, tree, 0) == get_tokenizer().decode(path) + greedy.text
