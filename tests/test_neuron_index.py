"""The top-activating-contexts index: against a brute-force scan, from disk, rebuilt, in the background."""
from __future__ import annotations

import threading

import pytest
import torch

from playground.fast_decode import fast_path_allowed
from playground.hooks import capture
from playground.inspection import neuron_index as ni
from playground.inspection.reference import DEFAULT_SHA256, reference_for, reference_ids
from playground.inspection.saliency import gradient_x_input
from tests.factories import make_model

PROMPT = [464, 3797, 3332, 319, 262, 2603, 13]


@pytest.fixture(autouse=True)
def _no_jobs():
    ni.forget_jobs()
    yield
    ni.forget_jobs()


def reference(n: int = 107, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 50257, (n,), generator=torch.Generator().manual_seed(seed))


def brute_force(model, ids: torch.Tensor, window: int) -> torch.Tensor:
    """``(N, L, 4E)`` every activation, each window of the stream run on its own."""
    L = model.cfg.n_layers
    names = [f"trf_blocks.{l}.ff.hook_post" for l in range(L)]
    out = []
    for s in range(0, ids.numel(), window):
        with capture(model, names) as store:
            model(ids[None, s:s + window])
        out.append(torch.stack([store[n][0] for n in names], dim=1))           # (T, L, 4E)
    return torch.cat(out)


class Forwards:
    """Counts forward passes (calls of the token embedding, which every pass starts with)."""

    def __init__(self, model):
        self.n = 0
        self.handle = model.tok_emb.register_forward_pre_hook(self)

    def __call__(self, module, args):
        self.n += 1


def test_top_contexts_match_a_brute_force_scan(tiny_model):
    ids = reference()                                  # 107 tokens: 3 full windows of 32 and a short one
    idx = ni.build_neuron_index(tiny_model, ids, k=5, tokens_per_batch=64)   # two windows per forward
    acts = brute_force(tiny_model, ids, tiny_model.cfg.context_length)       # (N, L, 4E)
    want = torch.topk(acts.permute(1, 2, 0), 5, dim=-1)                      # (L, 4E, 5)
    torch.testing.assert_close(idx.values, want.values)
    assert torch.equal(idx.positions, want.indices)
    ctx = idx.contexts(1, 7)
    c = ctx.contexts[0]
    p = int(want.indices[1, 7, 0])
    assert c["position"] == p and c["token_ids"][c["peak"]] == int(ids[p])
    assert c["token_ids"] == ids[max(0, p - 12):p + 5].tolist()
    assert c["activation"] == pytest.approx(float(acts[p, 1, 7]))
    assert [r["rank"] for r in ctx.rows()] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match=r"neurons 0\.\.127"):
        idx.contexts(0, 128)
    with pytest.raises(ValueError, match=r"layers are 0\.\.1"):
        idx.contexts(2, 0)


def test_index_is_reused_from_disk_and_rebuilt_when_weights_change(tmp_path):
    model = make_model()
    ids = reference(70)
    count = Forwards(model)
    job = ni.neuron_index(model, ids, k=4, cache_dir=tmp_path)
    first = job.result(timeout=60)
    assert count.n > 0 and not job.from_disk
    assert (tmp_path / f"{ni.state_sha256(model)}.safetensors").exists()

    ni.forget_jobs()                                    # a fresh process: only the disk remains
    count.n = 0
    again = ni.neuron_index(model, ids, k=4, cache_dir=tmp_path)
    assert again.ready and again.from_disk and count.n == 0
    assert torch.equal(again.result().values, first.values) and torch.equal(again.result().positions, first.positions)
    assert ni.neuron_index(model, ids, k=4, cache_dir=tmp_path) is again          # and from memory

    with torch.no_grad():
        model.trf_blocks[0].ff.layers[0].weight.mul_(1.5)
    changed = ni.neuron_index(model, ids, k=4, cache_dir=tmp_path)
    assert not changed.from_disk
    assert not torch.equal(changed.result(timeout=60).values, first.values) and count.n > 0
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    count.handle.remove()


def test_background_build_does_not_block_other_work(tmp_path):
    model = make_model()
    gate, started = threading.Event(), threading.Event()

    def slow(fraction: float) -> None:                # the build waits after its first batch
        started.set()
        gate.wait(30)

    job = ni.neuron_index(model, reference(200), k=3, cache_dir=tmp_path, progress=slow)
    try:
        assert started.wait(30)
        assert job.state == "building" and 0 < job.progress < 1
        assert fast_path_allowed(model)                 # no hooks left on the shared model meanwhile
        sal = gradient_x_input(model, PROMPT)           # the same model, meanwhile
        assert sal.scores.shape == (len(PROMPT),)
        assert job.state == "building"
    finally:
        gate.set()
    assert job.result(timeout=60) is not None and job.progress == 1.0
    assert not any(m._forward_hooks for m in model.modules())


def test_build_errors_are_reported_through_the_job(tmp_path):
    job = ni.neuron_index(make_model(), torch.zeros(0, dtype=torch.long), cache_dir=tmp_path)
    assert job.done.wait(30) and job.state == "failed" and "empty" in job.error
    with pytest.raises(RuntimeError, match="empty"):
        job.result()


def test_reference_texts():
    name, text = reference_for(DEFAULT_SHA256)
    assert "held-out" in name and len(text) > 100_000
    name, text = reference_for("0" * 64)
    assert "sample" in name and 300_000 < len(text.encode()) < 520_000
    name, ids = reference_ids(None)
    assert 95_000 < ids.numel() < 115_000 and ids.dtype == torch.long


def test_cache_dir_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PLAYGROUND_NEURON_CACHE", str(tmp_path))
    assert ni.default_cache_dir() == tmp_path


def test_bf16_index_is_close_and_cached_apart(tmp_path):
    model = make_model()
    ids = reference(70)
    exact = ni.neuron_index(model, ids, k=3, cache_dir=tmp_path, background=False).result()
    fast = ni.neuron_index(model, ids, k=3, cache_dir=tmp_path, precision="bf16", background=False).result()
    assert fast.precision == "bf16" and ni.NeuronIndex.load(next(tmp_path.glob("*.bf16.safetensors"))).precision == "bf16"
    torch.testing.assert_close(fast.values, exact.values, rtol=0.05, atol=0.05)
    with pytest.raises(ValueError, match="precision"):
        ni.neuron_index(model, ids, cache_dir=tmp_path, precision="fp8")
