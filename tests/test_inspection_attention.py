"""Attention capture and head scores on tiny seeded models."""
from __future__ import annotations

import json
import math

import pytest
import torch

from playground.config import GPTConfig
from playground.hooks import capture
from playground.inspection.attention import capture_attention
from playground.inspection.head_scores import (
    current_token_score, entropy_score, first_token_score, head_scores,
    induction_score, previous_token_score, prompt_induction_score, repeat_targets,
)
from playground.inspection.random_tokens import repeated_random_tokens
from playground.model import GPTModel


def tiny_model(seed: int = 0, **overrides) -> GPTModel:
    cfg = dict(vocab_size=100, context_length=32, emb_dim=16, n_heads=2, n_layers=3, drop_rate=0.1)
    cfg.update(overrides)
    torch.manual_seed(seed)
    return GPTModel(GPTConfig(**cfg)).eval()


def no_hooks_left(model: GPTModel) -> bool:
    return all(not m._forward_hooks for m in model.modules()) and \
        not any(b.att.wants_weights() for b in model.trf_blocks)


@pytest.fixture(scope="module")
def model() -> GPTModel:
    return tiny_model()


IDS = [5, 17, 3, 99, 42, 5, 17, 8, 0, 61, 23]


def test_rows_sum_to_one_and_future_is_zero(model):
    cap = capture_attention(model, IDS)
    assert cap.weights.shape == (3, 2, len(IDS), len(IDS))
    torch.testing.assert_close(cap.weights.sum(-1), torch.ones(3, 2, len(IDS)))
    assert cap.weights.triu(1).abs().max() == 0
    assert cap.layers == (0, 1, 2) and cap.labels[0] == "5" and not cap.cropped


def test_captured_weights_equal_manual_recomputation(model):
    cap = capture_attention(model, IDS)
    ids = torch.tensor([IDS])
    with torch.no_grad(), capture(model, lambda n: n.endswith("hook_norm1")) as store:
        model(ids)
    t, h, d = len(IDS), model.cfg.n_heads, model.cfg.head_dim
    for layer, block in enumerate(model.trf_blocks):
        x = store[f"trf_blocks.{layer}.hook_norm1"]                           # (1, T, E)
        q = block.att.W_query(x).view(1, t, h, d).transpose(1, 2)            # (1, H, T, D)
        k = block.att.W_key(x).view(1, t, h, d).transpose(1, 2)
        scores = (q @ k.transpose(2, 3)) / math.sqrt(d)                      # (1, H, T, T)
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), -torch.inf)
        torch.testing.assert_close(cap.layer(layer), torch.softmax(scores, -1)[0])


def test_one_layer_capture_keeps_one_layer_and_skips_the_rest(model):
    seen = []
    handle = model.trf_blocks[2].register_forward_hook(lambda *a: seen.append(2))
    try:
        cap = capture_attention(model, IDS, layers=[1])
    finally:
        handle.remove()
    assert cap.weights.shape == (1, 2, len(IDS), len(IDS)) and cap.layers == (1,)
    assert seen == []  # the pass stopped after layer 1
    torch.testing.assert_close(cap.layer(1), capture_attention(model, IDS).layer(1))
    with pytest.raises(KeyError):
        cap.layer(0)
    assert capture_attention(model, IDS, layers=-1).layers == (2,)
    with pytest.raises(ValueError):
        capture_attention(model, IDS, layers=[3])


def test_no_hook_remains_after_success_or_error(model, monkeypatch):
    capture_attention(model, IDS)
    head_scores(model, IDS, seq_len=5, batch=1)
    assert no_hooks_left(model)

    def boom(*args, **kwargs):
        raise RuntimeError("boom")
    monkeypatch.setattr(model.trf_blocks[1].ff, "forward", boom)
    with pytest.raises(RuntimeError, match="boom"):
        capture_attention(model, IDS)
    with pytest.raises(RuntimeError, match="boom"):
        head_scores(model, seq_len=5, batch=1)
    assert no_hooks_left(model)


def test_training_mode_is_restored_and_capture_is_deterministic():
    m = tiny_model(drop_rate=0.5).train()
    a = capture_attention(m, IDS).weights
    b = capture_attention(m, IDS).weights
    assert m.training
    torch.testing.assert_close(a, b)


def test_long_prompt_is_cropped_and_says_so(model):
    ids = list(range(40))
    cap = capture_attention(model, ids)
    assert cap.n_tokens == 32 and cap.cropped and cap.offset == 8 and "cropped" in cap.note
    assert cap.token_ids == tuple(range(8, 40))
    cap = capture_attention(model, ids, max_tokens=10)
    assert cap.n_tokens == 10 and "10" in cap.note
    # a memory cap: 3 layers x 2 heads x T x T x 4 bytes <= 3000 -> T = 11
    cap = capture_attention(model, ids, max_bytes=3000)
    assert cap.n_tokens == 11 and "MiB" in cap.note
    assert capture_attention(model, ids, layers=[0], max_bytes=3000).n_tokens == 19


def test_text_input_uses_the_tokenizer_labels_only_when_vocab_matches(model):
    class Tok:
        n_vocab = 100

        def encode(self, text):
            return [ord(c) - 32 for c in text]

        def token_text(self, i):
            return chr(i + 32)
    cap = capture_attention(model, "hi there", tokenizer=Tok())
    assert cap.labels[2] == "\u2423"  # the space, made visible
    cap = capture_attention(model, IDS, label_fn=lambda i: f"<{i}>")
    assert cap.labels[0] == "<5>"
    with pytest.raises(ValueError):
        capture_attention(model, "text without tokenizer")
    with pytest.raises(ValueError):
        capture_attention(model, [100])


def test_export(model):
    cap = capture_attention(model, IDS[:4], layers=[0])
    data = json.loads(cap.to_json(0, 1))
    assert len(data["weights"]) == 4 and data["labels"][0] == "5"
    lines = cap.to_csv(0, 1).strip().splitlines()
    assert lines[0].startswith("layer,head,query,key") and len(lines) == 1 + 10  # causal cells


# ----------------------------------------------------------------------------- scores


def hand_pattern(kind: str, t: int = 8) -> torch.Tensor:
    """(1, 1, T, T) attention of a pure head of the given kind."""
    a = torch.zeros(1, 1, t, t)
    for i in range(t):
        j = {"prev": max(i - 1, 0), "first": 0, "self": i}[kind]
        a[0, 0, i, j] = 1.0
    return a


def test_score_functions_on_hand_patterns():
    assert previous_token_score(hand_pattern("prev")).item() == 1.0
    assert previous_token_score(hand_pattern("self")).item() == 0.0
    assert first_token_score(hand_pattern("first")).item() == 1.0
    assert current_token_score(hand_pattern("self")).item() == 1.0
    assert entropy_score(hand_pattern("prev")).item() == 0.0
    uniform = torch.tril(torch.ones(5, 5))
    uniform = (uniform / uniform.sum(-1, keepdim=True))[None, None]
    expected = sum(math.log(i + 1) for i in range(1, 5)) / 4
    assert entropy_score(uniform).item() == pytest.approx(expected)


def test_induction_score_on_a_hand_pattern():
    n, p = 6, 1
    t = p + 2 * n
    a = torch.zeros(1, 1, t, t)
    a[0, 0, torch.arange(t), 0] = 1.0
    for i in range(p + n, t):
        a[0, 0, i] = 0
        a[0, 0, i, i - n + 1] = 1.0
    assert induction_score(a, n, p).item() == 1.0
    assert induction_score(hand_pattern("prev", t), n, p).item() == 0.0


def test_repeated_random_tokens_is_seeded_and_repeated():
    a = repeated_random_tokens(100, 7, batch=3, seed=1, prefix_id=99)
    assert a.shape == (3, 15) and (a[:, 0] == 99).all()
    assert torch.equal(a[:, 1:8], a[:, 8:])
    assert torch.equal(a, repeated_random_tokens(100, 7, batch=3, seed=1, prefix_id=99))
    assert not torch.equal(a, repeated_random_tokens(100, 7, batch=3, seed=2, prefix_id=99))
    g = torch.Generator().manual_seed(1)
    assert torch.equal(a[:, 1:], repeated_random_tokens(100, 7, batch=3, generator=g))
    b = repeated_random_tokens(100, 50, low=10, high=20)
    assert b.min() >= 10 and b.max() < 20
    c = repeated_random_tokens(100, 60, batch=2, seed=3, pool=[5, 17, 42])
    assert set(c.unique().tolist()) == {5, 17, 42} and torch.equal(c[:, :60], c[:, 60:])
    for bad in ([], [100], [-1]):
        with pytest.raises(ValueError, match="pool must hold token ids"):
            repeated_random_tokens(100, 5, pool=bad)


def previous_token_model() -> GPTModel:
    """Layer 0, head 0 attends to the previous token, set by hand.

    Position p embeds as ``10 * e_p`` (token embeddings are zero), so after
    LayerNorm ``x_p = a (e_p - 1/E)``. Keys read ``x[r]``, queries read
    ``3 x[r+1]`` in head 0's 16 dims, so ``q_i . k_j`` peaks at ``j = i - 1``.
    """
    m = tiny_model(context_length=16, emb_dim=32, n_heads=2, n_layers=2)
    att, d = m.trf_blocks[0].att, 16
    with torch.no_grad():
        m.tok_emb.weight.zero_()
        m.pos_emb.weight.copy_(10 * torch.eye(16, 32))
        m.trf_blocks[0].norm1.scale.fill_(1.0)
        m.trf_blocks[0].norm1.shift.zero_()
        att.W_query.weight[:d].zero_()
        att.W_key.weight[:d].zero_()
        for r in range(d):
            att.W_key.weight[r, r] = 1.0
            if r + 1 < 32:
                att.W_query.weight[r, r + 1] = 3.0
    return m


def test_constructed_previous_token_head_scores_one():
    m = previous_token_model()
    scores = head_scores(m, list(range(1, 15)))
    assert scores.previous_token[0, 0] > 0.99
    assert scores.previous_token[0, 1] < 0.9
    assert scores.top("previous_token", 1)[0][:2] == (0, 0)
    # on the random sequences too (positions, not tokens, drive this head)
    assert head_scores(m, seq_len=8, batch=2).previous_token[0, 0] > 0.99


def test_head_scores_shapes_seed_and_export(model):
    s = head_scores(model, seq_len=10, batch=2, seed=3)
    assert s.source == "random" and s.seq_len == 10 and s.seed == 3
    for name in ("previous_token", "first_token", "current_token", "entropy", "induction"):
        v = s.score(name)
        assert v.shape == (3, 2) and torch.isfinite(v).all()
    assert torch.equal(s.induction, head_scores(model, seq_len=10, batch=2, seed=3).induction)
    rows = s.rows()
    assert len(rows) == 6 and set(rows[0]) >= {"layer", "head", "induction"}
    assert json.loads(s.to_json())["scores"]["induction"][0][0] == pytest.approx(rows[0]["induction"])
    assert s.to_csv().splitlines()[0] == ("layer,head,previous_token,first_token,current_token,entropy,induction,"
                                          "prompt_induction")
    assert torch.isnan(s.prompt_induction).all() and s.repeats == 0       # no prompt: nothing to score
    assert json.loads(s.to_json())["scores"]["prompt_induction"][0][0] is None
    s = head_scores(model, seq_len=100)
    assert s.seq_len == 16 and "fit" in s.note
    with pytest.raises(ValueError):
        head_scores(model, [1])


def test_repeat_targets_point_after_the_latest_earlier_occurrence():
    #          0  1  2  3  4  5  6  7  8
    queries, keys = repeat_targets([5, 6, 7, 5, 6, 7, 7, 9, 5])
    # 3 (5 seen at 0) -> 1; 4 -> 2; 5 -> 3; 6 ("7 7": target is the query itself) left out; 8 (5 last at 3) -> 4
    assert (queries, keys) == ([3, 4, 5, 8], [1, 2, 3, 4])
    assert repeat_targets([1, 2, 3]) == ([], []) and repeat_targets([4, 4, 4]) == ([], [])


def test_prompt_induction_score_is_the_mean_weight_on_the_targets(model):
    ids = [11, 12, 13, 14, 11, 12, 13, 14, 40]
    s = head_scores(model, ids, seq_len=6, batch=1)
    queries, keys = repeat_targets(ids)
    cap = capture_attention(model, ids)
    by_hand = torch.stack([cap.layer(l)[:, queries, keys].mean(-1) for l in range(3)])       # (L, H)
    torch.testing.assert_close(s.prompt_induction, by_hand)
    assert s.repeats == 4 == len(queries)
    pattern = torch.softmax(torch.randn(2, 3, 9, 9), -1)                                      # (B, H, T, T)
    torch.testing.assert_close(prompt_induction_score(pattern, queries, keys),
                               pattern[:, :, queries, keys].mean(dim=(0, -1)))
    assert torch.isnan(head_scores(model, [1, 2, 3, 4], seq_len=6, batch=1).prompt_induction).all()


def test_another_threads_forward_is_neither_recorded_nor_stopped(model):
    import threading
    results, started = [], []

    def other_request() -> None:
        with torch.no_grad():
            results.append(model(torch.tensor([IDS[:4]])))   # a different prompt, mid-capture

    def once(module, args, output):
        if not started:
            started.append(True)
            t = threading.Thread(target=other_request)
            t.start()
            t.join()
    handle = model.trf_blocks[0].norm1.register_forward_hook(once)   # before the stop in att
    try:
        cap = capture_attention(model, IDS, layers=[0])
    finally:
        handle.remove()
    assert results and results[0].shape == (1, 4, 100)          # ran to the end: not stopped
    torch.testing.assert_close(cap.weights, capture_attention(model, IDS, layers=[0]).weights)


def test_scores_reuse_the_models_random_pass_unchanged(model):
    """``on_random``: the random-token pass kept per model gives the very scores of a fresh two-pass call."""
    ids = [5, 9, 12, 5, 9, 12, 7, 5, 9]
    fresh = head_scores(model, ids)
    reused = head_scores(model, ids, on_random=head_scores(model))
    for name in ("previous_token", "first_token", "current_token", "entropy", "induction"):
        assert torch.equal(fresh.score(name), reused.score(name)), name
    assert torch.equal(fresh.prompt_induction.nan_to_num(-1), reused.prompt_induction.nan_to_num(-1))
    assert (reused.seq_len, reused.batch, reused.seed, reused.source) == (fresh.seq_len, fresh.batch, fresh.seed, "prompt")


def test_patterns_from_the_fast_decoders_weights_equal_the_hooked_pass():
    """Once the fp32 fast weights are prepared, capture_attention reads the patterns from them: the same
    numbers as through the hook points, for every layer and for one; with a hook attached it takes the hooks."""
    from playground.fast_decode import fast_weights, ready_fast_weights
    from playground.inspection.fast_patterns import fast_patterns
    model = tiny_model()
    ids = list(range(5, 25))
    assert ready_fast_weights(model, "fp32") is None
    slow = capture_attention(model, ids, fast=False).weights
    fast_weights(model, "fp32")
    probe = torch.zeros_like(slow)
    assert fast_patterns(model, torch.tensor([ids]), list(range(model.cfg.n_layers)), probe)
    torch.testing.assert_close(probe, slow, atol=1e-5, rtol=0)
    torch.testing.assert_close(capture_attention(model, ids).weights, slow, atol=1e-5, rtol=0)
    torch.testing.assert_close(capture_attention(model, ids, layers=[1]).weights, slow[1:2], atol=1e-5, rtol=0)
    with torch.no_grad():
        model.trf_blocks[0].att.W_query.weight.mul_(1.5)              # edited: the prepared weights are stale
    assert ready_fast_weights(model, "fp32") is None
    assert not fast_patterns(model, torch.tensor([ids]), [0], probe[:1])


def test_head_scores_on_a_prompt_are_the_same_from_the_fast_weights():
    from playground.fast_decode import fast_weights
    from playground.inspection.head_scores import head_scores
    model = tiny_model(seed=2)
    ids = [3, 9, 4, 3, 9, 4, 7, 1, 3, 9, 4, 7] * 2
    before = head_scores(model, ids, seq_len=8)
    fast_weights(model, "fp32")
    after = head_scores(model, ids, seq_len=8)
    for name in ("previous_token", "first_token", "current_token", "entropy", "prompt_induction"):
        torch.testing.assert_close(after.score(name), before.score(name), atol=1e-5, rtol=0, equal_nan=True)
