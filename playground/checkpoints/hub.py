"""Optional download of OpenAI's GPT-2 checkpoints from the Hugging Face Hub (or a mirror).

Nothing else in the project touches the network. The Hub's address comes from
``HF_ENDPOINT`` (mirrors are common where the Hub is slow or blocked) and
``HF_HUB_OFFLINE=1`` forbids the network, both read at each call, not at import.
A file already in the cache loads with no network at all. Every failure says
what happened: offline, unreachable, not found, disk full, no permission, a
corrupt cache.
"""
from __future__ import annotations

import errno
import logging
import os
import socket
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

HUB_REPOS = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}
DEFAULT_ENDPOINT = "https://huggingface.co"


class HubUnavailableError(RuntimeError):
    """The checkpoint could not be had; the message says why and what to do instead."""


def hub_endpoint() -> str:
    """``$HF_ENDPOINT`` (a mirror) or the Hub itself, without a trailing slash."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def where_to_put(size: str) -> str:
    repo = HUB_REPOS[size]
    return (f"Download model.safetensors from {hub_endpoint()}/{repo} on a machine with internet, then put "
            f"it in the weights/ folder (e.g. weights/{size}.safetensors) or upload it in the Model tab.")


def offline_message(size: str) -> str:
    if hub_offline():
        why = "HF_HUB_OFFLINE is set, so nothing is downloaded"
    else:
        why = f"{hub_endpoint()} cannot be reached from this machine"
    return f"{size} is not in the local cache and {why}. {where_to_put(size)}"


def hub_reachable(timeout: float = 2.0, endpoint: str | None = None) -> bool:
    """False when offline mode is set or the endpoint's port cannot be opened quickly."""
    if hub_offline():
        return False
    parts = urlsplit(endpoint or hub_endpoint())
    host = parts.hostname
    if not host:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _os_reason(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "the disk is full"
    if isinstance(e, PermissionError) or e.errno in (errno.EACCES, errno.EPERM):
        return f"no permission to write the cache ({e.filename or e})"
    return f"{e.strerror or e}"


def _explain(size: str, e: Exception) -> str:
    """One sentence for a failed download, naming what happened."""
    from huggingface_hub import errors as hf

    repo = HUB_REPOS[size]
    if isinstance(e, (hf.RepositoryNotFoundError, hf.GatedRepoError)):
        return f"{hub_endpoint()} has no repository {repo} (or it is private)."
    if isinstance(e, hf.LocalEntryNotFoundError):      # (a subclass of EntryNotFoundError): no connection
        return offline_message(size)
    if isinstance(e, (hf.EntryNotFoundError, hf.RemoteEntryNotFoundError)):
        return f"{repo} on {hub_endpoint()} has no model.safetensors."
    if isinstance(e, hf.HfHubHTTPError):
        status = getattr(getattr(e, "response", None), "status_code", None)
        return f"{hub_endpoint()} answered with an error{f' (HTTP {status})' if status else ''}: {e}"
    if isinstance(e, OSError):
        return f"Downloading {size} failed: {_os_reason(e)}."
    return f"Downloading {size} failed: {type(e).__name__}: {e}"


def _cached(repo: str, cache_dir: "str | Path | None") -> Path | None:
    """The cached file, None when it is not cached; a broken cache is an error, not a miss."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = Path(hf_hub_download(repo, "model.safetensors", cache_dir=cache_dir, local_files_only=True))
    except LocalEntryNotFoundError:
        return None
    except OSError as e:
        raise HubUnavailableError(f"The local Hub cache could not be read: {_os_reason(e)}.") from e
    if not path.is_file():
        raise HubUnavailableError(f"The local Hub cache is corrupt: {path} is listed but missing. "
                                  "Delete that folder and download again.")
    return path


def download_gpt2(size: str, cache_dir: "str | Path | None" = None,
                  tqdm_class: Callable | None = None) -> Path:
    """Path of ``model.safetensors`` for an OpenAI GPT-2 size: from the cache, else from the endpoint.

    ``tqdm_class`` receives huggingface_hub's download progress (the app's log or page).
    """
    if size not in HUB_REPOS:
        raise ValueError(f"unknown GPT-2 size {size!r}; choose one of: {', '.join(HUB_REPOS)}")
    from huggingface_hub import hf_hub_download

    repo = HUB_REPOS[size]
    cache_dir = cache_dir or os.environ.get("HF_HUB_CACHE") or None   # read now, not at import
    cached = _cached(repo, cache_dir)
    if cached is not None:
        return cached
    endpoint = hub_endpoint()
    if not hub_reachable(endpoint=endpoint):
        raise HubUnavailableError(offline_message(size))
    extra = {"tqdm_class": tqdm_class} if tqdm_class is not None else {}
    try:
        log.info("downloading %s from %s/%s (once; later starts use the cache)", size, endpoint, repo)
        start = time.perf_counter()
        path = Path(hf_hub_download(repo, "model.safetensors", cache_dir=cache_dir, endpoint=endpoint, **extra))
        hf_hub_download(repo, "config.json", cache_dir=cache_dir, endpoint=endpoint)  # n_head for the loader
        log.info("downloaded %s (%.1f MB) in %.1f s to %s", size, path.stat().st_size / 1e6,
                 time.perf_counter() - start, path)
        return path
    except HubUnavailableError:
        raise
    except Exception as e:  # huggingface_hub raises many types; each gets its own sentence
        log.warning("download of %s failed", size, exc_info=True)
        raise HubUnavailableError(_explain(size, e)) from e
