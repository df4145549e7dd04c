"""The Step by step tab's computations (and /walkthrough): one forward pass step by step with the
book's code, the KV cache filling during a generation, and the sampling tree of the Next token tab."""
from __future__ import annotations

import html

from typing import Any

from ...generation import generate
from ...inspection.kv_view import KVTrace, kv_cache_trace
from ...inspection.sampling_tree import SamplingTree, sampling_tree
from ...inspection.walkthrough import MAX_TOKENS, STEP_IDS, Walkthrough, WalkStep, walkthrough
from ...inspection.walkthrough_code import SOURCE_FILES, source_text
from ...sampling import SamplingParams
from ...tokenizer import get_tokenizer
from .. import validate as v
from ..common import LRU, encode
from ..state import Snapshot

KV_NEW_TOKENS = 24
CODE_CONTEXT = 3              # source lines shown around the running ones
_walks = LRU(4)


def walkthrough_view(snap: Snapshot, prompt: Any, layer: Any = 0, head: Any = 0) -> Walkthrough:
    cfg = snap.model.cfg
    text = v.prompt(prompt)
    lay = v.index(layer, "Layer", cfg.n_layers)
    hd = v.index(head, "Head", cfg.n_heads)
    ids = encode(snap, text)
    # The walkthrough reads the first MAX_TOKENS ids; its note also says how many the prompt had.
    return _walks.get((snap.uid, tuple(ids[:MAX_TOKENS]), len(ids), lay, hd),
                      lambda: walkthrough(snap.model, ids, lay, hd, tokenizer=get_tokenizer()))


def step_index(step: Any) -> int:
    """A step given by its id (``attn_weights``) or its number (0-based), clamped; default 0."""
    if isinstance(step, str) and step.strip() in STEP_IDS:
        return STEP_IDS.index(step.strip())
    if step is None or step == "":
        return 0
    return v.whole(step, "Step", 0, len(STEP_IDS) - 1, default=0)


def code_html(step: WalkStep) -> str:
    """The source around the step's lines, the running ones highlighted (HTML, escaped)."""
    source = source_text(step.source).splitlines() if step.source in SOURCE_FILES else []
    lines = [n for n in step.lines if n]
    if not source or not lines:
        body = "\n".join(html.escape(c) for c in step.code)
        return f'<pre class="walk-code"><code>{body}</code></pre>'
    lo, hi = max(1, min(lines) - CODE_CONTEXT), min(len(source), max(lines) + CODE_CONTEXT)
    if hi - lo > 24:                     # lines far apart (e.g. a class and its method): show each with context
        keep = sorted({n for l in lines for n in range(max(1, l - 1), min(len(source), l + 1) + 1)})
    else:
        keep = list(range(lo, hi + 1))
    out, last = [], None
    for n in keep:
        if last is not None and n != last + 1:
            out.append('<span class="gap">   ⋮</span>')
        text = html.escape(source[n - 1])
        cls = "run" if n in lines else "ctx"
        out.append(f'<span class="{cls}"><span class="ln">{n:4d}</span>  {text}</span>')
        last = n
    return (f'<div class="walk-file">{html.escape(step.source)}</div>'
            f'<pre class="walk-code"><code>{chr(10).join(out)}</code></pre>')


def kv_view(snap: Snapshot, prompt: Any, n_new: Any = KV_NEW_TOKENS) -> KVTrace:
    text = v.prompt(prompt)
    n = v.whole(n_new, "New tokens", 1, 200, default=KV_NEW_TOKENS)
    ids = encode(snap, text)[-snap.model.cfg.context_length:]
    return kv_cache_trace(snap.model, ids, n, tokenizer=get_tokenizer())


def tree_view(snap: Snapshot, prompt: Any, temperature: Any = 1.0, top_k: Any = 0, top_p: Any = 1.0,
              depth: Any = 2, branch: Any = 3) -> SamplingTree:
    params = SamplingParams(temperature=v.real(temperature, "Temperature", 0.0, v.MAX_TEMPERATURE, default=1.0),
                            top_k=v.whole(top_k, "Top-k", 0, snap.model.cfg.vocab_size, default=0) or None,
                            top_p=v.real(top_p, "Top-p", 0.0, 1.0, default=1.0, lo_open=True))
    d = v.whole(depth, "Depth", 1, 3, default=2)
    b = v.whole(branch, "Branches", 1, 5, default=3)
    ids = encode(snap, v.prompt(prompt))
    return sampling_tree(snap.model, ids, depth=d, branch=b, temperature=params.temperature, top_k=params.top_k,
                         top_p=params.top_p, tokenizer=get_tokenizer())


def leaf_choices(tree: SamplingTree) -> list[tuple[str, int]]:
    """``(label, index)`` for each leaf: its tokens and path probability."""
    out = []
    for i, leaf in enumerate(tree.leaves()):
        node_labels, node = [], tree.root
        for tid in leaf.path:
            node = next(c for c in node.children if c.token_id == tid)
            node_labels.append(node.token)
        out.append((f"{' '.join(node_labels)}  ({leaf.path_prob:.1%}){'  ◀ greedy' if leaf.greedy else ''}", i))
    return out


def continue_window(context_length: int, n_new: int) -> int:
    """How many of a leaf's last tokens a continuation of ``n_new`` tokens starts from: room left for the
    new tokens where the window keeps at least as many for the text (no crop while generating), else the
    whole window (generation then slides it, as the Generate tab does)."""
    room = context_length - n_new
    return room if room >= n_new else context_length


def continue_leaf(snap: Snapshot, tree: SamplingTree, index: Any, n_new: int = 30) -> str:
    """Greedy text after the prompt and the chosen leaf's tokens."""
    paths = tree.leaf_paths()
    i = v.whole(index, "Leaf", 0, max(len(paths) - 1, 0), default=0)
    if not paths:
        raise v.InputError("Draw the tree first.")
    ids = paths[i][-continue_window(snap.model.cfg.context_length, n_new):]
    result = generate(snap.model, ids, n_new, temperature=0.0, stop_at_eot=False)
    tok = get_tokenizer()
    return tok.decode(ids) + result.text
