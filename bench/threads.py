"""Thread policy under a competing load: decode speed with 1 thread, all threads, and
all threads with OpenMP's passive wait policy.

The OpenMP settings only act when a process starts, so each policy lives in its own
child process (``python -m bench.threads --child``) holding the model; the parent
tells the children in turn to decode once (interleaved, order rotated) and collects
the times. The competing load is one busy-looping process per ``load``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.measure import competing_load, median

ROOT = Path(__file__).resolve().parent.parent


def policies(n_max: int) -> dict[str, dict]:
    """name -> {"threads": n, "env": {...}}."""
    return {
        "1 thread": {"threads": 1, "env": {}},
        f"{n_max} threads": {"threads": n_max, "env": {}},
        f"{n_max} threads, OMP_WAIT_POLICY=PASSIVE": {"threads": n_max, "env": {"OMP_WAIT_POLICY": "PASSIVE"}},
    }


class Child:
    def __init__(self, weights: Path, threads: int, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.threads", "--child", str(weights), str(threads)],
            cwd=ROOT, env=dict(os.environ, **env), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, bufsize=1)
        assert self.proc.stdout.readline().strip() == "ready"

    def run(self, precision: str, new: int) -> float:
        self.proc.stdin.write(f"{precision} {new}\n")
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def measure(weights: Path, precisions: list[str], new: int, reps: int,
            loads: tuple[int, ...] = (0, 1)) -> dict:
    """{load: {precision: {policy: [seconds, ...]}}} for ``new`` decoded tokens."""
    n_max = os.cpu_count() or 1
    pols = policies(n_max)
    children = {name: Child(weights, p["threads"], p["env"]) for name, p in pols.items()}
    out: dict = {}
    try:
        for load in loads:
            with competing_load(load):
                out[load] = {}
                for precision in precisions:
                    for c in children.values():
                        c.run(precision, 2)  # warm-up: prepares the weights
                    times = {name: [] for name in children}
                    names = list(children)
                    for r in range(reps):
                        k = r % len(names)
                        for name in names[k:] + names[:k]:
                            times[name].append(children[name].run(precision, new))
                            time.sleep(0.05)  # let the last one's OpenMP threads go to sleep
                    out[load][precision] = times
    finally:
        for c in children.values():
            c.close()
    return out


def tokens_per_second(times: list[float], new: int) -> float:
    return new / median(times)


def _child(weights: str, threads: int) -> None:
    import torch

    from playground.generation import stream_ids
    from playground.sampling import SamplingParams
    from playground.checkpoints import load_model

    torch.set_num_threads(threads)
    model = load_model(weights).model
    idx = torch.randint(0, model.cfg.vocab_size, (1, 32), generator=torch.Generator().manual_seed(1))
    greedy = SamplingParams(temperature=0)
    print("ready", flush=True)
    for line in sys.stdin:
        precision, new = line.split()
        start = time.perf_counter()
        for _ in stream_ids(model, idx, int(new), greedy, precision=precision):
            pass
        print(time.perf_counter() - start, flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]))
    else:
        path = Path(sys.argv[1])
        print(json.dumps(measure(path, ["fp32", "bf16"], 16, 3), indent=1))
