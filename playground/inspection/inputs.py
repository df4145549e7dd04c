"""Turning what the user typed into the ids one inspection pass runs on.

Every inspection function accepts token ids (a list, a ``(T,)`` or ``(1, T)``
tensor) or text plus a tokenizer, crops to what the model (and the view) can
take, and says so: the caller gets a ``note`` instead of an exhausted machine.
Token labels come from a label function, the tokenizer when its vocabulary
matches the model's, or fall back to the ids themselves (tiny test models).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence, Union

import torch
from torch import nn

from ..model import GPTModel

LabelFn = Callable[[int], str]


class TokenizerLike(Protocol):
    n_vocab: int

    def encode(self, text: str) -> list[int]: ...

    def token_text(self, token_id: int) -> str: ...


TokenInput = Union[str, Sequence[int], torch.Tensor]   # text (needs a tokenizer) or ids


@dataclass(frozen=True)
class Prepared:
    """One prompt, ready for a forward pass.

    ``ids`` is ``(1, T)`` on the model's device; ``offset`` is how many leading
    tokens of the original prompt were cropped away (positions in every result
    are positions in ``ids``; add ``offset`` for positions in the original).
    """

    ids: torch.Tensor           # (1, T)
    labels: tuple[str, ...]     # one display label per token
    offset: int                 # tokens dropped from the front
    original_length: int
    note: str

    @property
    def cropped(self) -> bool:
        return self.offset > 0

    @property
    def n_tokens(self) -> int:
        return int(self.ids.shape[1])

    @property
    def token_ids(self) -> list[int]:
        return self.ids[0].tolist()


def visible(text: str) -> str:
    """Make whitespace visible so ``" the"`` and ``"the"`` read differently on an axis."""
    return (text.replace(" ", "\u2423").replace("\n", "\u21b5").replace("\t", "\u21e5")
            .replace("\r", "\u240d")) or "\u2205"


def check_token_id(model: GPTModel, token_id: int, what: str) -> int:
    """``token_id`` as an int, or a ValueError when the model's vocabulary has no such id."""
    v = model.cfg.vocab_size
    if not 0 <= int(token_id) < v:
        raise ValueError(f"{what} token id {token_id} is outside the model's vocabulary (0..{v - 1})")
    return int(token_id)


def make_label_fn(model: GPTModel, tokenizer: TokenizerLike | None = None,
                  label_fn: LabelFn | None = None) -> LabelFn:
    """``label_fn`` if given; the tokenizer's text when it fits the model's vocabulary; else the id."""
    if label_fn is not None:
        return label_fn
    if _fits(model, tokenizer):
        label = getattr(tokenizer, "token_label", tokenizer.token_text)
        return lambda i: visible(label(i))
    return lambda i: str(i)


def _fits(model: GPTModel, tokenizer: TokenizerLike | None) -> bool:
    """The tokenizer's ids are the model's (its text may label them)."""
    return tokenizer is not None and getattr(tokenizer, "n_vocab", None) == model.cfg.vocab_size


def to_id_list(tokens: TokenInput,
               tokenizer: TokenizerLike | None = None) -> list[int]:
    if isinstance(tokens, str):
        if tokenizer is None:
            raise ValueError("text needs a tokenizer; pass tokenizer=get_tokenizer() or token ids")
        return list(tokenizer.encode(tokens))
    if isinstance(tokens, torch.Tensor):
        if tokens.ndim == 2:
            if tokens.shape[0] != 1:
                raise ValueError(f"one prompt at a time: got a batch of {tokens.shape[0]}")
            tokens = tokens[0]
        if tokens.ndim != 1:
            raise ValueError(f"token ids must be (T,) or (1, T), got shape {tuple(tokens.shape)}")
        return [int(i) for i in tokens.tolist()]
    return [int(i) for i in tokens]


def prepare(model: GPTModel, tokens: TokenInput, *,
            tokenizer: TokenizerLike | None = None, label_fn: LabelFn | None = None,
            max_tokens: int | None = None) -> Prepared:
    """Validate, crop to the last ``min(context_length, max_tokens)`` tokens, label.

    Cropping keeps the *end* of the prompt, as generation does (``idx[:, -ctx:]``):
    the end is what the next prediction depends on.
    """
    ids = to_id_list(tokens, tokenizer)
    if not ids:
        raise ValueError("the prompt must contain at least one token")
    vocab = model.cfg.vocab_size
    bad = [i for i in ids if not 0 <= i < vocab]
    if bad:
        raise ValueError(f"token id {bad[0]} is outside the model's vocabulary (0..{vocab - 1})")
    limit = model.cfg.context_length
    why = f"the model's context length ({limit})"
    if max_tokens is not None and max_tokens < limit:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        limit, why = max_tokens, f"the view's limit ({max_tokens} tokens)"
    offset = max(0, len(ids) - limit)
    note = ""
    if offset:
        note = (f"Prompt has {len(ids)} tokens; showing the last {limit} ({why}); "
                f"the first {offset} were cropped.")
    kept = ids[offset:]
    if label_fn is None and _fits(model, tokenizer) and hasattr(tokenizer, "sequence_labels"):
        # a character split over several tokens reads as itself on each of them ("’(1/2)", "’(2/2)")
        labels = tuple(visible(t) for t in tokenizer.sequence_labels(kept))
    else:
        labels = tuple(map(make_label_fn(model, tokenizer, label_fn), kept))
    return Prepared(
        ids=torch.tensor([kept], dtype=torch.long, device=model.device),
        labels=labels,
        offset=offset,
        original_length=len(ids),
        note=note,
    )


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Dropout off for the duration (restored after); inspection must be deterministic."""
    was_training = model.training
    if was_training:
        model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


def this_thread_only(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Hooks on a shared model fire for every caller: act only in the thread that attached them,
    so another request's forward pass running meanwhile is neither recorded, changed nor stopped.
    Works for hook points' ``fn(tensor, name)`` and raw module hooks alike; what ``fn`` returns
    (a replacement tensor, for interventions) is passed on."""
    owner = threading.get_ident()

    def guarded(*args: Any) -> Any:
        if threading.get_ident() == owner:
            return fn(*args)
        return None
    return guarded


class StopForward(Exception):
    """Raised from a hook once everything wanted has been seen: the rest of the
    forward pass (later blocks, the vocabulary-sized head) is skipped."""


def join_notes(*notes: str) -> str:
    return " ".join(n for n in notes if n)


def crop(prep: Prepared, keep: int) -> Prepared:
    """The last ``keep`` tokens of an already prepared prompt (offset and note carried over)."""
    drop = max(0, prep.n_tokens - keep)
    if drop == 0:
        return prep
    return Prepared(ids=prep.ids[:, drop:], labels=prep.labels[drop:], offset=prep.offset + drop,
                    original_length=prep.original_length, note=prep.note)
