"""The fast decoder's per-machine choice of matrix layout: measured, remembered, forced, and exact."""
from __future__ import annotations

import json
import time

import pytest
import torch

from playground import kernel_choice
from playground.fast_decode import FastWeights
from playground.packed_linear import PackedLinear, layout_unavailable
from tests.factories import make_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "kernels.json"
    monkeypatch.setenv(kernel_choice.CACHE_ENV, str(path))
    monkeypatch.delenv(kernel_choice.FORCE_ENV, raising=False)
    kernel_choice.forget()
    yield path
    kernel_choice.forget()


def slow_by(delays: dict[str, float], calls: list[str]):
    def build(layout: str):
        def fn(x):
            calls.append(layout)
            time.sleep(delays[layout] * x.shape[0])
        return fn
    return build


def test_the_fastest_layout_wins_and_is_remembered_per_machine(cache):
    calls: list[str] = []
    delays = {"onednn": 0.004, "onednn_b8": 0.003, "dense": 0.002, "dense_t": 0.0005}
    got = kernel_choice.choose((300, 7), "fp32", kernel_choice.LAYOUTS, slow_by(delays, calls), torch.float32)
    assert got == "dense_t" and set(calls) == set(kernel_choice.LAYOUTS)
    saved = json.loads(cache.read_text())
    (key,) = saved
    assert saved[key] == "dense_t" and kernel_choice.cpu_name() in key and "300x7" in key and "fp32" in key
    kernel_choice.forget()                       # a new process: read from the file, no new trial
    calls.clear()
    assert kernel_choice.choose((300, 7), "fp32", kernel_choice.LAYOUTS, slow_by(delays, calls),
                                torch.float32) == "dense_t"
    assert calls == []
    # Another shape or precision is measured on its own.
    slow_dense_t = {**delays, "dense_t": 0.01}
    assert kernel_choice.choose((300, 7), "bf16", ("dense", "dense_t"), slow_by(slow_dense_t, calls),
                                torch.bfloat16) == "dense"


def test_a_forced_layout_and_a_bad_setting(cache, monkeypatch):
    calls: list[str] = []
    delays = {"onednn": 0.004, "onednn_b8": 0.003, "dense": 0.002, "dense_t": 0.0005}
    monkeypatch.setenv(kernel_choice.FORCE_ENV, "dense")
    assert kernel_choice.choose((5, 5), "fp32", kernel_choice.LAYOUTS, slow_by(delays, calls), torch.float32) == "dense"
    assert calls == [] and not cache.exists()
    monkeypatch.setenv(kernel_choice.FORCE_ENV, "fastest-please")   # logged; measured instead
    assert kernel_choice.choose((5, 5), "fp32", kernel_choice.LAYOUTS, slow_by(delays, calls),
                                torch.float32) == "dense_t"


def test_an_unwritable_cache_only_costs_a_trial_each_time(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(kernel_choice.CACHE_ENV, str(blocker / "kernels.json"))     # a file as a folder
    kernel_choice.forget()
    calls: list[str] = []
    assert kernel_choice.choose((9, 9), "fp32", ("dense", "dense_t"),
                                slow_by({"dense": 0.0, "dense_t": 0.003}, calls), torch.float32) == "dense"
    kernel_choice.forget()


@pytest.mark.parametrize("layout", kernel_choice.LAYOUTS)
@pytest.mark.parametrize("bias", [True, False])
def test_every_layout_computes_the_same_product(layout, bias):
    torch.manual_seed(0)
    w, b = torch.randn(40, 24), torch.randn(40) if bias else None
    if (why := layout_unavailable(layout, torch.float32)) is not None:
        pytest.skip(why)
    lin = PackedLinear(w, b, "fp32", layout)
    x, r = torch.randn(5, 24), torch.randn(5, 40)
    ref = x @ w.T + (b if b is not None else 0)
    torch.testing.assert_close(lin(x), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lin.gelu(x), torch.nn.functional.gelu(ref, approximate="tanh"), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lin.add(x, r.clone()), ref + r, rtol=1e-5, atol=1e-5)
    assert lin.mode == layout


def test_the_prepared_weights_say_which_layout_each_matrix_runs_in(cache):
    fw = FastWeights(make_model(), "fp32")
    kernels = fw.kernels()
    assert set(kernels) == {"qkv", "out_proj", "ff_expand", "ff_contract", "head"}
    for layout in kernels.values():      # "dense_t" or "dense_t, rows>1 onednn_b8"
        assert {part.removeprefix("rows>1 ") for part in layout.split(", ")} <= set(kernel_choice.LAYOUTS)
    assert FastWeights(make_model(), "int8").kernels()["head"] == "int8"
    with pytest.raises(ValueError, match="unknown backend"):
        PackedLinear(torch.zeros(2, 2), None, "fp32", "turbo")


def test_the_trial_runs_over_as_many_copies_as_the_model_would_fill(cache):
    """A decode step streams every weight from memory: the trial times distinct copies in turn, not one
    matrix sitting in the cache."""
    mib = 2**20
    assert kernel_choice.stream_copies(mib, 10 * mib) == 10
    assert kernel_choice.stream_copies(mib, 2**40) == kernel_choice.MAX_COPIES
    assert kernel_choice.stream_copies(kernel_choice.STREAM_BYTES + 1, 2**40) == 1
    assert kernel_choice.stream_copies(mib, 0) == 1
    calls: list[str] = []
    built: list[str] = []
    delays = {"dense": 0.002, "dense_t": 0.0005}

    def build(layout: str):
        built.append(layout)
        return slow_by(delays, calls)(layout)
    assert kernel_choice.choose((300, 7), "fp32", ("dense", "dense_t"), build, torch.float32, copies=4) == "dense_t"
    assert built.count("dense") == 4 and built.count("dense_t") == 4
    (key,) = json.loads(cache.read_text())
    assert key.endswith("| 4 copies")


def test_trial_copies_do_not_share_memory(cache, monkeypatch):
    """Each copy the trial builds holds its own weights (a plain fp32 layout would otherwise keep the
    parameter itself, and every 'copy' would be the same cached matrix)."""
    seen: list[set[int]] = []
    real = kernel_choice.choose

    def spy(shape, precision, candidates, build, dtype, copies=1, rows=kernel_choice.TRIAL_ROWS):
        alive = [build("dense") for _ in range(2)]          # both held, as the trial holds its copies
        seen.append({b.weight.data_ptr() for b in alive})
        return real(shape, precision, candidates, build, dtype, copies, rows)
    monkeypatch.setattr(kernel_choice, "choose", spy)
    w = torch.randn(64, 32)
    PackedLinear(w, None, "fp32", working_set=64 * w.numel() * 4)
    assert len(seen) == 2 and all(len(ptrs) == 2 and w.data_ptr() not in ptrs for ptrs in seen)  # 1 row, 8 rows


def test_one_row_and_several_rows_may_take_different_layouts(cache, monkeypatch):
    """Where the trial at one row and the trial at eight pick different layouts and the model is small
    enough, both are kept and each product takes its own; above the limit one layout serves both."""
    picks = {(1,): "dense_t", (8,): "dense"}

    def fake_choose(shape, precision, candidates, build, dtype, copies=1, rows=kernel_choice.TRIAL_ROWS):
        return picks.get(tuple(rows), "dense")
    monkeypatch.setattr(kernel_choice, "choose", fake_choose)
    torch.manual_seed(0)
    w, b = torch.randn(40, 24), torch.randn(40)
    lin = PackedLinear(w, b, "fp32", working_set=w.numel() * 4)
    assert lin.mode == "dense_t" and lin.many is not None and lin.many.mode == "dense"
    assert lin.layout() == "dense_t, rows>1 dense" and lin.held_bytes() == 2 * lin.nbytes()
    x1, x5, r5 = torch.randn(1, 24), torch.randn(5, 24), torch.randn(5, 40)
    ref1, ref5 = x1 @ w.T + b, x5 @ w.T + b
    torch.testing.assert_close(lin(x1), ref1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lin(x5), ref5, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lin.gelu(x5), torch.nn.functional.gelu(ref5, approximate="tanh"), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lin.add(x5, r5.clone()), ref5 + r5, rtol=1e-5, atol=1e-5)
    # several rows go through the second layout: break it and only they change
    lin.many.weight = torch.zeros_like(lin.many.weight)
    torch.testing.assert_close(lin(x5), b.expand(5, -1))
    torch.testing.assert_close(lin.add(x5, r5.clone()), b + r5)
    torch.testing.assert_close(lin(x1), ref1, rtol=1e-5, atol=1e-5)
    # bf16: one layout (two would round differently to bf16 and change a batched row's text)
    assert PackedLinear(w, b, "bf16", working_set=w.numel() * 2).many is None
    # over the limit: one layout, the one chosen over both row counts
    monkeypatch.setenv(kernel_choice.DUAL_BYTES_ENV, "0")
    single = PackedLinear(w, b, "fp32", working_set=w.numel() * 4)
    assert single.many is None and single.mode == "dense" and single.layout() == "dense"
    monkeypatch.setenv(kernel_choice.DUAL_BYTES_ENV, "lots")        # logged; the default limit
    assert PackedLinear(w, b, "fp32", working_set=w.numel() * 4).many is not None
    assert not kernel_choice.dual_allowed(2**40)


def test_the_two_row_counts_are_measured_and_remembered_apart(cache):
    calls: list[str] = []

    def build(layout: str):     # dense_t is fast for one row and slow for many; dense the reverse
        def fn(x):
            calls.append(layout)
            time.sleep({"dense_t": 0.0005, "dense": 0.003}[layout] if x.shape[0] == 1
                       else {"dense_t": 0.02, "dense": 0.004}[layout])
        return fn
    one = kernel_choice.choose((300, 7), "fp32", ("dense", "dense_t"), build, torch.float32, rows=(1,))
    many = kernel_choice.choose((300, 7), "fp32", ("dense", "dense_t"), build, torch.float32, rows=(8,))
    assert (one, many) == ("dense_t", "dense")
    saved = json.loads(cache.read_text())
    assert sorted(saved.values()) == ["dense", "dense_t"] and any(k.endswith("| rows 8") for k in saved)


def test_a_layout_the_cpu_cannot_run_is_refused_by_name_and_reported(monkeypatch):
    """Where oneDNN cannot pack bf16 (AVX2-only CPUs), the trial leaves it out, forcing it names the reason,
    and the Model tab says which layouts a precision cannot use and why."""
    from playground import packed_linear
    from playground.ui.views.model import model_markdown
    why = "oneDNN cannot pack bfloat16 weights on this CPU (needs avx512bw)"
    monkeypatch.setattr(packed_linear, "_onednn_refusal",
                        lambda dtype: why if dtype == torch.bfloat16 else None)
    assert packed_linear.layouts_missing("bf16") == {"onednn": why, "onednn_b8": why}
    assert packed_linear.layouts_missing("fp32") == {} or not torch.backends.mkldnn.is_available()
    with pytest.raises(ValueError, match="not available: oneDNN cannot pack"):
        PackedLinear(torch.randn(8, 8), None, "bf16", "onednn")
    w = torch.randn(16, 8)
    assert PackedLinear(w, None, "bf16", working_set=w.numel() * 2).mode in ("dense", "dense_t")
    info = {"loaded": True, "name": "m", "file": "m.safetensors", "file_size_bytes": 1, "layout": "ours",
            "file_dtype": "float32", "sha256_prefix": "ab", "parameters": 1, "dtype": "float32", "device": "cpu",
            "config": {"n_layers": 1, "n_heads": 1, "emb_dim": 8, "context_length": 8, "vocab_size": 9,
                       "qkv_bias": False, "tie_embeddings": False},
            "kernels": {"bf16": {"qkv": "dense"}}, "cpu": "AMD EPYC",
            "kernels_missing": {"bf16": packed_linear.layouts_missing("bf16")}}
    text = model_markdown(info)
    assert "bf16 cannot use" in text and "`onednn_b8`: " + why in text


def test_a_trial_leaves_the_global_random_stream_alone(cache):
    """The layout trial runs in a background thread when a model loads: it must not draw from torch's global
    generator, or a seeded model built meanwhile in another thread gets other weights."""
    kernel_choice.forget()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    w = torch.randn(24, 16, generator=torch.Generator().manual_seed(1))
    kernel_choice.choose((24, 16), "fp32", ("dense", "dense_t"), lambda layout: PackedLinear(w, None, "fp32", layout),
                         torch.float32)
    assert torch.equal(torch.rand(3), expected)
    kernel_choice.forget()
