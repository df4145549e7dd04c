"""The app on a tiny model, attacked through HTTP: no server file is served or loaded except an
upload, uploads are size-capped and ``.safetensors`` only, and they never land in ``weights/``."""
from __future__ import annotations

import json
import re
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import torch

from playground.paths import WEIGHTS_DIR
from playground.ui import validate as v
from playground.checkpoints import save_model
from tests.factories import make_model
from tests.live_app import call_raw, file_data, fn_index, imported_app, page_event, served, stream_events, upload

LIMIT_MB = 8            # the tiny model is 6.5 MB: it fits, a 9 MB file does not


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    folder = tmp_path_factory.mktemp("w")
    weights = save_model(make_model(), folder / "tiny.safetensors")
    with imported_app({"PLAYGROUND_WEIGHTS": str(weights), v.UPLOAD_ENV: str(LIMIT_MB)}) as app:
        assert app.holder.ensure_loaded() is not None     # the tests compare against the model in use
        with served(app.demo) as url:
            yield app, url, folder


def model_name(app) -> str:
    """The model the running server uses (it runs in this process)."""
    return app.holder.current().name


def weights_listing() -> dict[str, float]:
    if not WEIGHTS_DIR.exists():
        return {}
    return {str(p): p.stat().st_mtime for p in WEIGHTS_DIR.rglob("*")}


def test_upload_limit_reads_its_variable():
    assert v.upload_limit_mb({}) == v.DEFAULT_UPLOAD_MB == 1024
    assert v.upload_limit_mb({v.UPLOAD_ENV: " 200 "}) == 200
    for bad in ("lots", "0", "-5"):
        with pytest.raises(ValueError, match=v.UPLOAD_ENV):
            v.upload_limit_mb({v.UPLOAD_ENV: bad})


def test_check_upload_refuses_other_names_and_big_files(tmp_path):
    from playground.ui.views.model import check_upload
    for name in ("model.pt", "model.bin", "model.safetensors.pt", "model.ckpt", "model"):
        (tmp_path / name).write_bytes(b"x")
        with pytest.raises(v.InputError, match="Only .safetensors"):
            check_upload(str(tmp_path / name), 1)
    big = tmp_path / "big.safetensors"
    big.write_bytes(b"\0" * (2 * 2**20))
    with pytest.raises(v.InputError, match="limited to 1 MB"):
        check_upload(str(big), 1)
    assert check_upload(str(big), 2) == big
    for missing in (None, "", 3, str(tmp_path / "gone.safetensors"), "x\x00.safetensors"):
        with pytest.raises(v.InputError):
            check_upload(missing, 1)


@pytest.mark.parametrize("route", [
    "/gradio_api/file=../../etc/passwd", "/gradio_api/file=/etc/passwd", "/gradio_api/file=%2e%2e/%2e%2e/etc/passwd",
    "/gradio_api/file=..%2f..%2f..%2fetc%2fpasswd", "/gradio_api/file=/proc/self/environ", "/gradio_api/file=app.py",
    "/gradio_api/file=/work/main/app.py", "/file=/etc/passwd", "/gradio_api/file=~/.bashrc",
    "/static/../../../../etc/passwd", "/assets/..%2f..%2f..%2fetc/passwd", "/gradio_api/file={weights}",
])
def test_no_route_serves_a_server_file(live, route):
    _, url, folder = live
    path = route.format(weights=folder / "tiny.safetensors")
    r = httpx.get(url + path, timeout=30)
    assert r.status_code in (403, 404), (path, r.status_code)
    assert "root:" not in r.text and "PLAYGROUND_" not in r.text and "import" not in r.text


def test_the_api_takes_no_path_and_cannot_reach_the_page_events(live):
    from gradio_client import Client
    app, url, _ = live
    with closing(Client(url, verbose=False)) as client:
        api = client.view_api(return_format="dict", print_info=False)
        for name, spec in api["named_endpoints"].items():
            for p in spec["parameters"]:
                assert "file" not in json.dumps(p["type"]).lower(), (name, p)
        with pytest.raises(ValueError, match="Invalid function index"):
            client.predict("../../etc/passwd", fn_index=fn_index(app.demo, "ui_load_file"))
        # A path sent where the API takes text is only text.
        out = client.predict("../../etc/passwd", "en", api_name="/trace")
        assert "".join(out["tokens"]) == "../../etc/passwd"
        assert client.predict(api_name="/model_info")["name"] == "tiny"
    for name in ("ui_load_file", "ui_load_upload"):
        events = stream_events(call_raw(url, name, json.dumps({"data": ["../../etc/passwd"]})))
        assert events and events[-1][0] == "error"
    assert model_name(app) == "tiny"


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..", "../tiny.safetensors",
                                  "%2e%2e/%2e%2e/etc/passwd"])
def test_load_from_folder_refuses_traversal(live, name):
    app, url, _ = live
    answer = page_event(url, fn_index(app.demo, "ui_load_file"), [name])
    assert answer["success"] is False
    assert model_name(app) == "tiny"


@pytest.mark.parametrize("which", ["/etc/passwd", "../../../../etc/passwd", "weights", "/proc/self/environ"])
def test_upload_event_refuses_a_server_path(live, which):
    app, url, folder = live
    path = str(folder / "tiny.safetensors") if which == "weights" else which
    answer = page_event(url, fn_index(app.demo, "ui_load_upload"), [file_data(path, "x.safetensors")])
    assert answer["success"] is False and "not uploaded by a user" in answer["output"]["error"]
    assert model_name(app) == "tiny"


def test_upload_over_the_limit_is_refused(live, tmp_path):
    _, url, _ = live
    big = tmp_path / "big.safetensors"
    big.write_bytes(b"\0" * ((LIMIT_MB + 1) * 2**20))
    r = upload(url, big)
    assert r.status_code == 413, r.text
    config = httpx.get(url + "/config", timeout=30).json()
    assert config["max_file_size"] == LIMIT_MB * 2**20          # the page refuses it before sending, too


@pytest.mark.parametrize("name", ["model.pt", "model.bin", "weights.zip", "model.safetensors.pt"])
def test_only_safetensors_uploads_are_loaded(live, tmp_path, name):
    app, url, _ = live
    path = tmp_path / name
    torch.save({"w": torch.zeros(2)}, path)
    r = upload(url, path)
    assert r.status_code == 200
    answer = page_event(url, fn_index(app.demo, "ui_load_upload"), [file_data(r.json()[0], name)])
    assert answer["success"] is False and re.search(r"Invalid file type|Only \.safetensors",
                                                    answer["output"]["error"])
    assert model_name(app) == "tiny"


def test_a_good_upload_loads_from_the_temp_folder_not_weights(live, tmp_path):
    app, url, folder = live
    before = weights_listing()
    other = save_model(make_model(seed=1), tmp_path / "other.safetensors")
    r = upload(url, other)
    server_path = Path(r.json()[0])
    answer = page_event(url, fn_index(app.demo, "ui_load_upload"), [file_data(str(server_path), other.name)])
    assert answer["success"], answer
    assert "Loaded **other**" in answer["output"]["data"][0]
    snap = app.holder.current()
    assert snap.name == "other" and snap.path == server_path
    assert not server_path.resolve().is_relative_to(WEIGHTS_DIR.resolve())
    assert not server_path.resolve().is_relative_to(Path.cwd().resolve())
    assert weights_listing() == before
    # Back to the tiny model for whoever runs next.
    r = upload(url, folder / "tiny.safetensors")
    assert page_event(url, fn_index(app.demo, "ui_load_upload"),
                      [file_data(r.json()[0], "tiny.safetensors")])["success"]
    assert model_name(app) == "tiny"


def test_locked_server_refuses_every_model_change(tmp_path):
    from playground.ui import build_demo
    from playground.ui.state import ModelHolder
    weights = save_model(make_model(), tmp_path / "tiny.safetensors")
    demo = build_demo(ModelHolder(weights, device="cpu"), weights_dir=tmp_path, allow_model_change=False)
    fns = {f.fn.__name__: f.fn for f in demo.fns.values() if f.fn is not None}
    import gradio as gr
    for name, arg in (("ui_load_file", "tiny.safetensors"), ("ui_load_upload", str(weights)),
                      ("ui_download", "gpt2")):
        with pytest.raises(gr.Error, match="switched off"):
            fns[name](arg)
