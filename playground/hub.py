"""Optional download of OpenAI's GPT-2 checkpoints from the Hugging Face Hub.

Nothing else in the project touches the network. Offline, this fails at once
with a message saying where to put a ``model.safetensors`` downloaded elsewhere.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

HUB_REPOS = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}
HUB_HOST = "huggingface.co"


class HubUnavailableError(RuntimeError):
    pass


def offline_message(size: str) -> str:
    repo = HUB_REPOS[size]
    return (f"The Hugging Face Hub cannot be reached from this machine, so {size} cannot be downloaded. "
            f"Download model.safetensors from https://{HUB_HOST}/{repo} on a machine with internet, "
            f"then put it in the weights/ folder (e.g. weights/{size}.safetensors) or upload it "
            "in the Model tab.")


def hub_reachable(timeout: float = 2.0) -> bool:
    """False when offline mode is set or the Hub's port cannot be opened quickly."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def download_gpt2(size: str, cache_dir: "str | Path | None" = None) -> Path:
    """Path of ``model.safetensors`` for an OpenAI GPT-2 size, from the cache or the Hub."""
    if size not in HUB_REPOS:
        raise ValueError(f"unknown GPT-2 size {size!r}; choose one of: {', '.join(HUB_REPOS)}")
    from huggingface_hub import hf_hub_download

    repo = HUB_REPOS[size]
    try:  # already downloaded: works offline
        return Path(hf_hub_download(repo, "model.safetensors", cache_dir=cache_dir, local_files_only=True))
    except Exception:
        pass
    if not hub_reachable():
        raise HubUnavailableError(offline_message(size))
    try:
        path = Path(hf_hub_download(repo, "model.safetensors", cache_dir=cache_dir))
        hf_hub_download(repo, "config.json", cache_dir=cache_dir)  # gives n_head to the loader
        return path
    except Exception as e:
        raise HubUnavailableError(f"{offline_message(size)} (download failed: {type(e).__name__})") from e
