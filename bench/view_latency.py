"""Every view through the app's HTTP API, as the page and scripts call it: seconds per request.

``python -m bench.view_latency --weights W [--before REF]`` serves ``app.py`` on ``W`` in its own process
(torch's default threads) and calls each endpoint on a 12-token and a ~600-token prompt: the first call
after the model loaded, then the median of ``--reps`` more. With ``--before REF`` the same is measured on a
checkout of git revision ``REF`` in the same run (a temporary worktree), for a before/after table.
``make bench`` runs it as its "views" section on gpt2 (random weights) and the bundled model.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from bench.serving import ROOT, ApiCaller, Server

SHORT_TOKENS, LONG_TOKENS = 12, 600
GENERATED = 32
# After the model has loaded (``/model_info`` waits for it), the per-model work it starts in the background
# (the fast decoder's weights, the head scores on random tokens) gets this long before the first call:
# a visitor arriving a few seconds after a load, not one racing it.
SETTLE_S = 5.0
IOI = "When {a} and {b} went to the store, {c} gave a drink to"         # 14 tokens
NAMES = [("Mary", "John"), ("Alice", "Bob"), ("Anna", "Peter"), ("Sarah", "David"), ("Emma", "James"),
         ("Laura", "Paul"), ("Kate", "Tom"), ("Lucy", "Mark")]

# name -> (endpoint, arguments for a prompt). The arguments are positional, in the endpoint's order.
Args = Callable[[str], list[Any]]
VIEWS: dict[str, tuple[str, Args]] = {
    "attention": ("attention", lambda p: [p, 0, 0, "single head"]),
    "trace": ("trace", lambda p: [p, "en", False]),
    "logit_lens": ("logit_lens", lambda p: [p, 5]),
    "next_token": ("next_token", lambda p: [p, 1.0, 0, 1.0, 10]),
    "surprisal": ("surprisal", lambda p: [p]),
    "ablate": ("ablate", lambda p: [p, "L0H1, L1H0", ""]),
    "attribution": ("attribution", lambda p: [p, " the", " a"]),
    "walkthrough": ("walkthrough", lambda p: [p, 0, 0]),
    "saliency": ("saliency", lambda p: [p, "", "integrated_gradients", 32]),
    "qk": ("qk", lambda p: [p, 0, 0, -1]),
    "generate (32 greedy tokens)": ("generate", lambda p: [p, GENERATED, 0, 0, 1.0, 0, 5, "fp32"]),
}
# Not /neuron: its first call starts the neuron index's build in the background (minutes on gpt2), which
# would weigh on every view measured after it.
# Views of two prompts of the same length (patching and circuits): at 14 tokens only.
Pair = Callable[[str, str], list[Any]]
PAIRED: dict[str, tuple[str, Pair]] = {
    "patch (14 tokens x layers)": ("patch", lambda a, b: [IOI.format(a=a, b=b, c=b), IOI.format(a=a, b=b, c=a),
                                                           f" {a}", f" {b}"]),
    "circuit (14 tokens, 30 edges)": ("circuit", lambda a, b: [IOI.format(a=a, b=b, c=b),
                                                                IOI.format(a=a, b=b, c=a), f" {a}", f" {b}", 30,
                                                                False]),
}


def prompts(n: int, count: int) -> list[str]:
    """``count`` different prompts of about ``n`` tokens (windows of the app's reference text, as text): each
    call gets a prompt no earlier call saw, so no view answers from its cache of recent results."""
    from playground.tokenizer import get_tokenizer
    tok = get_tokenizer()
    ids = tok.encode((ROOT / "playground" / "assets" / "reference_text.txt").read_text())
    step = max(n, (len(ids) - n) // count)
    return [tok.decode(ids[k * step:k * step + n]) for k in range(count)]


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(url: str, reps: int, log: Callable[[str], None] = print) -> dict[str, dict]:
    """{view: {"12": {"first": s, "median": s, "times": [...]}, "600": {...}}} for the served app at ``url``.
    Every view's first call comes before any view's second (the first request after a load, per view); every
    call has a prompt of its own (the views keep recent results)."""
    call = ApiCaller(url).call
    info = call("model_info", [])
    info = info[0] if isinstance(info, list) and info else info
    if not (isinstance(info, dict) and info.get("loaded")):
        raise RuntimeError(f"the served app has no model: {info}")
    time.sleep(SETTLE_S)
    short, long = prompts(SHORT_TOKENS, reps + 1), prompts(LONG_TOKENS, reps + 1)
    # /generate refuses a prompt longer than the model's window (the views crop): its long prompt fills the
    # window but for the 32 new tokens.
    window = int(info["config"]["context_length"])
    gen_long = prompts(min(LONG_TOKENS, max(window - GENERATED, window // 2)), reps + 1)
    out: dict[str, dict] = {}
    for k in range(reps + 1):        # interleaved: a slow moment of the machine spreads over every view
        jobs: list[tuple[str, str, str, list[Any]]] = []
        for view, (name, args) in VIEWS.items():
            longer = gen_long[k] if name == "generate" else long[k]
            jobs += [(view, "12", name, args(short[k])), (view, "600", name, args(longer))]
        jobs += [(view, "14", name, pair(*NAMES[k % len(NAMES)])) for view, (name, pair) in PAIRED.items()]
        for view, size, name, data in jobs:
            row = out.setdefault(view, {}).setdefault(size, {"times": []})
            if k == 0:
                row["first"] = _timed(lambda: call(name, data))
            else:
                row["times"].append(_timed(lambda: call(name, data)))
    for view, sizes in out.items():
        for size, row in sizes.items():
            row["median"] = statistics.median(row["times"])
            log(f"  {view:28s} {size:>4s} tokens: first {row['first']:.3f} s, median {row['median']:.3f} s")
    return out


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A temporary git worktree of ``ref`` (with the shared folder beside it, as the project expects)."""
    with tempfile.TemporaryDirectory(prefix="bench-before-") as tmp:
        where = Path(tmp) / "main"
        subprocess.run(["git", "worktree", "add", "--detach", str(where), ref], cwd=ROOT, check=True,
                       capture_output=True)
        shared = ROOT.parent / "shared"
        if shared.exists():
            (Path(tmp) / "shared").symlink_to(shared)
        try:
            yield where
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT, capture_output=True)


def serve_and_measure(weights: Path, reps: int, root: Path = ROOT, log: Callable[[str], None] = print) -> dict:
    with tempfile.NamedTemporaryFile(prefix="bench-views-", suffix=".log", delete=False) as f:
        server_log = Path(f.name)
    server = Server(weights, queue_size=64, log=server_log, root=root, threads=None)
    try:
        server.wait_ready(300)
        return measure(server.url, reps, log)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=str(ROOT / "weights" / "default.safetensors"))
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--before", default=None, help="a git revision to measure too, in the same run")
    p.add_argument("--out", default=None, help="write the numbers here (JSON)")
    args = p.parse_args(argv)
    result = {"now": serve_and_measure(Path(args.weights), args.reps)}
    if args.before:
        with checkout(args.before) as where:
            print(f"before ({args.before}):")
            result["before"] = serve_and_measure(Path(args.weights), args.reps, root=where)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
