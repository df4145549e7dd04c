"""The server's limits seen over HTTP: a full queue answers "Queue is full", a full batch "busy"."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from playground.batching import Batcher
from playground.checkpoints import save_model
from tests.factories import make_model
from tests.live_app import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def launch(tmp_path):
    """``launch(**build_demo_kwargs) -> (Client, demo)`` on a tiny model; everything closed afterwards."""
    from gradio_client import Client

    from playground.ui import ModelHolder, build_demo, launch_kwargs
    weights = save_model(make_model(), tmp_path / "tiny.safetensors")
    opened = []
    before = torch.get_num_threads()
    torch.set_num_threads(1)

    def start(**kwargs):
        demo = build_demo(ModelHolder(weights, device="cpu"), weights_dir=tmp_path, **kwargs)
        _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                                quiet=True, **launch_kwargs())
        client = Client(url, verbose=False)
        opened.append((client, demo))
        return client, demo
    try:
        yield start
    finally:
        for client, demo in opened:
            client.close()
            demo.close()
        torch.set_num_threads(before)


def test_a_full_queue_is_refused_with_its_reason(launch, monkeypatch):
    """queue_size=1: one view running, one waiting, the next refused at once with "Queue is full"."""
    from playground.ui.views import attention as att_view
    release = threading.Event()
    real = att_view.attention_view

    def held(*args, **kwargs):
        release.wait(30)
        return real(*args, **kwargs)
    monkeypatch.setattr(att_view, "attention_view", held)
    client, _ = launch(queue_size=1)
    jobs = [client.submit("The cat sat", 0, 0, "single head", api_name="/attention") for _ in range(3)]
    errors, done = [], []
    deadline = time.time() + 20
    while time.time() < deadline and not errors:
        for job in jobs:
            if job.done():
                try:
                    job.result()
                except Exception as e:                       # the refusal, as gradio_client raises it
                    errors.append(str(e))
        time.sleep(0.05)
    release.set()
    assert any("Queue is full" in e for e in errors), errors
    done = [job for job in jobs if not _failed(job)]
    assert len(done) == 2 and all(job.result(timeout=30)["tokens"] for job in done)   # the others still answer


def _failed(job) -> bool:
    try:
        job.result(timeout=30)
        return False
    except Exception:
        return True


def test_a_full_batch_says_the_server_is_busy(launch, monkeypatch):
    """Two generations may run (the queue lets as many in as the batch holds) but the cache has room for one
    row, and a row waits at most 0.3 s: the second is told the server is busy, in a sentence, while the first
    (read slowly, so it stays in the batch) finishes whole."""
    from playground.ui.views import generate as gen_view
    real = gen_view.stream_generation

    def slow(*args, **kwargs):
        for view in real(*args, **kwargs):
            time.sleep(0.01)
            yield view
    monkeypatch.setattr(gen_view, "stream_generation", slow)
    from tests.factories import TINY
    one_row = TINY.n_layers * 2 * TINY.n_heads * TINY.context_length * TINY.head_dim * 4      # fp32 K and V
    batcher = Batcher(max_batch=2, max_wait_s=0.3, cache_budget_bytes=one_row)
    client, _ = launch(batcher=batcher)
    first = client.submit("Once upon a time", 300, 1.0, 0, 1.0, 1, 3, "fp32", api_name="/generate")
    deadline = time.time() + 20
    while batcher.active_rows() == 0 and time.time() < deadline:
        time.sleep(0.01)
    assert batcher.active_rows() == 1
    with pytest.raises(Exception, match="(?i)busy|full"):
        client.predict("Hello", 5, 1.0, 0, 1.0, 2, 3, "fp32", api_name="/generate")
    messages = list(first)
    assert messages[-1]["done"] and len(messages) == 301
