"""The Train tab's handlers and the /train_* endpoints, called directly on a built page (no server): a run
starts, draws, pauses and resumes, is refused with a reason, stays its page's own, stops when its page
closes, and "Use this model" puts it into the other tabs (refused on a locked server)."""
from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from playground.checkpoints import save_model
from playground.training.live_spec import Limits
from playground.training.registry import TrainingLine
from playground.ui import build_demo
from playground.ui import app as ui_app
from playground.ui.state import ModelHolder
from playground.ui.tabs import train as train_tab
from playground.ui.validate import InputError
from playground.ui.views import attention as att_view
from playground.ui.views import logit_lens as lens_view
from playground.ui.views import next_token as next_view
from playground.ui.views import train as train_view
from tests.factories import make_model

# A copying run small enough for a test: vocab 32, context 16, 2 layers of 2 heads.
VALUES = dict(task="copy", vocab_size=32, context_length=16, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.0,
              qkv_bias=False, tie_embeddings=False, seed=0, lr=3e-3, train_steps=40, batch_size=8, min_len=2,
              max_len=8, text_source="corpus", text="", text_tokens=20_000, sample_every=50)


def fields(**changes: Any) -> list:
    return [{**VALUES, **changes}[f] for f in train_view.FIELDS]


def page_of(tmp_path, allow_model_change: bool = True):
    """The built page's Train tab, its handlers by name, its holder and its training line."""
    built: dict[str, Any] = {}
    mp = pytest.MonkeyPatch()
    mp.setattr(train_tab, "build", lambda ctx, _b=train_tab.build: built.setdefault("t", _b(ctx)))
    weights = save_model(make_model(), tmp_path / "tiny.safetensors")
    holder = ModelHolder(weights, device="cpu", hash_in_background=False, prepare_fast_weights=False)
    line = TrainingLine(Limits())
    try:
        demo = build_demo(holder, weights_dir=tmp_path, allow_model_change=allow_model_change, training=line)
    finally:
        mp.undo()
    fns = {}
    for f in demo.fns.values():
        if f.fn is not None:
            fns.setdefault(f.fn.__name__, f.fn)
    return SimpleNamespace(t=built["t"], fns=fns, holder=holder, line=line)


@pytest.fixture
def tp(tmp_path):
    """The page of a Train tab (not named "page": conftest marks that fixture's tests slow, for a browser)."""
    p = page_of(tmp_path)
    yield p
    p.line.stop_all()


def session(name: str) -> SimpleNamespace:
    return SimpleNamespace(session_hash=name, query_params={}, headers={})


def started(tp, name: str = "a", **changes: Any):
    out = tp.fns["ui_train_start"](*fields(**changes), "best-induction", False, request=session(name))
    run = tp.line.get(out[tp.t.run_id])
    assert run is not None
    return out, run


def test_start_trains_and_the_timer_draws_the_live_view(tp):
    out, run = started(tp)
    assert run.join(60) and run.status == "finished"
    t = tp.t
    drawn = tp.fns["ui_train_tick"](run.id, None, "best-induction", False)
    assert "Finished: 40 steps" in drawn[t.status]
    names = [tr.name for tr in drawn[t.loss].data]
    assert names == ["the copies", "the first copy", "all tokens"]
    assert drawn[t.pattern] is not None and drawn[t.heads] is not None
    assert drawn[t.timer]["active"] is False                        # an ended run stops the timer
    for button in (t.json, t.csv, t.weights):                       # the downloads are written once it ends
        assert str(drawn[button]).endswith((".json", ".csv", ".safetensors"))
    again = tp.fns["ui_train_tick"](run.id, drawn[t.drawn], "best-induction", False, "train")
    assert set(again) == {t.timer}                                  # nothing changed: nothing redrawn


def test_on_another_tab_the_timer_keeps_the_run_alive_without_drawing(tp):
    _, run = started(tp, train_steps=5000)
    while run.step < 3:
        time.sleep(0.005)
    seen = run.last_seen
    time.sleep(0.01)
    away = tp.fns["ui_train_tick"](run.id, None, "best-induction", False, "attention")
    assert set(away) == {tp.t.timer} and away[tp.t.timer]["active"] is True and run.last_seen > seen
    back = tp.fns["ui_train_opened"](run.id, None, "best-induction", False)
    assert back[tp.t.loss] is not None and "Training" in back[tp.t.status]


def test_pause_and_resume_from_the_page(tp):
    _, run = started(tp, train_steps=5000)
    while run.step < 3:
        time.sleep(0.005)
    t = tp.t
    paused = tp.fns["ui_train_pause"](run.id, None, "best-induction", False)
    assert run.status == "paused" and "Paused at" in paused[t.status]
    assert paused[t.resume]["visible"] is True and paused[t.pause]["visible"] is False
    resumed = tp.fns["ui_train_resume"](run.id, None, "best-induction", False)
    assert run.status == "running" and "Training" in resumed[t.status]
    tp.fns["ui_train_stop"](run.id, None, "best-induction", False)
    assert run.join(10) and run.status == "stopped"


@pytest.mark.parametrize("changes, words", [
    (dict(emb_dim=17, n_heads=2), "divisible by the number of heads"),
    (dict(n_layers=0), "Layers must be between 1 and 24"),
    (dict(lr=float("nan")), "Learning rate must be an ordinary number"),
    (dict(lr=float("inf")), "Learning rate must be an ordinary number"),
    (dict(lr=-1), "Learning rate must be above 0"),
    (dict(train_steps=10**7), "Steps must be between 1 and 5,000"),
    (dict(max_len=20), "does not fit twice in the context"),
    (dict(task="text", vocab_size=50257, text_source="yours", text="three words only"),
     "The text is 3 tokens, and one training window needs 18"),
    (dict(task="text", vocab_size=50257, context_length=1024, batch_size=2, text_tokens=500),
     "one training window needs 1,026"),
    (dict(task="text", vocab_size=50257, context_length=1024), "logits per step"),
    (dict(task="text"), "the vocabulary must be 50,257"),
])
def test_impossible_settings_are_plain_errors(tp, changes, words):
    with pytest.raises(InputError) as e:
        tp.fns["ui_train_start"](*fields(**changes), "best-induction", False, request=session("x"))
    assert words in e.value.message
    assert tp.line.active() is None


def test_a_page_sees_only_its_own_run_and_its_place_in_line(tp):
    _, mine = started(tp, "a", train_steps=5000)
    out_b, theirs = started(tp, "b")
    t = tp.t
    assert theirs.status == "waiting"
    waiting = tp.fns["ui_train_tick"](theirs.id, None, "best-induction", False)
    assert "number 1 in line" in waiting[t.status]
    stranger = tp.fns["ui_train_tick"](None, None, "best-induction", False)
    assert set(stranger) == {t.status, t.timer, t.drawn, t.loss}   # empty axes: no curves of anyone else's run
    assert all(len(trace.x) == 0 for trace in stranger[t.loss].data)
    assert "Another training is running" in stranger[t.status]
    with pytest.raises(InputError):
        tp.fns["ui_train_pause"]("0" * 32, None, "best-induction", False)
    tp.fns["ui_page_closed"](session("a"))                        # the first page closes: its run goes
    assert mine.join(10) and mine.status == "stopped" and tp.line.get(mine.id) is None
    assert theirs.join(60) and theirs.status == "finished"


def test_a_second_start_on_the_same_page_replaces_its_run(tp):
    _, first = started(tp, "a", train_steps=5000)
    _, second = started(tp, "a")
    assert first.join(10) and first.status == "stopped" and tp.line.get(first.id) is None
    assert second.join(60) and second.status == "finished"


def test_use_this_model_puts_it_into_the_other_tabs(tp):
    _, run = started(tp)
    assert run.join(60)
    before = tp.holder.current()
    out = tp.fns["ui_train_use"](run.id)
    snap = tp.holder.current()
    assert snap is not before and snap.model.cfg == run.spec.config and snap.name.startswith("trained-copy")
    assert "Loaded" in out[tp.t.use_note] and "token ids" in out[tp.t.use_note]
    badge = next(v for k, v in out.items() if k is not tp.t.use_note and isinstance(v, str))
    assert "trained-copy" in badge
    trained = run.weights_copy().state_dict()
    assert all(torch.equal(trained[k], v) for k, v in snap.model.state_dict().items())
    prompt = "1 2 3 4 5 1 2 3 4"                                    # a vocab-32 model reads its prompt as ids
    req = att_view.check_attention(snap, prompt, 1, 0, "single head")
    assert att_view.attention_view(snap, req, figures=False).capture.token_ids[-9:] == (1, 2, 3, 4, 5, 1, 2, 3, 4)
    assert lens_view.lens_view(snap, prompt, 3).data()["token_ids"][-9:] == [1, 2, 3, 4, 5, 1, 2, 3, 4]
    assert next_view.next_view(snap, prompt, 1.0, 0, 1.0, 5).data()["rows"]
    with pytest.raises(InputError, match="token ids from 0 to 31"):
        att_view.check_attention(snap, "The cat", 0, 0, "single head")


def test_use_this_model_is_refused_on_a_locked_server(tmp_path):
    p = page_of(tmp_path, allow_model_change=False)
    try:
        _, run = started(p)
        assert run.join(60)
        before = p.holder.current()
        out = p.fns["ui_train_use"](run.id)
        assert "switched off on this server" in out[p.t.use_note] and p.holder.current() is before
    finally:
        p.line.stop_all()


def test_the_api_starts_a_run_and_reads_its_curves(tp):
    got = tp.fns["train_start"]("induction-tiny", None, 32, 16, 16, 2, 2, None, None, None, 3, 3e-3, 30, 8,
                                  2, 8, None, None, None)
    run = tp.line.get(got["run_id"])
    assert got["status"] == "running" and got["position"] == 0 and run.spec.seed == 3
    assert run.join(60)
    curves = tp.fns["train_curves"](got["run_id"], 25)
    assert curves["status"] == "finished" and curves["curves"]["step"] == [26, 27, 28, 29, 30]
    assert len(curves["curves"]["repeats"]) == 5 and curves["previous_token"][0][0]
    assert tp.fns["train_control"](got["run_id"], "pause")["status"] == "finished"   # too late: no change
    with pytest.raises(InputError, match="No training run with this id"):
        tp.fns["train_curves"]("nope")
    with pytest.raises(InputError, match="Action must be one of"):
        tp.fns["train_control"](got["run_id"], "explode")


def test_a_preset_fills_every_setting(tp):
    out = tp.fns["ui_train_preset"]("text-tiny")
    t = tp.t
    assert out[t.fields["task"]] == "text" and out[t.fields["vocab_size"]] == 50257
    assert "parameters" in out[t.params]
    assert out[t.head_choice]["choices"][2] == ("L0H0", "L0H0")


def test_the_parameter_count_follows_the_fields_and_says_what_is_wrong(tp):
    t = tp.t
    ok = tp.fns["ui_train_params"](256, 64, 64, 4, 2, False, False)
    assert "136,576 parameters" in ok[t.params]                     # the Parameters tab's count
    bad = tp.fns["ui_train_params"](256, 64, 65, 4, 2, False, False)
    assert bad[t.params].startswith("⚠️") and "divisible" in bad[t.params]


def test_the_tab_is_in_the_page_and_its_link_fields_are_known(tp):
    assert train_tab in ui_app.TAB_MODULES
    controls = tp.t.link_controls()
    from playground.ui import deeplink
    assert set(controls) == set(deeplink.TAB_FIELDS["train"])
