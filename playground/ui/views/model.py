"""The Model tab's computation: what is loaded; loading a file, an upload or a Hub download."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from ...checkpoints import WeightsError
from ...checkpoints.hub import HUB_REPOS, HubUnavailableError, download_gpt2
from ...inspection.params import fmt_int
from .. import validate as v
from ..state import ModelHolder
from ..validate import InputError

log = logging.getLogger("playground.ui")


def model_markdown(info: dict[str, Any]) -> str:
    if not info.get("loaded"):
        return f"### No model loaded\n{info.get('message', '')}"
    cfg = info["config"]
    sha = info["sha256_prefix"] or "computing…"
    main = (f"### Loaded: {info['name']}\n"
            f"- **file:** `{info['file']}`, {info['file_size_bytes'] / 1e6:,.1f} MB\n"
            f"- **parameters:** {fmt_int(info['parameters'])}\n"
            f"- **config:** {cfg['n_layers']} layers, {cfg['n_heads']} heads, emb_dim {cfg['emb_dim']}, "
            f"context {cfg['context_length']}, vocab {cfg['vocab_size']:,}, qkv_bias {cfg['qkv_bias']}, "
            f"tied head {cfg['tie_embeddings']}\n"
            f"- **runs as:** {info['dtype']} on {info['device']}")
    # What a student does not need first (the file's layout and hash, the decoder's kernels) folds away.
    advanced = (f"- **stored as:** {info['layout']} layout, {info['file_dtype']}, sha256 `{sha}`"
                + "".join(f"\n- **fast decoder, {precision}:** " + ", ".join(f"`{m} {k}`" for m, k in kernels.items())
                          for precision, kernels in info.get("kernels", {}).items())
                + (f" (the fastest layouts measured on this `{info['cpu']}`)" if info.get("kernels") and info.get("cpu")
                   else "")
                + "".join(f"\n- **{precision} cannot use** " + "; ".join(f"`{layout}`: {why}"
                                                                       for layout, why in missing.items())
                          for precision, missing in info.get("kernels_missing", {}).items()))
    return (f"{main}\n\n<details><summary>Advanced: the file's layout and hash, the fast decoder's kernels</summary>"
            f"\n\n{advanced}\n\n</details>")


def card_markdown(holder: ModelHolder, lang: str = "en") -> str:
    """The loaded model's card (``<weights>.card.json``) in ``lang``, or a line saying there is none."""
    snap = holder.current()
    if snap is None:
        return ""
    card = snap.card
    if card is None:
        why = "still computing its sha256…" if snap.sha256 is None else "no card names this file's sha256"
        return f"*No model card for {snap.path.name} ({why}).*"
    return card.localized(lang).markdown()


def weight_files(folder: Path) -> list[str]:
    """Names of the ``.safetensors`` files in ``folder`` (sorted; none if it does not exist)."""
    try:
        return sorted(p.name for p in folder.iterdir() if p.suffix == ".safetensors" and p.is_file())
    except OSError:
        return []


def load_weights(holder: ModelHolder, path: Any, name: str | None = None) -> tuple[bool, str]:
    """Load a file for everyone; ``(ok, message)``. A bad file leaves the current model in place."""
    if not path:
        return False, "Choose a file first."
    path = Path(str(path))
    shown = name or path.name
    try:
        snap = holder.load(path, name=Path(shown).stem)
    except WeightsError as e:
        keep = holder.current()
        kept = f" The model in use is still **{keep.name}**." if keep else ""
        return False, f"✗ Could not load **{shown}**: {e}.{kept}"
    except OSError as e:
        return False, f"✗ Could not read **{shown}**: {e.strerror or e}."
    except RuntimeError as e:   # e.g. out of memory on the GPU: the old model stays
        log.error("loading %s failed", path, exc_info=True)
        keep = holder.current()
        kept = f" The model in use is still **{keep.name}**." if keep else ""
        return False, f"✗ Could not load **{shown}**: {type(e).__name__}: {e}.{kept}"
    return True, (f"✓ Loaded **{snap.name}** ({fmt_int(snap.model.num_parameters())} parameters) in "
                  f"{snap.load_seconds:.1f} s. Everyone using this app now uses this model.")


def check_upload(path: Any, max_mb: int) -> Path:
    """An uploaded file that may go to the loader: a ``.safetensors`` name, at most ``max_mb`` MB.

    Gradio enforces both before the handler runs (``file_types``, ``max_file_size``); this is the
    same rule again where the file is used, so a change of component or launch cannot drop it."""
    if not isinstance(path, str) or not path:
        raise InputError("Choose a .safetensors file to upload.")
    p = Path(path)
    if p.suffix.lower() != v.UPLOAD_SUFFIX:
        raise InputError(f"Only .safetensors files can be loaded ({p.name!r} is not one). Pickled PyTorch "
                         "files (.pt, .bin, .ckpt) are never loaded: they can run code.")
    try:
        size = p.stat().st_size
    except (OSError, ValueError):
        raise InputError("The uploaded file could not be read; upload it again.") from None
    if size > max_mb * 2**20:
        raise InputError(f"{p.name} is {size / 2**20:,.0f} MB; uploads are limited to {max_mb:,} MB on this server.")
    return p


def download_and_load(holder: ModelHolder, size: Any, progress: Callable | None = None) -> tuple[bool, str]:
    """Fetch an OpenAI GPT-2 size from the Hub (or its cache) and load it; offline, the engine's message."""
    size = v.choice(size, "Model size", {k: k for k in HUB_REPOS})
    if progress:
        progress(0, desc=f"Fetching {size} from the Hugging Face Hub…")
    try:
        path = download_gpt2(size)
    except HubUnavailableError as e:
        return False, f"✗ {e}"
    if progress:
        progress(1, desc="Loading…")
    return load_weights(holder, path, f"{size}.safetensors")


def resolve_in(folder: Path, name: Any) -> Path:
    """A file name chosen from ``folder``'s list, refusing anything that leaves the folder."""
    if not isinstance(name, str) or not name:
        raise InputError("Choose a file from the list first.")
    try:
        path = (folder / name).resolve()
    except (OSError, ValueError):          # a NUL byte, a loop of links
        raise InputError("Choose one of the listed .safetensors files.") from None
    if path.parent != folder.resolve() or path.suffix != ".safetensors":
        raise InputError("Choose one of the listed .safetensors files.")
    return path
