"""What each walkthrough step shows: the numbers on view and the title and explanation, en + zh.

``step_contents`` turns one recorded forward pass into, per step id, the tensor's shape, the
values shown (batch 0, the first ``VIEW_POSITIONS`` positions, the first ``VIEW_FEATURES``
features; -inf -> None), the view's caption, what a figure needs beyond them (``extra``) and the
texts, which quote the real sizes and numbers. One function per group of steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..config import GPTConfig

VIEW_POSITIONS = 8   # rows of every matrix shown
VIEW_FEATURES = 16   # columns of every vector shown
TOP_TOKENS = 10      # candidates listed for the last position (bars of logits / probas)

StepContent = dict[str, Any]   # shape, values, view, title (en, zh), en, zh and optionally extra


@dataclass(frozen=True)
class _Pass:
    """One recorded forward pass and what the texts quote about it."""

    cfg: GPTConfig
    ids: torch.Tensor                 # (1, T)
    labels: tuple[str, ...]
    rec: dict[str, torch.Tensor]      # hook point key -> tensor (see walkthrough._run)
    layer: int
    head: int
    label: Callable[[int], str]
    raw_text: Callable[[int], str]

    @property
    def t(self) -> int:
        return self.ids.shape[1]

    @property
    def d(self) -> int:
        return self.cfg.head_dim


def step_contents(cfg: GPTConfig, ids: torch.Tensor, labels: tuple[str, ...], rec: dict[str, torch.Tensor],
                  layer: int, head: int, label, raw_text) -> dict[str, StepContent]:
    """Step id -> its content, for every step of the tour."""
    p = _Pass(cfg, ids, labels, rec, layer, head, label, raw_text)
    return {**_embedding_steps(p), **_projection_steps(p), **_attention_steps(p), **_block_steps(p),
            **_stack_steps(p), **_prediction_steps(p)}


# --- numbers -> plain lists ------------------------------------------------------------------

def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _matrix(t: torch.Tensor, cols: int = VIEW_FEATURES) -> list[list[float | None]]:
    """First ``VIEW_POSITIONS`` rows, first ``cols`` columns of a 2-D tensor; -inf -> None."""
    return [[_num(float(v)) for v in row] for row in t[:VIEW_POSITIONS, :cols].float().tolist()]


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _attn_matrix(x: torch.Tensor) -> list[list[float | None]]:
    """A (queries x keys) table: as many columns as positions shown."""
    return _matrix(x, VIEW_POSITIONS)


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


# --- the steps, by group ---------------------------------------------------------------------

def _embedding_steps(p: _Pass) -> dict[str, StepContent]:
    """token_ids, tok_emb, pos_emb, input_embeddings."""
    cfg, ids, rec = p.cfg, p.ids, p.rec
    t, e, v = p.t, cfg.emb_dim, cfg.vocab_size
    first_lab = p.labels[0]
    return {
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
    }


def _projection_steps(p: _Pass) -> dict[str, StepContent]:
    """norm1 and head ``p.head``'s queries, keys and values."""
    rec, layer, head = p.rec, p.layer, p.head
    t, e, h, d = p.t, p.cfg.emb_dim, p.cfg.n_heads, p.d
    q = rec["q"][0, head]                                                     # (T, D)
    rows_h = f"head {head}"
    return {
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
    }


def _attention_steps(p: _Pass) -> dict[str, StepContent]:
    """attn_scores, masked_scores, attn_weights, context_vec, out_proj."""
    rec, labels, head = p.rec, p.labels, p.head
    t, e, h, d = p.t, p.cfg.emb_dim, p.cfg.n_heads, p.d
    lo, hi = head * d, (head + 1) * d
    pattern = rec["pattern"][0, head]                                         # (T, T)
    last = labels[-1]
    looked = int(pattern[-1].argmax())
    rows_h = f"head {head}"
    return {
        "attn_scores": dict(
            shape=tuple(rec["scores"].shape), values=_attn_matrix(rec["scores"][0, head]),
            view=f"batch 0, {rows_h}, queries 0-{min(t, VIEW_POSITIONS) - 1} x keys 0-{min(t, VIEW_POSITIONS) - 1}",
            title=(f"Attention scores q·kᵀ (head {head})", f"注意力分数 q·kᵀ（注意力头 {head}）"),
            en=f"Every query is dotted with every key: a table of {t} x {t} per head. Row i, column j says how "
               f"well token j matches what token i is looking for (before scaling and masking).",
            zh=f"每个查询与每个键做点积，每个注意力头得到 {t} × {t} 的表：第 i 行第 j 列表示词元 j 与词元 i "
               f"所找内容的匹配程度（尚未缩放和掩码）。"),
        "masked_scores": dict(
            shape=tuple(rec["masked"].shape), values=_attn_matrix(rec["masked"][0, head]),
            view=f"batch 0, {rows_h}, {min(t, VIEW_POSITIONS)} x {min(t, VIEW_POSITIONS)}; None = -inf (masked)",
            title=(f"Causal mask (head {head})", f"因果掩码（注意力头 {head}）"),
            en=f"Scores of later tokens (above the diagonal, {t * (t - 1) // 2} of {t * t} cells) are set to -inf "
               f"(stored as null here), so after the softmax no token can look at the future.",
            zh=f"对角线以上、属于后面词元的分数（{t * t} 个中的 {t * (t - 1) // 2} 个）被设为 -inf（此处存为 null），"
               f"softmax 之后任何词元都看不到未来。"),
        "attn_weights": dict(
            shape=tuple(rec["pattern"].shape), values=_attn_matrix(pattern),
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
    }


def _block_steps(p: _Pass) -> dict[str, StepContent]:
    """shortcut_1, norm2, the feed forward network (ff_expand, gelu, ff_contract), shortcut_2."""
    cfg, rec, layer = p.cfg, p.rec, p.layer
    t, e = p.t, cfg.emb_dim
    return {
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
    }


def _stack_steps(p: _Pass) -> dict[str, StepContent]:
    """other_blocks (the residual stream's norm after every block) and final_norm."""
    cfg, rec, layer = p.cfg, p.rec, p.layer
    t, e = p.t, cfg.emb_dim
    norms = [rec[f"block_out_{b}"][0, :VIEW_POSITIONS].float().norm(dim=-1) for b in range(cfg.n_layers)]
    embed_norm = float(rec["embed"][0, :VIEW_POSITIONS].float().norm(dim=-1).mean())
    others = [b for b in range(cfg.n_layers) if b != layer]
    n_other = len(others)
    return {
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
    }


def _prediction_steps(p: _Pass) -> dict[str, StepContent]:
    """logits, probas and the greedy next_token, with the top candidates at the last position."""
    rec = p.rec
    t, e, v = p.t, p.cfg.emb_dim, p.cfg.vocab_size
    logits = rec["logits"][0]                                                 # (T, V)
    probas = torch.softmax(logits.float(), dim=-1)                            # (T, V)
    top_logits = _top(logits[-1], p.label, p.raw_text)
    best = top_logits[0]
    last = p.labels[-1]
    return {
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
