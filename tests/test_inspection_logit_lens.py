"""Logit lens on a tiny seeded model: the last layer is the model's own prediction."""
from __future__ import annotations

import json

import pytest
import torch

from playground.config import GPTConfig
from playground.inspection.logit_lens import logit_lens
from playground.inspection.figures.logit_lens import logit_lens_figure, trajectory_figure
from playground.model import GPTModel

IDS = [3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46]


@pytest.fixture(scope="module")
def model() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(GPTConfig(vocab_size=100, context_length=32, emb_dim=32, n_heads=4, n_layers=3)).eval()


def test_last_layer_is_the_models_own_prediction(model):
    lens = logit_lens(model, IDS, top_k=3)
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([IDS]))[0], -1)               # (T, V)
    assert torch.equal(lens.final_ids, probs.argmax(-1))
    torch.testing.assert_close(lens.top_probs[-1, :, 0], probs.max(-1).values)
    assert (lens.final_rank[-1] == 1).all()
    assert lens.top_ids.shape == (4, len(IDS), 3) and lens.layer_names[0] == "embeddings"
    assert (lens.top_probs[..., :-1] >= lens.top_probs[..., 1:]).all()


def test_intermediate_layers_match_manual_lens(model):
    lens = logit_lens(model, IDS, track_ids=[7, 8])
    x = torch.tensor([IDS])
    with torch.no_grad():
        h = model.tok_emb(x) + model.pos_emb(torch.arange(len(IDS)))
        h = model.trf_blocks[0](h)                                             # after block 0
        logits = model.out_head(model.final_norm(h))[0]                        # (T, V)
    probs = torch.softmax(logits, -1)
    assert torch.equal(lens.top_ids[1, :, 0], probs.argmax(-1))
    rank7 = (logits > logits[:, 7:8]).sum(-1) + 1
    assert torch.equal(lens.tracked_rank[1, :, 0], rank7)
    torch.testing.assert_close(lens.tracked_prob[1, :, 0], probs[:, 7])
    traj = lens.trajectory(4, 7)
    assert traj.ranks[1] == int(rank7[4]) and len(traj.probs) == 4
    final = lens.trajectory(-1)
    assert final.ranks[-1] == 1 and final.position == len(IDS) - 1
    with pytest.raises(KeyError):
        lens.trajectory(0, 9 if int(lens.final_ids[0]) != 9 else 10)


def test_cropping_labels_and_export(model):
    lens = logit_lens(model, list(range(40)), label_fn=lambda i: f"t{i}")
    assert lens.n_tokens == 32 and lens.offset == 8 and "cropped" in lens.note
    assert lens.labels[0] == "t8" and lens.top_labels[0][0][0].startswith("t")
    data = json.loads(lens.to_json())
    assert len(data["top_ids"]) == 4 and data["tracked_rank"] is None
    assert lens.to_csv().splitlines()[0] == "layer,position,input_token,top1_id,top1_token,top1_prob,final_token_rank"
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError):
        logit_lens(model, IDS, track_ids=[100])


def test_figures(model):
    lens = logit_lens(model, IDS)
    fig = logit_lens_figure(lens)
    hm = fig.data[0]
    assert hm.z.shape == (4, len(IDS)) and list(fig.layout.yaxis.ticktext) == list(lens.layer_names)
    assert list(fig.layout.xaxis.ticktext) == [str(i) for i in IDS]
    assert hm.texttemplate == "%{text}" and hm.text[3][0].replace("<b>", "").replace("</b>", "") == \
        lens.top_labels[3][0][0]
    long = logit_lens(model, list(range(32)))
    fig = logit_lens_figure(long, position_window=(10, 30))
    assert fig.data[0].z.shape == (4, 20) and fig.layout.xaxis.tickvals[0] == 10
    assert "positions 10-29 of 32" in fig.layout.title.text
    assert logit_lens_figure(long, max_tokens=8).data[0].z.shape == (4, 8)
    tfig = trajectory_figure(lens.trajectory(-1))
    assert list(tfig.data[0].x) == list(lens.layer_names) and len(tfig.data) == 2
