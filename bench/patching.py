"""``python -m bench.patching``: batched activation patching against one forward per cell.

Residual-stream patching needs ``n_layers x T`` patched forwards. Batched, one
layer's ``T`` cells go through one forward of ``T`` rows; one by one, each
cell is its own forward. Same numbers (checked here too), different time.
The two are interleaved (A, B, B, A, ...) and summarised by the median, so a
busy neighbour slows both alike. ``--small`` runs a tiny model (a smoke test
of this script); the default is a randomly initialised gpt2-shaped model (124M).
"""
from __future__ import annotations

import argparse
import statistics
from typing import Callable

import torch

from bench.measure import interleaved
from playground.config import PRESETS, GPTConfig
from playground.inspection.patching import patch_residual
from playground.model import GPTModel

SMALL = GPTConfig(vocab_size=50257, context_length=64, emb_dim=64, n_heads=4, n_layers=4,
                  drop_rate=0.0, qkv_bias=True, tie_embeddings=True)
# 16 GPT-2 tokens each; the corrupted prompt swaps who gives the drink (IOI-style).
CLEAN = "Yesterday, when Mary and John went to the store, John gave a drink to"
CORRUPTED = "Yesterday, when Mary and John went to the store, Mary gave a drink to"
TARGET, DISTRACTOR = " Mary", " John"


def measure_patching(model: GPTModel, clean, corrupted, target: int, distractor: int, repeats: int = 3,
                     tokenizer=None) -> dict:
    """Median seconds of batched and one-by-one residual patching, their ratio, and their largest disagreement."""
    last: dict[str, object] = {}

    def runner(name: str, one_by_one: bool) -> Callable[[], object]:
        def go() -> None:
            last[name] = patch_residual(model, clean, corrupted, target, distractor, tokenizer=tokenizer,
                                        one_by_one=one_by_one)
        return go

    times = interleaved({"batched": runner("batched", False), "one_by_one": runner("one_by_one", True)}, repeats)
    a, b = last["batched"], last["one_by_one"]
    diff = max(abs(x - y) for ra, rb in zip(a.restored, b.restored) for x, y in zip(ra, rb))
    batched, single = statistics.median(times["batched"]), statistics.median(times["one_by_one"])
    return {"batched_s": batched, "one_by_one_s": single, "ratio": single / batched,
            "n_tokens": len(a.tokens), "n_layers": len(a.layers), "forwards_batched": a.forwards,
            "forwards_one_by_one": b.forwards, "max_abs_diff": diff, "repeats": repeats,
            "threads": torch.get_num_threads(), "times": times}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a tiny model instead of gpt2 (124M)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice); 1 is steadier on a busy machine")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from playground.tokenizer import get_tokenizer
    tok = get_tokenizer()
    cfg = SMALL if args.small else PRESETS["gpt2"]
    torch.manual_seed(0)
    model = GPTModel(cfg).eval()      # random weights: timing does not depend on what was learned
    target, distractor = tok.encode(TARGET)[0], tok.encode(DISTRACTOR)[0]
    name = "small" if args.small else "gpt2 (124M)"
    print(f"model: {name}, {model.num_parameters() / 1e6:.1f}M parameters; "
          f"{len(tok.encode(CLEAN))} + {len(tok.encode(CORRUPTED))} tokens; {torch.get_num_threads()} thread(s)",
          flush=True)
    with torch.inference_mode():
        r = measure_patching(model, CLEAN, CORRUPTED, target, distractor, repeats=args.repeats, tokenizer=tok)
    print(f"batched:    {r['batched_s']:.3f} s  ({r['forwards_batched']} forwards)")
    print(f"one by one: {r['one_by_one_s']:.3f} s  ({r['forwards_one_by_one']} forwards)")
    print(f"ratio:      {r['ratio']:.1f}x  (largest difference in restored fraction {r['max_abs_diff']:.1e})")
    return r


if __name__ == "__main__":
    main()
