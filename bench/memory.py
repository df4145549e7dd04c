"""Memory of the prepared fast weights: RSS after loading and after preparing each precision.

Run in a fresh process (``python -m bench.memory WEIGHTS``) so the peak RSS is this model's alone;
``make bench`` calls it for gpt2 and puts the numbers in its report. The app keeps the default
precision (fp32) and at most one other prepared, so the last line is the app's bound.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path


def rss_mib() -> float:
    """The resident set size now, MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # KiB on Linux


def measure(weights: str, precisions: tuple[str, ...] = ("fp32", "bf16", "int8")) -> dict:
    import torch

    from playground import fast_decode
    from playground.checkpoints import load_model

    torch.set_num_threads(1)
    out = {"start_mib": rss_mib()}
    model = load_model(weights).model
    out["loaded_mib"] = rss_mib()
    out["model_mib"] = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    steps = []
    for p in precisions:
        fw = fast_decode.fast_weights(model, p)
        kept = sorted(fast_decode._prepared.get(model, {}))
        steps.append({"precision": p, "rss_mib": rss_mib(), "peak_mib": peak_mib(), "kept": kept,
                      "prepared_mib": fw.held_bytes() / 2**20, "kernel": fw.head.layout()})
    out["steps"] = steps
    out["peak_mib"] = peak_mib()
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("weights")
    args = p.parse_args(argv)
    json.dump(measure(args.weights), sys.stdout)


if __name__ == "__main__":
    main()
