"""The Hub path end to end, against a local server in the Hub's layout reached through ``HF_ENDPOINT``:
``--weights gpt2`` downloads once, caches, loads; a second start works with the server gone."""
from __future__ import annotations

import contextlib
import hashlib
import http.server
import threading
from pathlib import Path
from typing import Iterator

import pytest
import torch
import transformers  # pinned in requirements-dev.txt: a broken install fails here, never skips

from playground.checkpoints import hub
from playground.ui.state import ModelHolder

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def tiny_hf_gpt2(folder: Path) -> dict[str, bytes]:
    """A small random GPT2LMHeadModel saved by transformers: the files the Hub serves."""
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64, vocab_size=50257)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(folder, safe_serialization=True)
    return {name: (folder / name).read_bytes() for name in ("model.safetensors", "config.json")}


@contextlib.contextmanager
def hub_server(files: dict[str, bytes], repo: str, seen: list[str]) -> Iterator[str]:
    """``{endpoint}/{repo}/resolve/{revision}/{file}`` with the headers huggingface_hub reads."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def _body(self) -> bytes | None:
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) == 5 and "/".join(parts[:2]) == repo and parts[2] == "resolve":
                return files.get(parts[4])
            return None

        def _headers(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
            self.end_headers()

        def _serve(self, method: str) -> None:
            body = self._body()
            seen.append(f"{method} {self.path}")
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self._headers(body)
            if method == "GET":
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self._serve("HEAD")

        def do_GET(self) -> None:
            self._serve("GET")

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_weights_gpt2_downloads_once_then_starts_without_the_server(tmp_path, monkeypatch):
    files = tiny_hf_gpt2(tmp_path / "made")
    import huggingface_hub.constants
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # conftest.py sets HF_HUB_OFFLINE=1 before huggingface_hub is imported, which reads it once then.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)                       # no file called "gpt2" here
    seen: list[str] = []
    with hub_server(files, hub.HUB_REPOS["gpt2"], seen) as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        first = ModelHolder("gpt2", device="cpu", hash_in_background=False, prepare_fast_weights=False)
        snap = first.ensure_loaded()
        assert snap is not None, first.startup_error
        assert snap.name == "gpt2" and snap.layout == "huggingface"
        assert snap.model.cfg.n_heads == 4 and snap.model.cfg.n_layers == 2     # config.json came along
        assert any(s.startswith("GET /openai-community/gpt2/resolve/") for s in seen)
        assert snap.path.is_relative_to(tmp_path / "cache")
    # The server is gone: a second start finds the cached file and never asks the network.
    gets = len(seen)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    second = ModelHolder("gpt2", device="cpu", hash_in_background=False, prepare_fast_weights=False)
    again = second.ensure_loaded()
    assert again is not None, second.startup_error
    assert again.path == snap.path and len(seen) == gets
    ids = torch.tensor([[464, 3797, 3332]])
    with torch.no_grad():
        torch.testing.assert_close(again.model(ids), snap.model(ids))


def test_weights_gpt2_without_cache_or_network_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    holder = ModelHolder("gpt2-medium", device="cpu", hash_in_background=False, prepare_fast_weights=False)
    assert holder.ensure_loaded() is None
    assert "HF_HUB_OFFLINE" in holder.missing_message() and "gpt2-medium" in holder.missing_message()
