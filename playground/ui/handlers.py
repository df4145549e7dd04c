"""What each tab (and each API endpoint) computes, without any Gradio component.

Every public function takes the raw values a request carries, validates them
through :mod:`.validate` *before* any model work, runs the engine or the
inspection library on one model snapshot, and returns a plain dataclass the
layout (``layout.py``) or the API (``api.py``) turns into its own output.
Engine ``ValueError``s become :class:`~.validate.InputError` with the same
plain message; anything else is a bug and propagates.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any, Callable, Iterator

import plotly.graph_objects as go

from ..config import PRESETS, GPTConfig
from ..fast_decode import DEFAULT_PRECISION, PRECISIONS
from ..generation import stream_generate
from ..checkpoints.hub import HUB_REPOS, HubUnavailableError, download_gpt2
from ..sampling import SamplingParams
from ..inspection.attention import SCORE_DOCS, SCORE_NAMES, AttentionCapture, HeadScores, capture_attention, head_scores
from ..inspection.attention_figures import aggregate_figure, head_figure, head_scores_figure, layer_figure
from ..inspection.export import dumps, rows_to_csv
from ..inspection.inputs import visible
from ..inspection.logit_lens import LogitLens, logit_lens
from ..inspection.next_token import NextTokenDistribution, next_token_distribution
from ..inspection.next_token_figure import next_token_figure
from ..inspection.logit_lens_figures import logit_lens_figure, trajectory_figure
from ..inspection.params import ParamBreakdown, check_parameters, fmt_int, param_breakdown
from ..inspection.params_figures import params_bar, params_treemap
from ..inspection.trace import ShapeTrace, shape_trace
from ..inspection.trace_figure import trace_figure
from ..tokenizer import get_tokenizer
from ..checkpoints import WeightsError
from . import validate as v
from .state import ModelHolder, Snapshot
from .validate import InputError


def user_errors(fn: Callable) -> Callable:
    """Engine and inspection ``ValueError``s are the user's input: show their message as is."""
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError:
            raise
        except ValueError as e:
            raise InputError(str(e)) from None
    return wrapper


class LRU:
    """A tiny thread-safe LRU for results derived from (model generation, prompt, ...)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        value = make()
        with self._lock:
            self._data[key] = value
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value


def encode(snap: Snapshot, text: str) -> list[int]:
    """Token ids of ``text``; ids the loaded model does not know are a plain error."""
    ids = get_tokenizer().encode(text)
    vocab = snap.model.cfg.vocab_size
    bad = next((i for i in ids if i >= vocab), None)
    if bad is not None:
        raise InputError(f"This model knows only {vocab:,} different tokens, and your text uses token "
                         f"{bad:,} ({visible(get_tokenizer().token_text(bad))!r}). Try plainer text.")
    return ids


def crop_note(ids: list[int], limit: int, what: str) -> tuple[list[int], str]:
    """The last ``limit`` ids, and a sentence saying what was left out (empty if nothing)."""
    if len(ids) <= limit:
        return ids, ""
    return ids[-limit:], (f"Your text is {len(ids):,} tokens; the {what} shows the last {limit:,} "
                          f"(the first {len(ids) - limit:,} are left out).")


# =========================================================================== exports

EXPORT_DIR = Path(__import__("tempfile").gettempdir()) / "gpt2-playground-exports"
EXPORT_MAX_AGE_S = 3600


def export_file(stem: str, suffix: str, text: str) -> str:
    """Write ``text`` to a fresh file for download; files older than an hour are removed."""
    EXPORT_DIR.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in EXPORT_DIR.iterdir():
        try:
            if now - old.stat().st_mtime > EXPORT_MAX_AGE_S:
                old.unlink()
        except OSError:
            pass
    folder = EXPORT_DIR / uuid.uuid4().hex[:12]
    folder.mkdir()
    path = folder / f"{stem}.{suffix}"
    path.write_text(text, encoding="utf-8")
    return str(path)


# =========================================================================== generate


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


@user_errors
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
PROB_COLORS = {"p ≥ 50%": "#1a9850", "10–50%": "#a6d96a", "1–10%": "#fee08b", "p < 1%": "#f46d43"}


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
        return [(self.prompt, None)] + [(s["token"], prob_band(s["prob"])) for s in self.steps]

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
        rows = [[r + 1, visible(t), tid, round(p, 4), "◀ chosen" if tid == s["id"] else ""]
                for r, (tid, t, p) in enumerate(s["top"])]
        if all(tid != s["id"] for tid, _, _ in s["top"]):
            rows.append(["…", visible(s["token"]), s["id"], round(s["prob"], 4), "◀ chosen"])
        caption = (f"Token {i + 1} of {len(self.steps)}: **{visible(s['token'])}** was drawn with probability "
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


def stream_generation(snap: Snapshot, req: GenerateRequest) -> Iterator[GenerationView]:
    """One :class:`GenerationView` per new token (the same object, updated), the last with ``done``."""
    tok = get_tokenizer()
    view = GenerationView(req.prompt, len(req.prompt_ids), snap.model.cfg.context_length,
                          settings={"max_new_tokens": req.max_new_tokens, "temperature": req.temperature,
                                    "top_k": req.top_k, "top_p": req.top_p, "seed": req.seed,
                                    "precision": req.precision, "model": snap.name})
    start = time.perf_counter()
    for step in stream_generate(snap.model, list(req.prompt_ids), req.max_new_tokens,
                                temperature=req.temperature, top_k=req.top_k or None, top_p=req.top_p,
                                seed=req.seed, n_alternatives=req.alternatives, tokenizer=tok,
                                precision=req.precision):
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


# =========================================================================== attention

VIEWS = {"single head": "head", "head": "head", "one head": "head",
         "all heads": "layer", "layer": "layer", "all heads of a layer": "layer",
         "mean & max": "aggregate", "mean/max": "aggregate", "mean": "aggregate", "max": "aggregate",
         "aggregate": "aggregate", "mean & max over heads": "aggregate"}
VIEW_LABELS = {"head": "single head", "layer": "all heads", "aggregate": "mean & max"}
SCORE_LABELS = {"previous_token": "previous token", "first_token": "first token (sink)",
                "current_token": "current token", "induction": "induction", "entropy": "entropy"}
SCORE_CHOICES = {**{n: n for n in SCORE_NAMES}, **{lab: n for n, lab in SCORE_LABELS.items()},
                 "previous-token": "previous_token", "first-token": "first_token", "sink": "first_token"}
SCORE_TOKENS = 256             # the prompt pass of the head scores
_captures = LRU(6)
_scores = LRU(6)


@dataclass(frozen=True)
class AttentionRequest:
    prompt_ids: tuple[int, ...]
    layer: int
    head: int
    view: str
    score: str
    window_start: int | None
    tokens_shown: int
    log_scale: bool
    hide_first: bool
    note: str


@user_errors
def check_attention(snap: Snapshot, prompt: Any, layer: Any = 0, head: Any = 0, view: Any = "single head",
                    score: Any = "previous_token", window_start: Any = None, tokens_shown: Any = None,
                    log_scale: Any = False, hide_first: Any = False) -> AttentionRequest:
    cfg = snap.model.cfg
    text = v.prompt(prompt)
    lay = v.index(layer, "Layer", cfg.n_layers)
    hd = v.index(head, "Head", cfg.n_heads)
    kind = v.choice(view, "View", VIEWS, default="head")
    sc = v.choice(score, "Score", SCORE_CHOICES, default="previous_token")
    default_shown = 96 if kind == "layer" else 64
    shown = v.whole(tokens_shown, "Tokens shown", 2, v.ATTENTION_TOKENS, default=default_shown)
    start = None
    if window_start is not None and window_start != "" and window_start != -1:
        start = v.whole(window_start, "Window start", 0, v.ATTENTION_TOKENS - 1)
    ids, note = crop_note(encode(snap, text), min(cfg.context_length, v.ATTENTION_TOKENS), "attention view")
    return AttentionRequest(tuple(ids), lay, hd, kind, sc, start, shown, v.flag(log_scale, "Log colour scale"),
                            v.flag(hide_first, "Hide first token"), note)


@dataclass
class AttentionView:
    figure: go.Figure
    scores: HeadScores
    scores_figure: go.Figure
    capture: AttentionCapture
    request: AttentionRequest
    note: str

    def grid(self, score: str | None = None) -> tuple[list[str], list[list[Any]]]:
        """Header and rows of one score as a layer x head table (the clickable grid)."""
        name = score or self.request.score
        values = self.scores.score(name)
        headers = ["layer"] + [f"head {h}" for h in range(self.scores.n_heads)]
        rows = [[layer] + [round(float(x), 3) for x in values[layer]] for layer in range(self.scores.n_layers)]
        return headers, rows

    def data(self) -> dict[str, Any]:
        r = self.request
        if r.view == "head":
            weights = self.capture.head(r.layer, r.head)
        elif r.view == "layer":
            weights = self.capture.layer(r.layer)
        else:
            w = self.capture.layer(r.layer).float()
            weights = {"mean": w.mean(0), "max": w.amax(0)}
        return {"layer": r.layer, "head": r.head, "view": VIEW_LABELS[r.view],
                "tokens": list(self.capture.labels), "token_ids": list(self.capture.token_ids),
                "weights": weights, "scores": {n: self.scores.score(n) for n in SCORE_NAMES},
                "score_docs": dict(SCORE_DOCS), "scores_measured_on": self.scores.source, "note": self.note}

    def to_json(self) -> str:
        return dumps(self.data())

    def to_csv(self) -> str:
        return self.capture.to_csv(self.request.layer, self.request.head)


def _scores_for(snap: Snapshot, ids: tuple[int, ...]) -> HeadScores:
    def make() -> HeadScores:
        if len(ids) >= 2:
            return head_scores(snap.model, list(ids[-SCORE_TOKENS:]))
        return head_scores(snap.model)
    return _scores.get((snap.generation, ids[-SCORE_TOKENS:]), make)


def _capture_for(snap: Snapshot, ids: tuple[int, ...], layer: int) -> AttentionCapture:
    return _captures.get((snap.generation, ids, layer),
                         lambda: capture_attention(snap.model, list(ids), layers=[layer],
                                                   tokenizer=get_tokenizer()))


@user_errors
def attention_view(snap: Snapshot, req: AttentionRequest, figures: bool = True) -> AttentionView:
    """Weights of the requested layer, head scores, and (unless ``figures`` is False, as for the
    API) the figures."""
    cap = _capture_for(snap, req.prompt_ids, req.layer)
    qwin = None if req.window_start is None else (req.window_start, req.window_start + req.tokens_shown)
    common = dict(query_window=qwin, log_scale=req.log_scale, hide_first=req.hide_first,
                  max_tokens=req.tokens_shown)
    if not figures:
        fig = go.Figure()
    elif req.view == "head":
        fig = head_figure(cap, req.layer, req.head, **common)
    elif req.view == "layer":
        fig = layer_figure(cap, req.layer, **common)
    else:
        fig = aggregate_figure(cap, req.layer, **common)
    scores = _scores_for(snap, req.prompt_ids)
    notes = [req.note, cap.note if cap.note != req.note else ""]
    if len(req.prompt_ids) < 2:
        notes.append("Head scores other than induction need at least 2 tokens: measured on random tokens.")
    elif len(req.prompt_ids) > SCORE_TOKENS:
        notes.append(f"Head scores use the last {SCORE_TOKENS} tokens.")
    return AttentionView(fig, scores, head_scores_figure(scores) if figures else go.Figure(), cap, req,
                         " ".join(n for n in notes if n))


# =========================================================================== shapes


@dataclass
class TraceView:
    trace: ShapeTrace
    lang: str
    expand: bool
    figure: go.Figure
    note: str

    def table(self) -> list[dict]:
        return self.trace.table(self.expand, self.lang)

    def to_json(self) -> str:
        return self.trace.to_json(expand=True)

    def to_csv(self) -> str:
        return self.trace.to_csv(self.expand, self.lang)


@user_errors
def trace_view(snap: Snapshot, prompt: Any, lang: Any = "en", expand: Any = False) -> TraceView:
    text = v.prompt(prompt)
    language = v.choice(lang, "Language", v.LANGUAGES, default="en")
    full = v.flag(expand, "Expand all blocks")
    ids, note = crop_note(encode(snap, text), min(snap.model.cfg.context_length, v.TRACE_TOKENS), "shape trace")
    trace = shape_trace(snap.model, ids, tokenizer=get_tokenizer())
    return TraceView(trace, language, full, trace_figure(trace, lang=language, expand=full), note)


# =========================================================================== parameters

PRESET_CHOICES = {n.lower(): n for n in PRESETS} | {"medium": "gpt2-medium", "large": "gpt2-large",
                                                    "xl": "gpt2-xl", "book": "book-124M", "124m": "book-124M"}


@dataclass
class ParamsView:
    breakdown: ParamBreakdown
    comparison: str

    @property
    def config(self) -> GPTConfig:
        return self.breakdown.config

    def summary_markdown(self) -> str:
        bd = self.breakdown
        mem = bd.memory()
        tied = "tied head (counted once)" if bd.config.tie_embeddings else "separate output head"
        return (f"## {fmt_int(bd.total)} parameters\n"
                f"{tied} · one block: {fmt_int(bd.per_block)} · without tying {fmt_int(bd.total_untied)}, "
                f"with tying {fmt_int(bd.total_tied)} · memory: fp32 {mem['fp32'] / 2**20:,.1f} MiB, "
                f"bf16 {mem['bf16'] / 2**20:,.1f} MiB, int8 {mem['int8'] / 2**20:,.1f} MiB")

    def derivation(self) -> str:
        return "\n".join(self.breakdown.derivation())

    def rows(self) -> list[list[Any]]:
        return [[l.name, l.formula, l.filled, fmt_int(l.count), l.repeat, fmt_int(l.total),
                 f"{l.total / self.breakdown.total:.1%}" if self.breakdown.total else ""]
                for l in self.breakdown.lines]

    def figures(self) -> tuple[go.Figure, go.Figure]:
        return params_treemap(self.breakdown), params_bar(self.breakdown)

    def data(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "summary": self.breakdown.summary(),
                "lines": self.breakdown.rows(), "derivation": self.breakdown.derivation(),
                "comparison": self.comparison}


PARAM_HEADERS = ["part", "formula", "numbers", "count", "x", "total", "share"]
_checks = LRU(4)


@user_errors
def check_params(vocab_size: Any = 50257, context_length: Any = 1024, emb_dim: Any = 768, n_heads: Any = 12,
                 n_layers: Any = 12, qkv_bias: Any = False, tie_embeddings: Any = False) -> GPTConfig:
    labels = {"vocab_size": "Vocabulary size", "context_length": "Context length", "emb_dim": "Embedding dim",
              "n_heads": "Heads", "n_layers": "Layers"}
    raw = dict(vocab_size=vocab_size, context_length=context_length, emb_dim=emb_dim, n_heads=n_heads,
               n_layers=n_layers)
    values = {k: v.whole(x, labels[k], *v.PARAM_LIMITS[k]) for k, x in raw.items()}
    if values["emb_dim"] % values["n_heads"]:
        raise InputError(f"Embedding dim ({values['emb_dim']:,}) must be divisible by the number of heads "
                         f"({values['n_heads']:,}): each head gets emb_dim / heads numbers.")
    return GPTConfig(**values, drop_rate=0.0, qkv_bias=v.flag(qkv_bias, "QKV bias"),
                     tie_embeddings=v.flag(tie_embeddings, "Tied head"))


def params_view(cfg: GPTConfig, snap: Snapshot | None) -> ParamsView:
    bd = param_breakdown(cfg)
    return ParamsView(bd, compare_with_loaded(bd, snap))


def compare_with_loaded(bd: ParamBreakdown, snap: Snapshot | None) -> str:
    if snap is None:
        return "No model is loaded, so there is nothing to compare with."
    check = _checks.get(snap.generation, lambda: check_parameters(snap.model))
    verdict = ("the analytic count for its config matches exactly ✓" if check.ok else
               "⚠️ differs from the analytic count: " + "; ".join(check.mismatches[:3]))
    same = bd.config.replace(drop_rate=0.0) == snap.model.cfg.replace(drop_rate=0.0)
    ratio = bd.total / check.counted if check.counted else 0.0
    rel = "this is its config" if same else f"the config above has {ratio:,.2f}x as many"
    return (f"Loaded model **{snap.name}**: {fmt_int(check.counted)} parameters counted in memory; "
            f"{verdict}; {rel}.")


def preset_config(name: Any) -> GPTConfig:
    return PRESETS[v.choice(name, "Preset", PRESET_CHOICES)]


# =========================================================================== logit lens


@dataclass
class LensView:
    lens: LogitLens
    figure: go.Figure
    trajectory: go.Figure
    note: str

    def data(self) -> dict[str, Any]:
        return json.loads(self.lens.to_json())


@user_errors
def lens_view(snap: Snapshot, prompt: Any, top_k: Any = 5, position: Any = None) -> LensView:
    text = v.prompt(prompt)
    k = v.whole(top_k, "Top-k", 1, 20, default=5)
    ids, note = crop_note(encode(snap, text), min(snap.model.cfg.context_length, v.LENS_TOKENS), "logit lens")
    pos = v.whole(position, "Position", -len(ids), len(ids) - 1, default=-1)
    lens = logit_lens(snap.model, ids, top_k=k, tokenizer=get_tokenizer())
    return LensView(lens, logit_lens_figure(lens), trajectory_figure(lens.trajectory(pos)), note)


# =========================================================================== next token


@dataclass
class NextView:
    dist: NextTokenDistribution
    figure: go.Figure
    note: str

    def rows(self) -> list[list[Any]]:
        d = self.dist
        return [[r + 1, lab, tid, round(d.probs["model"][r], 4), round(d.probs["top_p"][r], 4)]
                for r, (tid, lab) in enumerate(zip(d.token_ids, d.labels))]

    def summary(self) -> str:
        d = self.dist
        return (f"After **{d.context_label}** (position {d.position}): {d.n_kept:,} token(s) can be drawn. "
                f"Entropy {d.entropy['model']:.2f} nats for the model, {d.entropy['top_p']:.2f} after the "
                f"sampling controls." + (f" {self.note}" if self.note else ""))

    def data(self) -> dict[str, Any]:
        return json.loads(self.dist.to_json())


NEXT_HEADERS = ["rank", "token", "id", "model probability", "after temperature/top-k/top-p"]


@user_errors
def next_view(snap: Snapshot, prompt: Any, temperature: Any = 1.0, top_k: Any = 0, top_p: Any = 1.0,
              show: Any = 10, stages: Any = False) -> NextView:
    text = v.prompt(prompt)
    params = SamplingParams(temperature=v.real(temperature, "Temperature", 0.0, v.MAX_TEMPERATURE, default=1.0),
                            top_k=v.whole(top_k, "Top-k", 0, snap.model.cfg.vocab_size, default=0) or None,
                            top_p=v.real(top_p, "Top-p", 0.0, 1.0, default=1.0, lo_open=True))
    n = v.whole(show, "Tokens shown", 1, 50, default=10)
    all_stages = v.flag(stages, "Show every stage")
    ids, note = crop_note(encode(snap, text), snap.model.cfg.context_length, "next-token view")
    dist = next_token_distribution(snap.model, ids, params, show=n, tokenizer=get_tokenizer())
    return NextView(dist, next_token_figure(dist, stages=all_stages), note)


# =========================================================================== model


def model_markdown(info: dict[str, Any]) -> str:
    if not info.get("loaded"):
        return f"### No model loaded\n{info.get('message', '')}"
    cfg = info["config"]
    sha = info["sha256_prefix"] or "computing…"
    return (f"### Loaded: {info['name']}\n"
            f"- **file:** `{info['file']}`, {info['file_size_bytes'] / 1e6:,.1f} MB, {info['layout']} layout, "
            f"stored as {info['file_dtype']}, sha256 `{sha}`\n"
            f"- **parameters:** {fmt_int(info['parameters'])}\n"
            f"- **config:** {cfg['n_layers']} layers, {cfg['n_heads']} heads, emb_dim {cfg['emb_dim']}, "
            f"context {cfg['context_length']}, vocab {cfg['vocab_size']:,}, qkv_bias {cfg['qkv_bias']}, "
            f"tied head {cfg['tie_embeddings']}\n"
            f"- **runs as:** {info['dtype']} on {info['device']}")


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

