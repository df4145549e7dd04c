"""``make bench``'s other sections: attention capture, inspection, loading and the app, fidelity on the shipped model, the thread policy."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import torch

from bench import contenders as C
from bench.serving import ROOT
from bench.measure import (interleaved, median, peak_memory)
from bench.report import Table, ratio
from playground.examples import EXAMPLE_PROMPTS  # the app's example prompts


class InspectionSections:
    """Sections of :class:`bench.run.Bench` (its ``args``, ``reps``, ``raw``, ``add``, ``log`` and ``summary``)."""

    # -------------------------------------------------------------- attention capture

    def run_attention(self, pair: C.Pair) -> None:
        from playground.inspection.attention import capture_attention

        hf = pair.hf_variant(torch.float32, "eager")
        last = pair.ours.cfg.n_layers - 1

        def ours(idx, layers=None):
            return lambda: capture_attention(pair.ours, idx[0].tolist(), layers=layers).weights

        def theirs(idx):
            def run():
                with torch.inference_mode():
                    return hf(idx, output_attentions=True).attentions
            return run

        t = Table(f"Attention capture, {pair.name}, all layers and heads (time ms; peak extra memory MiB)",
                  ["prompt tokens", "ours all layers", "transformers eager", "ours / tf speed",
                   "ours one layer (last)", "ours all MiB", "tf MiB", "ours one layer MiB"])
        raw = {}
        for n in self.args.attention_lengths:
            idx = C.prompt(n)
            runs = {"ours all": ours(idx), "transformers eager": theirs(idx), "ours one": ours(idx, [last])}
            self.log(f"{pair.name}: attention {n}")
            times = interleaved(runs, self.reps if n < 1024 else min(self.reps, 2))  # the minutes
            ms = {k: 1000 * median(v) for k, v in times.items()}
            mem = {k: peak_memory(fn)[1] / 2**20 for k, fn in runs.items()}
            raw[n] = {"times": times, "peak_mib": mem}
            t.add(n, ms["ours all"], ms["transformers eager"], ratio(ms["transformers eager"], ms["ours all"]),
                  ms["ours one"], mem["ours all"], mem["transformers eager"], mem["ours one"])
            if n == max(self.args.attention_lengths):
                self.summary.append(
                    f"attention capture {pair.name} {n} tokens, all layers: ours {ms['ours all']:.0f} ms "
                    f"vs transformers eager {ms['transformers eager']:.0f} ms "
                    f"({ms['transformers eager'] / ms['ours all']:.2f}x); one layer: {ms['ours one']:.0f} ms, "
                    f"{mem['ours one']:.0f} MiB peak")
        t.note = ("`playground.inspection.attention.capture_attention` (hook on `hook_pattern`; "
                  "one-layer capture stops after that layer) vs `model(ids, output_attentions=True)` "
                  "with eager attention. Peak memory: resident-set high-water mark above the level "
                  "before the call, one extra run each. Medians of 2 repetitions at 1,024 tokens.")
        self.raw[f"attention_{pair.name}"] = raw
        self.add(t)

    # -------------------------------------------------------------- inspection, loading, app

    def run_misc(self, pair: C.Pair) -> None:
        from transformers import GPT2LMHeadModel

        from playground.inspection.params import param_breakdown
        from playground.inspection.trace import shape_trace
        from playground.checkpoints import load_model

        t = Table(f"Inspection, loading, start-up ({pair.name})", ["what", "median", "peer", "ratio"])
        idx = C.prompt(64)
        times = interleaved({"shape trace": lambda: shape_trace(pair.ours, idx[0].tolist()),
                             "param breakdown": lambda: param_breakdown(pair.ours.cfg)}, self.reps)
        t.add("shape trace, 64-token prompt", f"{1000 * median(times['shape trace']):.1f} ms", "", "")
        t.add("parameter breakdown", f"{1000 * median(times['param breakdown']):.2f} ms", "", "")
        self.log("load times")
        folder = pair.path.parent
        loads = interleaved({"ours": lambda: load_model(pair.path),
                             "transformers": lambda: GPT2LMHeadModel.from_pretrained(folder)}, self.reps)
        ours_s, tf_s = median(loads["ours"]), median(loads["transformers"])
        t.add("safetensors load (`load_model`, HF file, warm page cache)", f"{1000 * ours_s:.0f} ms",
              f"transformers `from_pretrained` {1000 * tf_s:.0f} ms", ratio(tf_s, ours_s))
        first = C.prompt(8)

        def ours_first():
            with torch.no_grad():
                return load_model(pair.path).model(first)

        def tf_first():
            with torch.no_grad():
                return GPT2LMHeadModel.from_pretrained(folder)(first).logits
        loads_first = interleaved({"ours": ours_first, "transformers": tf_first}, self.reps)
        ours_f, tf_f = median(loads_first["ours"]), median(loads_first["transformers"])
        t.add("load + first forward (8 tokens)", f"{1000 * ours_f:.0f} ms",
              f"transformers {1000 * tf_f:.0f} ms", ratio(tf_f, ours_f))
        self.raw[f"misc_{pair.name}"] = {"inspection": times, "load": loads, "load_first": loads_first}
        if not self.args.skip_app:
            starts = [self._app_start(pair.path) for _ in range(self.args.app_reps)]
            ok = [s for s in starts if s > 0]
            self.raw["app_start_s"] = starts
            t.add(f"`python app.py` start-up to first served page (median of {len(ok)})",
                  f"{median(ok):.1f} s" if ok else "failed", "", "")
        self.add(t)

    def run_patching(self, pair: C.Pair) -> None:
        """Activation patching of every layer x position, batched vs one forward per cell (bench/patching.py)."""
        from bench.patching import CLEAN, CORRUPTED, DISTRACTOR, TARGET, measure_patching
        from playground.tokenizer import get_tokenizer

        self.log("patching")
        tok = get_tokenizer()
        m = measure_patching(pair.ours, CLEAN, CORRUPTED, tok.encode(TARGET)[0], tok.encode(DISTRACTOR)[0],
                             repeats=1, tokenizer=tok)   # one-by-one takes a minute a run
        t = Table(f"Activation patching, {m['n_layers']} layers x {m['n_tokens']} positions ({pair.name})",
                  ["mode", "forwards", "median", "ratio"])
        t.add("batched (one forward per layer)", m["forwards_batched"], f"{m['batched_s']:.1f} s", "1.00x")
        t.add("one forward per cell", m["forwards_one_by_one"], f"{m['one_by_one_s']:.1f} s", f"{m['ratio']:.2f}x")
        t.note = f"Largest difference between the two: {m['max_abs_diff']:.1e} (restored fraction)."
        self.raw[f"patching_{pair.name}"] = {k: v for k, v in m.items()}
        self.add(t)

    def run_memory(self, pair: C.Pair) -> None:
        """RSS after preparing each precision in turn, in a fresh process (bench/memory.py)."""
        self.log("memory")
        out = subprocess.run([sys.executable, "-m", "bench.memory", str(pair.path)], capture_output=True,
                             text=True, cwd=ROOT, timeout=600)
        t = Table(f"Memory with the fast weights prepared ({pair.name})",
                  ["after", "RSS MiB", "peak MiB", "prepared weights MiB", "precisions kept"])
        if out.returncode != 0:
            t.note = f"bench.memory failed: {out.stderr.strip()[-300:]}"
            self.add(t)
            return
        m = json.loads(out.stdout)
        t.add("load (fp32 model)", m["loaded_mib"], m["loaded_mib"], m["model_mib"], "")
        for step in m["steps"]:
            t.add(f"preparing {step['precision']}", step["rss_mib"], step["peak_mib"], step["prepared_mib"],
                  ", ".join(step["kept"]))
        t.note = ("The app keeps the default precision and at most one other prepared: the memory bound is "
                  "the model plus two prepared copies, reached after the last row.")
        self.raw[f"memory_{pair.name}"] = m
        self.add(t)

    def _app_start(self, weights: Path, timeout: float = 180.0) -> float:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "app.py", "--weights", str(weights), "--port", str(port)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while time.perf_counter() - start < timeout:
                if proc.poll() is not None:
                    return -1.0
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                        if r.status == 200:
                            return time.perf_counter() - start
                except OSError:
                    time.sleep(0.1)
            return -1.0
        finally:
            proc.kill()
            proc.wait()

    # -------------------------------------------------------------- fidelity on the shipped model

    def run_fidelity(self) -> None:
        """Greedy ids of each precision against the book's loop, on the shipped weights."""
        from playground.generation import generate_text_simple
        from playground.tokenizer import get_tokenizer
        from playground.checkpoints import load_model

        path = Path(self.args.weights)
        if not path.exists():
            self.log(f"fidelity: {path} missing, skipped")
            return
        model = load_model(path).model
        tok = get_tokenizer()
        new = self.args.fidelity_tokens
        t = Table(f"Greedy fidelity on the shipped model ({path.name}, {new} new tokens per prompt)",
                  ["prompt", "fast fp32 = book loop", "bf16: tokens equal to fp32", "int8: tokens equal to fp32"])
        raw = {}
        for text in EXAMPLE_PROMPTS:
            idx = torch.tensor([tok.encode(text)])
            ref = generate_text_simple(model, idx, new, model.cfg.context_length)[:, idx.shape[1]:]
            got = {p: C.ours_generate(model, idx, new, p)() for p in C.OURS}
            agree = {p: int((got[p] == (ref if p == "fp32" else got["fp32"])).cumprod(1).sum()) for p in C.OURS}
            raw[text] = agree
            t.add(repr(text[:40]), "yes" if agree["fp32"] == new else f"no ({agree['fp32']})",
                  f"{agree['bf16']}/{new}", f"{agree['int8']}/{new}")
        t.note = "Tokens equal: length of the common prefix of the greedy continuations."
        self.raw["fidelity"] = raw
        self.add(t)
        same = sum(v["bf16"] == new for v in raw.values())
        self.summary.append(f"fidelity: bf16 greedy ids equal fp32 on {same} of {len(raw)} prompts "
                            f"({new} tokens each); fp32 fast path equals the book loop on "
                            f"{sum(v['fp32'] == new for v in raw.values())} of {len(raw)}")

    # -------------------------------------------------------------- thread policy

    def run_threads(self, pair: C.Pair) -> None:
        from bench import threads as T

        n_max = os.cpu_count() or 1
        if n_max < 2:
            return
        new = self.args.thread_tokens
        self.log("threads: 1 vs all, idle and under one busy process")
        got = T.measure(pair.path, ["fp32", "bf16"], new, min(self.reps, 3))
        names = list(T.policies(n_max))
        t = Table(f"Thread policy, decode {pair.name} (32-token prompt, {new} new tokens; tokens/s)",
                  ["other load", "precision", *names])
        for load, per_precision in got.items():
            for p, times in per_precision.items():
                t.add("one busy process" if load else "none", p,
                      *[T.tokens_per_second(times[n], new) for n in names])
        t.note = ("Each policy runs in its own process (OpenMP reads its settings at start-up), "
                  "interleaved; the load is one `python -c 'while True: pass'` process.")
        self.raw["threads"] = got
        self.add(t)
