"""Hugging Face / OpenAI GPT-2 checkpoints -> our module names, with one declarative map.

HF GPT-2 uses ``Conv1D`` layers that store weights as (in, out): those are
transposed. ``c_attn`` holds query, key and value side by side (emb, 3*emb):
split in three along the last axis. The ``attn.bias`` / ``attn.masked_bias``
buffers are causal masks, not weights, and are ignored.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ..config import GPTConfig
from .files import WeightsError, check_keys

# HF key -> our key(s). "{}" is the block index. A tuple means "split in equal parts".
KEY_MAP: dict[str, "str | tuple[str, ...]"] = {
    "wte.weight": "tok_emb.weight",
    "wpe.weight": "pos_emb.weight",
    "ln_f.weight": "final_norm.scale",
    "ln_f.bias": "final_norm.shift",
    "lm_head.weight": "out_head.weight",
    "h.{}.ln_1.weight": "trf_blocks.{}.norm1.scale",
    "h.{}.ln_1.bias": "trf_blocks.{}.norm1.shift",
    "h.{}.attn.c_attn.weight": ("trf_blocks.{}.att.W_query.weight",
                                "trf_blocks.{}.att.W_key.weight",
                                "trf_blocks.{}.att.W_value.weight"),
    "h.{}.attn.c_attn.bias": ("trf_blocks.{}.att.W_query.bias",
                              "trf_blocks.{}.att.W_key.bias",
                              "trf_blocks.{}.att.W_value.bias"),
    "h.{}.attn.c_proj.weight": "trf_blocks.{}.att.out_proj.weight",
    "h.{}.attn.c_proj.bias": "trf_blocks.{}.att.out_proj.bias",
    "h.{}.ln_2.weight": "trf_blocks.{}.norm2.scale",
    "h.{}.ln_2.bias": "trf_blocks.{}.norm2.shift",
    "h.{}.mlp.c_fc.weight": "trf_blocks.{}.ff.layers.0.weight",
    "h.{}.mlp.c_fc.bias": "trf_blocks.{}.ff.layers.0.bias",
    "h.{}.mlp.c_proj.weight": "trf_blocks.{}.ff.layers.2.weight",
    "h.{}.mlp.c_proj.bias": "trf_blocks.{}.ff.layers.2.bias",
}
# Conv1D weights, stored (in, out): transpose to nn.Linear's (out, in).
TRANSPOSED = {"h.{}.attn.c_attn.weight", "h.{}.attn.c_proj.weight",
              "h.{}.mlp.c_fc.weight", "h.{}.mlp.c_proj.weight"}
IGNORED = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")
PREFIX = "transformer."
# OpenAI's sizes: width -> heads (the head count is not visible in the shapes).
KNOWN_HEADS = {768: 12, 1024: 16, 1280: 20, 1600: 25}


def _strip(key: str) -> str:
    return key[len(PREFIX):] if key.startswith(PREFIX) else key


def looks_like_hf(shapes: dict[str, tuple[int, ...]]) -> bool:
    return "wte.weight" in {_strip(k) for k in shapes}


def _template(key: str) -> tuple[str, int | None]:
    m = re.match(r"^h\.(\d+)\.(.*)$", key)
    return (f"h.{{}}.{m.group(2)}", int(m.group(1))) if m else (key, None)


def _heads_from_config_json(path: Path) -> int | None:
    cfg_file = path.parent / "config.json"
    try:
        data = json.loads(cfg_file.read_text())
        heads = data.get("n_head")
        return int(heads) if heads else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def infer_config(shapes: dict[str, tuple[int, ...]], path: Path, n_heads: int | None = None) -> GPTConfig:
    """Sizes from the tensor shapes; heads from ``config.json`` beside the file or OpenAI's sizes."""
    fname = path.name
    s = {_strip(k): v for k, v in shapes.items()}
    try:
        vocab, emb = s["wte.weight"]
        ctx, _ = s["wpe.weight"]
    except (KeyError, ValueError):
        raise WeightsError(f"{fname}: Hugging Face layout without usable wte/wpe embeddings") from None
    blocks = {int(m.group(1)) for k in s if (m := re.match(r"^h\.(\d+)\.", k))}
    if not blocks:
        raise WeightsError(f"{fname}: Hugging Face layout with no transformer blocks (h.0...)")
    n_layers = max(blocks) + 1
    heads = n_heads or _heads_from_config_json(path) or KNOWN_HEADS.get(emb)
    if heads is None:
        heads = emb // 64 if emb % 64 == 0 else None
    if heads is None:
        raise WeightsError(f"{fname}: cannot tell the number of attention heads for width {emb}; "
                           "put the model's config.json beside the file")
    qkv_bias = "h.0.attn.c_attn.bias" in s
    tied = "lm_head.weight" not in s
    try:
        return GPTConfig(vocab_size=vocab, context_length=ctx, emb_dim=emb, n_heads=heads,
                         n_layers=n_layers, drop_rate=0.1, qkv_bias=qkv_bias, tie_embeddings=tied)
    except ValueError as e:
        raise WeightsError(f"{fname}: the shapes give an invalid config: {e}") from None


def expected_hf_shapes(cfg: GPTConfig, with_head: bool) -> dict[str, tuple[int, ...]]:
    e, v = cfg.emb_dim, cfg.vocab_size
    per_block = {
        "ln_1.weight": (e,), "ln_1.bias": (e,), "ln_2.weight": (e,), "ln_2.bias": (e,),
        "attn.c_attn.weight": (e, 3 * e), "attn.c_proj.weight": (e, e), "attn.c_proj.bias": (e,),
        "mlp.c_fc.weight": (e, 4 * e), "mlp.c_fc.bias": (4 * e,),
        "mlp.c_proj.weight": (4 * e, e), "mlp.c_proj.bias": (e,),
    }
    if cfg.qkv_bias:
        per_block["attn.c_attn.bias"] = (3 * e,)
    shapes = {"wte.weight": (v, e), "wpe.weight": (cfg.context_length, e),
              "ln_f.weight": (e,), "ln_f.bias": (e,)}
    if with_head:
        shapes["lm_head.weight"] = (v, e)
    for i in range(cfg.n_layers):
        shapes.update({f"h.{i}.{k}": s for k, s in per_block.items()})
    return shapes


def convert(hf_state: dict[str, torch.Tensor], cfg: GPTConfig,
            fname: str) -> tuple[GPTConfig, dict[str, torch.Tensor]]:
    """Rename, transpose and split every HF tensor into our own state dict.

    Transposes and splits are views of the memory-mapped file, not copies:
    ``F.linear`` multiplies by a transposed view directly.

    A head saved beside an identical embedding is re-tied, so the config
    returned may differ from ``cfg`` in ``tie_embeddings``.
    """
    state = {_strip(k): t for k, t in hf_state.items() if not IGNORED.match(_strip(k))}
    with_head = "lm_head.weight" in state
    check_keys(fname, {k: tuple(t.shape) for k, t in state.items()}, expected_hf_shapes(cfg, with_head))
    if with_head and torch.equal(state["lm_head.weight"], state["wte.weight"]):
        # A head saved next to its tied embedding: keep the tie, store it once.
        del state["lm_head.weight"]
        cfg = cfg.replace(tie_embeddings=True)
    ours: dict[str, torch.Tensor] = {}
    for key, t in state.items():
        template, block = _template(key)
        target = KEY_MAP[template]
        if template in TRANSPOSED:
            t = t.t()
        if isinstance(target, tuple):
            parts = t.chunk(len(target), dim=0)  # (3E, E) after transpose, or (3E,) bias
            for name, part in zip(target, parts):
                ours[name.format(block)] = part
        else:
            ours[target.format(block) if block is not None else target] = t
    return cfg, ours
