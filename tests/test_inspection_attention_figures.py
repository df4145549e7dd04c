"""Attention figures: axis labels, data sizes, long-prompt options."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from playground.config import GPTConfig
from playground.inspection.attention import capture_attention
from playground.inspection.head_scores import head_scores
from playground.inspection.figures.attention import (
    aggregate_figure, head_figure, head_scores_figure, layer_figure,
)
from playground.inspection.figures.axes import fit_step, label_step, token_ticks, window
from playground.model import GPTModel


@pytest.fixture(scope="module")
def model() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(GPTConfig(vocab_size=100, context_length=160, emb_dim=16, n_heads=4, n_layers=2)).eval()


LABELS = {i: f"w{i}" for i in range(100)}


def cap_of(model, t, **kw):
    return capture_attention(model, [i % 100 for i in range(t)], label_fn=lambda i: LABELS[i], **kw)


def test_head_heatmap_axes_hover_and_blank_future(model):
    cap = cap_of(model, 6)
    fig = head_figure(cap, 1, 2)
    hm = fig.data[0]
    assert np.asarray(hm.z).shape == (6, 6)
    assert list(fig.layout.xaxis.ticktext) == [f"w{i}" for i in range(6)] == list(fig.layout.yaxis.ticktext)
    assert fig.layout.xaxis.title.text.startswith("key") and fig.layout.yaxis.title.text.startswith("query")
    z = np.asarray(hm.z, dtype=float)
    assert np.isnan(z[0, 1]) and not np.isnan(z[1, 0])
    np.testing.assert_allclose(z[3, :4], cap.head(1, 2)[3, :4].numpy(), rtol=1e-6)
    assert tuple(hm.customdata[4][2][:2]) == ("w4", "w2")
    assert "query" in hm.hovertemplate and "weight" in hm.hovertemplate


def test_long_prompt_options(model):
    cap = cap_of(model, 150)
    fig = head_figure(cap, 0, 0, max_tokens=100)
    assert np.asarray(fig.data[0].z).shape == (100, 100) and "queries 50-149" in fig.layout.title.text
    assert label_step(150) == 5 and label_step(64) == 1
    assert len(fig.layout.xaxis.tickvals) <= 32 and fig.layout.xaxis.ticktext[0].startswith("50 ")
    fig = head_figure(cap, 0, 0, query_window=(100, 120), key_window=(0, 120), hide_first=True)
    assert np.asarray(fig.data[0].z).shape == (20, 119) and "first-token column hidden" in fig.layout.title.text
    assert fig.data[0].x[0] == 1
    fig = head_figure(cap, 0, 0, query_window=(0, 10), log_scale=True)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.nanmin(z) >= math.log10(1e-4) and np.nanmax(z) <= 0
    assert list(fig.data[0].colorbar.ticktext)[-1] == "1"
    assert head_figure(cap, 0, 0, label_every=10).layout.xaxis.tickvals[1] - \
        head_figure(cap, 0, 0, label_every=10).layout.xaxis.tickvals[0] == 10


def test_layer_grid_and_aggregates(model):
    cap = cap_of(model, 8)
    fig = layer_figure(cap, 1)
    assert len(fig.data) == 4 and all(np.asarray(t.z).shape == (8, 8) for t in fig.data)
    assert [a.text for a in fig.layout.annotations][:4] == [f"head {i}" for i in range(4)]
    agg = aggregate_figure(cap, 1)
    w = cap.layer(1)
    np.testing.assert_allclose(np.asarray(agg.data[0].z, dtype=float)[7], w.mean(0)[7].numpy(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(agg.data[1].z, dtype=float)[7], w.amax(0)[7].numpy(), rtol=1e-5)
    big = layer_figure(cap_of(model, 150), 0)
    assert np.asarray(big.data[0].z).shape == (96, 96)
    one = capture_attention(model, [1, 2, 3], layers=[1])
    with pytest.raises(KeyError):
        layer_figure(one, 0)


def test_head_scores_grid_is_clickable_data(model):
    s = head_scores(model, seq_len=10, batch=1)
    fig = head_scores_figure(s)
    assert len(fig.data) == 6 and [t.visible for t in fig.data] == [True] + [False] * 5
    hm = fig.data[0]
    assert np.asarray(hm.z).shape == (2, 4) and np.asarray(hm.customdata).shape == (2, 4, 2)
    assert list(hm.customdata[1][3]) == [1, 3]
    assert len(fig.layout.updatemenus[0].buttons) == 6
    one = head_scores_figure(s, "induction")
    assert len(one.data) == 1 and "induction" in one.layout.title.text
    blank = head_scores_figure(s, "prompt_induction")          # no prompt: says why the grid is empty
    assert "no token in it repeats" in blank.layout.title.text and set(blank.data[0].text.flatten()) == {""}
    rep = head_scores_figure(head_scores(model, [7, 8, 9, 7, 8, 9], seq_len=10, batch=1), "prompt_induction")
    assert "the 3 tokens of your prompt that occurred before" in rep.layout.title.text


def test_labels_never_closer_than_a_projector_font_allows(model):
    assert fit_step(10, 650) == 1 and fit_step(40, 650) == 2 and fit_step(300, 650) == 11
    cap = cap_of(model, 150)
    fig = head_figure(cap, 0, 0, query_window=(30, 70))                      # 40 queries on a 900 px figure
    rows_px = fig.layout.height - 250
    assert rows_px / len(fig.layout.yaxis.tickvals) >= 22
    agg = aggregate_figure(cap, 0, query_window=(30, 70))
    assert (agg.layout.height - 250) / len(agg.layout.yaxis.tickvals) >= 22


def test_axis_helpers():
    assert window(10, None, None) == (0, 10) and window(10, None, 4) == (6, 10)
    assert window(10, (-3, None), None) == (7, 10) and window(10, (0, 9), 4) == (5, 9)
    with pytest.raises(ValueError):
        window(10, (5, 5), None)
    ticks = token_ticks(list(range(3)), ["a", "b", "a"])
    assert ticks["tickvals"] == [0, 1, 2] and ticks["ticktext"] == ["a", "b", "a"]  # repeats stay apart
