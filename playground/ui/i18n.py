"""English and 中文: one table for every text the app shows, and where each language comes from.

Component texts (labels, buttons, tab names, radio choices, notes) go to Gradio's own ``gr.I18n``:
:func:`localize` swaps each known string of a built page for its key, and the browser shows it in its
language. Texts computed on the server — figure titles and axes, notes, messages — pass through
:func:`tr` on their way out (see ``common.guarded``), in the request's language (:func:`lang_of`).

The language: ``?lang=zh`` / ``?lang=en`` in the URL, else the browser's (Accept-Language, and the
frontend's own ``navigator.language``). The header switch changes both at once (``SWITCH_JS``) and the
open tab redraws. Token text is never translated: it is data, not interface.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any, Iterable

import gradio as gr

LANGS = ("en", "zh")
LANG_CHOICES = [("English", "en"), ("中文", "zh")]
# The frontend matches the browser's language exactly: our 中文 answers every Chinese tag it may send.
ZH_LOCALES = ("zh", "zh-CN", "zh-SG", "zh-Hans", "zh-TW", "zh-HK", "zh-Hant")

# English -> 中文. Terms as in the book's Chinese edition: 词元 (token), 嵌入 (embedding), 注意力头 (head),
# 残差连接 (shortcut), 层归一化 (LayerNorm), 前馈网络 (feed-forward), 上下文长度 (context length), 提示词 (prompt).
TEXT: dict[str, str] = {
    # header
    "# GPT-2 Playground\nSee how a GPT-2-style model works inside.": "# GPT-2 Playground\n看一个 GPT-2 式模型的内部如何运作。",
    "Presentation mode (large text, high contrast)": "演示模式（大字、高对比度）",
    "Copy link to this view": "复制此视图的链接",
    "Link to this view": "此视图的链接",
    "Language": "语言",
    # tabs
    "Generate": "生成", "Attention": "注意力", "Shapes": "形状", "Step by step": "逐步讲解", "Parameters": "参数",
    "Logit lens": "Logit 透镜", "Next token": "下一个词元", "Experiments": "实验", "Model": "模型",
    "Surprisal": "意外度", "Ablate": "消融", "Attribute": "归因", "Patch": "修补", "Compare": "对比",
    # Generate
    "Prompt": "提示词", "Example prompts": "示例提示词", "Max new tokens": "最多生成词元数", "Temperature": "温度",
    "0 = always the most likely token": "0 = 总是取最可能的词元", "Top-k": "Top-k", "0 = off": "0 = 关闭",
    "Top-p": "Top-p", "1 = off": "1 = 关闭",
    "Seed (-1 = random; any other number repeats the same text)": "随机种子（-1 = 随机；其他任何数字都会重现同一段文本）",
    "Precision of the fast decoder": "快速解码器的精度",
    ("fp32 gives the book model's exact numbers; bf16 and int8 weights read fewer bytes per token, so they run "
     "faster on GPUs and on CPUs with bf16 instructions (AVX-512 BF16, AMX; elsewhere fp32 is fastest), and greedy "
     "text can differ slightly."):
        ("fp32 给出与书中模型完全相同的数值；bf16 和 int8 权重每个词元读取的字节更少，因此在 GPU 和带 bf16 指令"
         "（AVX-512 BF16、AMX）的 CPU 上更快（其他 CPU 上 fp32 最快），贪心生成的文本可能略有不同。"),
    "fp32 (exact)": "fp32（精确）", "bf16 (faster)": "bf16（更快）", "int8 (fastest)": "int8（最快）",
    "Stop": "停止", "Text (prompt + continuation)": "文本（提示词 + 续写）",
    "Generated tokens, coloured by the probability they were drawn with": "生成的词元，按抽中时的概率着色",
    "Click a token to see what else it could have been.": "点击一个词元，看看它本来还可能是什么。",
    "rank": "排名", "token": "词元", "id": "编号", "probability": "概率", "drawn": "抽中",
    "Alternatives": "其他候选", "Download JSON": "下载 JSON", "Download CSV": "下载 CSV",
    # Attention
    "Prompt (follows the Generate prompt)": "提示词（跟随“生成”页的提示词）", "Show attention": "显示注意力",
    "Layer": "层", "Head": "头", "View": "视图", "single head": "单个头", "all heads of the layer": "该层所有头",
    "mean & max over heads": "各头的均值与最大值", "Long prompts": "长提示词",
    "Tokens shown (the last N unless a start is set)": "显示的词元数（未设起点时为最后 N 个）",
    "Window starts at token (0 = the first of your text; empty = the end)": "窗口起始词元（0 = 文本的第一个；留空 = 末尾）",
    "Log colour scale": "对数色标", "Hide the first-token column (attention sink)": "隐藏第一个词元列（注意力汇）",
    "Attention weights": "注意力权重", "Score shown in the table": "表中显示的得分",
    "previous token": "前一个词元", "first token (sink)": "第一个词元（汇）", "induction": "归纳",
    "induction on your text": "在你的文本上的归纳", "entropy": "熵", "current token": "当前词元",
    "layer x head (click a cell)": "层 × 头（点击单元格）", "Score grid": "得分网格",
    "Download JSON (weights + scores)": "下载 JSON（权重 + 得分）", "Download CSV (this head)": "下载 CSV（此头）",
    "Download CSV (head scores)": "下载 CSV（各头得分）",
    ("### Head scores: what kind of head is each one?\nClick a cell of the table to open that head above. "
     "**previous token**: mean weight a query puts on the token just before it (queries 1..T-1). "
     "**first token (sink)**: mean weight a query puts on position 0, the 'attention sink' (queries 1..T-1). "
     "**current token**: mean weight a query puts on itself (queries 1..T-1). "
     "**entropy**: mean entropy of a query's weights, in nats (0 = one key only; log(i+1) = uniform). "
     "**induction**: on a random sequence repeated twice: mean weight a second-half token puts on the token that "
     "followed its first occurrence. **induction on your text**: on your own text: mean weight a token seen before "
     "puts on the token that followed its latest earlier occurrence (only such tokens; blank when no token repeats)."):
        ("### 头得分：每个注意力头是哪一类？\n点击表格中的单元格，在上方打开那个头。"
         "**前一个词元**：查询放在它前一个词元上的平均权重（查询 1..T-1）。"
         "**第一个词元（汇）**：查询放在位置 0（“注意力汇”）上的平均权重（查询 1..T-1）。"
         "**当前词元**：查询放在自己身上的平均权重（查询 1..T-1）。"
         "**熵**：查询权重的平均熵，单位奈特（0 = 只看一个键；log(i+1) = 均匀）。"
         "**归纳**：在重复两次的随机序列上，后半段词元放在其第一次出现时紧随其后的词元上的平均权重。"
         "**在你的文本上的归纳**：在你自己的文本上，先前出现过的词元放在其最近一次出现时紧随其后的词元上的平均权重"
         "（只计这些词元；没有重复的词元时为空）。"),
    # Shapes
    "Expand every block": "展开每个块", "Trace the forward pass": "追踪前向传播",
    "Steps (click a row for its explanation)": "步骤（点击一行查看说明）", "Data flow": "数据流",
    "Explanations": "说明语言",
    # Step by step
    "This step's tensor": "这一步的张量", "◀ Prev": "◀ 上一步", "Next ▶": "下一步 ▶", "Play ▶▶": "播放 ▶▶",
    "Pause ▮▮": "暂停 ▮▮", "Block shown": "显示的块", "Head shown": "显示的头",
    "The KV cache during a generation": "生成过程中的 KV 缓存",
    ("Greedy generation through the model's own KV cache: after the prompt is read once (prefill), each new token "
     "adds one key and one value per layer and head, and attends over the cache instead of recomputing every "
     "position as the book's loop does."):
        ("用模型自己的 KV 缓存做贪心生成：提示词读过一次（预填充）之后，每个新词元在每层每个头各添加一个键和一个值，"
         "并在缓存上做注意力，而不是像书中的循环那样重新计算每个位置。"),
    "New tokens": "新词元数", "Run and watch the cache": "运行并观察缓存", "Cache and work per token": "每个词元的缓存与计算量",
    "Download JSON (all steps)": "下载 JSON（所有步骤）",
    # Parameters
    "Change any value: the count, the formulas and the figures follow at once.": "改动任何一个值，参数量、公式和图都会立即随之更新。",
    "Vocabulary size": "词表大小", "Context length": "上下文长度", "Embedding dim": "嵌入维度", "Heads": "注意力头数",
    "Layers": "层数", "QKV bias": "QKV 偏置", "Tied output head": "输出头与词元嵌入共享权重",
    "Where the parameters are": "参数在哪里", "Per part": "各部分", "part": "部分", "formula": "公式",
    "numbers": "数值", "count": "数量", "total": "合计", "share": "占比",
    "The derivation, as in the book": "推导过程（同书中）",
    # Logit lens
    "Follow the prediction at position (-1 = last)": "跟踪该位置的预测（-1 = 最后一个）", "Show logit lens": "显示 Logit 透镜",
    ("␣ is a space at the start of a token and ↵ a line break. The row *embeddings* is the prediction from each "
     "token alone, before any block has mixed in the context: it guesses the commonest next token overall. The "
     "books in the bundled model's corpus break lines every 70 characters or so, so its middle blocks often guess ↵ "
     "until the last ones sharpen the prediction."):
        ("␣ 表示词元开头的空格，↵ 表示换行。*嵌入* 这一行是每个词元单独给出的预测，此时还没有任何块混入上下文："
         "它猜的是整体上最常见的下一个词元。内置模型语料中的书大约每 70 个字符换一次行，所以它的中间块常常猜 ↵，"
         "直到最后几块才把预测变得清晰。"),
    "One prediction through the layers": "一个预测穿过各层",
    # Next token
    "Show next-token distribution": "显示下一个词元的分布", "Top-k (0 = off)": "Top-k（0 = 关闭）",
    "Top-p (1 = off)": "Top-p（1 = 关闭）", "Candidates shown": "显示的候选数", "Show every stage": "显示每个阶段",
    "Next-token distribution": "下一个词元的分布", "model probability": "模型概率",
    "after temperature/top-k/top-p": "经温度/top-k/top-p 之后",
    "Sampling tree: the likely continuations two or three tokens deep": "采样树：两三个词元深的可能续写",
    ("Each branch is a token the sampler could draw, with its probability under the temperature, top-k and top-p "
     "above; the greedy path is marked. Pick a leaf to continue generating from it."):
        "每个分支是采样器可能抽中的一个词元，概率按上面的温度、top-k 和 top-p 计算；贪心路径已标出。选一个叶子，从那里继续生成。",
    "Depth": "深度", "Branches per node": "每个节点的分支数", "Draw the tree": "画出采样树", "Sampling tree": "采样树",
    "Leaves (path probability)": "叶子（路径概率）", "Continue from this leaf (greedy)": "从这个叶子继续（贪心）",
    "Prompt + leaf + 30 greedy tokens": "提示词 + 叶子 + 30 个贪心词元",
    # Experiments
    "Text": "文本", "Read surprisal": "读出意外度", "Surprisal per token": "每个词元的意外度",
    "Heads to ablate (e.g. L4H1, L3H2)": "要消融的头（例如 L4H1, L3H2）", "MLPs to ablate (layers, e.g. 2, 5)": "要消融的 MLP（层号，例如 2, 5）",
    "Next token before and after": "消融前后的下一个词元",
    "Induction score per head (click a cell to add or remove that head)": "各头的归纳得分（点击单元格加入或移除该头）",
    "Target token (a leading space matters)": "目标词元（开头的空格有区别）", "Distractor token (empty = none)": "干扰词元（留空 = 无）",
    "Direct logit attribution": "直接 logit 归因", "Clean prompt": "干净的提示词",
    "Corrupted prompt (same number of tokens)": "被破坏的提示词（词元数相同）", "Target (the clean answer)": "目标（干净运行的答案）",
    "Distractor (the corrupted answer)": "干扰项（被破坏运行的答案）", "Restored logit difference": "恢复的 logit 差",
    "Prompt A": "提示词 A", "Prompt B": "提示词 B", "Two prompts side by side": "两个提示词并排对比",
    "Download JSON (last experiment)": "下载 JSON（上一个实验）",
    # Model
    ("**The model is shared by everyone using this app: loading another one changes it for all open pages (each "
     "request keeps the model it started with).**"):
        "**模型由所有使用本应用的人共享：加载另一个模型会改变所有打开的页面（每个请求沿用它开始时的模型）。**",
    "Load": "加载",
    ("Upload a .safetensors file (our own or Hugging Face GPT-2 layout; at most 1,024 MB). It is kept in a temporary "
     "folder, never in weights/."):
        "上传一个 .safetensors 文件（本项目或 Hugging Face GPT-2 格式；最多 1,024 MB）。它保存在临时文件夹里，不会放进 weights/。",
    "OpenAI GPT-2 from the Hub": "来自 Hub 的 OpenAI GPT-2", "Download and load": "下载并加载",
    "Download model info (JSON)": "下载模型信息（JSON）",
    # example notes ("What to look at")
    "**What to look at:**": "**看点**：",
    ("The book's own prompt (chapter 4). Greedy (temperature 0) gives the model's single most likely text, which "
     "soon repeats itself; a temperature of 0.8 with top-k 40 reads better."):
        "书中自己的提示词（第 4 章）。贪心（温度 0）给出模型认为最可能的那一段文本，很快就会重复；温度 0.8 加 top-k 40 读起来更好。",
    "Austen's first line: the model has read her six novels, so it continues in her voice.":
        "奥斯汀的第一句：模型读过她的六部小说，所以会用她的口吻续写。",
    "How every State of the Union address begins: watch it slip into the register of a president.":
        "每篇国情咨文的开头：看它如何进入总统讲话的语气。",
    "A passage shown once and begun again: the model copies it (its induction head), then goes on.":
        "一段文字出现一次后又从头开始：模型把它照抄下来（归纳头的作用），然后继续写下去。",
    "A short prompt: click any generated token to see what else it could have been.":
        "一个短提示词：点击任何生成的词元，看看它本来还可能是什么。",
    "The corpus has no fairy tales: the model answers in the voice it knows best.":
        "语料里没有童话：模型用它最熟悉的口吻来回答。",
    ("Open layer 4, head 1 (the induction head): each token of the second copy looks at the token that followed it "
     "the first time, a diagonal stripe."):
        "打开第 4 层第 1 个头（归纳头）：第二遍中的每个词元都看向它第一次出现时紧随其后的词元，形成一条斜线。",
    "A short repeat: layer 3, head 2 looks one token back; layer 4, head 1 looks for the earlier copy.":
        "一个短的重复：第 3 层第 2 个头往回看一个词元；第 4 层第 1 个头寻找先前的那一遍。",
    "Layer 3, head 2 is a previous-token head: every token looks at the one just before it.":
        "第 3 层第 2 个头是“前一个词元”头：每个词元都看向它前面的那一个。",
    "In the second copy the right next word appears from the induction head's block on, not before.":
        "在第二遍中，正确的下一个词从归纳头所在的块开始才出现，之前没有。",
    "The embeddings row predicts the commonest continuations of each token alone; the blocks refine it.":
        "嵌入这一行只根据每个词元本身预测最常见的续写；后面的块再逐步修正。",
    "' in' wins because the sentence was shown before (the model copies it); try a high temperature.":
        "' in' 胜出，是因为这句话之前出现过（模型照抄了它）；试试较高的温度。",
    "A wide distribution: top-p 0.9 keeps only the tokens that make up 90% of the mass.":
        "一个很宽的分布：top-p 0.9 只保留占总概率 90% 的那些词元。",
    ("the second copy of the sentence turns cool (few bits): the model copies what it was shown — its induction "
     "head at work on your own text. Hover a token for the top guesses."):
        "句子的第二遍变成冷色（比特数少）：模型照抄了它见过的内容——这是归纳头在你自己的文本上工作。悬停在词元上可以看到最可能的猜测。",
    ("ablate the induction head (click it in the grid) and the copy fails: the right next token falls, and the greedy "
     "continuation stops repeating the passage."):
        "消融归纳头（在网格中点击它），照抄就失败了：正确的下一个词元概率下降，贪心续写也不再重复那段文字。",
    ("which heads push ' fortune' (the word the passage had the first time) above ' man' (blue) or below it (red), "
     "directly; the parts add up to the model's own logit difference. Heads act together: ablate the blue ones in "
     "the Ablate tab to see what each is worth."):
        ("哪些头直接把 ' fortune'（这段文字第一次出现时的那个词）推到 ' man' 之上（蓝色）或之下（红色）；各部分相加"
         "等于模型自己的 logit 差。头是协同工作的：在“消融”页消融蓝色的头，看看每个值多少。"),
    ("each cell puts one position of the clean run into the corrupted run before block l. 1 (dark blue) means that "
     "position, at that depth, carries the whole difference: early layers light up where the prompts differ; late "
     "layers at the last position, once the information has moved there."):
        ("每个单元格把干净运行中的一个位置在第 l 块之前放进被破坏的运行。1（深蓝）表示该位置在该深度承载了全部差异："
         "浅层在两个提示词不同的地方亮起；深层则在最后一个位置亮起，那时信息已经移到了那里。"),
    "the next-token bars of both prompts, and which tokens moved most.": "两个提示词的下一个词元柱状图，以及哪些词元变化最大。",
    # figure texts
    "key (attended to)": "键（被关注的）", "query (attending)": "查询（发出关注的）", "weight": "权重", "key": "键",
    "query": "查询", "mean over heads": "各头均值", "max over heads": "各头最大值", "head": "头", "layer": "层",
    "after layer": "经过的层", "input token (position)": "输入词元（位置）", "top-1 prob": "top-1 概率",
    "rank (1 = top, log)": "排名（1 = 第一，对数）", "parameters": "参数量", "candidate next token": "候选的下一个词元",
    "embeddings": "嵌入", "transformer blocks": "Transformer 块", "final norm": "最终归一化", "output head": "输出头",
    "bits": "比特", "restored": "恢复", "direct effect": "直接作用", "logit": "logit", "masked": "被遮蔽",
    "bold: the prompt's actual next token": "粗体：提示词中真实的下一个词元",
    "greedy path (temperature 0)": "贪心路径（温度 0）", "feature index": "特征索引", "token in the cache": "缓存中的词元",
    "tokens in the cache": "缓存中的词元数", "with the cache": "使用缓存", "book's loop (recompute all)": "书中的循环（全部重算）",
    "model": "模型", "attention": "注意力", "feed-forward": "前馈网络",
    "Please check your input": "请检查你的输入", "Busy": "正忙", "Error": "错误",
    "Position": "位置", "Step": "步骤", "Window start": "窗口起点", "Tokens shown": "显示的词元数",
    "Continuation tokens": "续写词元数", "Branches": "分支数", "Leaf": "叶子", "Corrupted prompt": "被破坏的提示词",
    "Score": "得分", "position": "位置", "token id": "词元 ID", "own": "本项目", "Hugging Face": "Hugging Face",
    "your prompt": "你的提示词", "random tokens": "随机词元", "random sequence repeated twice": "重复两次的随机序列",
    "your prompt — no token in it repeats, so there is nothing to score: repeat a passage":
        "你的提示词——其中没有重复的词元，无从打分：请重复一段文字",
    "mean weight a query puts on the token just before it (queries 1..T-1)": "查询放在它前一个词元上的平均权重（查询 1..T-1）",
    "mean weight a query puts on position 0, the 'attention sink' (queries 1..T-1)":
        "查询放在位置 0（“注意力汇”）上的平均权重（查询 1..T-1）",
    "mean weight a query puts on itself (queries 1..T-1)": "查询放在自己身上的平均权重（查询 1..T-1）",
    "mean entropy of a query's weights, in nats (0 = one key only; log(i+1) = uniform)":
        "查询权重的平均熵，单位奈特（0 = 只看一个键；log(i+1) = 均匀）",
    ("on a random sequence repeated twice: mean weight a second-half token puts on the token that followed its "
     "first occurrence"): "在重复两次的随机序列上，后半段词元放在其第一次出现时紧随其后的词元上的平均权重",
    ("on your own text: mean weight a token seen before puts on the token that followed its latest earlier "
     "occurrence (only such tokens; blank when no token repeats)"):
        "在你自己的文本上，先前出现过的词元放在其最近一次出现时紧随其后的词元上的平均权重（只计这些词元；没有重复的词元时为空）",
    "the analytic count for its config matches exactly ✓": "与其配置的解析计数完全一致 ✓", "this is its config": "这正是它的配置",
    "model (softmax)": "模型（softmax）", "after temperature": "温度之后", "after top-k": "top-k 之后",
    "after top-p (sampled from)": "top-p 之后（从中抽样）", "off": "关闭",
    "one token: nothing to predict": "只有一个词元：没有可预测的",
    # the parts of the model (Parameters tab figures): the book's code names stay in the brackets
    "token embedding (tok_emb)": "词元嵌入 (tok_emb)", "position embedding (pos_emb)": "位置嵌入 (pos_emb)",
    "query weights (att.W_query)": "查询权重 (att.W_query)", "query bias (att.W_query)": "查询偏置 (att.W_query)",
    "key weights (att.W_key)": "键权重 (att.W_key)", "key bias (att.W_key)": "键偏置 (att.W_key)",
    "value weights (att.W_value)": "值权重 (att.W_value)", "value bias (att.W_value)": "值偏置 (att.W_value)",
    "output projection (att.out_proj)": "输出投影 (att.out_proj)",
    "feed-forward first layer (ff.layers[0])": "前馈网络第一层 (ff.layers[0])",
    "feed-forward second layer (ff.layers[2])": "前馈网络第二层 (ff.layers[2])",
    "first LayerNorm (norm1: scale, shift)": "第一个层归一化 (norm1: scale, shift)",
    "second LayerNorm (norm2: scale, shift)": "第二个层归一化 (norm2: scale, shift)",
    "final LayerNorm (final_norm: scale, shift)": "最终层归一化 (final_norm: scale, shift)",
    "output head (out_head)": "输出头 (out_head)", "output head (out_head, no bias)": "输出头 (out_head，无偏置)",
    "layer norms": "层归一化", "all parameters": "全部参数",
    "Surprisal: how unexpected each token was": "意外度：每个词元有多出乎意料", "from token": "起始词元",
    "still computing its sha256…": "仍在计算它的 sha256…", "no card names this file's sha256": "没有模型卡对应这个文件的 sha256",
    "Logit lens: the top prediction after each layer": "Logit 透镜：每层之后排第一的预测",
    "Every step of the forward pass, with the real shapes": "前向传播的每一步，以及真实的形状",
    "### No model loaded": "### 没有加载模型",
    "**Heads to look at** (open them in the Attention tab):": "**值得看的头**（在“注意力”页打开）：",
    "tied head (counted once)": "输出头与词元嵌入共享权重（只计一次）", "separate output head": "独立的输出头",
}

# Texts with numbers or names in them: "{}" matches anything (non-greedy), kept as it is in the 中文.
PATTERNS: dict[str, str] = {
    "{}; bits: ": "{}；比特：",                     # the surprisal line, before its colour legend
    "Layer {}, head {}: where each token looks": "第 {} 层第 {} 个头：每个词元看向哪里",
    "Layer {}: all {} heads (rows: queries, columns: keys)": "第 {} 层：全部 {} 个头（行：查询，列：键）",
    "Layer {}: heads aggregated": "第 {} 层：各头汇总",
    "head {}": "头 {}",
    "block {}": "块 {}",
    "'{}' at position {}, layer by layer": "位置 {1} 上的 '{0}'，逐层",
    "What comes after '{}'?": "'{}' 之后是什么？",
    "Where the {} parameters are (tied head)": "{} 个参数在哪里（输出头共享权重）",
    "Where the {} parameters are (untied head)": "{} 个参数在哪里（输出头不共享权重）",
    "Parameters per part ({} in all)": "各部分的参数（共 {}）",
    "{} of every head": "每个头的{}",
    "{} tokens; hover a step for what it does": "{} 个词元；悬停查看每一步做什么",
    "queries {}-{}, keys {}-{} of {} tokens": "共 {4} 个词元中的查询 {0}-{1}、键 {2}-{3}",
    "{} tokens.": "{} 个词元。",
    # the derivation, line by line ("{}" names a part: its own entry)
    "{}: {} = {} = {} (x {} blocks = {})": "{}：{} = {} = {}（x {} 个块 = {}）",
    "{}: {} = {} = {}": "{}：{} = {} = {}",
    "{}: 0 — tied: the token embedding's {} serve again": "{}：0 —— 共享权重：词元嵌入的 {} 个参数再用一次",
    "one transformer block: {}; x {} = {}": "一个 Transformer 块：{}；x {} = {}",
    "total without weight tying: {}": "不共享权重时合计：{}",
    "total with weight tying (head = token embedding): {}": "共享权重时合计（输出头 = 词元嵌入）：{}",
    "as configured (tied): {} parameters; {}": "按当前配置（共享权重）：{} 个参数；{}",
    "as configured (untied): {} parameters; {}": "按当前配置（不共享权重）：{} 个参数；{}",                           # a part in every block: "query weights (att.W_query) x 12"
    "transformer blocks (x {})": "Transformer 块（x {}）",
    "model<br>{}": "模型<br>{}",
    "**What to look at:** {}": "**看点**：{}",
    "**Model:** {}<span class='badge-more'> ({}) · {} layers × {} heads · context {} · {}</span>":
        "**模型**：{}<span class='badge-more'>（{}）· {} 层 × 每层 {} 个头 · 上下文 {} · {}</span>",
    "**Model:** {}<span class='badge-more'> · {} layers × {} heads · context {} · {}</span>":
        "**模型**：{}<span class='badge-more'> · {} 层 × 每层 {} 个头 · 上下文 {} · {}</span>",
    "Step (0-{})": "步骤（0-{}）",
    "Prompt (the first {} tokens are used)": "提示词（使用前 {} 个词元）",
    "## {} parameters": "## {} 个参数",
    "{} · one block: {} · without tying {}, with tying {} · memory: fp32 {}, bf16 {}, int8 {}":
        "{} · 一个块：{} · 不共享权重 {}，共享权重 {} · 内存：fp32 {}，bf16 {}，int8 {}",
    "{} tokens; block 0 expanded, the other blocks as one row.": "{} 个词元；第 0 块展开，其余块各为一行。",
    # the Model tab
    "### Loaded: {}": "### 已加载：{}",
    "- **file:** `{}`, {} MB, {} layout, stored as {}, sha256 `{}`": "- **文件**：`{}`，{} MB，{} 格式，存储为 {}，sha256 `{}`",
    "- **parameters:** {}": "- **参数量**：{}",
    "- **config:** {} layers, {} heads, emb_dim {}, context {}, vocab {}, qkv_bias {}, tied head {}":
        "- **配置**：{} 层，{} 个头，emb_dim {}，上下文 {}，词表 {}，qkv_bias {}，输出头共享权重 {}",
    "- **runs as:** {} on {}": "- **运行方式**：{}，在 {} 上",
    "- **fast decoder, {}:** {} (the fastest layouts measured on this {})": "- **快速解码器，{}**：{}（在这台 {} 上实测最快的布局）",
    "- **fast decoder, {}:** {}": "- **快速解码器，{}**：{}",
    "- **{} cannot use** {}": "- **{} 不能使用** {}",
    "**It can:** {}": "**它能**：{}",
    "**It cannot:** {}": "**它不能**：{}",
    "**Measured:** {}": "**实测**：{}",
    "- **{}** — {}, score {} ({})": "- **{}** —— {}，得分 {}（{}）",
    "The whole card, with every training command: {}": "完整的模型卡，含每一条训练命令：{}",
    # the validation layer's messages ({} first: the control's name, itself translated)
    "{} must be a number, not {}.": "{}必须是数字，不能是 {}。",
    "{} must be an ordinary number (got {}).": "{}必须是普通的数字（收到的是 {}）。",
    "{} must be a number (got {}).": "{}必须是数字（收到的是 {}）。",
    "{} is missing: enter a whole number from {} to {}.": "缺少{}：请输入 {} 到 {} 之间的整数。",
    "{} must be a whole number (got {}).": "{}必须是整数（收到的是 {}）。",
    "{} must be between {} and {} (got {}).": "{}必须在 {} 到 {} 之间（收到的是 {}）。",
    "{} is missing: enter a number from {} to {}.": "缺少{}：请输入 {} 到 {} 之间的数。",
    "{} must be at most {}.": "{}最大为 {}。",
    "{} must be above {} and at most {} (got {}).": "{}必须大于 {} 且不超过 {}（收到的是 {}）。",
    "{} must be at least {} and at most {} (got {}).": "{}必须在 {} 到 {} 之间（收到的是 {}）。",
    "{} must be true or false.": "{}必须是 true 或 false。",
    "{} must be one of: {}.": "{}必须是以下之一：{}。",
    "{} must be text.": "{}必须是文本。",
    "{} is empty: type some text first.": "{}是空的：请先输入一些文本。",
    "{} is too long: {} characters; the limit is {}. Paste a shorter passage.":
        "{}太长了：{} 个字符，上限是 {}。请粘贴一段短一些的文字。",
    "{} is {} tokens long, but this model reads at most {} tokens at a time. Shorten it.":
        "{}有 {} 个词元，但这个模型一次最多只读 {} 个词元。请缩短它。",
    "{} This model has {} {}s, numbered 0 to {}.": "{}这个模型有 {} 个{}，编号 0 到 {}。",
    "Weights in {}/": "{}/ 中的权重",
    # head scores
    "{}; measured on {}": "{}；测量于{}",
    "the {} tokens of your prompt that occurred before": "你的提示词中先前出现过的 {} 个词元",
    # parameters
    "Loaded model **{}**: {} parameters counted in memory; {}; {}.": "已加载的模型 **{}**：内存中数得 {} 个参数；{}；{}。",
    "the config above has {}x as many": "上面的配置是它的 {} 倍",
    "⚠️ differs from the analytic count: {}": "⚠️ 与解析计数不同：{}",
    # next token
    "temperature {}, top-k {}, top-p {}; {} token(s) can be drawn": "温度 {}，top-k {}，top-p {}；可抽中的词元：{} 个",
    "all other tokens together: {}": "其余所有词元合计：{}",
    "model (softmax) {} · after top-p (sampled from) {}": "模型（softmax）{} · top-p 之后（从中抽样）{}",
    "model (softmax) {} · after temperature {} · after top-k {} · after top-p (sampled from) {}":
        "模型（softmax）{} · 温度之后 {} · top-k 之后 {} · top-p 之后（从中抽样）{}",
    "After **{}** (position {}): {} token(s) can be drawn. Entropy {} nats for the model, {} after the sampling controls.":
        "在 **{}** 之后（位置 {}）：可抽中的词元有 {} 个。模型分布的熵为 {} 奈特，经采样控制之后为 {}。",
    # experiments
    "mean {} bits per token, perplexity {}": "平均每个词元 {} 比特，困惑度 {}",
    "{}; blank cell: the first token": "{}；空白单元格：第一个词元",
    # walkthrough
    "shape {} · showing {}": "形状 {} · 显示 {}",
    "batch {}, positions {}-{}": "批次 {}，位置 {}-{}",
    "The walkthrough uses the first {} tokens of your prompt (it has {}).": "逐步讲解只用你的提示词的前 {} 个词元（它共有 {} 个）。",
    # the Model tab
    "*No model card for {} ({}).*": "*{} 没有模型卡（{}）。*",
    "**Model:** {} · {}M parameters<span class='badge-more'>{}</span>": "**模型**：{} · {}M 参数<span class='badge-more'>{}</span>",
    " · {} layers × {} heads · context {} · {}": " · {} 层 × 每层 {} 个头 · 上下文 {} · {}",
    "{} · {}M parameters": "{} · {}M 参数",
    # hover texts, line by line ("%{...}" is plotly's placeholder, kept as it is)
    "query {}": "查询 {}", "key {}": "键 {}", "weight {}": "权重 {}", "feature {}: {}": "特征 {}：{}",
    "layer {}, head {}": "第 {} 层，第 {} 个头", "{}: p = {}": "{}：p = {}", "{}: rank {}": "{}：排名 {}",
    "{} parameters ({})": "{} 个参数（{}）", "{}: mean norm {}": "{}：平均范数 {}",
    "{} positions: {} KiB used": "{} 个位置：已用 {} KiB", "{} KiB allocated": "已分配 {} KiB",
    "### {}": "### {}",                            # a heading: its text, if the table has it
    "{} x {}": "{} x {}",        # last: a part in every block ("query weights (att.W_query) x 12")
}

SCORE_TITLES_ZH = {"previous-token score": "前一个词元得分", "first-token (sink) score": "第一个词元（汇）得分",
                   "current-token score": "当前词元得分", "mean entropy (nats)": "平均熵（奈特）",
                   "induction score": "归纳得分", "induction score on your text": "在你的文本上的归纳得分"}
TEXT.update(SCORE_TITLES_ZH)
# The Parameters treemap shows each part's name above its code name: the name alone has its entry too.
_PART_NAMES = [k for k in TEXT if re.fullmatch(r"[a-zA-Z -]+ \((att\.|ff\.|tok_emb|pos_emb|norm|final_norm|out_head).*\)", k)]
TEXT.update({k.split(" (")[0]: TEXT[k].split(" (")[0] for k in _PART_NAMES})


def _key(text: str) -> str:
    """A Gradio i18n key: no dots (its lookup reads them as paths), stable across runs."""
    return "t" + hashlib.sha1(text.encode()).hexdigest()[:12]


def _compile(pattern: str) -> re.Pattern:
    parts = [re.escape(p) for p in pattern.split("{}")]
    return re.compile("(.+?)".join(parts) + r"\Z", re.S)


_PATTERNS = [(_compile(en), zh) for en, zh in PATTERNS.items()]


# Texts a built page showed that only a pattern translates (a note with its example, a step count): the
# page's own keys, added by ``localize`` before the app launches with ``gradio_i18n()``.
_PAGE_TEXT: dict[str, str] = {}


def gradio_i18n() -> gr.I18n:
    """Every key of ``TEXT`` (and of the pages built so far) in English and 中文 (under each Chinese tag a
    browser may send)."""
    table = {**TEXT, **_PAGE_TEXT}
    en = {_key(k): k for k in table}
    zh = {_key(k): v for k, v in table.items()}
    return gr.I18n(en=en, **{loc: zh for loc in ZH_LOCALES})


def clean_lang(value: Any) -> str | None:
    """``"zh"`` for any Chinese tag (zh, zh-CN, zh_TW, cn...), ``"en"`` for English ones, else None: the one
    reading of a language, for links and for Accept-Language alike."""
    if not isinstance(value, str):
        return None
    v = value.strip().lower().replace("_", "-")
    if v.startswith("zh") or v in ("中文", "cn"):
        return "zh"
    if v.startswith("en") or v == "english":
        return "en"
    return None


def lang_of(request: Any) -> str:
    """The request's language: ``?lang=`` on the page's URL, else the first Accept-Language we have."""
    if request is None:
        return "en"
    try:
        lang = clean_lang(dict(request.query_params).get("lang"))
        if lang:
            return lang
        header = request.headers.get("accept-language", "") or ""
    except Exception:                               # a request object without these: English
        return "en"
    for part in header.split(","):
        lang = clean_lang(part.split(";")[0])
        if lang:
            return lang
    return "en"


def current_lang() -> str:
    """The language of the event being handled (English outside one)."""
    from gradio.context import LocalContext
    return lang_of(LocalContext.request.get(None))


def tr(text: Any, lang: str) -> Any:
    """``text`` in ``lang``: the table's entry, else a pattern's, else the text as it is. Lines (``\\n``,
    ``<br>``, ``<sup>``) are translated one by one, so a title and its subtitle each find theirs."""
    if lang != "zh" or not isinstance(text, str) or not text.strip():
        return text
    if text in TEXT:
        return TEXT[text]
    one_line = "<br>" not in text and "\n" not in text
    if one_line:
        found = _pattern(text, lang)
        if found is not None:
            return found
    for sep in ("<br>", "\n"):
        if sep in text:
            return sep.join(tr(part, lang) for part in text.split(sep))
    m = re.fullmatch(r"(\s*(?:<[^<>]+>)+)(.*?)((?:</?[^<>]+>)*\s*)|(\s*(?:<[^<>]+>)*)(.*?)((?:</?[^<>]+>)+\s*)",
                     text, re.S)
    if m:                                      # tags around the text (a subtitle's <sup>, a span): keep them
        pre, mid, post = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), m.group(6))
        if mid and mid != text:
            return pre + tr(mid, lang) + post
    return text


def _pattern(text: str, lang: str) -> str | None:
    for regex, zh in _PATTERNS:
        found = regex.match(text)
        if found:
            return zh.format(*(tr(g, lang) for g in found.groups()))
    return None


def tr_figure(fig: Any, lang: str) -> Any:
    """A plotly figure's titles, axis and colour-bar titles, legend names, annotations and buttons in ``lang``."""
    if lang != "zh" or fig is None or not hasattr(fig, "layout"):
        return fig
    fig = type(fig)(fig)                  # a copy: a figure may be shared (a cache, a page's first value)
    lay = fig.layout
    if lay.title and lay.title.text:
        lay.title.text = tr(lay.title.text, lang)
    for name in list(lay):
        if (name.startswith("xaxis") or name.startswith("yaxis")) and lay[name] is not None:
            axis = lay[name]
            if axis.title and axis.title.text:
                axis.title.text = tr(axis.title.text, lang)
        if name.startswith("coloraxis") and lay[name] is not None and lay[name].colorbar.title.text:
            lay[name].colorbar.title.text = tr(lay[name].colorbar.title.text, lang)
    for ann in lay.annotations or ():
        if ann.text:
            ann.text = tr(ann.text, lang)
    for menu in lay.updatemenus or ():
        for button in menu.buttons or ():
            button.label = tr(button.label, lang)
    meta = lay.meta if isinstance(lay.meta, dict) else {}
    for name in meta.get("i18n_ticks", ()):           # axes whose tick labels are interface text
        if lay[name] is not None and lay[name].ticktext:
            lay[name].ticktext = [tr(t, lang) for t in lay[name].ticktext]
    for dim in meta.get("i18n_categories", ()):       # traces whose x (or y, labels) values are interface text
        for trace in fig.data:
            values = getattr(trace, dim, None) if dim in trace else None
            if values is not None:
                setattr(trace, dim, [tr(v, lang) for v in values])
    for name in meta.get("i18n_axes", ()):            # a category order given by name follows the names
        axis = lay[name]
        if axis is not None and axis.categoryarray is not None:
            axis.categoryarray = [tr(v, lang) for v in axis.categoryarray]
    for trace in fig.data:
        if getattr(trace, "name", None):
            trace.name = tr(trace.name, lang)
        if trace.type == "table" and trace.header.values is not None:     # column names, not the cells
            trace.header.values = [tr(v, lang) for v in trace.header.values]
        if isinstance(getattr(trace, "hovertemplate", None), str):
            trace.hovertemplate = tr(trace.hovertemplate, lang)
        if "colorbar" in trace and trace.colorbar.title.text:
            trace.colorbar.title.text = tr(trace.colorbar.title.text, lang)
    return fig


def tr_output(value: Any, lang: str, keep_value: bool = False) -> Any:
    """One handler output in ``lang``: a figure, a text, or a ``gr.update`` (its label, value, headers).
    ``keep_value``: the value is the user's or the model's text (a text box, a table): only its label."""
    if lang != "zh":
        return value
    if isinstance(value, dict) and value.get("__type__") == "update":
        out = dict(value)
        for k in ("label", "info", "placeholder"):
            if isinstance(out.get(k), str):
                out[k] = tr(out[k], lang)
        if "value" in out and not keep_value:
            out["value"] = tr_output(out["value"], lang)
        if isinstance(out.get("headers"), list):
            out["headers"] = [tr(h, lang) for h in out["headers"]]
        return out
    if keep_value:
        return value
    if hasattr(value, "layout") and hasattr(value, "data"):
        return tr_figure(value, lang)
    if isinstance(value, str):
        return tr(value, lang)
    return value


def tr_outputs(result: Any, lang: str) -> Any:
    """A handler's result (one value, a tuple, or a ``{component: value}`` dict) in ``lang``. Only notes
    (Markdown) and figures have their value translated; every other component keeps its value (the user's
    or the model's text, a table, a radio's value) and has only its label translated."""
    if lang != "zh":
        return result
    if isinstance(result, dict) and "__type__" not in result:
        return {c: _table(c, v, lang) if _has_headers(c, v) else tr_output(v, lang, keep_value=not _is_note(c))
                for c, v in result.items()}
    if isinstance(result, tuple):
        return tuple(tr_figure(v, lang) if hasattr(v, "layout") else v for v in result)
    return tr_figure(result, lang) if hasattr(result, "layout") else result


def has_own_headers(component: Any) -> bool:
    """A table built with named headers (not Gradio's default "1", "2", "3")."""
    headers = getattr(component, "headers", None)
    return type(component).__name__ == "Dataframe" and isinstance(headers, list) and \
        any(re.search("[A-Za-z]{2,}", str(h)) for h in headers)


def _has_headers(component: Any, value: Any) -> bool:
    return isinstance(value, list) and has_own_headers(component)


def _table(component: Any, rows: list, lang: str) -> dict:
    """Rows for a table: the values as they are, the component's own headers in ``lang``."""
    return gr.update(value=rows, headers=[tr(h, lang) for h in component.headers])


def table_headers(component: Any, lang: str) -> Any:
    """A table's own headers in ``lang`` (its rows untouched), or a skip for a table without any."""
    headers = getattr(component, "headers", None)
    if not isinstance(headers, list) or not headers:
        return gr.skip()
    return gr.update(headers=[tr(h, lang) for h in headers])


def _is_note(component: Any) -> bool:
    return type(component).__name__ in ("Markdown", "Plot")


def tr_html(html: str, lang: str) -> str:
    """The sentences of an HTML fragment in ``lang``; short texts (a token's own span) are left alone, so
    token text is never translated."""
    if lang != "zh":
        return html
    parts = re.split(r"(<[^>]+>)", html)
    return "".join(p if p.startswith("<") or p.count(" ") < 2 else tr(p, lang) for p in parts)


# ----------------------------------------------------------------------------------- the page

TEXT_ATTRS = ("label", "info", "placeholder")
VALUE_KINDS = ("Button", "Markdown", "DownloadButton", "UploadButton")


def localize(blocks: Iterable[Any]) -> list[str]:
    """Give every component text that the table knows its i18n key (call inside ``gr.Blocks`` before it
    closes). Returns the English texts found that the table lacks (the completeness test reads them)."""
    missing: list[str] = []
    i18n = gradio_i18n()

    def swap(text: Any) -> Any:
        if isinstance(text, str) and text.strip():
            if text in TEXT:
                return i18n(_key(text))
            zh = tr(text, "zh")
            if zh != text:
                _PAGE_TEXT[text] = zh
                return i18n(_key(text))
            if _needs_translation(text):
                missing.append(text)
        return text

    for block in blocks:
        kind = type(block).__name__
        for attr in TEXT_ATTRS:
            if hasattr(block, attr):
                setattr(block, attr, swap(getattr(block, attr)))
        if kind in VALUE_KINDS:
            block.value = swap(block.value)
        if kind in ("Radio", "Dropdown", "CheckboxGroup") and getattr(block, "choices", None):
            block.choices = [(swap(d), v) for d, v in block.choices]
    return missing


def _needs_translation(text: str) -> bool:
    """English words in it (not a model name, a number, a symbol or a file name)."""
    words = re.findall(r"[A-Za-z]{3,}", text)
    return bool(words) and not re.fullmatch(NOT_UI_TEXT, text.strip())


# Names that stay as they are in every language: files, model names, the language switch's own choices.
NOT_UI_TEXT = r"[\w.\-/]+\.(safetensors|json)|gpt2[\w-]*|book-124M|\d+(st|nd|rd|th)|English"


SWITCH_JS = """(lang) => {
  const url = new URL(location.href); url.searchParams.set("lang", lang); history.replaceState(null, "", url);
  window.__playgroundLocale && window.__playgroundLocale(lang);
  return lang;
}"""

# Run once at load (with the keyboard script): the header switch's way to Gradio's locale store, which lives
# in its core module; the page has already loaded it, so importing it again returns that same module. A
# ?lang= in the URL needs none of this: EARLY_LOCALE_SCRIPT applies it before Gradio mounts.
LOCALE_JS = """
  window.__playgroundLocale = async (lang) => {
    const url = performance.getEntriesByType("resource").map(e => e.name)
      .find(n => /\\/assets\\/core-[^/]*\\.js$/.test(n));
    if (!url) return;
    const core = await import(url);
    core.changeLocale && core.changeLocale(lang === "zh" ? "zh-CN" : "en");
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  };
"""


# Before Gradio's own scripts run, a ?lang= in the URL stands in for the browser's language: Gradio picks
# its locale once, from navigator.language, as the page mounts (changing it later leaves some texts behind).
EARLY_LOCALE_SCRIPT = b"""<script>(function () {
  var lang = new URLSearchParams(location.search).get("lang");
  var tag = lang === "zh" ? "zh-CN" : lang === "en" ? "en" : null;
  if (!tag) return;
  try {
    Object.defineProperty(navigator, "language", {get: function () { return tag; }});
    Object.defineProperty(navigator, "languages", {get: function () { return [tag]; }});
    document.documentElement.lang = tag;
  } catch (e) {}
})();</script>"""


class EarlyLocale:
    """ASGI middleware: puts ``EARLY_LOCALE_SCRIPT`` first in the ``<head>`` of every HTML page it serves."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: dict = {}
        body: list[bytes] = []

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if not headers.get(b"content-type", b"").startswith(b"text/html"):
                    start["pass"] = True
                    await send(message)
                    return
                start["message"] = message
                return
            if start.get("pass"):
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            html = b"".join(body).replace(b"<head>", b"<head>" + EARLY_LOCALE_SCRIPT, 1)
            msg = start["message"]
            headers = [(k, v) for k, v in msg.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(html)).encode()))
            await send({**msg, "headers": headers})
            await send({"type": "http.response.body", "body": html})

        await self.app(scope, receive, capture)
