"""``make bench``'s inspection peer and view latency: TransformerLens 4.3 against ``playground.inspection`` on the
same random gpt2, and every view of the app through its HTTP API."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from bench import contenders as C
from bench.measure import interleaved, median
from bench.report import Table, ratio
from bench.serving import ROOT

PEER = "TransformerLens 4.3 (TransformerBridge)"
MISSING = ("TransformerLens is not installed: `pip install -r bench/requirements-peers.txt` (`make bench` does). "
           "Its rows are left out, not estimated.")


def transformer_lens_bridge(hf_folder: Path) -> Any:
    """TransformerLens's bridge around the same random gpt2 (eager attention), offline: a one-word tokenizer
    it can reload (it is fed token ids, never text). None when TransformerLens is not installed."""
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError:
        return None
    from tokenizers import Tokenizer, models
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf = GPT2LMHeadModel.from_pretrained(hf_folder, attn_implementation="eager").eval()
    eos = "<|endoftext|>"
    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({eos: 0}, unk_token=eos)),
                                   bos_token=eos, eos_token=eos, unk_token=eos)
    folder = tempfile.mkdtemp(prefix="bench-tl-tokenizer-")
    fast.save_pretrained(folder)
    return TransformerBridge.boot_transformers("gpt2", hf_model=hf,
                                               tokenizer=PreTrainedTokenizerFast.from_pretrained(folder))


def _inference(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with torch.inference_mode():
            return fn()
    return run


class PeerSections:
    """Sections of :class:`bench.run.Bench` (its ``args``, ``reps``, ``raw``, ``add``, ``log`` and ``summary``)."""

    def run_peer(self, pair: C.Pair) -> None:
        from playground.hooks import capture, hook_points
        from playground.inspection.ablation import ablated
        from playground.inspection.attention import capture_attention

        bridge = transformer_lens_bridge(pair.path.parent)
        t = Table(f"Inspection against {PEER}, {pair.name} (random weights), median ms",
                  ["what", "tokens", "ours", "TransformerLens", "TL / ours"])
        if bridge is None:
            t.note = MISSING
            self.add(t)
            self.summary.append(MISSING)
            return
        ours, raw = pair.ours, {}
        from playground.fast_decode import fast_weights
        fast_weights(ours, "fp32")          # as the app does when it loads a model (in the background)
        everything = list(hook_points(ours))

        def row(what: str, n: int, mine: Callable[[], Any], theirs: Callable[[], Any], reps: int) -> None:
            self.log(f"peer: {what}, {n} tokens")
            times = interleaved({"ours": mine, "tl": theirs}, reps)
            a, b = 1000 * median(times["ours"]), 1000 * median(times["tl"])
            raw[f"{what} {n}"] = times
            t.add(what, n, f"{a:.1f}", f"{b:.1f}", ratio(b, a))
            self.summary.append(f"{what}, {n} tokens: ours {a:.0f} ms, TransformerLens {b:.0f} ms ({b / a:.1f}x)")

        for n in (12, 600):
            idx = C.prompt(n)
            row("attention of every layer", n, lambda: capture_attention(ours, idx[0].tolist()).weights,
                _inference(lambda: bridge.run_with_cache(idx, names_filter=lambda k: k.endswith("hook_pattern"))),
                self.reps)

            def full_cache(idx=idx):
                with torch.inference_mode(), capture(ours, everything) as got:
                    ours(idx)
                return got
            row("full activation cache", n, full_cache, _inference(lambda: bridge.run_with_cache(idx)), self.reps)
        idx = C.prompt(12)

        def ours_ablation():
            with torch.inference_mode(), ablated(ours, [(5, 3)]):
                return ours(idx, last_only=True)

        def tl_ablation():
            def zero(z, hook):                                  # (B, T, H, D)
                z[:, :, 3] = 0
                return z
            with torch.inference_mode():
                return bridge.run_with_hooks(idx, fwd_hooks=[("blocks.5.attn.hook_z", zero)])
        row("head ablation (L5H3), logits", 12, ours_ablation, tl_ablation, self.reps)
        self._peer_patching(pair, bridge, row, raw)
        t.note = ("Both on the same random gpt2 (124M) weights, fp32, this machine's threads; interleaved runs, "
                  "medians. Ours: `playground.inspection` with the fast decoder's fp32 weights prepared, as the app "
                  "prepares them when it loads a model (`capture_attention`; `hooks.capture` of every hook "
                  "point; `ablated` with the last position's logits; `patch_residual`). TransformerLens: "
                  "`run_with_cache` (names filtered to `hook_pattern`; everything), `run_with_hooks` zeroing "
                  "`hook_z`'s head (full logits), `patching.get_act_patch_resid_pre`. Fed token ids.")
        self.raw[f"peer_{pair.name}"] = raw
        self.add(t)

    def _peer_patching(self, pair: C.Pair, bridge: Any, row: Callable, raw: dict) -> None:
        from transformer_lens import patching as tl_patching

        from playground.inspection.patching import patch_residual
        gen = torch.Generator().manual_seed(3)
        clean = torch.randint(0, 50257, (1, 12), generator=gen)
        corrupted = torch.randint(0, 50257, (1, 12), generator=gen)
        target, distractor = 11, 42
        got: dict[str, Any] = {}

        def ours():
            got["ours"] = patch_residual(pair.ours, clean[0].tolist(), corrupted[0].tolist(), target, distractor)

        def theirs():
            with torch.inference_mode():
                _, cache = bridge.run_with_cache(clean)
                metric = lambda logits: logits[0, -1, target] - logits[0, -1, distractor]  # noqa: E731
                got["tl"] = tl_patching.get_act_patch_resid_pre(bridge, corrupted, cache, metric)
        row("resid_pre patching, 12 x 12 cells", 12, ours, theirs, max(2, min(self.reps, 3)))
        p = got["ours"]
        mine = torch.tensor(p.restored, dtype=torch.float64) * (p.ld_clean - p.ld_corrupted) + p.ld_corrupted
        diff = float((mine - got["tl"].double()).abs().max())
        raw["patching max abs difference (logit difference)"] = diff
        self.summary.append(f"resid_pre patching: the two grids agree to {diff:.1e} (logit difference)")

    def run_views(self, pair: C.Pair | None) -> None:
        """Every view through the HTTP API on gpt2 (random weights) and the bundled model, 12 and ~600 tokens;
        with ``--views-before REF`` the same on a checkout of REF, in the same run."""
        from bench.view_latency import checkout, serve_and_measure
        models = [("bundled", Path(self.args.weights))] + ([(pair.name, pair.path)] if pair is not None else [])
        for name, weights in models:
            self.log(f"views: {name}")
            now = serve_and_measure(weights, self.args.view_reps, log=self.log)
            before = None
            if self.args.views_before:
                with checkout(self.args.views_before) as where:
                    self.log(f"views: {name}, before ({self.args.views_before})")
                    before = serve_and_measure(weights, self.args.view_reps, root=where, log=self.log)
            self.raw[f"views_{name}"] = {"now": now, "before": before}
            self.add(_views_table(name, now, before, self.args.views_before))


def _views_table(name: str, now: dict, before: dict | None, ref: str | None) -> Table:
    cols = ["view", "tokens", "first call s", "median s"] + ([f"before ({ref}) median s", "speed-up"] if before else [])
    t = Table(f"View latency through the HTTP API, {name}", cols)
    for view, sizes in now.items():
        for size, r in sizes.items():
            cells = [view, size, f"{r['first']:.3f}", f"{r['median']:.3f}"]
            if before:
                b = before.get(view, {}).get(size)
                cells += [f"{b['median']:.3f}", ratio(b["median"], r["median"])] if b else ["", ""]
            t.add(*cells)
    t.note = ("`bench/view_latency.py`: `app.py` served on the model in its own process (torch's default threads), "
              "each endpoint called over HTTP (`/gradio_api/call/NAME`); every call a prompt of its own (the views "
              "keep recent results); first call after the load, then the median of the others. The views crop long "
              "prompts as the page does (attention 256, experiments 256, logit lens 64, saliency 64 tokens).")
    return t
