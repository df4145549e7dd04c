"""What each step of the forward pass does, and why — in English and in Chinese.

Data only, keyed by step. ``shape`` is the symbolic shape change (B batch,
T tokens, E emb_dim, H heads, D = E/H, V vocab_size); the trace fills in the
real numbers from the run.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StepText:
    title_en: str
    title_zh: str
    shape: str
    en: str
    zh: str
    # how the input shapes combine: a separator (", ", " + ", " @ ") or a template ("{} @ {}ᵀ")
    join: str = ", "


STEPS: dict[str, StepText] = {
    "token_ids": StepText(
        "token ids", "词元 id", "(B, T)",
        "The prompt as integers, one row per sequence (B) and one tokenizer id per position (T); "
        "this is all the model ever sees of the text.",
        "提示文本变成的整数：每个序列一行（B），每个位置一个分词器 id（T）；模型看到的文本只有这些数字。"),
    "tok_emb": StepText(
        "token embedding", "词嵌入", "(B, T) -> (B, T, E)",
        "Each id picks one row of a learned vocab_size x emb_dim table, turning a symbol into a vector "
        "of E numbers that the layers can compute with.",
        "每个 id 从可学习的 vocab_size × emb_dim 表中取出一行，把符号变成 E 维向量，后面的层才能对它计算。"),
    "pos_emb": StepText(
        "position embedding", "位置嵌入", "(T,) -> (T, E)",
        "Attention by itself ignores word order, so each position 0..T-1 has its own learned vector, "
        "shared by every sequence in the batch.",
        "注意力本身不区分先后顺序，所以每个位置 0..T-1 都有自己的可学习向量，批次中所有序列共用。"),
    "embed": StepText(
        "add embeddings (+ dropout)", "嵌入相加（+ dropout）", "(B, T, E) + (T, E) -> (B, T, E)",
        "Token and position vectors are added (the position table broadcasts over the batch), then "
        "dropout: this is the residual stream that every block reads from and adds to.",
        "词向量与位置向量相加（位置表沿批次维广播），再做 dropout：这就是每个块读取并写回的残差流。", join=" + "),
    "norm1": StepText(
        "LayerNorm 1", "层归一化 1", "(B, T, E) -> (B, T, E)",
        "Each token's vector is shifted to mean 0 and scaled to variance 1, then given a learned scale "
        "and shift, so attention always receives inputs in a stable range.",
        "把每个 token 的向量标准化为均值 0、方差 1，再乘可学习的 scale、加 shift，让注意力的输入始终处于稳定范围。"),
    "query": StepText(
        "queries (W_query)", "查询（W_query）", "(B, T, E) -> (B, T, E)",
        "A linear map gives each token a query: a description of what this position is looking for "
        "among the tokens before it.",
        "线性变换为每个 token 生成查询向量：描述这个位置想在它之前的 token 中寻找什么。"),
    "key": StepText(
        "keys (W_key)", "键（W_key）", "(B, T, E) -> (B, T, E)",
        "A second linear map gives each token a key: what it offers to be found by; queries are "
        "compared against keys.",
        "第二个线性变换为每个 token 生成键向量：它可以被什么样的查询找到；查询向量要与键向量比较。"),
    "value": StepText(
        "values (W_value)", "值（W_value）", "(B, T, E) -> (B, T, E)",
        "A third linear map gives each token a value: the content it hands over to whoever attends to it.",
        "第三个线性变换为每个 token 生成值向量：当别的位置关注它时，它传递出去的内容。"),
    "split_heads": StepText(
        "split into heads", "拆分成多个头", "q, k, v: (B, T, E) -> (B, H, T, D)",
        "The E numbers are regrouped as H heads of D = E/H and the head axis moved forward, so each "
        "head attends on its own; no number changes (keys and values are split the same way).",
        "把 E 个数重新分组为 H 个头、每头 D = E/H 维，并把头的维度提前，使每个头独立做注意力；数值不变（键和值同样拆分）。"),
    "scores": StepText(
        "attention scores q·kᵀ", "注意力分数 q·kᵀ", "(B, H, T, D) @ (B, H, T, D)ᵀ -> (B, H, T, T)",
        "Every query is dotted with every key, giving each head a T x T table of how well each token "
        "matches what each position is looking for.",
        "每个查询向量与每个键向量做点积，每个头得到一张 T × T 的表：各个 token 与各位置所找内容的匹配程度。", join="{} @ {}ᵀ"),
    "mask": StepText(
        "causal mask", "因果掩码", "(B, H, T, T) -> (B, H, T, T)",
        "Scores for later positions are set to -inf, so after the softmax no token can see the future: "
        "the model must predict each next token from the past alone.",
        "把后面位置的分数设为 -inf，softmax 之后任何 token 都看不到未来：模型只能依据过去预测下一个 token。"),
    "softmax": StepText(
        "scale + softmax", "缩放 + softmax", "(B, H, T, T) -> (B, H, T, T)",
        "Scores are divided by sqrt(D) so they do not grow with the head size, and softmax turns each row "
        "into attention weights that are >= 0 and sum to 1.",
        "分数先除以 sqrt(D)，避免随头的维度增大而过大；softmax 再把每一行变成非负且和为 1 的注意力权重。"),
    "context": StepText(
        "weighted sum of values, heads merged", "值的加权和，合并各头", "(B, H, T, T) @ (B, H, T, D) -> (B, T, E)",
        "Each position averages the value vectors with its attention weights, and the H heads' results "
        "are concatenated back into one E-wide vector per token.",
        "每个位置用注意力权重对值向量加权平均，再把 H 个头的结果拼接回每个 token 一个 E 维向量。", join=" @ "),
    "out_proj": StepText(
        "output projection (out_proj)", "输出投影（out_proj）", "(B, T, E) -> (B, T, E)",
        "A linear layer mixes the heads' outputs, so what one head found can be combined with the others "
        "before it is written to the stream.",
        "一个线性层把各头的输出混合起来，让每个头找到的信息在写回残差流之前能够彼此结合。"),
    "resid_mid": StepText(
        "shortcut add (+ dropout)", "捷径相加（+ dropout）", "(B, T, E) + (B, T, E) -> (B, T, E)",
        "The attention output is added to the block's input: the shortcut lets information and gradients "
        "pass straight through, so the block only has to learn a correction.",
        "把注意力的输出加回块的输入：捷径连接让信息和梯度可以直接通过，块只需学习一个修正量。", join=" + "),
    "norm2": StepText(
        "LayerNorm 2", "层归一化 2", "(B, T, E) -> (B, T, E)",
        "A second LayerNorm brings the updated stream back to a stable range for the feed-forward network.",
        "第二个层归一化把更新后的残差流拉回稳定范围，供前馈网络使用。"),
    "ff_hidden": StepText(
        "feed-forward expand (ff.layers[0])", "前馈扩展（ff.layers[0]）", "(B, T, E) -> (B, T, 4E)",
        "The first linear layer widens each token's vector to 4E numbers, room to detect many features "
        "at once; tokens do not exchange information here.",
        "第一个线性层把每个 token 的向量扩展到 4E 维，以便同时检测许多特征；这里 token 之间不交换信息。"),
    "gelu": StepText(
        "GELU", "GELU 激活", "(B, T, 4E) -> (B, T, 4E)",
        "GELU, a smooth non-linearity, passes positive values and damps negative ones; without it the two "
        "linear layers would collapse into one.",
        "GELU 是平滑的非线性函数，让正值通过、压低负值；没有它，两个线性层就等价于一个。"),
    "ff_out": StepText(
        "feed-forward contract (ff.layers[2])", "前馈收缩（ff.layers[2]）", "(B, T, 4E) -> (B, T, E)",
        "The second linear layer projects the 4E features back to E numbers, the width of the residual stream.",
        "第二个线性层把 4E 个特征投影回 E 维，即残差流的宽度。"),
    "resid_post": StepText(
        "shortcut add (+ dropout)", "捷径相加（+ dropout）", "(B, T, E) + (B, T, E) -> (B, T, E)",
        "The feed-forward output is added to the stream; the sum is this block's output and the next "
        "block's input.",
        "把前馈网络的输出加回残差流；结果就是本块的输出，也是下一块的输入。", join=" + "),
    "final_norm": StepText(
        "final LayerNorm", "最终层归一化", "(B, T, E) -> (B, T, E)",
        "A last LayerNorm normalises the stream after the final block, before it is turned into scores "
        "over the vocabulary.",
        "最后一个层归一化对最后一块输出的残差流做标准化，然后再变成词表上的分数。"),
    "logits": StepText(
        "output head → logits", "输出头 → logits", "(B, T, E) -> (B, T, V)",
        "The output head maps each position's vector to one score per vocabulary entry; at position t "
        "these logits rank the candidates for token t+1.",
        "输出头把每个位置的向量映射为词表中每个词元的分数；位置 t 的 logits 为第 t+1 个 token 的候选排序。"),
    "blocks": StepText(
        "transformer blocks", "Transformer 块", "(B, T, E) -> (B, T, E)",
        "The remaining blocks repeat block 0's steps with their own weights: the same shapes and the same "
        "parameter count each, refining the stream layer by layer.",
        "其余各块用各自的权重重复第 0 块的步骤：形状相同、每块参数量相同，逐层细化残差流。"),
}

TIED_NOTE = StepText("", "", "", "Its weight is the token-embedding matrix (tied), so it adds no parameters.",
                     "它的权重就是词嵌入矩阵（权重共享），因此不增加参数。")
