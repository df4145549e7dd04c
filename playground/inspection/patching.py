"""Activation patching: which (layer, position) carries the information that changes the answer?

Two prompts of the same length that differ in a detail ("the Eiffel Tower is
in" / "the Colosseum is in"), a target and a distractor token (" Paris" /
" Rome"), and the metric ``LD = logit(target) - logit(distractor)`` at the last
position. Run the corrupted prompt, but replace one activation with its value
from the clean run; ``restored = (LD_patched - LD_corrupted) / (LD_clean -
LD_corrupted)`` says how much of the clean answer that one activation brings
back (1 = all of it, 0 = none).

The shape is TransformerLens's ``patching.py``: one routine, :func:`patch_grid`,
over a (layer x index) grid, given the patch as a small function and the metric
as another, so each variant (residual stream by position, heads) is a few
lines. The grid is batched: for one layer, every index is one row of a single
forward pass of the corrupted prompt repeated; ``one_by_one=True`` runs a
forward per cell instead (same numbers, for checking and benchmarking).

Only the last position's logits are needed, so each forward stops at the final
LayerNorm and applies the head to that position alone (``T`` times less work
than the full ``(B, T, V)`` logits, the largest tensor of a small model).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ..hooks import hooks
from ..model import GPTModel
from .export import dumps
from .suffix_patch import corrupted_cache, patch_resid_pre
from .inputs import (check_token_id, LabelFn, Prepared, StopForward, TokenInput, TokenizerLike, eval_mode, make_label_fn,
                     prepare, this_thread_only)

MetricFn = Callable[[torch.Tensor], torch.Tensor]     # (B, V) last-position logits -> (B,)
PatchFn = Callable[[torch.Tensor, int, Any], None]    # (one row's activation, layer, index) -> edit in place
ROW_BUDGET_BYTES = 256 << 20                          # activations of one batched forward, roughly


def resid_pre_name(layer: int) -> str:
    return f"trf_blocks.{layer}.hook_resid_pre"


def z_name(layer: int) -> str:
    return f"trf_blocks.{layer}.att.hook_z"


# --------------------------------------------------------------------------- the generic grid


def last_logits(model: GPTModel, ids: torch.Tensor) -> torch.Tensor:
    """``(B, T)`` ids -> ``(B, V)`` logits at the last position, stopping the forward at
    ``hook_final_norm`` (hooks already attached by the caller fire as usual)."""
    got: list[torch.Tensor] = []

    def read(x: torch.Tensor, name: str) -> None:                            # x: (B, T, E)
        got.append(model.out_head(x[:, -1]).float())                         # (B, V)
        raise StopForward

    with hooks(model, {"hook_final_norm": this_thread_only(read)}):
        try:
            model(ids)
        except StopForward:
            pass
    return got[0]


def default_batch_size(model: GPTModel, n_tokens: int) -> int:
    """Rows per forward so that one batched pass stays near ``ROW_BUDGET_BYTES``
    (the MLP's ``(T, 4E)`` hidden layer dominates; a few such tensors are alive at once)."""
    per_row = 4 * n_tokens * 4 * model.cfg.emb_dim * model.tok_emb.weight.element_size()
    return max(1, ROW_BUDGET_BYTES // per_row)


@torch.inference_mode()
def patch_grid(model: GPTModel, corrupted_ids: torch.Tensor, layers: Sequence[int], indices: Sequence[Any],
               hook_name_fn: Callable[[int], str], patch_fn: PatchFn, metric_fn: MetricFn, *,
               batch_size: int | None = None, one_by_one: bool = False) -> torch.Tensor:
    """``(len(layers), len(indices))`` metric values of the corrupted prompt, one patch per cell.

    Cell ``(l, i)`` runs ``corrupted_ids (1, T)`` with ``patch_fn(act, layer, index)``
    applied to the activation at ``hook_name_fn(layer)``; ``act`` is that row's
    ``(T, ...)`` activation, to be edited in place. Batched: the indices of a layer
    go ``batch_size`` rows at a time (default: as many as fit a modest budget).
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    t = corrupted_ids.shape[-1]
    rows = 1 if one_by_one else (batch_size or default_batch_size(model, t))
    out = torch.empty((len(layers), len(indices)))
    with eval_mode(model):
        for li, layer in enumerate(layers):
            for start in range(0, len(indices), rows):
                chunk = list(indices[start:start + rows])

                def patch(act: torch.Tensor, name: str, _chunk=chunk, _layer=layer) -> None:   # (B, T, ...)
                    for r, index in enumerate(_chunk):
                        patch_fn(act[r], _layer, index)

                with hooks(model, {hook_name_fn(layer): this_thread_only(patch)}):
                    logits = last_logits(model, corrupted_ids.reshape(1, t).expand(len(chunk), t))
                out[li, start:start + len(chunk)] = metric_fn(logits).float().cpu()
    return out


# --------------------------------------------------------------------------- the two prompts


def logit_diff_metric(target_id: int, distractor_id: int) -> MetricFn:
    def ld(logits: torch.Tensor) -> torch.Tensor:                            # (B, V) -> (B,)
        return logits[:, target_id] - logits[:, distractor_id]
    return ld


def _labels(prep: Prepared, limit: int = 40) -> str:
    shown = list(prep.labels[:limit]) + (["…"] if prep.n_tokens > limit else [])
    return json.dumps(shown, ensure_ascii=False)


@dataclass(frozen=True)
class _Pair:
    clean: Prepared
    corrupted: Prepared
    acts: dict[str, torch.Tensor]       # clean activations by hook name, (1, T, ...)
    ld_clean: float
    ld_corrupted: float


@torch.inference_mode()
def _pair(model: GPTModel, clean_tokens: TokenInput, corrupted_tokens: TokenInput, metric: MetricFn,
          names: Sequence[str], tokenizer: TokenizerLike | None, label_fn: LabelFn | None) -> _Pair:
    """Prepare both prompts (same length or a clear error), record the clean run's ``names``, and both metrics."""
    clean = prepare(model, clean_tokens, tokenizer=tokenizer, label_fn=label_fn)
    corrupted = prepare(model, corrupted_tokens, tokenizer=tokenizer, label_fn=label_fn)
    if clean.original_length != corrupted.original_length:
        raise ValueError(f"The two prompts must have the same number of tokens: clean has "
                         f"{clean.original_length} ({_labels(clean)}), corrupted has "
                         f"{corrupted.original_length} ({_labels(corrupted)}).")
    acts: dict[str, torch.Tensor] = {}

    def keep(x: torch.Tensor, name: str) -> None:
        acts[name] = x.detach().clone()

    with eval_mode(model):
        with hooks(model, {n: this_thread_only(keep) for n in names}):
            ld_clean = float(metric(last_logits(model, clean.ids))[0])
        ld_corrupted = float(metric(last_logits(model, corrupted.ids))[0])
    if abs(ld_clean - ld_corrupted) < 1e-6 * max(1.0, abs(ld_clean)):
        raise ValueError(f"the clean and corrupted prompts give the same logit difference ({ld_clean:.4g}); "
                         "nothing to restore")
    return _Pair(clean, corrupted, acts, ld_clean, ld_corrupted)


def _layers(model: GPTModel, layers: Sequence[int] | None) -> list[int]:
    n = model.cfg.n_layers
    chosen = list(range(n)) if layers is None else sorted({int(l) for l in layers})
    if not chosen or chosen[0] < 0 or chosen[-1] >= n:
        raise ValueError(f"layers must be in 0..{n - 1}, got {list(layers or [])}")
    return chosen


@dataclass(frozen=True)
class Patching:
    """``restored[i][j]``: the fraction of the clean logit difference brought back by patching
    ``rows[i]`` at ``columns[j]`` (a position of the residual stream, or a head)."""

    tokens: tuple[str, ...]             # the corrupted prompt
    clean_tokens: tuple[str, ...]
    layers: tuple[int, ...]
    restored: tuple[tuple[float, ...], ...]
    ld_clean: float
    ld_corrupted: float
    target: dict                        # {token, token_id}
    distractor: dict
    seconds: float
    what: str = "resid_pre"             # "resid_pre": columns are positions; "heads": columns are heads
    mode: str = "batched"               # or "one by one"
    forwards: int = 0
    note: str = ""

    def data(self) -> dict:
        return {"tokens": list(self.tokens), "clean_tokens": list(self.clean_tokens), "layers": list(self.layers),
                "restored": [list(r) for r in self.restored], "ld_clean": self.ld_clean,
                "ld_corrupted": self.ld_corrupted, "target": dict(self.target),
                "distractor": dict(self.distractor), "seconds": self.seconds, "what": self.what,
                "mode": self.mode, "forwards": self.forwards, "note": self.note}

    def to_json(self) -> str:
        return dumps(self.data())


def _result(model: GPTModel, pair: _Pair, grid: torch.Tensor, layers: Sequence[int], target_id: int,
            distractor_id: int, tokenizer: TokenizerLike | None, label_fn: LabelFn | None, start: float,
            what: str, one_by_one: bool, forwards: int) -> Patching:
    span = pair.ld_clean - pair.ld_corrupted
    restored = (grid.double() - pair.ld_corrupted) / span                    # (L, columns)
    label = make_label_fn(model, tokenizer, label_fn)
    return Patching(
        tokens=pair.corrupted.labels, clean_tokens=pair.clean.labels, layers=tuple(layers),
        restored=tuple(tuple(r) for r in restored.tolist()), ld_clean=pair.ld_clean,
        ld_corrupted=pair.ld_corrupted, target={"token": label(target_id), "token_id": target_id},
        distractor={"token": label(distractor_id), "token_id": distractor_id},
        seconds=time.perf_counter() - start, what=what, mode="one by one" if one_by_one else "batched",
        forwards=forwards, note=pair.corrupted.note)


def _n_forwards(n_layers: int, n_cells: int, rows: int) -> int:
    return 2 + n_layers * -(-n_cells // rows)


def _patch_run(model: GPTModel, clean_tokens: TokenInput, corrupted_tokens: TokenInput, target_id: int,
               distractor_id: int, name_fn: Callable[[int], str], cells: int,
               make_patch: Callable[["_Pair"], PatchFn], what: str, tokenizer: TokenizerLike | None,
               label_fn: LabelFn | None, layers: Sequence[int] | None, batch_size: int | None,
               one_by_one: bool) -> Patching:
    """What every "patch X from the clean run" variant shares: ids checked, both runs, the grid."""
    start = time.perf_counter()
    target_id = check_token_id(model, target_id, "target")
    distractor_id = check_token_id(model, distractor_id, "distractor")
    chosen = _layers(model, layers)
    metric = logit_diff_metric(target_id, distractor_id)
    pair = _pair(model, clean_tokens, corrupted_tokens, metric, [name_fn(l) for l in chosen], tokenizer, label_fn)
    n_cells = cells if cells > 0 else pair.corrupted.n_tokens
    grid = patch_grid(model, pair.corrupted.ids, chosen, range(n_cells), name_fn, make_patch(pair), metric,
                      batch_size=batch_size, one_by_one=one_by_one)
    rows = 1 if one_by_one else (batch_size or default_batch_size(model, pair.corrupted.n_tokens))
    return _result(model, pair, grid, chosen, target_id, distractor_id, tokenizer, label_fn, start,
                   what, one_by_one, _n_forwards(len(chosen), n_cells, rows))


@torch.inference_mode()
def patch_residual(model: GPTModel, clean_tokens: TokenInput, corrupted_tokens: TokenInput, target_id: int,
                   distractor_id: int, *, tokenizer: TokenizerLike | None = None, label_fn: LabelFn | None = None,
                   layers: Sequence[int] | None = None, batch_size: int | None = None,
                   one_by_one: bool = False) -> Patching:
    """Patch ``resid_pre`` of each block at each position from the clean run into the corrupted one.

    Batched, each cell runs only what its patch can change (:mod:`.suffix_patch`: the blocks from its layer,
    the positions from its own, from the corrupted run's cache); ``one_by_one`` runs a whole forward per cell
    through :func:`patch_grid` (same numbers up to float rounding, for checking and benchmarking)."""
    if not one_by_one:
        return _suffix_run(model, clean_tokens, corrupted_tokens, target_id, distractor_id, tokenizer, label_fn,
                           layers, batch_size)

    def make_patch(pair: _Pair) -> PatchFn:
        def patch(act: torch.Tensor, layer: int, pos: int) -> None:          # act: (T, E)
            act[pos] = pair.acts[resid_pre_name(layer)][0, pos]
        return patch
    return _patch_run(model, clean_tokens, corrupted_tokens, target_id, distractor_id, resid_pre_name, 0,
                      make_patch, "resid_pre", tokenizer, label_fn, layers, batch_size, one_by_one)


def _suffix_run(model: GPTModel, clean_tokens: TokenInput, corrupted_tokens: TokenInput, target_id: int,
                distractor_id: int, tokenizer: TokenizerLike | None, label_fn: LabelFn | None,
                layers: Sequence[int] | None, batch_size: int | None) -> Patching:
    start = time.perf_counter()
    target_id = check_token_id(model, target_id, "target")
    distractor_id = check_token_id(model, distractor_id, "distractor")
    chosen = _layers(model, layers)
    metric = logit_diff_metric(target_id, distractor_id)
    pair = _pair(model, clean_tokens, corrupted_tokens, metric, [resid_pre_name(l) for l in chosen], tokenizer,
                 label_fn)
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    cache = corrupted_cache(model, pair.corrupted.ids)
    clean = torch.stack([pair.acts[resid_pre_name(l)][0] for l in chosen])   # (layers, T, E)
    weight = model.out_head.weight
    grid, passes = patch_resid_pre(model, cache, clean, chosen, weight[target_id] - weight[distractor_id],
                                   pair.ld_corrupted, batch_size)
    return _result(model, pair, grid, chosen, target_id, distractor_id, tokenizer, label_fn, start,
                   "resid_pre", False, 3 + passes)


@torch.inference_mode()
def patch_heads(model: GPTModel, clean_tokens: TokenInput, corrupted_tokens: TokenInput, target_id: int,
                distractor_id: int, *, tokenizer: TokenizerLike | None = None, label_fn: LabelFn | None = None,
                layers: Sequence[int] | None = None, batch_size: int | None = None,
                one_by_one: bool = False) -> Patching:
    """The same grid over heads: patch head h's context vectors (its ``hook_z`` slice) at every position."""
    d = model.cfg.head_dim

    def make_patch(pair: _Pair) -> PatchFn:
        def patch(act: torch.Tensor, layer: int, head: int) -> None:         # act: (T, E), heads merged
            act[:, head * d:(head + 1) * d] = pair.acts[z_name(layer)][0, :, head * d:(head + 1) * d]
        return patch
    return _patch_run(model, clean_tokens, corrupted_tokens, target_id, distractor_id, z_name, model.cfg.n_heads,
                      make_patch, "heads", tokenizer, label_fn, layers, batch_size, one_by_one)


@torch.inference_mode()
def patch_all_positions(model: GPTModel, clean_tokens: TokenInput, corrupted_tokens: TokenInput, layer: int,
                        target_id: int, distractor_id: int, *,
                        tokenizer: TokenizerLike | None = None) -> float:
    """Restored fraction when *every* position of ``resid_pre`` of block ``layer`` comes from the clean run.

    The whole residual stream entering a block determines everything after
    it, so this is 1.0 for any layer (up to float rounding): a sanity check of the machinery.
    """
    target_id, distractor_id = check_token_id(model, target_id, "target"), check_token_id(model, distractor_id, "distractor")
    chosen = _layers(model, [layer])
    metric = logit_diff_metric(target_id, distractor_id)
    pair = _pair(model, clean_tokens, corrupted_tokens, metric, [resid_pre_name(chosen[0])], tokenizer, None)

    def patch(act: torch.Tensor, layer: int, index: slice) -> None:         # act: (T, E)
        act[index] = pair.acts[resid_pre_name(layer)][0, index]

    grid = patch_grid(model, pair.corrupted.ids, chosen, [slice(None)], resid_pre_name, patch, metric)
    return float((grid[0, 0] - pair.ld_corrupted) / (pair.ld_clean - pair.ld_corrupted))
