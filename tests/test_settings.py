"""Settings from the environment (``playground.settings``) and ``app.py`` built on them: an unusable
value is logged with the default used, and the app still starts."""
from __future__ import annotations

import logging

import pytest

from playground import settings as s
from playground.checkpoints import save_model
from tests.factories import make_model
from tests.live_app import imported_app


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return save_model(make_model(), tmp_path_factory.mktemp("w") / "tiny.safetensors")


def test_a_non_numeric_queue_size_is_logged_and_the_app_still_builds(weights, caplog):
    caplog.set_level(logging.WARNING, logger="playground.settings")
    with imported_app({"PLAYGROUND_WEIGHTS": str(weights), "PLAYGROUND_QUEUE_SIZE": "lots"}) as app:
        assert app.demo._queue.max_size == 64
    assert "PLAYGROUND_QUEUE_SIZE" in caplog.text and "'lots'" in caplog.text and "64" in caplog.text


def test_every_setting_is_read():
    got = s.from_env({"PLAYGROUND_WEIGHTS": " gpt2 ", "PLAYGROUND_DEVICE": "cpu", "PLAYGROUND_LOCK_MODEL": "yes",
                      "PLAYGROUND_QUEUE_SIZE": "8", "PLAYGROUND_MAX_UPLOAD_MB": "200", "PLAYGROUND_MAX_BATCH": "3",
                      "PLAYGROUND_BATCH_WAIT_S": "2.5", "PLAYGROUND_BATCH_CACHE_MB": "64"})
    assert got == s.Settings(weights="gpt2", device="cpu", lock_model=True, queue_size=8, max_upload_mb=200,
                             max_batch=3, batch_wait_s=2.5, batch_cache_mb=64)
    batcher = got.batcher()
    assert (batcher.max_batch, batcher.max_wait_s, batcher.cache_budget_bytes) == (3, 2.5, 64 * 2**20)
    assert s.from_env({}) == s.Settings()
    train = s.from_env({"PLAYGROUND_TRAIN_MAX_S": "60", "PLAYGROUND_TRAIN_MAX_STEPS": "800",
                        "PLAYGROUND_TRAIN_THREADS": "2", "PLAYGROUND_TRAIN_QUEUE": "3"}).training_line().limits
    assert (train.max_s, train.max_steps, train.threads, train.max_waiting, train.max_pause_s) == (60, 800, 2, 3, 60)
    default = s.Settings().training_line().limits
    assert (default.max_s, default.max_steps, default.threads, default.max_waiting) == (300, 5000, 1, 8)
    assert s.from_env({"PLAYGROUND_LOCK_MODEL": "off", "PLAYGROUND_QUEUE_SIZE": "  "}) == s.Settings()


@pytest.mark.parametrize("name, raw, field, default", [
    ("PLAYGROUND_QUEUE_SIZE", "lots", "queue_size", 64),
    ("PLAYGROUND_QUEUE_SIZE", "0", "queue_size", 64),
    ("PLAYGROUND_QUEUE_SIZE", "2.5", "queue_size", 64),
    ("PLAYGROUND_MAX_UPLOAD_MB", "-3", "max_upload_mb", 1024),
    ("PLAYGROUND_MAX_BATCH", "many", "max_batch", 16),
    ("PLAYGROUND_BATCH_WAIT_S", "inf", "batch_wait_s", 30.0),
    ("PLAYGROUND_BATCH_WAIT_S", "nan", "batch_wait_s", 30.0),
    ("PLAYGROUND_BATCH_CACHE_MB", "1e999", "batch_cache_mb", 1024),
    ("PLAYGROUND_LOCK_MODEL", "maybe", "lock_model", False),
    ("PLAYGROUND_TRAIN_MAX_S", "nan", "train_max_s", 300.0),
    ("PLAYGROUND_TRAIN_MAX_S", "-5", "train_max_s", 300.0),
    ("PLAYGROUND_TRAIN_MAX_STEPS", "1.5", "train_max_steps", 5000),
    ("PLAYGROUND_TRAIN_THREADS", "0", "train_threads", 1),
    ("PLAYGROUND_TRAIN_QUEUE", "many", "train_queue", 8),
])
def test_an_unusable_value_is_logged_with_the_default_used(name, raw, field, default, caplog):
    caplog.set_level(logging.WARNING, logger="playground.settings")
    assert getattr(s.from_env({name: raw}), field) == default
    (record,) = caplog.records
    assert name in record.getMessage() and repr(raw) in record.getMessage()
    assert record.getMessage().endswith(f"using the default, {default}")


def test_lock_model_switches_off_model_changes(weights):
    """``PLAYGROUND_LOCK_MODEL=1``: the page says so and its load events refuse."""
    import gradio as gr

    from playground.ui.tabs.model import LOCKED
    with imported_app({"PLAYGROUND_WEIGHTS": str(weights), "PLAYGROUND_LOCK_MODEL": "1"}) as app:
        assert app.settings.lock_model
        assert any(isinstance(b, gr.Markdown) and b.value == LOCKED for b in app.demo.blocks.values())
        load_file = next(f.fn for f in app.demo.fns.values() if f.fn and f.fn.__name__ == "ui_load_file")
        with pytest.raises(gr.Error, match="switched off"):
            load_file("tiny.safetensors")
        assert app.holder.current() is None                     # nothing was loaded


def test_main_applies_weights_device_and_the_upload_limit(weights, tmp_path, monkeypatch):
    """``python app.py --weights W --device cpu``: the holder serves W on cpu; the launch gets the upload limit."""
    import shutil
    other = shutil.copy(weights, tmp_path / "other.safetensors")
    with imported_app({"PLAYGROUND_WEIGHTS": str(weights), "PLAYGROUND_MAX_UPLOAD_MB": "12"}) as app:
        launched: dict = {}
        monkeypatch.setattr(app.demo, "launch", lambda **kw: launched.update(kw))
        monkeypatch.setattr(app.demo, "block_thread", lambda: None)
        app.main(["--weights", str(other), "--device", "cpu", "--port", "7999"])
        assert str(app.holder.default_path) == str(other) and app.holder.device == "cpu"
        assert launched["server_port"] == 7999 and launched["max_file_size"] == 12 * 2**20
        assert app.holder.ensure_loaded().path.name == "other.safetensors"


def test_a_space_locks_the_model_unless_its_owner_turns_it_on():
    """On a Hugging Face Space (``SPACE_ID`` set) no visitor may swap the model for everyone by default."""
    from playground.settings import from_env
    assert not from_env({}).lock_model
    assert from_env({"SPACE_ID": "someone/gpt2-playground"}).lock_model
    assert not from_env({"SPACE_ID": "someone/gpt2-playground", "PLAYGROUND_LOCK_MODEL": "0"}).lock_model
    assert from_env({"PLAYGROUND_LOCK_MODEL": "1"}).lock_model
