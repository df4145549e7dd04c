"""Every kind of broken weights file, offered to the running app: each gets a message naming the
problem, and the model in use stays loaded and keeps answering, for this user and for others.

The files come from ``tests.test_weights.broken_files`` (the loader's own suite)."""
from __future__ import annotations

import re
import threading
from contextlib import closing

import pytest
import torch

from playground.ui.views.generate import check_generate, stream_generation
from playground.ui.views.model import load_weights
from playground.ui.state import ModelHolder
from playground.checkpoints import save_model
from tests.factories import make_model
from tests.live_app import file_data, fn_index, imported_app, page_event, served, upload
from tests.test_weights import broken_files

NOT_UPLOADABLE = {"missing_file", "folder"}       # not files: they cannot be uploaded


def all_broken(tmp_path) -> list[tuple[str, object, str]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cases = broken_files(tmp_path)
    renamed = tmp_path / "torch_save.safetensors"
    torch.save({"w": torch.zeros(2)}, renamed)              # a real .pt checkpoint, renamed
    cases.append(("torch_save_renamed", renamed, "zip archive|pickle"))
    return cases


def answers(snap) -> list[int]:
    """Greedy next tokens: the model still works (and is the same model)."""
    req = check_generate(snap, "The cat sat on the", 4, 0.0, 0, 1.0, 0, 1)
    *_, last = stream_generation(snap, req)
    return last.ids


def test_each_broken_file_is_named_and_the_model_stays(tmp_path):
    good = save_model(make_model(), tmp_path / "tiny.safetensors")
    holder = ModelHolder(good, device="cpu", hash_in_background=False)
    before = holder.require()
    expected = answers(before)
    cases = all_broken(tmp_path / "broken")
    assert len(cases) >= 23
    for name, path, match in cases:
        ok, message = load_weights(holder, path, getattr(path, "name", str(path)))
        assert not ok, name
        assert re.search(match, message), (name, message)
        assert "The model in use is still **tiny**" in message or "Could not read" in message, (name, message)
        assert holder.current() is before, name
    assert holder.info()["loaded"] and answers(holder.require()) == expected


@pytest.mark.slow
def test_broken_uploads_while_another_user_generates(tmp_path):
    """Upload every broken file through the page while a second client streams a generation."""
    from gradio_client import Client
    good = save_model(make_model(), tmp_path / "tiny.safetensors")
    cases = [c for c in all_broken(tmp_path / "broken") if c[0] not in NOT_UPLOADABLE]
    with imported_app({"PLAYGROUND_WEIGHTS": str(good)}) as app, served(app.demo) as url:
        with closing(Client(url, verbose=False)) as client:
            reference = client.predict("Once upon a time", 200, 1.0, 0, 1.0, 7, 2, api_name="/generate")
            other_user = {}
            worker = threading.Thread(target=lambda: other_user.update(
                client.predict("Once upon a time", 200, 1.0, 0, 1.0, 7, 2, api_name="/generate")))
            worker.start()
            index = fn_index(app.demo, "ui_load_upload")
            for name, path, match in cases:
                r = upload(url, path)
                assert r.status_code == 200, (name, r.text)
                answer = page_event(url, index, [file_data(r.json()[0], path.name)])
                assert answer["success"], (name, answer)            # an answer, not a server error
                status = answer["output"]["data"][0]
                assert "Could not load" in status and re.search(match, status), (name, status)
                assert "still **tiny**" in status
                assert app.holder.current().name == "tiny"
            worker.join(60)
            assert other_user["generated_text"] == reference["generated_text"]
            after = client.predict("Once upon a time", 200, 1.0, 0, 1.0, 7, 2, api_name="/generate")
            assert after["generated_text"] == reference["generated_text"]
            assert client.predict(api_name="/model_info")["name"] == "tiny"
    print(f"\nbroken files uploaded: {len(cases)} ({', '.join(n for n, _, _ in cases)})")
