import socket

import pytest

from playground.checkpoints import hub


def test_offline_env_fails_at_once_with_guidance(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    def no_network(*a, **k):
        raise AssertionError("the network was touched")
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(hub.HubUnavailableError) as err:
        hub.download_gpt2("gpt2-medium", cache_dir=tmp_path)
    msg = str(err.value)
    assert "HF_HUB_OFFLINE" in msg and "openai-community/gpt2-medium" in msg
    assert "weights/" in msg and "model.safetensors" in msg


def test_unreachable_host_gives_same_message(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    def refuse(*a, **k):
        raise OSError("unreachable")
    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(hub.HubUnavailableError, match="cannot be reached"):
        hub.download_gpt2("gpt2", cache_dir=tmp_path)


def test_unknown_size():
    with pytest.raises(ValueError, match="unknown GPT-2 size"):
        hub.download_gpt2("gpt3")


# ------------------------------------------------------------------------------------ what went wrong

def _fake_hub(monkeypatch, cached=None, download=None):
    """Stand-ins for huggingface_hub's download: ``cached`` for the cache look-up, ``download`` for the fetch."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def fake(repo, filename, *, local_files_only=False, **kwargs):
        if local_files_only:
            if cached is None:
                raise LocalEntryNotFoundError("not cached")
            return cached(repo, filename)
        return download(repo, filename, **kwargs)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=2.0, endpoint=None: True)


def test_a_full_disk_is_named(monkeypatch, tmp_path):
    import errno

    def full(repo, filename, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    _fake_hub(monkeypatch, download=full)
    with pytest.raises(hub.HubUnavailableError, match="the disk is full") as err:
        hub.download_gpt2("gpt2", cache_dir=tmp_path)
    assert "cannot be reached" not in str(err.value)


def test_no_permission_is_named(monkeypatch, tmp_path):
    def denied(repo, filename, **kwargs):
        raise PermissionError(13, "Permission denied", "/root/.cache/huggingface")
    _fake_hub(monkeypatch, download=denied)
    with pytest.raises(hub.HubUnavailableError, match="no permission"):
        hub.download_gpt2("gpt2", cache_dir=tmp_path)


def test_a_broken_cache_is_an_error_not_a_miss(monkeypatch, tmp_path):
    def unreadable(repo, filename):
        raise PermissionError(13, "Permission denied", str(tmp_path))
    _fake_hub(monkeypatch, cached=unreadable, download=lambda *a, **k: pytest.fail("downloaded anyway"))
    with pytest.raises(hub.HubUnavailableError, match="local Hub cache could not be read"):
        hub.download_gpt2("gpt2", cache_dir=tmp_path)
    _fake_hub(monkeypatch, cached=lambda repo, filename: str(tmp_path / "gone" / filename),
              download=lambda *a, **k: pytest.fail("downloaded anyway"))
    with pytest.raises(hub.HubUnavailableError, match="corrupt"):
        hub.download_gpt2("gpt2", cache_dir=tmp_path)


def test_a_missing_repository_is_named(monkeypatch, tmp_path):
    from huggingface_hub.errors import RepositoryNotFoundError

    import httpx
    response = httpx.Response(404, request=httpx.Request("GET", "http://127.0.0.1/x"))

    def missing(repo, filename, **kwargs):
        raise RepositoryNotFoundError("404 Client Error", response=response)
    _fake_hub(monkeypatch, download=missing)
    with pytest.raises(hub.HubUnavailableError, match="has no repository openai-community/gpt2"):
        hub.download_gpt2("gpt2", cache_dir=tmp_path)


def test_the_endpoint_comes_from_hf_endpoint(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    seen = []

    def connect(address, timeout=None):
        seen.append(address)
        raise OSError("refused")
    monkeypatch.setattr(socket, "create_connection", connect)
    assert hub.hub_endpoint() == "http://127.0.0.1:9"
    assert not hub.hub_reachable()
    assert seen == [("127.0.0.1", 9)]
    assert "http://127.0.0.1:9/openai-community/gpt2" in hub.offline_message("gpt2")
