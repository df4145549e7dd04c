"""The app's shared layer: the error policy, the export folder's bound, caches keyed by model identity,
a failed background load, and the view tabs' shared wiring."""
from __future__ import annotations

import logging
import os
import time

import gradio as gr
import pytest

from playground.checkpoints import save_model
from playground.ui import common
from playground.ui.common import InternalError, guarded
from playground.ui.state import ModelHolder
from playground.ui.validate import InputError
from playground.ui.views.attention import attention_view, check_attention
from playground.ui.views.parameters import compare_with_loaded
from playground.inspection.params import param_breakdown
from tests.factories import TINY, make_model


# ------------------------------------------------------------------------------------ errors

def test_input_errors_pass_through_unchanged():
    @guarded
    def handler():
        raise InputError("Layer must be between 0 and 5 (got 9).")
    with pytest.raises(InputError, match="between 0 and 5"):
        handler()


def test_a_bug_is_logged_with_its_traceback_and_shown_as_internal(caplog):
    @guarded
    def ui_attention():
        raise ValueError("shapes (3,4) and (5,6) not aligned")     # a numpy/torch bug, not the user's input
    with caplog.at_level(logging.ERROR, logger="playground.ui"):
        with pytest.raises(InternalError) as err:
            ui_attention()
    assert "internal error" in err.value.message and "check your input" not in err.value.message.lower()
    assert "not aligned" not in err.value.message                   # no internals shown to the user
    record = next(r for r in caplog.records if "internal error" in r.getMessage())
    assert record.exc_info and "not aligned" in str(record.exc_info[1])


def test_generators_follow_the_same_policy(caplog):
    @guarded
    def ui_generate():
        yield 1
        raise RuntimeError("boom")
    gen = ui_generate()
    assert next(gen) == 1
    with caplog.at_level(logging.ERROR, logger="playground.ui"), pytest.raises(InternalError):
        next(gen)
    assert any(r.exc_info for r in caplog.records)

    @guarded
    def ui_fine():
        yield from range(3)
    assert list(ui_fine()) == [0, 1, 2]


def test_gradio_errors_such_as_no_model_pass_through():
    @guarded
    def handler():
        raise gr.Error("No model loaded")
    with pytest.raises(gr.Error, match="No model loaded") as err:
        handler()
    assert not isinstance(err.value, InternalError)


# ------------------------------------------------------------------------------------ exports

def test_the_export_folder_stays_bounded_in_count(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "EXPORT_DIR", tmp_path / "exports")
    monkeypatch.setattr(common, "EXPORT_MAX_FILES", 12)
    paths = [common.export_file("view", "json", f"{{\"i\": {i}}}") for i in range(60)]
    folders = list((tmp_path / "exports").iterdir())
    assert len(folders) <= 12
    files = [p for f in folders for p in f.iterdir()]
    assert len(files) == len(folders)                               # nothing left half-deleted
    assert os.path.exists(paths[-1]) and not os.path.exists(paths[0])   # the newest stay, the oldest go


def test_old_exports_are_removed_by_age(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "EXPORT_DIR", tmp_path / "exports")
    old = common.export_file("old", "csv", "a,b")
    stamp = time.time() - common.EXPORT_MAX_AGE_S - 10
    os.utime(os.path.dirname(old), (stamp, stamp))
    new = common.export_file("new", "csv", "c,d")
    assert not os.path.exists(old) and os.path.exists(new)


# ------------------------------------------------------------------------------------ model identity

def test_cached_views_never_come_from_another_model(tmp_path):
    """Two holders (two apps in one process) each load their first model: both have generation 1."""
    a = ModelHolder(save_model(make_model(seed=0), tmp_path / "a.safetensors"), device="cpu",
                    hash_in_background=False, prepare_fast_weights=False).require()
    b = ModelHolder(save_model(make_model(seed=1), tmp_path / "b.safetensors"), device="cpu",
                    hash_in_background=False, prepare_fast_weights=False).require()
    assert a.generation == b.generation and a.uid != b.uid
    prompt = "The cat sat on the mat. The cat"
    wa = attention_view(a, check_attention(a, prompt, 1, 2), figures=False).capture.head(1, 2)
    wb = attention_view(b, check_attention(b, prompt, 1, 2), figures=False).capture.head(1, 2)
    assert not (wa == wb).all()
    # The loaded-model check of the Parameters tab is cached per model too.
    c = ModelHolder(save_model(make_model(TINY.replace(n_layers=3), seed=2), tmp_path / "c.safetensors"),
                    device="cpu", hash_in_background=False, prepare_fast_weights=False).require()
    assert c.generation == a.generation
    line_a = compare_with_loaded(param_breakdown(a.model.cfg), a)
    line_c = compare_with_loaded(param_breakdown(c.model.cfg), c)
    assert f"{a.model.num_parameters():,}" in line_a and f"{c.model.num_parameters():,}" in line_c
    assert "this is its config" in line_c


# ------------------------------------------------------------------------------------ background load

def test_a_load_failing_with_any_error_says_why(tmp_path, monkeypatch, caplog):
    path = save_model(make_model(), tmp_path / "m.safetensors")
    from playground.ui import state

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(state, "load_model", out_of_memory)
    holder = ModelHolder(path, device="cpu", hash_in_background=False, prepare_fast_weights=False)
    with caplog.at_level(logging.ERROR, logger="playground.ui"):
        assert holder.ensure_loaded() is None
    assert "RuntimeError: CUDA out of memory" in holder.missing_message()
    assert any(r.exc_info for r in caplog.records)
    with pytest.raises(gr.Error, match="CUDA out of memory"):
        holder.require()


def test_the_example_note_matches_the_prompt_shown_at_start():
    """The note under the examples describes the prompt in the box, not the first example."""
    from playground.examples import note_for
    from playground.ui.common import DEFAULT_PROMPT
    with gr.Blocks():
        box = gr.Textbox(value=DEFAULT_PROMPT)
        note = common.examples_with_note("attention", box)
    assert note.value == f"**What to look at:** {note_for('attention', DEFAULT_PROMPT)}"
    assert "previous-token head" in note.value


# ------------------------------------------------------------------------------------ made once, ready at load

def test_the_cache_makes_a_key_once_while_callers_wait():
    import threading
    cache, made, got = common.LRU(4), [], []

    def make():
        made.append(1)
        time.sleep(0.3)
        return object()
    threads = [threading.Thread(target=lambda: got.append(cache.get("k", make))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1 and len(got) == 3 and got[0] is got[1] is got[2]

    def fail():
        raise RuntimeError("no")
    with pytest.raises(RuntimeError):
        cache.get("bad", fail)
    assert cache.get("bad", lambda: 5) == 5          # a failed make leaves nothing behind: the next one runs


def test_per_model_work_runs_after_each_load_in_the_background(tmp_path, caplog):
    from playground.ui.views import attention as att_view
    path = save_model(make_model(), tmp_path / "m.safetensors")
    holder = ModelHolder(path, device="cpu", hash_in_background=False, prepare_fast_weights=False)
    seen = []

    def broken(snap):
        raise ValueError("a bug in a preparation")
    holder.after_load += [broken, lambda snap: seen.append(snap.uid), att_view.random_scores]
    with caplog.at_level(logging.ERROR, logger="playground.ui"):
        snap = holder.load(path)
        deadline = time.time() + 30
        while snap.uid not in att_view._random_scores._data and time.time() < deadline:
            time.sleep(0.05)
    assert seen == [snap.uid]                                    # after a failing one, the others still ran
    assert snap.uid in att_view._random_scores._data              # the Attention tab's first view finds it made
    assert any("a bug in a preparation" in r.getMessage() or r.exc_info for r in caplog.records)
