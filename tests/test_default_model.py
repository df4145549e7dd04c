"""The bundled model: it loads through the public loader, matches its model card, and talks."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import torch

from playground.config import GPTConfig
from playground.generation import generate
from playground.training.report import max_ngram_repeats
from playground.checkpoints import load_model, read_header

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
WEIGHTS = WEIGHTS_DIR / "default.safetensors"
CARD = WEIGHTS_DIR / "README.md"
# The repetition check's prompts (the samples of the model card): no loops since stage 4h, but on
# "The meaning of life is" greedy text turns into Jargon-File headwords and junk tokens (fewer than 15 words).
PROMPTS = ["Hello, I am", "It is a truth universally acknowledged", "Once upon a time", "The President said",
           pytest.param("The meaning of life is", marks=pytest.mark.xfail(
               strict=True, reason="junk tokens instead of words: weights/README.md, Limitations"))]


TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
        "must be in want of a wife. However little known the feelings or views of such a man may be "
        "on his first entering a neighbourhood, this truth is so well fixed in the minds of the "
        "surrounding families, that he is considered as the rightful property of some one or other "
        "of their daughters.")


@pytest.fixture(scope="module")
def model():
    return load_model(WEIGHTS).model


def test_file_is_small_and_half_precision():
    assert WEIGHTS.stat().st_size <= 40 * 1024 * 1024
    _, entries = read_header(WEIGHTS)
    assert {dtype for dtype, _ in entries.values()} <= {"F16", "BF16"}
    assert "out_head.weight" not in entries  # tied head stored once


def test_loads_with_the_config_from_its_metadata(model):
    meta, _ = read_header(WEIGHTS)
    cfg = GPTConfig.from_json(meta["config"])
    assert model.cfg == cfg
    assert cfg.vocab_size == 50257 and cfg.context_length >= 256
    assert cfg.n_layers >= 4 and cfg.n_heads >= 4 and cfg.tie_embeddings
    assert model.dtype == torch.float32  # the loader upcasts
    assert model.out_head.weight is model.tok_emb.weight


def test_sha256_is_recorded_in_the_model_card():
    digest = hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    recorded = re.findall(r"sha256[^0-9a-f]*([0-9a-f]{64})", CARD.read_text())
    assert recorded, "the model card must state the sha256 of default.safetensors"
    assert digest in recorded


def test_card_states_the_parameter_count_and_config(model):
    card = CARD.read_text()
    assert f"{model.num_parameters():,}" in card
    assert f"| emb_dim | {model.cfg.emb_dim} |" in card and f"| n_layers | {model.cfg.n_layers} |" in card


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_continuation_does_not_loop(model, prompt):
    result = generate(model, prompt, 40, temperature=0.0, stop_at_eot=False)
    assert len(result.ids) == 40
    assert max_ngram_repeats(result.ids, 4) <= 2, result.text
    words = re.findall(r"[A-Za-z]+", result.text)
    assert len(words) >= 15 and len(set(words)) >= 10, result.text


def test_predicts_english_better_than_chance(model):
    """A sentence of plain English costs far fewer nats per token than the 10.8 of a uniform guess."""
    from playground.tokenizer import get_tokenizer

    ids = get_tokenizer().encode("It is a truth universally acknowledged, that a single man in "
                                 "possession of a good fortune, must be in want of a wife.")
    x = torch.tensor([ids])
    with torch.no_grad():
        logits = model(x[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits[0], x[0, 1:])
    assert float(loss) < 5.0


def test_has_a_previous_token_head_and_an_induction_head(model):
    from playground.inspection.head_scores import head_scores
    from playground.tokenizer import get_tokenizer

    scores = head_scores(model, get_tokenizer().encode(TEXT), seq_len=100, batch=8, seed=0)
    assert scores.previous_token.max() > 0.5, scores.previous_token
    assert scores.induction.max() > 0.5, scores.induction
