"""Command line: ``python -m playground generate|info|download``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .fast_decode import PRECISIONS
from .paths import DEFAULT_WEIGHTS
from .checkpoints import WeightsError, load_model, sha256_file
from .devices import pick_device


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m playground", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="continue a prompt")
    g.add_argument("prompt")
    g.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    g.add_argument("--max-new-tokens", type=int, default=50)
    g.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    g.add_argument("--top-k", type=int, default=0, help="0 = off")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--precision", choices=sorted(PRECISIONS), default=None,
                   help="fast decoder weights: fp32 (exact; the default for a float32 model), "
                        "bf16 (faster) or int8 (int8 weights, fastest)")
    g.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    i = sub.add_parser("info", help="print a weights file's config and parameter count")
    i.add_argument("weights", type=Path)
    d = sub.add_parser("download", help="fetch an OpenAI GPT-2 checkpoint from the Hub")
    d.add_argument("size", choices=["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "generate":
            from .generation import stream_generate
            from .tokenizer import get_tokenizer
            model = load_model(args.weights, device=pick_device(args.device)).model
            tok = get_tokenizer()
            ids: list[int] = []
            printed = ""
            sys.stdout.write(args.prompt)
            for step in stream_generate(model, args.prompt, args.max_new_tokens,
                                        temperature=args.temperature, top_k=args.top_k or None,
                                        top_p=args.top_p, seed=args.seed, tokenizer=tok,
                                        precision=args.precision):
                ids.append(step.id)
                text = tok.decode(ids)
                if not text.endswith("\ufffd"):  # wait for the rest of a split character
                    sys.stdout.write(text[len(printed):])
                    sys.stdout.flush()
                    printed = text
            sys.stdout.write(tok.decode(ids)[len(printed):] + "\n")
        elif args.command == "info":
            loaded = load_model(args.weights, dtype=None, device="cpu")
            model = loaded.model
            digest = sha256_file(args.weights)
            print(f"file:        {args.weights} ({args.weights.stat().st_size / 1e6:.1f} MB, "
                  f"sha256 {digest[:16]})")
            print(f"layout:      {loaded.layout}, stored as {str(loaded.file_dtype).replace('torch.', '')}")
            for k, v in model.cfg.to_dict().items():
                print(f"{k + ':':<16}{v}")
            print(f"parameters:  {model.num_parameters():,}")
        else:
            from .checkpoints.hub import download_gpt2
            print(download_gpt2(args.size))
    except (WeightsError, ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
