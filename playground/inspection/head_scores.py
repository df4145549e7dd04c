"""Six scores per head, reduced inside the hook layer by layer: a full scoring pass keeps ``(layers, heads)``
numbers, never ``[layers, heads, T, T]`` weights."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from ..hooks import hooks
from ..model import GPTModel
from .attention import pattern_hook_name
from .export import dumps, rows_to_csv
from .fast_patterns import fast_patterns
from .inputs import StopForward, TokenInput, TokenizerLike, eval_mode, join_notes, prepare, this_thread_only
from .random_tokens import repeated_random_tokens

SCORE_NAMES: tuple[str, ...] = ("previous_token", "first_token", "current_token", "entropy", "induction",
                                "prompt_induction")

SCORE_DOCS: dict[str, str] = {
    "previous_token": "mean weight a query puts on the token just before it (queries 1..T-1)",
    "first_token": "mean weight a query puts on position 0, the 'attention sink' (queries 1..T-1)",
    "current_token": "mean weight a query puts on itself (queries 1..T-1)",
    "entropy": "mean entropy of a query's weights, in nats (0 = one key only; log(i+1) = uniform)",
    "induction": ("on a random sequence repeated twice: mean weight a second-half token puts on the "
                  "token that followed its first occurrence"),
    "prompt_induction": ("on your own text: mean weight a token seen before puts on the token that followed "
                         "its latest earlier occurrence (only such tokens; blank when no token repeats)"),
}

# --------------------------------------------------------------------------- scores on a pattern


def _query_rows(t: int, queries: tuple[int, int] | None, first: int = 1) -> torch.Tensor:
    start, stop = queries if queries is not None else (first, t)
    start = max(start, first)
    if stop <= start:
        raise ValueError(f"no query rows in {start}..{stop - 1}")
    return torch.arange(start, stop)


def previous_token_score(pattern: torch.Tensor, queries: tuple[int, int] | None = None) -> torch.Tensor:
    """``(B, H, T, T)`` -> ``(H,)``: mean of ``A[i, i-1]`` over queries ``i`` (default 1..T-1), batch-averaged."""
    rows = _query_rows(pattern.shape[-1], queries).to(pattern.device)
    return pattern[..., rows, rows - 1].float().mean(dim=(0, -1))


def first_token_score(pattern: torch.Tensor, queries: tuple[int, int] | None = None) -> torch.Tensor:
    """``(H,)``: mean of ``A[i, 0]`` over queries ``i >= 1`` (query 0 can only see itself)."""
    rows = _query_rows(pattern.shape[-1], queries).to(pattern.device)
    return pattern[..., rows, 0].float().mean(dim=(0, -1))


def current_token_score(pattern: torch.Tensor, queries: tuple[int, int] | None = None) -> torch.Tensor:
    """``(H,)``: mean of ``A[i, i]`` over queries ``i >= 1``."""
    rows = _query_rows(pattern.shape[-1], queries).to(pattern.device)
    return pattern[..., rows, rows].float().mean(dim=(0, -1))


def entropy_score(pattern: torch.Tensor, queries: tuple[int, int] | None = None) -> torch.Tensor:
    """``(H,)``: mean over queries ``i >= 1`` of ``-sum_j A[i,j] ln A[i,j]`` (nats; 0 ln 0 = 0).

    Low: the head looks at one place. At most ``ln(i+1)`` for query ``i`` (uniform).
    """
    rows = _query_rows(pattern.shape[-1], queries).to(pattern.device)
    ent = torch.special.entr(pattern[..., rows, :].float()).sum(-1)   # (B, H, Q)
    return ent.mean(dim=(0, -1))


def induction_score(pattern: torch.Tensor, seq_len: int, prefix_len: int = 0) -> torch.Tensor:
    """``(H,)`` on a sequence ``prefix + r + r`` with ``len(r) = seq_len``.

    For each second-half query ``i`` (token ``r[j]``, ``i = prefix_len + seq_len + j``)
    the weight on key ``i - seq_len + 1``: the token that *followed* the first
    ``r[j]``. An induction head ("last time I saw this, what came next?") puts
    nearly all its weight there; on random tokens nothing else predicts it.
    """
    rows = torch.arange(prefix_len + seq_len, prefix_len + 2 * seq_len, device=pattern.device)
    if rows[-1] >= pattern.shape[-1]:
        raise ValueError(f"pattern of {pattern.shape[-1]} tokens is shorter than prefix + 2 x {seq_len}")
    return pattern[..., rows, rows - seq_len + 1].float().mean(dim=(0, -1))


def repeat_targets(ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """Queries ``i`` whose token occurred before, and for each the key ``j + 1`` after its latest earlier
    occurrence ``j`` — where an induction head looks. Cases with ``j + 1 == i`` (a token repeated at once,
    "the the") are left out: there the target is the query itself, a current-token head's place."""
    last: dict[int, int] = {}
    queries, keys = [], []
    for i, tok in enumerate(ids):
        j = last.get(tok)
        if j is not None and j + 1 < i:
            queries.append(i)
            keys.append(j + 1)
        last[tok] = i
    return queries, keys


def prompt_induction_score(pattern: torch.Tensor, queries: Sequence[int], keys: Sequence[int]) -> torch.Tensor:
    """``(H,)``: mean of ``A[i, k]`` over the pairs of :func:`repeat_targets` (NaN when there are none)."""
    if not queries:
        return torch.full(pattern.shape[1:2], float("nan"))
    q = torch.as_tensor(list(queries), device=pattern.device)
    k = torch.as_tensor(list(keys), device=pattern.device)
    return pattern[..., q, k].float().mean(dim=(0, -1))


# --------------------------------------------------------------------------- head scores


@dataclass(frozen=True)
class HeadScores:
    """Five ``(layers, heads)`` score grids (see ``SCORE_DOCS`` for definitions).

    ``source`` says where the first four were measured: ``"prompt"`` (the
    user's tokens) or ``"random"`` (the first, unrepeated half of the random
    sequences). Induction is always measured on the repeated random sequences.
    """

    previous_token: torch.Tensor    # (L, H)
    first_token: torch.Tensor       # (L, H)
    current_token: torch.Tensor     # (L, H)
    entropy: torch.Tensor           # (L, H)
    induction: torch.Tensor         # (L, H)
    prompt_induction: torch.Tensor  # (L, H); NaN where the prompt repeats no token (or there is no prompt)
    source: str
    n_tokens: int                   # tokens of the pass that gave the first four
    seq_len: int                    # length of the repeated random half
    batch: int
    seed: int | None
    note: str = ""
    docs: dict[str, str] = field(default_factory=lambda: dict(SCORE_DOCS))
    repeats: int = 0                # queries of the prompt that ``prompt_induction`` averages over

    @property
    def n_layers(self) -> int:
        return int(self.previous_token.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.previous_token.shape[1])

    def score(self, name: str) -> torch.Tensor:
        if name not in SCORE_NAMES:
            raise KeyError(f"unknown score {name!r}; choose one of {', '.join(SCORE_NAMES)}")
        return getattr(self, name)

    def rows(self) -> list[dict]:
        """One row per head: ``layer``, ``head`` and every score (what a clicked cell selects)."""
        return [{"layer": l, "head": h, **{n: float(self.score(n)[l, h]) for n in SCORE_NAMES}}
                for l in range(self.n_layers) for h in range(self.n_heads)]

    def top(self, name: str, k: int = 5, largest: bool = True) -> list[tuple[int, int, float]]:
        """The ``k`` heads with the highest (or lowest) score: ``(layer, head, value)``."""
        flat = self.score(name).flatten()
        vals, idx = torch.topk(flat, min(k, flat.numel()), largest=largest)
        return [(int(i) // self.n_heads, int(i) % self.n_heads, float(v)) for v, i in zip(vals, idx)]

    def to_json(self) -> str:
        return dumps({
            "scores": {n: self.score(n).tolist() for n in SCORE_NAMES}, "docs": self.docs,
            "source": self.source, "n_tokens": self.n_tokens, "seq_len": self.seq_len,
            "batch": self.batch, "seed": self.seed, "note": self.note, "repeats": self.repeats,
        })

    def to_csv(self) -> str:
        return rows_to_csv(self.rows())


def _scored_pass(model: GPTModel, ids: torch.Tensor,
                 reducers: dict[str, Callable[[torch.Tensor], torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One forward pass; each layer's ``(B, H, T, T)`` weights reduced to ``(H,)`` per reducer, then dropped."""
    n = model.cfg.n_layers
    out = {k: torch.zeros(n, model.cfg.n_heads) for k in reducers}
    if ids.shape[0] == 1:                      # one prompt: from the fast decoder's weights when they are ready
        t = ids.shape[1]
        patterns = torch.empty((n, model.cfg.n_heads, t, t), dtype=model.dtype, device=model.device)
        if fast_patterns(model, ids, list(range(n)), patterns):
            for layer in range(n):
                for key, reduce in reducers.items():
                    out[key][layer] = reduce(patterns[layer].unsqueeze(0)).cpu()
            return out

    def at(layer: int):
        def fn(pattern: torch.Tensor, name: str) -> None:
            for key, reduce in reducers.items():
                out[key][layer] = reduce(pattern).cpu()
            if layer == n - 1:
                raise StopForward
        return this_thread_only(fn)

    with eval_mode(model), hooks(model, {pattern_hook_name(l): at(l) for l in range(n)}):
        try:
            model(ids)
        except StopForward:
            pass
    return out


@torch.inference_mode()
def head_scores(model: GPTModel, tokens: TokenInput | None = None, *,
                tokenizer: TokenizerLike | None = None, seq_len: int = 50, batch: int = 4,
                seed: int = 0, generator: torch.Generator | None = None,
                prefix_id: int | None = None, low: int = 0, high: int | None = None,
                pool: "Sequence[int] | torch.Tensor | None" = None, on_random: HeadScores | None = None) -> HeadScores:
    """Score every head of ``model``: previous-token, first-token (sink), current-token,
    mean entropy and induction — each a ``(n_layers, n_heads)`` float tensor on the CPU.

    Definitions (weights ``A[i, j]``: query ``i``, key ``j``; means over the batch):

    - ``previous_token``: mean ``A[i, i-1]`` over queries ``i >= 1``;
    - ``first_token``: mean ``A[i, 0]`` over ``i >= 1`` — the "attention sink";
    - ``current_token``: mean ``A[i, i]`` over ``i >= 1``;
    - ``entropy``: mean over ``i >= 1`` of ``-sum_j A[i,j] ln A[i,j]`` (nats);
    - ``induction``: on ``[prefix_id] + r + r`` (``r``: ``seq_len`` tokens drawn
      uniformly from ``[low, high)``), mean weight of each second-half token on
      the token after its first occurrence (key ``i - seq_len + 1``). ``pool``
      draws ``r`` from those ids instead (see :func:`repeated_random_tokens`);
    - ``prompt_induction``: the same on ``tokens`` themselves, over the queries whose
      token occurred before (:func:`repeat_targets`); NaN when none does or without ``tokens``.

    The first four are measured on ``tokens`` (ids, or text with ``tokenizer``)
    when given, else on the unrepeated first half of the random sequences.
    The random batch comes from ``generator`` if given, else from
    ``torch.Generator().manual_seed(seed)`` — see :func:`repeated_random_tokens`.
    ``seq_len`` is shrunk to fit the context (``note`` says so). Two passes at
    most; only ``(L, H)`` numbers are kept, never the weights. ``on_random``: this model's scores on the
    random tokens, kept by the caller, whose induction grid is used instead of a pass of its own.
    """
    if batch < 1 or seq_len < 2:
        raise ValueError("need batch >= 1 and seq_len >= 2")
    ctx = model.cfg.context_length
    prefix_len = 0 if prefix_id is None else 1
    note = ""
    fit = (ctx - prefix_len) // 2
    if seq_len > fit:
        if fit < 2:
            raise ValueError(f"context length {ctx} is too short for an induction sequence")
        note = f"seq_len {seq_len} does not fit twice in the context ({ctx}); used {fit}."
        seq_len = fit
    if on_random is not None and tokens is not None:
        # The random-token pass depends on the model alone: a caller that kept it (per model) skips it.
        got = {"induction": on_random.induction}
        seq_len, batch, seed, note = on_random.seq_len, on_random.batch, on_random.seed, on_random.note
        generator = None
    else:
        rand = repeated_random_tokens(model.cfg.vocab_size, seq_len, batch=batch, seed=seed,
                                      generator=generator, prefix_id=prefix_id, low=low, high=high, pool=pool)
        rand = rand.to(model.device)                                            # (B, P + 2n)
        half = (1, prefix_len + seq_len)  # queries of the unrepeated half
        reducers = {"induction": lambda p: induction_score(p, seq_len, prefix_len)}
        if tokens is None:
            reducers.update(
                previous_token=lambda p: previous_token_score(p, half),
                first_token=lambda p: first_token_score(p, half),
                current_token=lambda p: current_token_score(p, half),
                entropy=lambda p: entropy_score(p, half),
            )
        got = _scored_pass(model, rand, reducers)
    source, n_tokens, repeats = "random", prefix_len + seq_len, 0
    got["prompt_induction"] = torch.full((model.cfg.n_layers, model.cfg.n_heads), float("nan"))
    if tokens is not None:
        prep = prepare(model, tokens, tokenizer=tokenizer)
        if prep.n_tokens < 2:
            raise ValueError("head scores need a prompt of at least 2 tokens")
        queries, keys = repeat_targets(prep.ids[0].tolist())
        reducers = {"previous_token": previous_token_score, "first_token": first_token_score,
                    "current_token": current_token_score, "entropy": entropy_score}
        if queries:
            reducers["prompt_induction"] = lambda p: prompt_induction_score(p, queries, keys)
        got.update(_scored_pass(model, prep.ids, reducers))
        source, n_tokens, note, repeats = "prompt", prep.n_tokens, join_notes(prep.note, note), len(queries)
    return HeadScores(source=source, n_tokens=n_tokens, seq_len=seq_len, batch=batch,
                      seed=None if generator is not None else seed, note=note, repeats=repeats, **got)
