"""The Experiments tab's computations (and the /surprisal, /ablate, /attribution, /patch endpoints):
surprisal, head and MLP ablation, direct logit attribution, activation patching, two prompts compared.

Each function validates what a request carries, turns the inspection library's own ValueErrors
about the request (a head the model lacks, a multi-token target, prompts of unequal lengths)
into :class:`~..validate.InputError`, and returns the inspection result.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, TypeVar

from ...inspection.ablation import Ablation, ablate, parse_heads, parse_mlps
from ...inspection.attribution import Attribution, direct_logit_attribution, single_token_id
from ...inspection.compare import Comparison, compare_prompts
from ...inspection.patching import Patching, patch_residual
from ...inspection.surprisal import Surprisal, surprisal
from ...tokenizer import get_tokenizer
from .. import validate as v
from ..common import LRU, crop_note, encode
from ..state import Snapshot
from .attention import scores_for
from ..validate import InputError

PATCH_TOKENS = 64             # patching runs layers x positions forward passes
CONTINUE_TOKENS = 20          # the greedy continuation shown beside an ablation
T = TypeVar("T")
_surprisals = LRU(4)


def _as_input_error(fn: Callable[[], T]) -> T:
    """Run ``fn``; a ValueError it raises about the request becomes the user's message."""
    try:
        return fn()
    except ValueError as e:
        raise InputError(str(e)) from None


def prompt_ids(snap: Snapshot, prompt: Any, label: str = "Prompt", limit: int | None = None,
               what: str = "experiment") -> tuple[list[int], str]:
    """The prompt's token ids, the last ``limit`` (default 256, and the context) kept, and the crop note."""
    text = v.prompt(prompt, label)
    return crop_note(encode(snap, text), min(snap.model.cfg.context_length, limit or v.ATTENTION_TOKENS), what)


def surprisal_view(snap: Snapshot, prompt: Any) -> Surprisal:
    ids, note = prompt_ids(snap, prompt, what="surprisal view")
    result = _surprisals.get((snap.uid, tuple(ids)),
                             lambda: surprisal(snap.model, ids, tokenizer=get_tokenizer()))
    return noted(result, note)


def ablation_view(snap: Snapshot, prompt: Any, heads: Any = "", mlps: Any = "",
                  continue_tokens: Any = CONTINUE_TOKENS) -> Ablation:
    cfg = snap.model.cfg
    ids, note = prompt_ids(snap, prompt, what="ablation")
    head_list = _as_input_error(lambda: parse_heads(_text(heads, "Heads"), cfg.n_layers, cfg.n_heads))
    mlp_list = _as_input_error(lambda: parse_mlps(_text(mlps, "MLPs"), cfg.n_layers))
    n = v.whole(continue_tokens, "Continuation tokens", 0, 100, default=CONTINUE_TOKENS)
    result = ablate(snap.model, ids, head_list, mlp_list, tokenizer=get_tokenizer(), continue_tokens=n)
    return noted(result, note)


def induction_grid(snap: Snapshot, prompt: Any) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of the induction score per head (``L{l}`` by ``H{h}``), for the Ablate tab's
    clickable grid; the prompt cropped as the ablation crops it."""
    ids, _ = prompt_ids(snap, prompt, what="ablation")
    scores = scores_for(snap, tuple(ids))
    rows = [[f"L{l}"] + [round(float(x), 2) for x in scores.score("induction")[l]] for l in range(scores.n_layers)]
    return ["layer"] + [f"H{h}" for h in range(scores.n_heads)], rows


def attribution_view(snap: Snapshot, prompt: Any, target: Any, distractor: Any = "") -> Attribution:
    ids, note = prompt_ids(snap, prompt, what="attribution")
    tok = get_tokenizer()
    target_id = _as_input_error(lambda: single_token_id(tok, _text(target, "Target"), "Target"))
    distractor_text = _text(distractor, "Distractor")
    distractor_id = None
    if distractor_text:
        distractor_id = _as_input_error(lambda: single_token_id(tok, distractor_text, "Distractor"))
        if distractor_id == target_id:
            raise InputError("Target and distractor are the same token: their difference is always 0.")
    _check_vocab(snap, target_id, distractor_id)
    return noted(direct_logit_attribution(snap.model, ids, target_id, distractor_id, tokenizer=tok), note)


def patching_view(snap: Snapshot, clean: Any, corrupted: Any, target: Any, distractor: Any) -> Patching:
    tok = get_tokenizer()
    clean_ids, corrupted_ids = prompt_pair(snap, clean, corrupted, PATCH_TOKENS,
                                           "Patching runs one forward pass per layer and position")
    target_id = _as_input_error(lambda: single_token_id(tok, _text(target, "Target"), "Target"))
    distractor_id = _as_input_error(lambda: single_token_id(tok, _text(distractor, "Distractor"), "Distractor"))
    if distractor_id == target_id:
        raise InputError("Target and distractor are the same token: their difference is always 0.")
    _check_vocab(snap, target_id, distractor_id)
    return _as_input_error(lambda: patch_residual(snap.model, clean_ids, corrupted_ids, target_id, distractor_id,
                                                  tokenizer=tok))


def prompt_pair(snap: Snapshot, clean: Any, corrupted: Any, most: int, why: str) -> tuple[list[int], list[int]]:
    """The token ids of a clean and a corrupted prompt, each at most ``most`` tokens (and the context); ``why``
    opens the message when one is longer."""
    clean_ids = encode(snap, v.prompt(clean, "Clean prompt"))
    corrupted_ids = encode(snap, v.prompt(corrupted, "Corrupted prompt"))
    limit = min(most, snap.model.cfg.context_length)
    if max(len(clean_ids), len(corrupted_ids)) > limit:
        raise InputError(f"{why}: use prompts of at most {limit} tokens (these have {len(clean_ids)} and "
                         f"{len(corrupted_ids)}).")
    return clean_ids, corrupted_ids


def comparison_view(snap: Snapshot, prompt_a: Any, prompt_b: Any) -> Comparison:
    a, note_a = prompt_ids(snap, prompt_a, "Prompt A", what="comparison")
    b, note_b = prompt_ids(snap, prompt_b, "Prompt B", what="comparison")
    result = compare_prompts(snap.model, a, b, tokenizer=get_tokenizer())
    return noted(result, " ".join(n for n in (note_a, note_b) if n))


def _text(value: Any, label: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{label} must be text.")
    if len(value) > 1_000:
        raise InputError(f"{label} is too long ({len(value):,} characters).")
    return value


def _check_vocab(snap: Snapshot, *ids: int | None) -> None:
    vocab = snap.model.cfg.vocab_size
    bad = next((i for i in ids if i is not None and i >= vocab), None)
    if bad is not None:
        raise InputError(f"This model knows only {vocab:,} tokens; token {bad:,} is not one of them.")


def noted(result: T, note: str) -> T:
    """``result`` with the crop note in front of its own (the results are frozen dataclasses)."""
    if not note:
        return result
    return dataclasses.replace(result, note=" ".join(n for n in (note, getattr(result, "note", "")) if n))
