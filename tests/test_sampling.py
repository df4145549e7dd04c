import math

import pytest
import torch

from playground.sampling import SamplingParams, pick_next, sampling_distribution, top_k_filter, top_p_filter


def test_top_k_keeps_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    out = top_k_filter(logits, 2)
    assert torch.isinf(out).tolist() == [[True, False, True, False, True]]
    assert torch.equal(top_k_filter(logits, 0), logits)
    assert torch.equal(top_k_filter(logits, 99), logits)


def test_top_p_keeps_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    kept = ~torch.isinf(top_p_filter(logits, 0.75))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.75 <= 0.8
    kept = ~torch.isinf(top_p_filter(logits, 0.8))
    assert kept.tolist() == [[True, True, False, False]]
    kept = ~torch.isinf(top_p_filter(logits, 0.81))
    assert kept.tolist() == [[True, True, True, False]]
    kept = ~torch.isinf(top_p_filter(logits, 0.01))
    assert kept.tolist() == [[True, False, False, False]]  # the best token always stays
    # order in the vocabulary does not matter
    perm = torch.tensor([2, 0, 3, 1])
    kept = ~torch.isinf(top_p_filter(logits[:, perm], 0.75))
    assert kept.tolist() == [[False, True, False, True]]


def test_temperature_sharpens_and_greedy_is_argmax():
    logits = torch.tensor([[1.0, 2.0, 3.0]])
    hot = sampling_distribution(logits, SamplingParams(temperature=2.0))
    cold = sampling_distribution(logits, SamplingParams(temperature=0.5))
    assert cold[0, 2] > hot[0, 2]
    ids, probs = pick_next(logits, SamplingParams(temperature=0))
    assert ids.tolist() == [2] and math.isclose(float(probs.sum()), 1.0, rel_tol=1e-6)


def test_sampling_respects_filters_and_generator():
    logits = torch.tensor([[0.0, 0.1, 0.2, 5.0, 4.9]]).repeat(200, 1)
    params = SamplingParams(temperature=1.0, top_k=2)
    ids, _ = pick_next(logits, params, torch.Generator().manual_seed(0))
    assert set(ids.tolist()) <= {3, 4} and len(set(ids.tolist())) == 2
    again, _ = pick_next(logits, params, torch.Generator().manual_seed(0))
    assert torch.equal(ids, again)


@pytest.mark.parametrize("kwargs", [
    {"temperature": -1}, {"temperature": float("nan")}, {"temperature": float("inf")},
    {"top_k": -3}, {"top_k": 2.5}, {"top_p": 0.0}, {"top_p": 1.5}, {"top_p": float("nan")},
])
def test_bad_params_rejected(kwargs):
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)


def test_tiny_temperature_is_near_greedy_not_nan():
    logits = torch.tensor([[1.0, 3.0, 2.0], [1e4, -1e4, 0.0]])
    probs = sampling_distribution(logits, SamplingParams(temperature=1e-38))
    assert torch.equal(probs, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))


def test_draw_follows_the_probabilities_and_never_picks_a_zero():
    from playground.sampling import draw
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.3, 0.2, 0.0]])
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(6)
    n = 20000
    for _ in range(n // 100):
        ids = draw(probs.expand(100, 6), gen)
        counts += torch.bincount(ids, minlength=6)
    assert counts[[0, 2, 5]].sum() == 0
    freq = counts / n
    assert torch.allclose(freq, probs[0], atol=0.015), freq       # 3 standard deviations is about 0.01
    # Unnormalised rows, one certain outcome, a generator that repeats itself.
    assert draw(torch.tensor([[0.0, 0.0, 7.0]]), gen).tolist() == [2]
    p = torch.softmax(torch.randn(3, 50257), -1)
    assert torch.equal(draw(p, torch.Generator().manual_seed(9)), draw(p, torch.Generator().manual_seed(9)))


def test_draw_at_the_top_of_the_range_returns_a_possible_token(monkeypatch):
    from playground import sampling
    probs = torch.tensor([[0.25, 0.75, 0.0, 0.0]])
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.ones(1, 1))    # u * total == total
    assert sampling.draw(probs).tolist() == [1]


@pytest.mark.parametrize("vocab", [50257, 300])
@pytest.mark.parametrize("params", [SamplingParams(0.0), SamplingParams(1.0, 50, 1.0), SamplingParams(0.8, None, 0.9),
                                    SamplingParams(1.3, 200, 0.95), SamplingParams(1.0)])
def test_rows_drawn_together_get_what_each_gets_alone(vocab, params):
    """The continuous batcher draws the rows of different requests in one call, a generator each:
    every row's id and probabilities are bit for bit those it gets drawn by itself."""
    logits = torch.randn(9, vocab, generator=torch.Generator().manual_seed(vocab)) * 3
    ids, probs = pick_next(logits, params, [torch.Generator().manual_seed(i) for i in range(9)])
    for r in range(9):
        alone, alone_probs = pick_next(logits[r:r + 1], params, torch.Generator().manual_seed(r))
        assert int(alone) == int(ids[r])
        assert torch.equal(alone_probs[0], probs[r])
    with pytest.raises(ValueError, match="2 generators for 9 rows"):
        pick_next(logits, SamplingParams(1.0), [None, None])
