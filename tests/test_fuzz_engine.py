"""Property-based tests: engine functions that take user input never fail unexpectedly.

Each ends in a result or a ValueError/WeightsError with a message; nothing else.
"""
from __future__ import annotations

import math
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playground.config import GPTConfig
from playground.generation import generate
from playground.sampling import SamplingParams, pick_next
from playground.tokenizer import get_tokenizer
from playground.checkpoints import WeightsError, load_model
from tests.factories import make_model

TOK = get_tokenizer()
MODEL = make_model()
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

any_text = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=200)
hostile_text = st.one_of(
    any_text,
    st.sampled_from(["", " ", "\n\t ", "\x00", "<|endoftext|>", "a<|endoftext|><|endoftext|>b",
                     "\u202eRTL\u202c", "🙂" * 20, "\ud800", "x\udfffy"]),
)
any_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12),
    st.none(), st.booleans(), st.text(max_size=5),
)


@FAST
@given(hostile_text)
def test_tokenizer_never_raises_and_round_trips(text):
    ids = TOK.encode(text)
    assert all(0 <= i < 50257 for i in ids)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates are replaced, so no exact round trip
    assert TOK.decode(ids) == text


def test_tokenizer_long_prompt():
    text = "word " * 20_000  # 100,000 characters
    assert len(TOK.encode(text)) == 20_001  # "word", 19,999 x " word", then " "


@FAST
@given(temperature=any_number, top_k=any_number, top_p=any_number)
def test_sampling_params_validate(temperature, top_k, top_p):
    try:
        params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
    except ValueError as e:
        assert str(e)
        return
    assert math.isfinite(params.temperature) and params.temperature >= 0
    ids, probs = pick_next(torch.randn(2, 50), params, torch.Generator().manual_seed(0))
    assert ids.shape == (2,) and torch.isfinite(probs).all()


@FAST
@given(st.dictionaries(st.sampled_from(["vocab_size", "context_length", "emb_dim", "n_heads",
                                        "n_layers", "drop_rate", "qkv_bias", "tie_embeddings", "bogus"]),
                       any_number, max_size=4))
def test_config_validates(changes):
    base = dict(vocab_size=10, context_length=4, emb_dim=4, n_heads=2, n_layers=1)
    try:
        GPTConfig.from_dict({**base, **changes})
    except ValueError as e:
        assert "GPTConfig" in str(e) or "field" in str(e)


@settings(max_examples=60, deadline=None)
@given(prompt=hostile_text, n=st.integers(-3, 40), temperature=any_number, seed=st.integers(0, 2**63 - 1))
def test_generate_ends_in_result_or_clear_error(prompt, n, temperature, seed):
    try:
        result = generate(MODEL, prompt, n, temperature=temperature, seed=seed)
    except ValueError as e:
        assert str(e)
        return
    assert len(result.ids) <= n and all(0 <= i < 50257 for i in result.ids)


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 2**64 - 1))
def test_random_bytes_are_refused_clearly(tmp_path_factory, data, n):
    path = tmp_path_factory.mktemp("fuzz") / "x.safetensors"
    path.write_bytes(struct.pack("<Q", n)[: len(data) % 9] + data)
    with pytest.raises(WeightsError):
        load_model(path)
