"""The continuous batcher: every row gets exactly what it would get alone, rows join and leave
between steps, the limits hold, and hooked views running beside a batch are not disturbed."""
from __future__ import annotations

import dataclasses
import threading
import time

import pytest
import torch

from playground.batching import Batcher, BatcherFull
from playground.fast_decode import fast_weights
from playground.generation import make_generator, stream_ids
from playground.hooks import hooks
from playground.sampling import SamplingParams
from tests.factories import TINY, make_model

GREEDY = SamplingParams(0.0)
HOT = SamplingParams(1.0, 50, 1.0)
NUCLEUS = SamplingParams(0.8, None, 0.9)


@pytest.fixture(scope="module")
def model():
    return make_model()


def prompt(n: int, start: int = 100) -> torch.Tensor:
    return torch.tensor([[start + 37 * i % 5000 for i in range(n)]])


def alone(model, idx, n, params, seed, precision="fp32", stop_id=None) -> list[int]:
    return [int(s.ids[0]) for s in stream_ids(model, idx, n, params, make_generator(seed), stop_id,
                                              precision=precision)]


def in_batch(batcher, model, idx, n, params, seed, precision="fp32", stop_id=None, out=None, key=None,
             delay=0.0) -> list[int]:
    time.sleep(delay)
    ids = [int(s.ids[0]) for s in batcher.stream(model, idx, n, params, make_generator(seed), stop_id,
                                                 precision=precision)]
    if out is not None:
        out[key] = ids
    return ids


# Prompts of different lengths and settings; the longest crosses the 32-token window (cropping).
ROWS = [(prompt(3), 20, GREEDY, 1), (prompt(9, 7), 30, HOT, 2), (prompt(17, 3), 12, NUCLEUS, 3),
        (prompt(1, 9), 40, HOT, 4), (prompt(30, 11), 25, GREEDY, 5)]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_every_row_gets_the_ids_it_would_get_alone(model, precision):
    expected = [alone(model, idx, n, p, seed, precision) for idx, n, p, seed in ROWS]
    batcher = Batcher(max_batch=8)
    out: dict[int, list[int]] = {}
    threads = [threading.Thread(target=in_batch, args=(batcher, model, idx, n, p, seed, precision, None, out, i))
               for i, (idx, n, p, seed) in enumerate(ROWS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [out[i] for i in range(len(ROWS))] == expected
    assert batcher.rows_per_step_max >= 2              # they really were decoded together
    assert batcher.active_rows() == 0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_one_pass_of_segments_matches_each_segment_alone(model, precision):
    """Decoding rows (caches of different lengths), a whole prompt on an empty cache and a chunk after
    cached tokens, in one forward: each gets the logits and the cached keys it gets alone."""
    weights = fast_weights(model, precision)
    cached = [0, 1, 5, 12, 0, 4]                                   # tokens each cache holds before
    new = [torch.tensor(t) for t in ([5], [600], [7000], [42], list(range(300, 307)), [9, 99, 999])]
    together, solo = [], []
    for n in cached:
        for target in (together, solo):
            c = weights.new_cache(1, 32)
            if n:
                weights.forward(prompt(n), c)
            target.append(c)
    logits = weights.forward_segments(list(zip(new, together)))                 # (6, V)
    assert logits.shape == (len(new), model.cfg.vocab_size)
    tol = dict(rtol=1e-5, atol=1e-5) if precision == "fp32" else dict(rtol=0.05, atol=0.05)
    for i, c in enumerate(solo):
        one = weights.forward(new[i][None], c)                                  # (1, V)
        torch.testing.assert_close(logits[i:i + 1], one, **tol)
        assert together[i].length == c.length == cached[i] + len(new[i])
        for layer in range(model.cfg.n_layers):
            torch.testing.assert_close(together[i].kv[layer][..., :c.length, :], c.kv[layer][..., :c.length, :],
                                       **tol)


@pytest.mark.parametrize("precision, backend", [("bf16", "onednn"), ("bf16", "onednn_b8"), ("bf16", None),
                                                ("int8", None), ("fp32", "onednn_b8")])
def test_where_rows_are_exact_a_pass_of_many_is_bit_for_bit_each_alone(precision, backend):
    """Weights whose products were measured exact up to some size (split into pieces that size) give
    every segment the very logits and keys it gets alone, however many rows share the pass; a prompt
    longer than the bound included. Others say so (``batch_exact`` False)."""
    from playground.fast_decode import FastWeights
    from playground.packed_linear import DTYPES, layout_unavailable
    if backend is not None and (why := layout_unavailable(backend, DTYPES[precision])) is not None:
        pytest.skip(why)                       # the same question the engine's trial asks
    model = make_model(dataclasses.replace(TINY, context_length=160, emb_dim=64))
    weights = FastWeights(model, precision, backend)
    if weights.exact_rows is None:
        assert not weights.batch_exact
        pytest.skip(f"{precision} {backend}: rows not exact at any size worth batching on this machine")
    lengths = [0, 3, 9, 0, 0]
    new = [torch.tensor(t) for t in ([5], [600], [7000], list(range(100, 100 + min(2 * weights.exact_rows + 3, 140))), [8])]
    together, solo = [], []
    for n in lengths:
        for target in (together, solo):
            c = weights.new_cache(1, 160)
            if n:
                weights.forward_segments([(prompt(n)[0], c)])
            target.append(c)
    logits = weights.forward_segments(list(zip(new, together)))
    for i, c in enumerate(solo):
        assert torch.equal(logits[i:i + 1], weights.forward_segments([(new[i], c)]))
        assert torch.equal(together[i].kv[0][..., :c.length, :], c.kv[0][..., :c.length, :])
    assert torch.equal(logits[3:4], weights.forward(new[3][None], weights.new_cache(1, 160)))   # the plain forward too


def test_batched_rows_see_exactly_their_own_probabilities_where_rows_are_exact(model):
    """int8 products are exact at every size here: each batched row's probabilities, step by step, are
    bit for bit those of the same request alone (not only its ids)."""
    if not fast_weights(model, "int8").batch_exact:
        pytest.skip("int8 rows not exact on this machine")

    def steps(batcher, idx, n, params, seed, out=None, key=None):
        got = [(int(s.ids[0]), s.probs.clone()) for s in batcher.stream(model, idx, n, params, make_generator(seed),
                                                                        precision="int8")]
        if out is not None:
            out[key] = got
        return got
    expected = [steps(Batcher(), idx, n, p, seed) for idx, n, p, seed in ROWS]
    batcher, out = Batcher(max_batch=8), {}
    threads = [threading.Thread(target=steps, args=(batcher, idx, n, p, seed, out, i))
               for i, (idx, n, p, seed) in enumerate(ROWS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert batcher.rows_per_step_max >= 2
    for i, want in enumerate(expected):
        assert [t for t, _ in out[i]] == [t for t, _ in want]
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(out[i], want))


def test_a_failed_pass_leaves_the_caches_as_they_were(model):
    weights = fast_weights(model, "fp32")
    ok, full = weights.new_cache(1, 32), weights.new_cache(1, 2)
    weights.forward(prompt(2), full)
    with pytest.raises(ValueError, match="KV cache full"):
        weights.forward_segments([(torch.tensor([1]), ok), (torch.tensor([2]), full)])
    assert (ok.length, full.length) == (0, 2)
    with pytest.raises(ValueError, match="non-empty"):
        weights.forward_segments([(torch.tensor([], dtype=torch.long), ok)])


def test_rows_join_mid_way_and_leave_on_stop():
    model = make_model(dataclasses.replace(TINY, context_length=512))
    batcher = Batcher(max_batch=4, backlog=1000)             # the first row never waits for its caller
    long_idx, late_idx = prompt(4), prompt(6, 50)
    expected_long = alone(model, long_idx, 400, GREEDY, 0)
    expected_late = alone(model, late_idx, 15, HOT, 9)
    first = batcher.stream(model, long_idx, 400, GREEDY, None)
    got = [int(next(first).ids[0]) for _ in range(5)]        # the first row is running
    late: dict[str, list[int]] = {}
    joiner = threading.Thread(target=in_batch, args=(batcher, model, late_idx, 15, HOT, 9, "fp32", None, late, "ids"))
    joiner.start()
    joiner.join(30)
    got += [int(next(first).ids[0]) for _ in range(5)]
    first.close()                                            # Stop: the row leaves at once
    assert late["ids"] == expected_late
    assert got == expected_long[:10]
    assert batcher.rows_per_step_max == 2                    # the late row joined the running one
    steps = -1
    while batcher.steps_run != steps:                        # until nothing runs any more
        steps = batcher.steps_run
        time.sleep(0.2)
    assert batcher.active_rows() == 0
    assert steps < 100          # the closed row's 400 steps (backlog 1000: it never waits) were not all run


def test_a_row_that_fails_ends_alone_and_the_batch_goes_on(monkeypatch):
    """A joining prompt whose pass fails (here: one poisoned id) shares its step with a running row:
    the step is run again row by row, the joining row gets the error, the running one its own ids."""
    from playground.fast_decode import FastWeights
    model = make_model(dataclasses.replace(TINY, context_length=512))
    real = FastWeights.forward_segments
    poison, shared = 4321, []

    def failing(self, segments):
        if any(bool((ids == poison).any()) for ids, _ in segments):
            shared.append(len(segments))
            raise RuntimeError("poisoned prompt")
        return real(self, segments)
    monkeypatch.setattr(FastWeights, "forward_segments", failing)
    expected = alone(model, prompt(4), 400, HOT, 3)
    batcher = Batcher(backlog=1000)
    running = batcher.stream(model, prompt(4), 400, HOT, make_generator(3))
    got = [int(next(running).ids[0]) for _ in range(3)]
    with pytest.raises(RuntimeError, match="poisoned"):
        list(batcher.stream(model, torch.tensor([[5, poison, 6]]), 5, GREEDY))
    got += [int(s.ids[0]) for s in running]
    assert got == expected
    assert shared == [2, 1]                # in the running row's step, then alone


def test_stop_id_ends_a_row_like_alone(model):
    idx = prompt(5)
    free = alone(model, idx, 20, GREEDY, 0)
    stop = free[6]
    expected = alone(model, idx, 20, GREEDY, 0, stop_id=stop)
    assert expected[-1] == stop and len(expected) < 20
    assert in_batch(Batcher(), model, idx, 20, GREEDY, 0, stop_id=stop) == expected


def test_a_full_batch_makes_a_request_wait_then_says_so(model):
    batcher = Batcher(max_batch=1, max_wait_s=0.3)
    holder = batcher.stream(model, prompt(3), 30, GREEDY, None)
    next(holder)                                             # a row runs (its caller is slow)
    with pytest.raises(BatcherFull, match="busy.*batch is full"):
        list(batcher.stream(model, prompt(4), 5, GREEDY, None))
    holder.close()
    # With room again, the same request runs.
    assert in_batch(batcher, model, prompt(4), 5, GREEDY, 0) == alone(model, prompt(4), 5, GREEDY, 0)


def test_the_cache_budget_holds_rows_back_until_there_is_room(model):
    per_row = TINY.n_layers * 2 * TINY.n_heads * 32 * TINY.head_dim * 4     # a row filling the window
    batcher = Batcher(max_batch=8, cache_budget_bytes=per_row, max_wait_s=30)
    out: dict[int, list[int]] = {}
    threads = [threading.Thread(target=in_batch, args=(batcher, model, prompt(10, i), 22, HOT, i, "fp32", None,
                                                       out, i)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert batcher.rows_per_step_max == 1                    # one row's cache at a time
    assert [out[i] for i in range(3)] == [alone(model, prompt(10, i), 22, HOT, i) for i in range(3)]


def test_hooked_views_and_a_batch_at_once_both_stay_right(model):
    """An inspection view attaches hooks to the model while the batch decodes: the batch never fires
    them (one call per the view's own forward) and is not changed by them (same ids as alone), and the
    view sees exactly what it sees alone."""
    idx = prompt(12)
    name = "trf_blocks.0.att.hook_pattern"

    def looked(fires: list) -> tuple[torch.Tensor, torch.Tensor]:
        kept = {}

        def record(t, _name):
            fires.append(1)
            kept["pattern"] = t.detach().clone()
        with hooks(model, {name: record}), torch.no_grad():
            logits = model(idx)
        return kept["pattern"], logits
    ref_pattern, ref_logits = looked([])
    expected = [alone(model, idx, 30, HOT, s) for s in range(3)]
    batcher = Batcher()
    out: dict[int, list[int]] = {}
    stop = threading.Event()
    checks: list[bool] = []

    def inspector() -> None:
        while not stop.is_set():
            fires: list = []
            pattern, logits = looked(fires)
            checks.append(len(fires) == 1 and torch.equal(pattern, ref_pattern) and torch.equal(logits, ref_logits))
    view = threading.Thread(target=inspector)
    view.start()
    threads = [threading.Thread(target=in_batch, args=(batcher, model, idx, 30, HOT, s, "fp32", None, out, s,
                                                       0.01 * s)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    view.join(30)
    assert [out[s] for s in range(3)] == expected
    assert len(checks) >= 2 and all(checks)


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("PLAYGROUND_MAX_BATCH", "4")
    monkeypatch.setenv("PLAYGROUND_BATCH_WAIT_S", "2.5")
    monkeypatch.setenv("PLAYGROUND_BATCH_CACHE_MB", "64")
    b = Batcher.from_env()
    assert (b.max_batch, b.max_wait_s, b.cache_budget_bytes) == (4, 2.5, 64 * 2**20)
    for bad in ("zero", "0", "-3", "nan", "inf"):
        monkeypatch.setenv("PLAYGROUND_MAX_BATCH", bad)
        monkeypatch.setenv("PLAYGROUND_BATCH_WAIT_S", bad)
        b = Batcher.from_env()                               # logged, and the defaults used: the app starts
        assert (b.max_batch, b.max_wait_s) == (16, 30.0)


def test_bad_requests_are_refused_before_joining(model):
    batcher = Batcher()
    with pytest.raises(ValueError, match="one prompt"):
        list(batcher.stream(model, torch.zeros(2, 3, dtype=torch.long), 5, GREEDY))
    with pytest.raises(ValueError, match="one prompt"):
        list(batcher.stream(model, torch.zeros(1, 0, dtype=torch.long), 5, GREEDY))
    assert list(batcher.stream(model, prompt(3), 0, GREEDY)) == []
    assert batcher.waiting_rows() == batcher.active_rows() == 0


def test_the_generate_view_in_the_batch_equals_alone_and_says_busy(tmp_path, model):
    import gradio as gr

    from playground.checkpoints import save_model
    from playground.ui.state import ModelHolder
    from playground.ui.views.generate import check_generate, stream_generation
    holder = ModelHolder(save_model(model, tmp_path / "m.safetensors"))
    snap = holder.require()
    req = check_generate(snap, "The cat sat on the mat. The cat", 12, 0.9, 40, 0.95, 5, 5, "bf16")
    solo = list(stream_generation(snap, req))[-1]
    batcher = Batcher(max_batch=1, max_wait_s=0.2)
    batched = list(stream_generation(snap, req, batcher))[-1]
    assert batched.ids == solo.ids and batched.steps == solo.steps and batched.done
    running = stream_generation(snap, req, batcher)
    next(running)
    with pytest.raises(gr.Error, match="The server is busy") as e:
        list(stream_generation(snap, req, batcher))
    assert e.value.title == "Busy"
    running.close()


def test_rows_of_two_models_at_once_each_finish_on_their_own_model():
    """A model swap while a generation runs: the running row keeps the model it started with, the new one
    decodes on the new model, both in the one batcher, each exactly as alone (greedy ids)."""
    old, new = make_model(seed=0), make_model(seed=1)
    idx = prompt(6)
    expected = {"old": alone(old, idx, 30, GREEDY, 1), "new": alone(new, idx, 30, GREEDY, 1)}
    assert expected["old"] != expected["new"]                 # the two models really answer differently
    batcher = Batcher(max_batch=4)
    out: dict[str, list[int]] = {}
    threads = [threading.Thread(target=in_batch, args=(batcher, old, idx, 30, GREEDY, 1, "fp32", None, out, "old")),
               threading.Thread(target=in_batch, args=(batcher, new, idx, 30, GREEDY, 1, "fp32", None, out, "new",
                                                       0.01))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert out == expected
    assert batcher.active_rows() == 0
