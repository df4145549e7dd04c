"""The Train tab's costs: seconds to the phase change, and what a training does to the views' latency.

``python -m bench.train_load [--seeds 0 1 2] [--views 15] [--threads 1 2] [--out bench/results/train_load.md]``

- **phase change**: the ``induction-tiny`` preset run as the app runs it (a background thread of
  ``--threads`` torch threads), one seed after the other; the training seconds (pauses aside) and the step
  where the phase change was found (``training.probe.find_phase_change``). The run stops 50 steps later.
- **view latency**: the app on the bundled model (``weights/default.safetensors``), launched on a loopback
  port and called over HTTP with ``gradio_client`` as any client would: ``/attention`` on a 40-token prompt
  (a new one each call: the view caches per prompt), first with no training, then while ``/train_start``
  trains the copying preset with each training thread count.

The machine is shared: the load average is recorded before and after. Numbers: medians.
"""
from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")       # as app.py, before torch
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402

from playground.paths import DEFAULT_WEIGHTS  # noqa: E402
from playground.training.live_spec import PRESETS, Limits  # noqa: E402
from playground.training.registry import TrainingLine  # noqa: E402

PROMPT = ("Mr. Darcy walked into the garden and spoke to Elizabeth about the letter he had written the night "
          "before. She listened, said nothing, and walked back to the house where her sister was waiting.")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def phase_change(seeds: list[int], threads: int) -> list[dict]:
    """One induction-tiny run per seed; where and when its phase change came."""
    out = []
    for seed in seeds:
        line = TrainingLine(Limits(threads=threads, max_s=600))
        run = line.submit(PRESETS["induction-tiny"].replace(seed=seed))
        while not run.join(0.5):
            run.touch()
            if run.phase is not None and run.step >= run.phase.step + 50:
                run.stop("bench: done")
        c = run.curves
        rate = (c.steps[-1] - c.steps[0]) / max(c.seconds[-1] - c.seconds[0], 1e-9)
        out.append({"seed": seed, "threads": threads, "phase_step": run.phase.step if run.phase else None,
                    "phase_s": round(run.phase.seconds, 1) if run.phase else None,
                    "steps_per_s": round(rate, 1), "status": run.status})
        print(out[-1], flush=True)
    return out


def view_latency(n: int, thread_counts: list[int]) -> dict[str, list[float]]:
    """Seconds per ``/attention`` call on the bundled model: alone, then beside a training of each thread count."""
    from gradio_client import Client

    from playground.ui import ModelHolder, build_demo, launch_kwargs
    from tests.live_app import free_port

    results: dict[str, list[float]] = {}
    for label, threads in [("no training", None)] + [(f"training, {t} thread(s)", t) for t in thread_counts]:
        line = TrainingLine(Limits(threads=threads or 1, max_s=600))
        holder = ModelHolder(DEFAULT_WEIGHTS)
        demo = build_demo(holder, training=line)
        _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                                quiet=True, **launch_kwargs())
        client = Client(url, verbose=False)
        try:
            client.predict(PROMPT, 0, 0, "single head", api_name="/attention")          # warm up
            stop = threading.Event()
            if threads is not None:
                run_id = client.predict("induction-tiny", train_steps=5000, api_name="/train_start")["run_id"]
                threading.Thread(target=_keep_reading, args=(client, run_id, stop), daemon=True).start()
                time.sleep(3)
            times = []
            for i in range(n):
                t0 = time.perf_counter()
                client.predict(f"{PROMPT} {i}", 2, 1, "single head", api_name="/attention")
                times.append(time.perf_counter() - t0)
            results[label] = times
            if threads is not None:
                stop.set()
                curves = client.predict(run_id, api_name="/train_curves")
                rate = curves["step"] / max(curves["seconds"], 1e-9)
                results[label + " (training steps/s)"] = [round(rate, 1)]
                client.predict(run_id, "stop", api_name="/train_control")
            print(label, f"median {statistics.median(times) * 1000:.0f} ms", flush=True)
        finally:
            line.stop_all()
            client.close()
            demo.close()
    return results


def _keep_reading(client, run_id: str, stop: threading.Event) -> None:
    while not stop.wait(2.0):
        client.predict(run_id, 10**9, api_name="/train_curves")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--views", type=int, default=15)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--skip-phase", action="store_true")
    p.add_argument("--skip-views", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    lines = [f"# Train tab under load ({torch.get_num_threads()} torch threads in the process; load average "
             f"before {load_average()})", ""]
    if not args.skip_phase:
        runs = phase_change(args.seeds, args.threads[0])
        secs = [r["phase_s"] for r in runs if r["phase_s"] is not None]
        lines += ["## Seconds to the phase change (induction-tiny, one training thread)", "",
                  "| seed | step | seconds | steps/s |", "|---|---|---|---|"]
        lines += [f"| {r['seed']} | {r['phase_step']} | {r['phase_s']} | {r['steps_per_s']} |" for r in runs]
        lines += ["", f"median: {statistics.median(secs):.1f} s" if secs else "no phase change", ""]
    if not args.skip_views:
        lat = view_latency(args.views, args.threads)
        lines += ["## /attention on the bundled model (40 tokens), over HTTP", "", "| | median ms | max ms |",
                  "|---|---|---|"]
        for label, times in lat.items():
            if "steps/s" in label:
                lines.append(f"| {label} | {times[0]} | |")
            else:
                lines.append(f"| {label} | {statistics.median(times) * 1000:.0f} | {max(times) * 1000:.0f} |")
    lines += ["", f"load average after: {load_average()}"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
