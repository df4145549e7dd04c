"""The next-token distribution, before and after each sampling control.

Stages, each applied on top of the previous one, exactly as ``sampling.py``
applies them when generating: the model's softmax -> temperature -> top-k ->
top-p. The last stage is the distribution the next token is drawn from
(for temperature 0, greedy: all mass on the top token), so the user sees what
each control did to the same candidates.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..model import GPTModel
from ..sampling import SamplingParams, filtered_logits
from .export import dumps, rows_to_csv
from .inputs import LabelFn, TokenInput, TokenizerLike, eval_mode, make_label_fn, prepare

STAGES: tuple[str, ...] = ("model", "temperature", "top_k", "top_p")
STAGE_TITLES = {"model": "model (softmax)", "temperature": "after temperature",
                "top_k": "after top-k", "top_p": "after top-p (sampled from)"}


def stage_distributions(logits: torch.Tensor, params: SamplingParams) -> dict[str, torch.Tensor]:
    """``(V,)`` logits -> ``{stage: (V,) probabilities}``; ``top_p`` is what sampling draws from.

    Greedy (temperature 0) puts all mass on the argmax from the temperature stage on.
    """
    logits = logits.float()
    out = {"model": torch.softmax(logits, dim=-1)}
    if params.greedy:
        one_hot = torch.zeros_like(logits)
        one_hot[torch.argmax(logits)] = 1.0
        out.update(temperature=one_hot, top_k=one_hot, top_p=one_hot)
        return out
    for stage, filtered in filtered_logits(logits, params).items():
        out[stage] = torch.softmax(filtered, dim=-1)
    return out


def _entropy(p: torch.Tensor) -> float:
    return float(torch.special.entr(p).sum())


@dataclass(frozen=True)
class NextTokenDistribution:
    """The ``show`` most likely next tokens (by the model) and their probability at each stage.

    ``probs[stage][i]`` is the probability of ``token_ids[i]``; ``other[stage]``
    the mass of all tokens not shown; ``n_kept`` how many tokens of the whole
    vocabulary can still be drawn after all filters.
    """

    token_ids: tuple[int, ...]
    labels: tuple[str, ...]
    logits: tuple[float, ...]
    probs: dict[str, tuple[float, ...]]
    other: dict[str, float]
    entropy: dict[str, float]
    n_kept: int
    params: SamplingParams
    position: int
    context_label: str
    offset: int = 0
    note: str = ""

    @property
    def before(self) -> tuple[float, ...]:
        return self.probs["model"]

    @property
    def after(self) -> tuple[float, ...]:
        return self.probs["top_p"]

    def rows(self) -> list[dict]:
        return [{"rank": r + 1, "token_id": i, "token": lab, "logit": lg,
                 **{f"p_{s}": self.probs[s][r] for s in STAGES}}
                for r, (i, lab, lg) in enumerate(zip(self.token_ids, self.labels, self.logits))]

    def to_json(self) -> str:
        return dumps({"params": self.params, "position": self.position, "rows": self.rows(),
                      "other": self.other, "entropy": self.entropy, "n_kept": self.n_kept,
                      "offset": self.offset, "note": self.note})

    def to_csv(self) -> str:
        return rows_to_csv(self.rows())


@torch.inference_mode()
def next_token_distribution(model: GPTModel, tokens: TokenInput,
                            params: SamplingParams | None = None, *, show: int = 10, position: int = -1,
                            tokenizer: TokenizerLike | None = None,
                            label_fn: LabelFn | None = None) -> NextTokenDistribution:
    """Top-``show`` candidates for the token after ``position`` (default: after the prompt)."""
    params = params or SamplingParams()
    prep = prepare(model, tokens, tokenizer=tokenizer, label_fn=label_fn)
    pos = range(prep.n_tokens)[position]
    with eval_mode(model):
        logits = model(prep.ids[:, :pos + 1], last_only=True)[0, -1].float()  # (V,): causal, so ids after pos do not matter
    stages = stage_distributions(logits, params)
    k = min(show, logits.numel())
    order = torch.topk(logits, k).indices                                     # (k,) by the model's own ranking
    fn = make_label_fn(model, tokenizer, label_fn)
    probs = {s: tuple(float(x) for x in stages[s][order]) for s in STAGES}
    note = prep.note
    if params.greedy:
        note = (note + " " if note else "") + "Temperature 0 is greedy: the top token is always chosen."
    return NextTokenDistribution(
        token_ids=tuple(order.tolist()), labels=tuple(fn(i) for i in order.tolist()),
        logits=tuple(float(x) for x in logits[order]), probs=probs,
        other={s: float(stages[s].sum() - stages[s][order].sum()) for s in STAGES},
        entropy={s: _entropy(stages[s]) for s in STAGES},
        n_kept=int((stages["top_p"] > 0).sum()), params=params, position=pos,
        context_label=prep.labels[pos], offset=prep.offset, note=note)
