"""Live training runs (playground.training.live / registry / probe / tasks): they learn, repeat with the same
seed, pause and resume on the same curve, stop on every cap, one at a time, and refuse impossible settings."""
from __future__ import annotations

import gc
import math
import threading
import time
import weakref

import numpy as np
import pytest
import torch

from playground.inspection.head_scores import head_scores
from playground.model import GPTModel
from playground.training.live_spec import PRESETS, TINY_COPY, Limits, RunSpec, check
from playground.training.optim import init_weights
from playground.training.probe import Probe, find_phase_change
from playground.training.registry import LineFull, TrainingLine
from playground.training.step import Diverged, apply_step
from playground.training.tasks import CopyTask, TextTask, text_tokens
from playground.training.optim import make_optimizer

SMALL = TINY_COPY.replace(vocab_size=32, context_length=16, emb_dim=16, n_heads=2)
FAST = RunSpec(config=SMALL, lr=3e-3, steps=60, batch_size=8, min_len=2, max_len=8, probe_every=20)
TEXT = "The cat sat on the mat and looked at the door. A dog ran in the park while the children played. " * 20
FAST_TEXT = RunSpec(task="text", config=SMALL.replace(vocab_size=50257, tie_embeddings=True), text=TEXT, lr=3e-3,
                    steps=60, batch_size=8, probe_every=20, sample_every=30)


def finished(line: TrainingLine, spec: RunSpec, timeout: float = 60):
    run = line.submit(spec)
    assert run.join(timeout), "the run did not end in time"
    return run


@pytest.fixture
def lines():
    """``lines(limits)``: a TrainingLine whose runs are all stopped after the test."""
    made = []

    def make(limits: Limits | None = None) -> TrainingLine:
        made.append(TrainingLine(limits or Limits()))
        return made[-1]
    yield make
    for ln in made:
        ln.stop_all()


@pytest.fixture
def line(lines):
    return lines()


def test_a_short_run_lowers_the_loss_and_changes_the_weights(line):
    run = finished(line, FAST_TEXT)
    assert run.status == "finished" and run.step == 60
    losses = run.curves.loss
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 1.0
    assert [s for s, _ in run.samples] == [30, 60] and all(t.startswith("The cat") for _, t in run.samples)
    start = GPTModel(FAST_TEXT.config)
    init_weights(start, generator=torch.Generator().manual_seed(FAST.seed))
    trained = run.weights_copy().state_dict()
    moved = [k for k, v in start.state_dict().items() if not torch.equal(v, trained[k])]
    assert len(moved) == len(trained)              # every tensor moved (norm scales and biases too)
    assert run._opt is None                          # the optimizer's memory is gone, the weights stay


def test_the_same_seed_gives_the_same_losses_and_another_seed_others(line):
    """Tolerance: none. The same seed and settings, on the same machine and thread count, give the same
    losses to the last bit (the generators are the run's own; nothing global is drawn from)."""
    a = finished(line, FAST.replace(steps=25))
    torch.manual_seed(12345)                         # the global generator moving changes nothing
    b = finished(line, FAST.replace(steps=25))
    c = finished(line, FAST.replace(steps=25, seed=1))
    assert a.curves.loss == b.curves.loss and a.curves.repeats == b.curves.repeats
    assert a.curves.loss[:5] != c.curves.loss[:5]


def test_pause_and_resume_continue_the_same_curve(line):
    whole = finished(line, FAST)
    run = line.submit(FAST)
    while run.step < 15:
        time.sleep(0.005)
    assert run.pause() and run.status == "paused"
    time.sleep(0.3)
    held = run.step
    time.sleep(0.3)
    assert run.step == held                          # nothing trains while paused
    assert run.resume()
    assert run.join(60) and run.status == "finished"
    assert run.curves.loss == whole.curves.loss


def test_stop_ends_the_run_and_frees_its_optimizer(line):
    run = line.submit(FAST.replace(steps=5000))
    while run.step < 5:
        time.sleep(0.005)
    opt = weakref.ref(run._opt)
    run.stop()
    assert run.join(10) and run.status == "stopped" and run.step < 5000
    gc.collect()
    assert opt() is None and run._task is None
    assert run.weights_copy() is not None           # the weights stay for "Use this model"


@pytest.mark.parametrize("limits, words", [
    (Limits(max_s=0.3), "limit of 0 s"), (Limits(idle_s=0.3), "nobody has looked"),
])
def test_caps_stop_a_run(lines, limits, words):
    line = lines(limits)
    run = line.submit(FAST.replace(steps=5000))
    assert run.join(30)
    assert run.status == "stopped" and words in run.message and run.step < 5000


def test_a_paused_run_stops_after_the_pause_limit(lines):
    line = lines(Limits(max_pause_s=0.3))
    run = line.submit(FAST.replace(steps=5000))
    while run.step < 2:
        time.sleep(0.005)
    run.pause()
    assert run.join(10) and "paused for more than" in run.message


def test_one_run_at_a_time_the_others_wait_in_line(lines):
    line = lines(Limits(max_waiting=1))
    first = line.submit(FAST.replace(steps=5000))
    second = line.submit(FAST)
    assert line.active() is first and second.status == "waiting" and line.position(second) == 1
    with pytest.raises(LineFull):
        line.submit(FAST)
    time.sleep(0.2)
    assert second.step == 0
    first.stop()
    assert second.join(60) and second.status == "finished"
    assert line.get(first.id) is first and line.get("not an id") is None and line.get(None) is None
    line.discard(first.id)
    assert line.get(first.id) is None


def test_the_training_thread_uses_its_own_thread_count_and_the_others_keep_theirs(lines):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run = lines(Limits(threads=1)).submit(FAST.replace(steps=300))
        while run.threads_used == 0:
            time.sleep(0.005)
        seen = []
        t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        t.start()
        t.join()
        run.stop()
        run.join(10)
        assert run.threads_used == 1 and seen == [2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_diverging_run_stops_and_keeps_the_last_good_weights(line):
    run = finished(line, FAST.replace(lr=1.0, weight_decay=10.0, steps=300))
    assert run.status == "failed" and "diverged" in run.message and "smaller learning rate" in run.message
    assert run.step < 300
    weights = run.weights_copy().state_dict()
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_apply_step_refuses_to_move_on_a_nan_loss():
    model = GPTModel(SMALL)
    with torch.no_grad():
        model.tok_emb.weight[3] = float("nan")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model, 1e-3, 0.1)
    x = torch.tensor([[1, 2, 3, 4]])
    with pytest.raises(Diverged):
        apply_step(model, opt, 1e-3, iter([(x, x)]), 1, check_finite=True)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) or torch.isnan(before[k]).any() for k in before)


@pytest.mark.parametrize("spec, words", [
    (FAST.replace(lr=float("nan")), "learning rate"), (FAST.replace(lr=float("inf")), "learning rate"),
    (FAST.replace(lr=0.0), "learning rate"), (FAST.replace(steps=10**6), "steps"),
    (FAST.replace(batch_size=0), "batch size"), (FAST.replace(seed=-1), "seed"),
    (FAST.replace(max_len=9), "does not fit twice"), (FAST.replace(min_len=5, max_len=4), "shortest"),
    (FAST.replace(task="sorting"), "task"),
    (FAST.replace(task="text"), "vocabulary must be 50,257"),
    (PRESETS["text-tiny"].replace(text="three words only"), "one training window needs"),
    (PRESETS["text-tiny"].replace(text="   "), "empty"),
    (PRESETS["text-tiny"].replace(text_tokens=40), "one training window needs"),   # a context longer than the slice
    (RunSpec(config=TINY_COPY.replace(n_layers=96, emb_dim=2048, n_heads=4)), "parameters"),
    (PRESETS["text-tiny"].replace(batch_size=512), "logits per step"),
])
def test_impossible_settings_are_refused_with_a_reason(spec, words):
    with pytest.raises(ValueError, match=words):
        check(spec, Limits())


def test_the_book_config_refuses_impossible_shapes():
    with pytest.raises(ValueError, match="divisible"):
        TINY_COPY.replace(emb_dim=65)
    with pytest.raises(ValueError, match="positive"):
        TINY_COPY.replace(n_layers=0)


def test_the_copying_task_marks_its_first_copy():
    task = CopyTask(vocab=50, window=31, min_len=4, max_len=16)
    batch = task.sample(16, np.random.default_rng(0))
    assert batch.x.shape == batch.y.shape == batch.first.shape == (16, 31)
    for row, first in zip(torch.cat([batch.x, batch.y[:, -1:]], 1), batch.first):
        n = int(first.sum())
        assert 4 <= n <= 16 and first[:n].all()
        assert torch.equal(row[n:], row[:row.numel() - n])       # every token after the first copy repeats


def test_a_text_task_samples_windows_of_its_text():
    tokens, source = text_tokens("The cat sat on the mat. " * 40, 10_000)
    task = TextTask(tokens, window=16, source=source)
    batch = task.sample(4, np.random.default_rng(0))
    assert batch.x.shape == (4, 16) and torch.equal(batch.x[:, 1:], batch.y[:, :-1]) and batch.first is None


def test_the_probe_scores_are_the_attention_tabs():
    model = GPTModel(SMALL).eval()
    init_weights(model, generator=torch.Generator().manual_seed(0))
    probe = Probe.for_model(SMALL.context_length, SMALL.vocab_size, batch=4)
    got = probe.measure(model, step=0)
    want = head_scores(model, None, seq_len=probe.seq_len, batch=4, seed=0)
    np.testing.assert_allclose(got.previous_token, want.previous_token.numpy(), atol=1e-6)
    np.testing.assert_allclose(got.induction, want.induction.numpy(), atol=1e-6)
    assert got.pattern.shape == (SMALL.n_layers, SMALL.n_heads, 16, 16)
    np.testing.assert_allclose(got.pattern.sum(-1), 1.0, atol=1e-5)


def test_the_phase_change_is_the_drop_after_the_plateau():
    chance = math.log(256)
    steps = list(range(1, 401))
    losses = [chance] * 200 + [0.3] * 200
    found = find_phase_change(steps, losses, [s / 10 for s in steps], 256, smooth=10)
    assert found is not None and 200 < found.step <= 210 and found.seconds == found.step / 10
    assert find_phase_change(steps, [chance] * 400, steps, 256) is None
    assert find_phase_change(steps, [0.5] * 400, steps, 256) is None          # no plateau, no phase change


@pytest.mark.slow
def test_the_copying_preset_goes_through_its_phase_change(lines):
    """The measured config (2 layers, 4 heads, emb 64, vocab 256, context 64): the loss on the copies falls
    below 1.0 within the preset's 1,500 steps, and an induction and a previous-token head have formed."""
    run = lines(Limits(max_s=600)).submit(PRESETS["induction-tiny"])
    while not run.join(2):
        run.touch()
    assert run.status == "finished", run.message
    assert np.mean(run.curves.repeats[-20:]) < 1.0 and run.phase is not None
    last = run.probes[-1]
    assert last.induction.max() > 0.5 and last.previous_token.max() > 0.5
