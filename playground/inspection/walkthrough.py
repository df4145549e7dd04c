"""A guided tour of one forward pass: every step of the book's ch04 GPTModel on a short prompt.

Each step names the line(s) of ``playground/model.py`` that compute it (the
book's own names), the real shape of the tensor, the real numbers (batch 0,
the first 8 positions, the first 16 features) and a sentence or three on what
happened, in English and in Chinese. One block (``layer``) and one attention
head (``head``) are shown in full; the other blocks are one collapsed step.

The tour is data only, as Transformer Explainer's textbook pages are: the UI
steps through ``Walkthrough.steps`` and highlights ``lines`` in the source.

JSON conventions: the masked cells of ``masked_scores`` (-inf in the model)
are stored as ``None``; no value is ever NaN or inf. ``other_blocks`` gives,
for every block, the residual stream's L2 norm per position averaged over the
positions shown (``values``; per position in ``extra["per_position"]``).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ..hooks import hooks
from ..model import GPTModel
from .inputs import TokenInput, TokenizerLike, eval_mode, make_label_fn, prepare, this_thread_only, to_id_list

log = logging.getLogger(__name__)

STEP_IDS: tuple[str, ...] = (
    "token_ids", "tok_emb", "pos_emb", "input_embeddings", "norm1", "queries", "keys", "values",
    "attn_scores", "masked_scores", "attn_weights", "context_vec", "out_proj", "shortcut_1", "norm2",
    "ff_expand", "gelu", "ff_contract", "shortcut_2", "other_blocks", "final_norm", "logits", "probas",
    "next_token",
)
MAX_TOKENS = 8       # the tour's prompt length
VIEW_POSITIONS = 8   # rows of every matrix shown
VIEW_FEATURES = 16   # columns of every vector shown
TOP_TOKENS = 10      # candidates listed for the last position (bars of logits / probas)

MODEL_SOURCE = "playground/model.py"
BOOK_LOOP_SOURCE = "playground/generation.py"   # generate_text_simple: the book's loop, verbatim

# step id -> (source, anchor, lines). Each line is the stripped text of one source line; it is
# looked up as the first line at or after the anchor (the anchor tells apart the two
# ``shortcut = x`` of a block, say). Probabilities and the greedy pick are not in the model:
# they come from the book's ``generate_text_simple``.
_CODE: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "token_ids": (MODEL_SOURCE, "class GPTModel", (
        "batch_size, seq_len = in_idx.shape                                # (B, T)",)),
    "tok_emb": (MODEL_SOURCE, "class GPTModel", (
        "tok_embeds = self.hook_tok_emb(self.tok_emb(in_idx))               # (B, T, E)",)),
    "pos_emb": (MODEL_SOURCE, "class GPTModel", (
        "positions = torch.arange(start, start + seq_len, device=in_idx.device)",
        "pos_embeds = self.hook_pos_emb(self.pos_emb(positions))           # (T, E)")),
    "input_embeddings": (MODEL_SOURCE, "class GPTModel", (
        "x = self.hook_embed(self.drop_emb(tok_embeds + pos_embeds))",)),
    "norm1": (MODEL_SOURCE, "class TransformerBlock", (
        "x = self.hook_norm1(self.norm1(x))",)),
    "queries": (MODEL_SOURCE, "class MultiHeadAttention", (
        "queries = self._heads(self.W_query(x))                       # (B, H, T, D)",
        "queries = self.hook_q(queries)",
        "return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)")),
    "keys": (MODEL_SOURCE, "class MultiHeadAttention", (
        "keys = self._heads(self.W_key(x))",
        "keys = self.hook_k(keys)")),
    "values": (MODEL_SOURCE, "class MultiHeadAttention", (
        "values = self._heads(self.W_value(x))",
        "values = self.hook_v(values)")),
    "attn_scores": (MODEL_SOURCE, "class MultiHeadAttention", (
        "attn_scores = self.hook_scores(q @ k.transpose(2, 3))        # (B, H, T, Tk)",)),
    "masked_scores": (MODEL_SOURCE, "class MultiHeadAttention", (
        "mask = self._future_mask(q.shape[2], k.shape[2], past, q.device)",
        "attn_scores = self.hook_masked_scores(attn_scores.masked_fill(mask, -torch.inf))")),
    "attn_weights": (MODEL_SOURCE, "class MultiHeadAttention", (
        "attn_weights = torch.softmax(attn_scores / k.shape[-1] ** 0.5, dim=-1)",
        "attn_weights = self.hook_pattern(attn_weights)")),
    "context_vec": (MODEL_SOURCE, "class MultiHeadAttention", (
        "return attn_weights @ v                                      # (B, H, T, D)",
        "context = context.transpose(1, 2).reshape(b, num_tokens, self.d_out)  # (B, T, E)",
        "context = self.hook_z(context)")),
    "out_proj": (MODEL_SOURCE, "class MultiHeadAttention", (
        "return self.out_proj(context)",
        "x = self.hook_attn_out(self.att(x, cache))")),
    "shortcut_1": (MODEL_SOURCE, "class TransformerBlock", (
        "shortcut = x",
        "x = self.drop_shortcut(x)",
        "x = self.hook_resid_mid(x + shortcut)")),
    "norm2": (MODEL_SOURCE, "class TransformerBlock", (
        "x = self.hook_norm2(self.norm2(x))",)),
    "ff_expand": (MODEL_SOURCE, "class FeedForward", (
        "nn.Linear(cfg.emb_dim, 4 * cfg.emb_dim),",
        "hidden = self.hook_pre(self.layers[0](x))      # (B, T, 4E)")),
    "gelu": (MODEL_SOURCE, "class GELU", (
        'return F.gelu(x, approximate="tanh")',
        "activated = self.hook_post(self.layers[1](hidden))")),
    "ff_contract": (MODEL_SOURCE, "class FeedForward", (
        "return self.layers[2](activated)               # (B, T, E)",
        "x = self.hook_ff_out(self.ff(x))")),
    "shortcut_2": (MODEL_SOURCE, "x = self.hook_resid_mid(x + shortcut)", (
        "shortcut = x",
        "x = self.drop_shortcut(x)",
        "return self.hook_resid_post(x + shortcut)")),
    "other_blocks": (MODEL_SOURCE, "class GPTModel", (
        "for i, block in enumerate(self.trf_blocks):",
        "x = block(x, cache.layers[i] if cache is not None else None)")),
    "final_norm": (MODEL_SOURCE, "class GPTModel", (
        "x = self.hook_final_norm(self.final_norm(x))",)),
    "logits": (MODEL_SOURCE, "class GPTModel", (
        "return self.hook_logits(self.out_head(x))                         # (B, T, V)",)),
    "probas": (BOOK_LOOP_SOURCE, "def generate_text_simple", (
        "probas = torch.softmax(logits, dim=-1)",)),
    "next_token": (BOOK_LOOP_SOURCE, "def generate_text_simple", (
        "idx_next = torch.argmax(probas, dim=-1, keepdim=True)",
        "idx = torch.cat((idx, idx_next), dim=1)")),
}

_PACKAGE = Path(__file__).resolve().parents[1]   # playground/
_SOURCE_FILES = {src: _PACKAGE / Path(src).name for src in (MODEL_SOURCE, BOOK_LOOP_SOURCE)}


def _find_lines(text: str, anchor: str, lines: Sequence[str]) -> list[int | None]:
    """1-based line numbers of ``lines`` (stripped text), each the first at or after ``anchor``."""
    rows = [r.strip() for r in text.splitlines()]
    start = next((i for i, r in enumerate(rows) if r.startswith(anchor)), 0)
    found: list[int | None] = []
    for line in lines:
        found.append(next((i + 1 for i in range(start, len(rows)) if rows[i] == line), None))
    return found


def _resolve_code() -> dict[str, tuple[int | None, ...]]:
    texts = {src: path.read_text(encoding="utf-8") for src, path in _SOURCE_FILES.items()}
    out = {sid: tuple(_find_lines(texts[src], anchor, lines)) for sid, (src, anchor, lines) in _CODE.items()}
    missing = missing_code_lines(out)
    if missing:   # the model's source changed under the tour: the UI highlights nothing for these
        log.warning("walkthrough: code lines not found in the source: %s", missing)
    return out


def missing_code_lines(resolved: "dict[str, tuple[int | None, ...]] | None" = None) -> list[tuple[str, str]]:
    """``(step id, line)`` for every code line that is not (any more) in its source file."""
    resolved = CODE_LINES if resolved is None else resolved
    return [(sid, line) for sid, (_, _, lines) in _CODE.items()
            for line, n in zip(lines, resolved[sid]) if n is None]


CODE_LINES: dict[str, tuple[int | None, ...]] = _resolve_code()   # searched once, at import


def code_line_numbers(step: "str | WalkStep") -> list[int]:
    """Line numbers (1-based) in the step's source file of its ``code`` lines (missing ones left out)."""
    sid = step if isinstance(step, str) else step.id
    return [n for n in CODE_LINES[sid] if n is not None]


@dataclass(frozen=True)
class WalkStep:
    """One page of the tour. ``values`` holds plain numbers (nested lists; None = -inf);
    ``extra`` what a figure needs beyond them (the stream before a shortcut, GELU's input, ...)."""

    id: str
    title: str
    title_zh: str
    code: tuple[str, ...]
    source: str
    lines: tuple[int, ...]
    shape: tuple[int, ...]
    values: Any
    view: str
    explanation: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)

    def data(self) -> dict:
        return {"id": self.id, "title": self.title, "title_zh": self.title_zh, "code": list(self.code),
                "source": self.source, "lines": list(self.lines), "shape": list(self.shape),
                "values": self.values, "view": self.view, "explanation": dict(self.explanation),
                "extra": self.extra}


@dataclass(frozen=True)
class Walkthrough:
    tokens: tuple[str, ...]        # display labels of the prompt's tokens
    token_ids: tuple[int, ...]
    layer: int
    head: int
    n_layers: int
    n_heads: int
    note: str
    steps: tuple[WalkStep, ...]

    def step(self, step_id: str) -> WalkStep:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(f"no walkthrough step {step_id!r}; steps are {', '.join(STEP_IDS)}")

    def data(self) -> dict:
        return {"tokens": list(self.tokens), "token_ids": list(self.token_ids), "layer": self.layer,
                "head": self.head, "n_layers": self.n_layers, "n_heads": self.n_heads, "note": self.note,
                "steps": [s.data() for s in self.steps]}


# --- numbers -> plain lists ------------------------------------------------------------------

def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _matrix(t: torch.Tensor, cols: int = VIEW_FEATURES) -> list[list[float | None]]:
    """First ``VIEW_POSITIONS`` rows, first ``cols`` columns of a 2-D tensor; -inf -> None."""
    return [[_num(float(v)) for v in row] for row in t[:VIEW_POSITIONS, :cols].float().tolist()]


def _fmt(x: float) -> str:
    return f"{x:.2f}"


# --- the run ---------------------------------------------------------------------------------

def _block_hooks(layer: int) -> dict[str, str]:
    p = f"trf_blocks.{layer}."
    return {
        "resid_pre": p + "hook_resid_pre", "norm1": p + "hook_norm1", "q": p + "att.hook_q",
        "k": p + "att.hook_k", "v": p + "att.hook_v", "scores": p + "att.hook_scores",
        "masked": p + "att.hook_masked_scores", "pattern": p + "att.hook_pattern", "z": p + "att.hook_z",
        "attn_out": p + "hook_attn_out", "resid_mid": p + "hook_resid_mid", "norm2": p + "hook_norm2",
        "ff_pre": p + "ff.hook_pre", "ff_post": p + "ff.hook_post", "ff_out": p + "hook_ff_out",
        "resid_post": p + "hook_resid_post",
    }


def _run(model: GPTModel, ids: torch.Tensor, layer: int) -> dict[str, torch.Tensor]:
    """One forward pass recording the hook points the tour reads (plus every block's output)."""
    names = {"tok_emb": "hook_tok_emb", "pos_emb": "hook_pos_emb", "embed": "hook_embed",
             "final_norm": "hook_final_norm", "logits": "hook_logits", **_block_hooks(layer)}
    names.update({f"block_out_{b}": f"trf_blocks.{b}.hook_resid_post" for b in range(model.cfg.n_layers)})
    by_point: dict[str, list[str]] = {}
    for key, point in names.items():
        by_point.setdefault(point, []).append(key)
    store: dict[str, torch.Tensor] = {}

    def record(t: torch.Tensor, name: str) -> None:
        for key in by_point[name]:
            store[key] = t.detach()

    fn = this_thread_only(record)
    with eval_mode(model), hooks(model, {p: fn for p in by_point}):
        model(ids)
    return store


@torch.inference_mode()
def walkthrough(model: GPTModel, tokens: TokenInput, layer: int = 0, head: int = 0, *,
                tokenizer: TokenizerLike | None = None, max_tokens: int = MAX_TOKENS) -> Walkthrough:
    """Run the first ``max_tokens`` tokens of the prompt once and describe every step.

    Block ``layer`` and head ``head`` are shown in full (the per-head steps show that
    head's slice); the other blocks are the collapsed ``other_blocks`` step.
    """
    cfg = model.cfg
    if not 0 <= layer < cfg.n_layers:
        raise ValueError(f"layer must be in 0..{cfg.n_layers - 1}, got {layer}")
    if not 0 <= head < cfg.n_heads:
        raise ValueError(f"head must be in 0..{cfg.n_heads - 1}, got {head}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    ids = to_id_list(tokens, tokenizer)
    keep = min(max_tokens, cfg.context_length)
    note = ""
    if len(ids) > keep:   # the tour reads from the start: cut the end, not the beginning
        note = f"The walkthrough uses the first {keep} tokens of your prompt (it has {len(ids)})."
        ids = ids[:keep]
    prep = prepare(model, ids, tokenizer=tokenizer)
    rec = _run(model, prep.ids, layer)
    label = make_label_fn(model, tokenizer)
    raw_text = ((lambda i: tokenizer.token_text(i))
                if tokenizer is not None and getattr(tokenizer, "n_vocab", None) == cfg.vocab_size else label)
    steps = _steps(model, prep.ids, prep.labels, rec, layer, head, label, raw_text)
    return Walkthrough(tokens=prep.labels, token_ids=tuple(prep.token_ids), layer=layer, head=head,
                       n_layers=cfg.n_layers, n_heads=cfg.n_heads, note=note, steps=tuple(steps))


def _view(rows: int, cols: int, what: str = "", unit: str = "features") -> str:
    t = min(rows, VIEW_POSITIONS)
    c = min(cols, VIEW_FEATURES)
    return f"batch 0{what}, positions 0-{t - 1}, {unit} 0-{c - 1} of {cols}"


def _top(logits: torch.Tensor, label, raw_text) -> list[dict]:
    """Top candidates at one position: id, label, text, logit, probability (softmax of all logits)."""
    probs = torch.softmax(logits.float(), dim=-1)
    k = min(TOP_TOKENS, logits.numel())
    order = torch.topk(logits.float(), k).indices.tolist()
    return [{"id": i, "label": label(i), "text": raw_text(i), "logit": float(logits[i]), "prob": float(probs[i])}
            for i in order]


def _steps(model: GPTModel, ids: torch.Tensor, labels: tuple[str, ...], rec: dict[str, torch.Tensor],
           layer: int, head: int, label, raw_text) -> list[WalkStep]:
    cfg = model.cfg
    t, e, h, d, v = ids.shape[1], cfg.emb_dim, cfg.n_heads, cfg.head_dim, cfg.vocab_size
    lo, hi = head * d, (head + 1) * d
    q = rec["q"][0, head]                                                     # (T, D)
    pattern = rec["pattern"][0, head]                                         # (T, T)
    logits = rec["logits"][0]                                                 # (T, V)
    probas = torch.softmax(logits.float(), dim=-1)                            # (T, V)
    top_logits = _top(logits[-1], label, raw_text)
    best = top_logits[0]
    norms = [rec[f"block_out_{b}"][0, :VIEW_POSITIONS].float().norm(dim=-1) for b in range(cfg.n_layers)]
    embed_norm = float(rec["embed"][0, :VIEW_POSITIONS].float().norm(dim=-1).mean())
    last = labels[-1]
    looked = int(pattern[-1].argmax())
    first_lab = labels[0]
    others = [b for b in range(cfg.n_layers) if b != layer]
    n_other = len(others)
    rows_h = f"head {head}"

    def attn_matrix(x: torch.Tensor) -> list[list[float | None]]:
        return _matrix(x, VIEW_POSITIONS)

    per_step: dict[str, dict[str, Any]] = {
        "token_ids": dict(
            shape=tuple(ids.shape), values=ids[0, :VIEW_POSITIONS].tolist(),
            view=f"batch 0, positions 0-{min(t, VIEW_POSITIONS) - 1}",
            title=("Token IDs", "词元 ID"),
            en=f"The tokenizer turned the prompt into {t} integers, one per token (the first is "
               f"{int(ids[0, 0])} for '{first_lab}'); these ids, shape (1, {t}), are all the model ever sees.",
            zh=f"分词器把提示文本变成 {t} 个整数，每个词元一个（第一个是 '{first_lab}' 的 {int(ids[0, 0])}）；"
               f"模型看到的只有这个形状为 (1, {t}) 的 id 张量。"),
        "tok_emb": dict(
            shape=tuple(rec["tok_emb"].shape), values=_matrix(rec["tok_emb"][0]), view=_view(t, e),
            title=("Token embeddings", "词元嵌入"),
            en=f"Each of the {t} token ids picks its row of the {v:,} x {e} embedding table, so every token "
               f"becomes a vector of {e} numbers the layers can compute with.",
            zh=f"{t} 个词元 id 各自从 {v:,} × {e} 的嵌入表中取出一行，每个词元变成一个 {e} 维向量，"
               f"后面的层才能对它计算。"),
        "pos_emb": dict(
            shape=tuple(rec["pos_emb"].shape), values=_matrix(rec["pos_emb"]),
            view=f"positions 0-{min(t, VIEW_POSITIONS) - 1}, features 0-{min(e, VIEW_FEATURES) - 1} of {e}",
            title=("Positional embeddings", "位置嵌入"),
            en=f"Attention alone cannot tell word order, so positions 0-{t - 1} each look up a learned vector "
               f"of {e} numbers in a table of {cfg.context_length} rows (the context length).",
            zh=f"注意力本身分不清词序，所以位置 0-{t - 1} 各自从 {cfg.context_length} 行（上下文长度）的表中"
               f"取一个 {e} 维的可学习向量。"),
        "input_embeddings": dict(
            shape=tuple(rec["embed"].shape), values=_matrix(rec["embed"][0]), view=_view(t, e),
            title=("Input embeddings (token + position)", "输入嵌入（词元 + 位置）"),
            en=f"Token and position vectors are added element by element (then dropout, off here): the "
               f"({1}, {t}, {e}) result is the residual stream every block reads from and adds to.",
            zh=f"词元嵌入与位置嵌入逐元素相加（之后的 dropout 此处关闭）：得到的 (1, {t}, {e}) 张量就是"
               f"每个块读取并写回的残差流。"),
        "norm1": dict(
            shape=tuple(rec["norm1"].shape), values=_matrix(rec["norm1"][0]), view=_view(t, e),
            title=(f"Block {layer}: LayerNorm 1", f"第 {layer} 块：层归一化 1"),
            en=f"Each token's {e} numbers are shifted to mean 0 and scaled to variance 1, then multiplied by "
               f"a learned scale and shifted by a learned shift, so attention gets inputs in a stable range.",
            zh=f"把每个词元的 {e} 个数标准化为均值 0、方差 1，再乘以可学习的 scale、加上 shift，"
               f"让注意力的输入处于稳定范围。"),
        "queries": dict(
            shape=tuple(rec["q"].shape), values=_matrix(q), view=_view(t, d, f", {rows_h}"),
            title=(f"Queries (head {head})", f"查询向量（注意力头 {head}）"),
            en=f"W_query maps each token to a query of {e} numbers, split into {h} heads of {d}; head {head}'s "
               f"query says what this position is looking for among the tokens before it.",
            zh=f"W_query 把每个词元映射成 {e} 维查询向量，再拆成 {h} 个注意力头、每头 {d} 维；"
               f"注意力头 {head} 的查询表示这个位置想在前面的词元中寻找什么。"),
        "keys": dict(
            shape=tuple(rec["k"].shape), values=_matrix(rec["k"][0, head]), view=_view(t, d, f", {rows_h}"),
            title=(f"Keys (head {head})", f"键向量（注意力头 {head}）"),
            en=f"W_key gives each token a key ({d} numbers per head): what it offers to be found by. "
               f"Queries are compared with keys in the next step.",
            zh=f"W_key 为每个词元生成键向量（每头 {d} 维）：它能被什么样的查询找到；下一步查询与键比较。"),
        "values": dict(
            shape=tuple(rec["v"].shape), values=_matrix(rec["v"][0, head]), view=_view(t, d, f", {rows_h}"),
            title=(f"Values (head {head})", f"值向量（注意力头 {head}）"),
            en=f"W_value gives each token a value ({d} numbers per head): the content it passes on to the "
               f"positions that attend to it.",
            zh=f"W_value 为每个词元生成值向量（每头 {d} 维）：关注它的位置从它这里取走的内容。"),
        "attn_scores": dict(
            shape=tuple(rec["scores"].shape), values=attn_matrix(rec["scores"][0, head]),
            view=f"batch 0, {rows_h}, queries 0-{min(t, VIEW_POSITIONS) - 1} x keys 0-{min(t, VIEW_POSITIONS) - 1}",
            title=(f"Attention scores q·kᵀ (head {head})", f"注意力分数 q·kᵀ（注意力头 {head}）"),
            en=f"Every query is dotted with every key: a table of {t} x {t} per head. Row i, column j says how "
               f"well token j matches what token i is looking for (before scaling and masking).",
            zh=f"每个查询与每个键做点积，每个注意力头得到 {t} × {t} 的表：第 i 行第 j 列表示词元 j 与词元 i "
               f"所找内容的匹配程度（尚未缩放和掩码）。"),
        "masked_scores": dict(
            shape=tuple(rec["masked"].shape), values=attn_matrix(rec["masked"][0, head]),
            view=f"batch 0, {rows_h}, {min(t, VIEW_POSITIONS)} x {min(t, VIEW_POSITIONS)}; None = -inf (masked)",
            title=(f"Causal mask (head {head})", f"因果掩码（注意力头 {head}）"),
            en=f"Scores of later tokens (above the diagonal, {t * (t - 1) // 2} of {t * t} cells) are set to -inf "
               f"(stored as null here), so after the softmax no token can look at the future.",
            zh=f"对角线以上、属于后面词元的分数（{t * t} 个中的 {t * (t - 1) // 2} 个）被设为 -inf（此处存为 null），"
               f"softmax 之后任何词元都看不到未来。"),
        "attn_weights": dict(
            shape=tuple(rec["pattern"].shape), values=attn_matrix(pattern),
            view=f"batch 0, {rows_h}, {min(t, VIEW_POSITIONS)} x {min(t, VIEW_POSITIONS)}",
            extra={"row_sums": [float(x) for x in pattern[:VIEW_POSITIONS].float().sum(-1)]},
            title=(f"Attention weights (head {head})", f"注意力权重（注意力头 {head}）"),
            en=f"Scores are divided by √{d} = {math.sqrt(d):.2f} and each row goes through softmax, so it is "
               f">= 0 and sums to 1. The last token '{last}' puts {float(pattern[-1, looked]):.0%} of its "
               f"attention on '{labels[looked]}'.",
            zh=f"分数除以 √{d} = {math.sqrt(d):.2f}，每一行再做 softmax，变成非负且和为 1 的注意力权重。"
               f"最后一个词元 '{last}' 把 {float(pattern[-1, looked]):.0%} 的注意力放在 '{labels[looked]}' 上。"),
        "context_vec": dict(
            shape=tuple(rec["z"].shape), values=_matrix(rec["z"][0, :, lo:hi]),
            view=f"batch 0, positions 0-{min(t, VIEW_POSITIONS) - 1}, {rows_h}'s slice: features {lo}-"
                 f"{lo + min(d, VIEW_FEATURES) - 1} of {e}",
            title=(f"Context vectors (head {head})", f"上下文向量（注意力头 {head}）"),
            en=f"Each token's context vector is its attention-weighted average of the value vectors; the {h} "
               f"heads' {d}-number results are concatenated back into {e} numbers per token.",
            zh=f"每个词元的上下文向量是用注意力权重对值向量的加权平均；{h} 个注意力头各自 {d} 维的结果"
               f"再拼接回每个词元 {e} 维。"),
        "out_proj": dict(
            shape=tuple(rec["attn_out"].shape), values=_matrix(rec["attn_out"][0]), view=_view(t, e),
            title=("Output projection (out_proj)", "输出投影（out_proj）"),
            en=f"A {e} x {e} linear layer mixes the heads' outputs, so what one head found can combine with "
               f"the others before it is added to the stream.",
            zh=f"一个 {e} × {e} 的线性层把各注意力头的输出混合起来，再加回残差流。"),
        "shortcut_1": dict(
            shape=tuple(rec["resid_mid"].shape), values=_matrix(rec["resid_mid"][0]), view=_view(t, e),
            extra={"before": _matrix(rec["resid_pre"][0]), "added": _matrix(rec["attn_out"][0])},
            title=("Shortcut 1: add the attention output", "残差连接 1：加上注意力输出"),
            en=f"The attention output is added to the block's input (the shortcut): e.g. token 0, feature 0 "
               f"goes from {_fmt(float(rec['resid_pre'][0, 0, 0]))} to {_fmt(float(rec['resid_mid'][0, 0, 0]))}. "
               f"The block only learns a correction, and gradients flow straight through.",
            zh=f"把注意力输出加回块的输入（残差连接）：例如词元 0 的第 0 个特征从 "
               f"{_fmt(float(rec['resid_pre'][0, 0, 0]))} 变为 {_fmt(float(rec['resid_mid'][0, 0, 0]))}。"
               f"块只需学习一个修正量，梯度也能直接通过。"),
        "norm2": dict(
            shape=tuple(rec["norm2"].shape), values=_matrix(rec["norm2"][0]), view=_view(t, e),
            title=(f"Block {layer}: LayerNorm 2", f"第 {layer} 块：层归一化 2"),
            en="A second LayerNorm brings the updated stream back to mean 0, variance 1 (then scale and shift) "
               "for the feed forward network.",
            zh="第二个层归一化把更新后的残差流重新标准化（再乘 scale、加 shift），供前馈网络使用。"),
        "ff_expand": dict(
            shape=tuple(rec["ff_pre"].shape), values=_matrix(rec["ff_pre"][0]), view=_view(t, 4 * e),
            title=(f"Feed forward: expand {e} → {4 * e}", f"前馈网络：{e} → {4 * e} 扩展"),
            en=f"The first linear layer widens each token's vector from {e} to {4 * e} numbers, room to detect "
               f"many features; tokens do not exchange information here.",
            zh=f"第一个线性层把每个词元的向量从 {e} 维扩展到 {4 * e} 维，以便检测更多特征；这里词元之间不交换信息。"),
        "gelu": dict(
            shape=tuple(rec["ff_post"].shape), values=_matrix(rec["ff_post"][0]), view=_view(t, 4 * e),
            extra={"input": _matrix(rec["ff_pre"][0])},
            title=("GELU", "GELU 激活函数"),
            en=f"GELU(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) lets positive values through and squashes "
               f"negative ones towards 0 (its minimum is about -0.17); here "
               f"{float((rec['ff_post'][0] < 0).float().mean()):.0%} of the {t * 4 * e:,} outputs are negative.",
            zh=f"GELU(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))：正值基本通过，负值被压向 0（最小约 -0.17）；"
               f"这里 {t * 4 * e:,} 个输出中有 {float((rec['ff_post'][0] < 0).float().mean()):.0%} 为负。"),
        "ff_contract": dict(
            shape=tuple(rec["ff_out"].shape), values=_matrix(rec["ff_out"][0]), view=_view(t, e),
            title=(f"Feed forward: back to {e}", f"前馈网络：收缩回 {e}"),
            en=f"The second linear layer projects the {4 * e} features back to {e} numbers, the width of the "
               f"residual stream.",
            zh=f"第二个线性层把 {4 * e} 个特征投影回 {e} 维，即残差流的宽度。"),
        "shortcut_2": dict(
            shape=tuple(rec["resid_post"].shape), values=_matrix(rec["resid_post"][0]), view=_view(t, e),
            extra={"before": _matrix(rec["resid_mid"][0]), "added": _matrix(rec["ff_out"][0])},
            title=("Shortcut 2: add the feed forward output", "残差连接 2：加上前馈网络输出"),
            en=f"The feed forward output is added to the stream; the sum is block {layer}'s output"
               + (f" and block {layer + 1}'s input." if layer + 1 < cfg.n_layers else " (the last block)."),
            zh=f"把前馈网络的输出加回残差流；结果是第 {layer} 块的输出"
               + (f"，也是第 {layer + 1} 块的输入。" if layer + 1 < cfg.n_layers else "（最后一块）。")),
        "other_blocks": dict(
            shape=tuple(rec[f"block_out_{cfg.n_layers - 1}"].shape),
            values=[float(n.mean()) for n in norms],
            view=f"mean over positions 0-{min(t, VIEW_POSITIONS) - 1} of the L2 norm of each position's "
                 f"residual vector, after each of the {cfg.n_layers} blocks",
            extra={"per_position": [[float(x) for x in n] for n in norms], "embedding": embed_norm,
                   "shown_block": layer, "other_blocks": others},
            title=("The other block" if n_other == 1 else f"The other {n_other} blocks", f"其余 {n_other} 个块"),
            en=(f"{'Block' if n_other == 1 else 'Blocks'} {_span(others)} {'repeats' if n_other == 1 else 'repeat'} "
                f"the same steps with {'its' if n_other == 1 else 'their'} own weights. The residual stream's "
                f"mean norm goes from {embed_norm:.2f} (embeddings) to {float(norms[-1].mean()):.2f} after the "
                f"last block." if others else
                "This model has a single block, so there are no other blocks: its output goes straight to "
                "the final LayerNorm."),
            zh=(f"第 {_span(others)} 块用各自的权重重复同样的步骤。残差流的平均范数从嵌入时的 {embed_norm:.2f} "
                f"变为最后一块之后的 {float(norms[-1].mean()):.2f}。" if others else
                "这个模型只有一个块，没有其余的块：它的输出直接进入最终层归一化。")),
        "final_norm": dict(
            shape=tuple(rec["final_norm"].shape), values=_matrix(rec["final_norm"][0]), view=_view(t, e),
            title=("Final LayerNorm", "最终层归一化"),
            en=f"After the last of the {cfg.n_layers} blocks, one more LayerNorm normalises each position's "
               f"vector before it is turned into scores over the vocabulary.",
            zh=f"{cfg.n_layers} 个块之后，再做一次层归一化，然后把每个位置的向量变成词表上的分数。"),
        "logits": dict(
            shape=tuple(rec["logits"].shape), values=_matrix(logits), view=_view(t, v, unit="vocabulary ids"),
            extra={"top": top_logits, "position": t - 1},
            title=("Logits", "逻辑值（logits）"),
            en=f"out_head turns each position's {e} numbers into {v:,} logits, one per vocabulary entry; at the "
               f"last position the highest is {best['logit']:.2f} for '{best['label']}'.",
            zh=f"输出头把每个位置的 {e} 维向量变成 {v:,} 个逻辑值，词表中每个词元一个；最后一个位置上最大的是 "
               f"'{best['label']}' 的 {best['logit']:.2f}。"),
        "probas": dict(
            shape=tuple(rec["logits"].shape), values=_matrix(probas), view=_view(t, v, unit="vocabulary ids"),
            extra={"top": top_logits, "position": t - 1},
            title=("Probabilities (softmax)", "概率（probas）"),
            en=f"Softmax turns each position's {v:,} logits into probabilities that sum to 1; after '{last}' "
               f"the model gives '{best['label']}' {best['prob']:.1%}.",
            zh=f"softmax 把每个位置的 {v:,} 个逻辑值变成和为 1 的概率；在 '{last}' 之后，模型给 "
               f"'{best['label']}' 的概率是 {best['prob']:.1%}。"),
        "next_token": dict(
            shape=(1, 1), values={"id": best["id"], "text": best["text"], "label": best["label"],
                                  "prob": best["prob"]},
            view="greedy pick (argmax) at the last position",
            extra={"top": top_logits, "position": t - 1},
            title=("Next token (greedy)", "下一个词元（贪心）"),
            en=f"Greedy decoding takes the most likely token, '{best['label']}' (id {best['id']}, "
               f"{best['prob']:.1%}), and appends it to the input; generating text repeats the whole pass.",
            zh=f"贪心解码选概率最大的词元 '{best['label']}'（id {best['id']}，{best['prob']:.1%}），"
               f"把它接在输入后面；生成文本就是重复整个过程。"),
    }
    out = []
    for sid in STEP_IDS:
        s = per_step[sid]
        source, _, code = _CODE[sid]
        out.append(WalkStep(
            id=sid, title=s["title"][0], title_zh=s["title"][1], code=code, source=source,
            lines=tuple(code_line_numbers(sid)), shape=tuple(int(x) for x in s["shape"]), values=s["values"],
            view=s["view"], explanation={"en": s["en"], "zh": s["zh"]}, extra=s.get("extra", {})))
    return out


def _span(blocks: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3, 5"."""
    parts, i = [], 0
    while i < len(blocks):
        j = i
        while j + 1 < len(blocks) and blocks[j + 1] == blocks[j] + 1:
            j += 1
        parts.append(str(blocks[i]) if i == j else f"{blocks[i]}-{blocks[j]}")
        i = j + 1
    return ", ".join(parts)
