"""Every example prompt of the app works on the bundled model: no greedy loops, and the copying
examples are copied (what their "what to look at" notes promise)."""
from __future__ import annotations

import pytest
import torch

from playground.checkpoints import load_model
from playground.examples import EXAMPLES, REPEATED_AUSTEN, note_for, prompts
from playground.generation import generate
from playground.paths import DEFAULT_WEIGHTS
from playground.tokenizer import get_tokenizer
from playground.training.report import max_ngram_repeats

ALL_PROMPTS = sorted({e.prompt for examples in EXAMPLES.values() for e in examples})


@pytest.fixture(scope="module")
def model():
    return load_model(DEFAULT_WEIGHTS).model


def test_every_example_has_a_note():
    for tab, examples in EXAMPLES.items():
        assert examples, tab
        for e in examples:
            assert note_for(tab, e.prompt) == e.note and len(e.note) > 20
    assert prompts("generate")[0] == "Every effort moves you"          # the book's prompt stays first


@pytest.mark.parametrize("prompt", ALL_PROMPTS)
def test_no_example_loops_under_greedy(model, prompt):
    out = generate(model, prompt, 40, temperature=0.0, stop_at_eot=False)
    assert max_ngram_repeats(out.ids, 4) <= 2, f"{prompt!r} loops: {out.text!r}"


def test_the_repeated_passage_is_copied(model):
    """The copying examples' promise: in the second copy the model predicts the passage's next word."""
    tok = get_tokenizer()
    ids = torch.tensor([tok.encode(REPEATED_AUSTEN)])
    with torch.no_grad():
        probs = model(ids)[0, -1].softmax(-1)
    assert tok.decode([int(probs.argmax())]) == " in"          # "...that a single man| in possession"
