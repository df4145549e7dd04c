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
