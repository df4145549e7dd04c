"""The Generate tab's computation: check a request, stream a generation into a growing view."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import gradio as gr

from ...batching import Batcher, BatcherFull
from ...fast_decode import DEFAULT_PRECISION, PRECISIONS
from ...generation import stream_generate
from ...inspection.export import dumps, rows_to_csv
from ...inspection.inputs import visible
from ...tokenizer import get_tokenizer
from .. import validate as v
from ..common import encode
from ..state import Snapshot


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str
    prompt_ids: tuple[int, ...]
    max_new_tokens: int
    temperature: float
    top_k: int
    top_p: float
    seed: int | None
    alternatives: int
    precision: str = DEFAULT_PRECISION


# What the Generate tab's precision choice offers (label -> engine name), the reference first.
PRECISION_LABELS = {"fp32": "fp32 (exact)", "bf16": "bf16 (faster)", "int8": "int8 (fastest)"}
PRECISION_CHOICES = {**{n: n for n in PRECISIONS}, **{lab.lower(): n for n, lab in PRECISION_LABELS.items()},
                     "float32": "fp32", "bfloat16": "bf16"}


def check_generate(snap: Snapshot, prompt: Any, max_new_tokens: Any = 50, temperature: Any = 1.0,
                   top_k: Any = 50, top_p: Any = 1.0, seed: Any = None, alternatives: Any = 10,
                   precision: Any = DEFAULT_PRECISION) -> GenerateRequest:
    text = v.prompt(prompt)
    req_max = v.whole(max_new_tokens, "Max new tokens", 1, v.MAX_NEW_TOKENS, default=50)
    temp = v.real(temperature, "Temperature", 0.0, v.MAX_TEMPERATURE, default=1.0)
    k = v.whole(top_k, "Top-k", 0, snap.model.cfg.vocab_size, default=0)
    p = v.real(top_p, "Top-p", 0.0, 1.0, default=1.0, lo_open=True)
    s = v.seed(seed)
    n_alt = v.whole(alternatives, "Alternatives", 1, v.MAX_ALTERNATIVES, default=10)
    prec = v.choice(precision, "Precision", PRECISION_CHOICES, default=DEFAULT_PRECISION)
    ids = encode(snap, text)
    v.prompt_fits(len(ids), snap.model.cfg.context_length)
    return GenerateRequest(text, tuple(ids), req_max, temp, k, p, s, n_alt, prec)


# Probability bands for colouring generated tokens: a legend an audience can read at a glance.
PROB_BANDS = ((0.5, "p ≥ 50%"), (0.1, "10–50%"), (0.01, "1–10%"), (0.0, "p < 1%"))
# Light to dark blue by probability (read by lightness: safe for colour-blind viewers; no red/green pair).
PROB_COLORS = {"p ≥ 50%": "#2171b5", "10–50%": "#6baed6", "1–10%": "#c6dbef", "p < 1%": "#f2f2f2"}


def prob_band(p: float) -> str:
    return next(label for floor, label in PROB_BANDS if p >= floor)


@dataclass
class GenerationView:
    """Everything the Generate tab shows, growing one token at a time."""

    prompt: str
    prompt_tokens: int
    context_length: int
    settings: dict[str, Any]
    steps: list[dict] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    text: str = ""
    seconds: float = 0.0
    crop_started_at: int | None = None
    done: bool = False
    stopped: bool = False                      # the user clicked Stop (set from another request)

    @property
    def tokens_per_second(self) -> float:
        return len(self.steps) / self.seconds if self.seconds > 0 else 0.0

    def highlighted(self) -> list[tuple[str, str | None]]:
        """The prompt unmarked, then each generated token with its probability band (see PROB_COLORS)."""
        return [(self.prompt, None)] + [(_shown(s["id"], s["token"]), prob_band(s["prob"])) for s in self.steps]

    def stats(self) -> str:
        line = (f"**Prompt:** {self.prompt_tokens:,} tokens · **generated:** {len(self.steps):,} tokens · "
                f"**speed:** {self.tokens_per_second:,.1f} tokens/s")
        precision = self.settings.get("precision")
        if precision:
            line += f" · **precision:** {precision}"
        if self.stopped:
            line += " · **stopped**"
        elif not self.done:
            line += " · generating…"
        if self.crop_started_at is not None:
            line += (f"\n\n⚠️ From generated token {self.crop_started_at + 1} on, the text no longer fits the "
                     f"model's {self.context_length:,}-token window: each new token was predicted from the "
                     f"last {self.context_length:,} tokens only (the start was cropped).")
        return line

    def alternatives(self, step: int | None = None) -> tuple[str, list[list[Any]]]:
        """Caption and table rows of the distribution step ``step`` (default: the last) was drawn from."""
        if not self.steps:
            return "Generate some text, then click a token to see what else the model considered.", []
        i = len(self.steps) - 1 if step is None else max(0, min(int(step), len(self.steps) - 1))
        s = self.steps[i]
        rows = [[r + 1, visible(_shown(tid, t)), tid, round(p, 4), "◀ drawn" if tid == s["id"] else ""]
                for r, (tid, t, p) in enumerate(s["top"])]
        if all(tid != s["id"] for tid, _, _ in s["top"]):
            rows.append(["…", visible(_shown(s["id"], s["token"])), s["id"], round(s["prob"], 4), "◀ drawn"])
        label = visible(_shown(s["id"], s["token"]))
        byte_note = (" (a token holding part of a character: GPT-2 splits some characters over two or three "
                     "tokens, shown as their bytes)") if "<0x" in label else ""
        caption = (f"Token {i + 1} of {len(self.steps)}: **{label}**{byte_note} was drawn with probability "
                   f"{s['prob']:.3f}. The {len(s['top'])} most likely tokens at that point:")
        return caption, rows

    def record(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "prompt_tokens": self.prompt_tokens, "settings": self.settings,
                "generated_text": self.text, "generated_tokens": len(self.steps),
                "seconds": round(self.seconds, 4), "tokens_per_second": round(self.tokens_per_second, 2),
                "crop_started_at": self.crop_started_at, "done": self.done, "stopped": self.stopped,
                "steps": self.steps}

    def to_json(self) -> str:
        return dumps(self.record())

    def to_csv(self) -> str:
        return rows_to_csv([{"step": s["step"], "token_id": s["id"], "token": s["token"], "prob": s["prob"],
                             "cropped": s["cropped"],
                             "alternatives": json.dumps([[t, round(p, 6)] for _, t, p in s["top"]],
                                                        ensure_ascii=False)}
                            for s in self.steps])


def _shown(token_id: int, text: str) -> str:
    """What the page shows for a token: its bytes (``<0xE2>``) where it is only part of a character."""
    return get_tokenizer().token_label(token_id) if "\ufffd" in text else text


def stream_generation(snap: Snapshot, req: GenerateRequest, batcher: Batcher | None = None
                      ) -> Iterator[GenerationView]:
    """One :class:`GenerationView` per new token (the same object, updated), the last with ``done``.
    With a ``batcher`` the tokens come from its shared batch (the same ids as alone)."""
    try:
        yield from _stream_generation(snap, req, batcher)
    except BatcherFull as e:
        raise gr.Error(str(e), title="Busy") from None


def _stream_generation(snap: Snapshot, req: GenerateRequest, batcher: Batcher | None) -> Iterator[GenerationView]:
    tok = get_tokenizer()
    view = GenerationView(req.prompt, len(req.prompt_ids), snap.model.cfg.context_length,
                          settings={"max_new_tokens": req.max_new_tokens, "temperature": req.temperature,
                                    "top_k": req.top_k, "top_p": req.top_p, "seed": req.seed,
                                    "precision": req.precision, "model": snap.name})
    start = time.perf_counter()
    for step in stream_generate(snap.model, list(req.prompt_ids), req.max_new_tokens,
                                temperature=req.temperature, top_k=req.top_k or None, top_p=req.top_p,
                                seed=req.seed, n_alternatives=req.alternatives, tokenizer=tok,
                                precision=req.precision, batcher=batcher):
        view.ids.append(step.id)
        view.steps.append({"step": step.step, "id": step.id, "token": step.text, "prob": step.prob,
                           "top": [list(t) for t in step.top], "cropped": step.cropped})
        if step.cropped and view.crop_started_at is None:
            view.crop_started_at = step.step
        view.text = tok.decode(view.ids)
        view.seconds = time.perf_counter() - start
        yield view
    view.seconds = time.perf_counter() - start
    view.done = True
    yield view
