"""The learned-features figures: each builds from a real result, with the data it was given."""
from __future__ import annotations

import plotly.graph_objects as go
import pytest
import torch

from playground.inspection import neuron_index as ni
from playground.inspection.embeddings import positional_pca, residual_pca, token_embedding_pca
from playground.inspection.figures import learned as F
from playground.inspection.neurons import neuron_activations, neuron_direct_effect, top_neurons_at
from playground.inspection.qk import qk_breakdown
from playground.inspection.saliency import integrated_gradients

PROMPT = [464, 3797, 3332, 319, 262, 2603, 13]


def test_neuron_figures(tiny_model):
    fig = F.direct_effect_figure(neuron_direct_effect(tiny_model, 0, 3))
    assert isinstance(fig, go.Figure) and len(fig.data) == 2 and len(fig.data[0].x) == 10
    top = top_neurons_at(tiny_model, PROMPT, 2)
    assert list(F.top_neurons_figure(top).data[0].x) == [n["activation"] for n in top.neurons]
    acts = neuron_activations(tiny_model, PROMPT)
    fig = F.neuron_activation_figure(acts, 1, 5)
    assert list(fig.data[0].y) == pytest.approx(acts.neuron(1, 5).tolist())


def test_contexts_html_marks_the_peak_and_escapes(tiny_model):
    ids = torch.randint(0, 50257, (70,), generator=torch.Generator().manual_seed(0))
    ctx = ni.build_neuron_index(tiny_model, ids, k=3).contexts(0, 1, label_fn=lambda i: f"<i>{i}")
    out = F.neuron_contexts_html(ctx)
    assert out.count("<tr>") == 4                       # header + 3 contexts
    assert out.count("<b style=") == 3                  # one marked peak each
    assert "<i>" not in out and f"&lt;i&gt;{ctx.contexts[0]['token_ids'][ctx.contexts[0]['peak']]}</b>" in out


@pytest.mark.parametrize("dims", [2, 3])
def test_pca_figures(tiny_model, dims):
    tok_view = token_embedding_pca(tiny_model, prompt=PROMPT, neighbours_of=3797, n_neighbours=4)
    fig = F.embedding_pca_figure(tok_view, dims)
    assert {t.name for t in fig.data} == {"prompt", "neighbours"}
    assert isinstance(fig.data[0], go.Scatter3d if dims == 3 else go.Scatter)
    pos = F.embedding_pca_figure(positional_pca(tiny_model), dims)
    assert pos.data[0].marker.colorscale is not None and len(pos.data[0].x) == tiny_model.cfg.context_length
    res = F.residual_pca_figure(residual_pca(tiny_model, PROMPT), dims)
    for f in (fig, pos, res):
        f.to_json()                                     # serialisable for the browser
    assert len(res.data) == len(PROMPT) and len(res.data[0].x) == tiny_model.cfg.n_layers + 1
    with pytest.raises(ValueError, match="dims"):
        F.residual_pca_figure(residual_pca(tiny_model, PROMPT), 4)


def test_saliency_and_qk_figures(tiny_model):
    s = integrated_gradients(tiny_model, PROMPT, n_steps=4)
    fig = F.saliency_figure(s)
    assert list(fig.data[0].y) == pytest.approx(s.scores.tolist()) and "gap" in fig.layout.title.text
    b = qk_breakdown(tiny_model, PROMPT, 1, 0, 3)
    fig = F.qk_figure(b)
    assert len(fig.data) == 3 and list(fig.data[2].y) == pytest.approx(b.weights[:4].tolist())
    assert fig.data[0].z.shape == (b.head_dim, 4)
    fig.to_json()
