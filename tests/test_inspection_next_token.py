"""Next-token distribution before and after temperature / top-k / top-p."""
from __future__ import annotations

import json

import pytest
import torch

from playground.config import GPTConfig
from playground.inspection.next_token import next_token_distribution, stage_distributions
from playground.inspection.figures.next_token import next_token_figure
from playground.model import GPTModel
from playground.sampling import SamplingParams, sampling_distribution

IDS = [1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def model() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(GPTConfig(vocab_size=100, context_length=16, emb_dim=16, n_heads=2, n_layers=2)).eval()


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids]))[0, -1]


def test_final_stage_is_what_sampling_draws_from(model):
    params = SamplingParams(temperature=0.7, top_k=20, top_p=0.5)
    logits = logits_of(model, IDS)
    stages = stage_distributions(logits, params)
    torch.testing.assert_close(stages["top_p"], sampling_distribution(logits[None], params)[0])
    torch.testing.assert_close(stages["model"], torch.softmax(logits, -1))
    for p in stages.values():
        torch.testing.assert_close(p.sum(), torch.tensor(1.0))
    assert (stages["top_k"] > 0).sum() == 20


def test_rows_show_each_control(model):
    d = next_token_distribution(model, IDS, SamplingParams(temperature=1.0, top_k=3), show=5)
    assert len(d.rows()) == 5 and d.rows()[0]["rank"] == 1
    assert d.before == d.probs["model"] and list(d.before) == sorted(d.before, reverse=True)
    assert d.after[3] == 0.0 and d.after[4] == 0.0 and sum(d.after[:3]) == pytest.approx(1.0)
    assert d.n_kept == 3 and d.other["top_p"] == pytest.approx(0.0, abs=1e-6)
    assert sum(d.before) + d.other["model"] == pytest.approx(1.0)
    assert d.entropy["top_p"] < d.entropy["model"]
    hot = next_token_distribution(model, IDS, SamplingParams(temperature=0.1), show=5)
    cold = next_token_distribution(model, IDS, SamplingParams(temperature=5.0), show=5)
    assert hot.after[0] > d.after[0] / 2 and hot.after[0] > cold.after[0]


def test_greedy_puts_all_mass_on_the_top_token(model):
    d = next_token_distribution(model, IDS, SamplingParams(temperature=0.0))
    assert d.after[0] == 1.0 and sum(d.after) == 1.0 and d.n_kept == 1 and "greedy" in d.note
    assert d.token_ids[0] == int(logits_of(model, IDS).argmax())


def test_position_cropping_and_export(model):
    d = next_token_distribution(model, IDS, position=1, label_fn=lambda i: f"<{i}>")
    assert d.position == 1 and d.context_label == "<2>"
    long = next_token_distribution(model, list(range(20)))
    assert long.offset == 4 and "cropped" in long.note
    data = json.loads(d.to_json())
    assert data["params"]["temperature"] == 1.0 and len(data["rows"]) == 10
    assert d.to_csv().splitlines()[0] == "rank,token_id,token,logit,p_model,p_temperature,p_top_k,p_top_p"


def test_figure_pairs_before_and_after(model):
    d = next_token_distribution(model, IDS, SamplingParams(top_k=2), show=4)
    fig = next_token_figure(d)
    assert [t.name for t in fig.data] == ["model (softmax)", "after top-p (sampled from)"]
    assert len(fig.data[0].x) == 4                       # the rest of the vocabulary is not a bar...
    assert f"{d.other['model']:.1%}" in fig.layout.title.text   # ... but a number in the subtitle
    assert fig.layout.yaxis.range[1] <= max(d.before + d.after) * 1.25 + 1e-9
    assert list(fig.data[1].y[:4]) == list(d.after) and fig.layout.barmode == "group"
    assert len(next_token_figure(d, stages=True).data) == 4
