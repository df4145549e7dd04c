"""``python -m bench.run`` (``make bench``): our engine against its peers, side by side.

Writes ``bench/results/latest.md`` (the table the README quotes) and
``latest.json`` (every repetition, machine facts). ``--quick`` is a smoke run
(gpt2 only, 2 repetitions, short generations) for checking the script itself.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch

from bench import contenders as C
from bench.measure import (gemv_bandwidth, interleaved, machine_info, median, peak_memory,
                           read_bandwidth, return_freed_memory, threads)
from bench.report import Table, ratio, write
from playground.examples import EXAMPLE_PROMPTS  # the app's example prompts
from playground.fast_decode import FastWeights, fast_weights

ROOT = Path(__file__).resolve().parent.parent
OURS = ("fp32", "bf16", "int8")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.reps = args.reps
        self.tables: list[Table] = []
        self.summary: list[str] = []
        self.raw: dict = {}
        self.bandwidth = 0.0
        self.section_seconds: dict[str, float] = {}

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    @contextlib.contextmanager
    def timed(self, what: str):
        """Record how long the block took: the run-time table shows where the minutes go."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.section_seconds[what] = time.perf_counter() - start

    def add_timings(self, total: float) -> None:
        t = Table("Run time by section", ["section", "seconds", "share"])
        for what, sec in self.section_seconds.items():
            t.add(what, sec, f"{100 * sec / total:.0f}%")
        t.add("whole run", total, "100%")
        self.raw["section_seconds"] = dict(self.section_seconds)
        self.tables.append(t)

    def add(self, table: Table) -> None:
        self.tables.append(table)
        print(table.markdown() + "\n", flush=True)

    # -------------------------------------------------------------- bandwidth

    def run_bandwidth(self) -> None:
        t = Table("Memory bandwidth (median of 7)", ["threads", "read, `sum` over 1 GiB (GiB/s)",
                                                     "fp32 GEMV over a 0.5 GiB matrix (GiB/s)"])
        for n in sorted({1, torch.get_num_threads()}):
            with threads(n):
                bw = read_bandwidth(0.25 if self.args.quick else 1.0)
                gemv = gemv_bandwidth(0.125 if self.args.quick else 0.5)
            t.add(n, bw / 2**30, gemv / 2**30)
            self.raw[f"bandwidth_{n}"] = bw
            self.raw[f"gemv_bandwidth_{n}"] = gemv
        t.note = ("Bounds below use the `sum` figure (the most this machine streamed); "
                  "a library GEMV reaches the second figure.")
        self.bandwidth = self.raw[f"bandwidth_{torch.get_num_threads()}"]
        self.add(t)

    # -------------------------------------------------------------- decode

    def run_decode(self, pair: C.Pair) -> None:
        a = self.args
        idx = C.prompt(32)
        new, book_new = a.new_tokens, a.book_tokens
        if pair.name != "gpt2":
            new = min(new, a.large_new_tokens)  # the larger models: fewer tokens, same repetitions
        screen_new = min(new, a.screen_tokens if pair.name == "gpt2" else a.screen_tokens // 2)
        self.log(f"{pair.name}: decode, screening transformers variants ({screen_new} tokens each)")
        screen = {}
        # Every variant transformers offers here, in its default environment: the best one is the peer.
        for dt in DTYPES:
            for attn in ("sdpa", "eager"):
                for cache in (None, "static"):
                    hf = pair.hf_variant(DTYPES[dt], attn)
                    run = C.hf_generate(hf, idx, screen_new, cache)
                    C.hf_generate(hf, idx, 4, cache)()          # warm-up
                    t0 = time.perf_counter()
                    run()
                    screen[(dt, f"{cache or 'dynamic'} cache, {attn}")] = screen_new / (time.perf_counter() - t0)
        best = {dt: max((v, c) for (d, c), v in screen.items() if d == dt)[1] for dt in DTYPES}
        peer_dt = max(DTYPES, key=lambda d: screen[(d, best[d])])
        self.log(f"{pair.name}: screen {screen}; peer: {peer_dt} {best[peer_dt]}")

        def best_of(dt: str, n: int):
            """transformers' fastest screened variant in ``dt``, generating ``n`` tokens."""
            cache, attn = best[dt].split(" cache, ")
            return C.hf_generate(pair.hf_variant(DTYPES[dt], attn), idx, n, None if cache == "dynamic" else "static")

        def contenders(n: int, book_n: int) -> dict:
            runs = {f"ours {p}": C.ours_generate(pair.ours_for(p), idx, n, p) for p in OURS}
            runs[peer] = best_of(peer_dt, n)
            if peer32 != peer:   # the fp32 target is paired with transformers' best fp32 variant
                runs[peer32] = best_of("fp32", n)
            for dt in book_dts:
                runs[f"book {dt}"] = C.book_generate(pair.ours_in(DTYPES[dt]), idx, book_n)
            return runs

        peer = f"transformers {peer_dt} ({best[peer_dt]})"
        peer32 = f"transformers fp32 ({best['fp32']})" if pair.name == "gpt2" else peer
        book_dts = ["fp32", "bf16"] if pair.name == "gpt2" else []   # the book loop: gpt2 shows it
        runs = contenders(new, book_new)
        prep = {p: self._prepare_seconds(pair, p) for p in OURS}
        fixed = {p: self._fixed_cost(pair, p) for p in OURS}
        self.log(f"{pair.name}: decode, interleaving {list(runs)}")
        times = interleaved(runs, self._reps(pair), warm=contenders(4, 2))
        tps = {k: (book_new if k.startswith("book") else new) / median(v) for k, v in times.items()}
        self.raw[f"decode_{pair.name}"] = {"times": times, "screen": {f"{d} {c}": v for (d, c), v in screen.items()},
                                            "prepare_s": prep, "fixed_cost_s": fixed}

        # fidelity on the same prompt: greedy ids
        ours32 = runs["ours fp32"]()
        hf32 = C.hf_generate(pair.hf, idx, new, None)()
        same = int((ours32 == hf32).cumprod(1).sum())
        ours16 = runs["ours bf16"]()
        same16 = int((ours16 == ours32).cumprod(1).sum())

        fw = {p: fast_weights(pair.ours_for(p), p) for p in OURS}
        t = Table(f"Decode, batch 1, {pair.name}: 32-token prompt, {new} new tokens, greedy (tokens/s)",
                  ["contender", "tokens/s", f"vs {peer}", "weight bytes/token", "bandwidth bound tok/s",
                   "% of bound", "fixed cost ms/token", "prepare (s)"])
        peer_tps = tps[peer]
        for name in runs:
            p = name.split()[-1] if name.startswith("ours") else None
            if p:
                b = fw[p].bytes_per_token()
                bound = self.bandwidth / b
                t.add(name, tps[name], ratio(tps[name], peer_tps), f"{b / 2**20:,.0f} MiB", bound,
                      f"{100 * tps[name] / bound:.0f}%", 1000 * fixed[p], prep[p])
            elif name in (peer, peer32):
                b = fw["fp32" if name.startswith("transformers fp32") else "bf16"].bytes_per_token()
                bound = self.bandwidth / b
                t.add(name, tps[name], ratio(tps[name], peer_tps), f"{b / 2**20:,.0f} MiB", bound,
                      f"{100 * tps[name] / bound:.0f}%", "", "")
            else:
                t.add(f"{name} ({book_new} new tokens)", tps[name], ratio(tps[name], peer_tps), "", "", "", "", "")
        for (dt, variant), v in screen.items():
            t.add(f"transformers {dt} ({variant}), screening run", v, "(1 run)", "", "", "", "", "")
        t.note = (f"Greedy ids: ours fp32 equals transformers fp32 for the first {same} of {new} tokens; "
                  f"ours bf16 equals ours fp32 for the first {same16}. 'prepare': one-off conversion of "
                  "the weights for that precision (fused QKV, oneDNN packing, int8 quantisation), "
                  "done once per model and precision, not per request. Bound: measured read bandwidth "
                  "/ weight bytes per token. Fixed cost: one decode step of a model as deep but 64 wide "
                  "(operation launches, no real arithmetic): time per token ≈ bytes / bandwidth + fixed cost.")
        self.add(t)
        for p in ("fp32", "bf16", "int8"):
            self.summary.append(f"decode {pair.name} ours {p}: {tps['ours ' + p]:.1f} tok/s = "
                                f"{tps['ours ' + p] / peer_tps:.2f}x {peer} ({peer_tps:.1f} tok/s)")
        if peer32 != peer:
            self.summary.append(f"decode {pair.name} ours fp32 vs transformers fp32: {tps['ours fp32']:.1f} / "
                                f"{tps[peer32]:.1f} tok/s = {tps['ours fp32'] / tps[peer32]:.2f}x ({peer32})")
        kernels = {p: fw[p].kernels() for p in OURS}
        self.raw[f"kernels_{pair.name}"] = kernels
        self.summary.append(f"kernels chosen here for {pair.name} (measured at prepare time): " + "; ".join(
            f"{p}: " + ", ".join(f"{m} {k}" for m, k in ks.items()) for p, ks in kernels.items()))

    def _reps(self, pair: C.Pair) -> int:
        """Repetitions of a decode or prefill comparison: at most 3 for models larger than gpt2 (the minutes)."""
        return self.reps if pair.name == "gpt2" else min(self.reps, 3)

    def _fixed_cost(self, pair: C.Pair, precision: str, steps: int = 100) -> float:
        """Seconds per decode step of a model as deep as ``pair`` but 64 wide: the per-token
        cost of launching the step's operations, with next to no arithmetic or memory traffic."""
        from playground.model import GPTModel

        cfg = pair.ours.cfg.replace(emb_dim=64, n_heads=4)
        fw = FastWeights(GPTModel(cfg).eval(), precision)
        cache = fw.new_cache(1, 32 + steps)
        nxt = fw.forward(C.prompt(32), cache).argmax(-1)[:, None]
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            fw.forward(nxt, cache)
            times.append(time.perf_counter() - start)
        return median(times)

    def _prepare_seconds(self, pair: C.Pair, precision: str) -> float:
        """One conversion of the weights, with the layout trial already done (it runs once per machine):
        the untimed preparation is the one the timed runs of this precision use."""
        fast_weights(pair.ours_for(precision), precision)
        start = time.perf_counter()
        FastWeights(pair.ours, precision)
        return time.perf_counter() - start

    # -------------------------------------------------------------- levers

    def run_levers(self, pair: C.Pair) -> None:
        """Decode steps with each lever on or off: what each one pays."""
        steps = self.args.lever_steps
        idx = C.prompt(32)
        model = pair.ours

        def fast(precision: str, backend: str | None):
            fw = FastWeights(model, precision, backend)

            def run():
                cache = fw.new_cache(1, 32 + steps)
                nxt = fw.forward(idx, cache).argmax(-1)[:, None]
                start = time.perf_counter()
                for _ in range(steps):
                    nxt = fw.forward(nxt, cache).argmax(-1)[:, None]
                return time.perf_counter() - start
            return run

        def book_model_cached():
            with torch.inference_mode():
                cache = model.new_cache(1, 32 + steps)
                nxt = model(idx, cache)[:, -1].argmax(-1)[:, None]
                start = time.perf_counter()
                for _ in range(steps):
                    nxt = model(nxt, cache)[:, -1].argmax(-1)[:, None]
                return time.perf_counter() - start

        runs = {"book model + KV cache (fp32, the model's own forward)": book_model_cached,
                "fast fp32, plain F.linear": fast("fp32", "dense"),
                "fast fp32, oneDNN prepacked + fused": fast("fp32", None),
                "fast bf16, plain F.linear": fast("bf16", "dense"),
                "fast bf16, oneDNN prepacked + fused": fast("bf16", None),
                "fast int8 weight-only": fast("int8", None)}
        self.log(f"{pair.name}: levers")
        # Each run returns the seconds of its decode steps only (prefill excluded).
        got: dict[str, list[float]] = {k: [] for k in runs}
        for k, fn in runs.items():
            fn()
        for r in range(min(self.reps, 3)):
            names = list(runs)
            k = r % len(names)
            for name in names[k:] + names[:k]:
                got[name].append(runs[name]())
        tps = {k: steps / median(v) for k, v in got.items()}
        base = tps["book model + KV cache (fp32, the model's own forward)"]
        t = Table(f"Levers, decode steps only, {pair.name} (32-token prompt, {steps} steps, medians of 3; tokens/s)",
                  ["variant", "tokens/s", "vs the model's own forward"])
        for k, v in tps.items():
            t.add(k, v, ratio(v, base))
        t.note = ("Fused QKV, the preallocated float32 cache and last-position-only head are common to "
                  "all 'fast' rows; 'plain F.linear' keeps them but calls `F.linear` on unpacked weights.")
        self.raw[f"levers_{pair.name}"] = got
        self.add(t)

    # -------------------------------------------------------------- prefill

    def run_prefill(self, pair: C.Pair) -> None:
        t = Table(f"Prefill latency, batch 1, {pair.name} (ms to the first token's logits)",
                  ["prompt tokens", "ours fp32", "ours bf16", "transformers fp32", "transformers bf16",
                   "book fp32", "ours fp32 / tf fp32", "ours bf16 / tf best"])
        lengths = self.args.prefill_lengths if pair.name == "gpt2" else self.args.large_prefill_lengths
        raw = {}
        for n in lengths:
            idx = C.prompt(n)
            runs = {"ours fp32": C.ours_prefill(pair.ours_for("fp32"), idx, "fp32"),
                    "ours bf16": C.ours_prefill(pair.ours_for("bf16"), idx, "bf16"),
                    "transformers fp32": C.hf_prefill(pair.hf, idx),
                    "transformers bf16": C.hf_prefill(pair.hf_in(torch.bfloat16), idx)}
            if n <= self.args.book_prefill_max:
                runs["book fp32"] = C.book_prefill(pair.ours, idx)
            self.log(f"{pair.name}: prefill {n}")
            times = interleaved(runs, self._reps(pair))
            ms = {k: 1000 * median(v) for k, v in times.items()}
            raw[n] = times
            tf_best = min(ms["transformers fp32"], ms["transformers bf16"])
            t.add(n, ms["ours fp32"], ms["ours bf16"], ms["transformers fp32"], ms["transformers bf16"],
                  ms.get("book fp32", float("nan")),
                  ratio(ms["transformers fp32"], ms["ours fp32"]), ratio(tf_best, ms["ours bf16"]))
            if n == max(lengths):
                self.summary.append(f"prefill {pair.name} {n} tokens: ours fp32 {ms['ours fp32']:.0f} ms, "
                                    f"bf16 {ms['ours bf16']:.0f} ms vs transformers fp32 "
                                    f"{ms['transformers fp32']:.0f} ms, bf16 {ms['transformers bf16']:.0f} ms")
        t.note = ("Ratios are speed-ups (peer time / our time; above 1 = we are faster). "
                  "Ours: the fast path's prefill (logits of the last position only); transformers: "
                  "`model(ids, use_cache=True, logits_to_keep=1)`, SDPA; book: `model(ids)`, "
                  f"the book loop's first step (run up to {self.args.book_prefill_max} tokens)."
                  + ("" if pair.name == "gpt2" else " Medians of 3 repetitions."))
        self.raw[f"prefill_{pair.name}"] = raw
        self.add(t)

    # -------------------------------------------------------------- batch

    def run_batch(self, pair: C.Pair) -> None:
        new = self.args.batch_tokens
        idx = C.prompt(32, batch=8)
        def contenders(n: int) -> dict:
            return {f"ours {p}": C.ours_generate(pair.ours_for(p), idx, n, p) for p in OURS} | {
                "transformers fp32": C.hf_generate(pair.hf, idx, n, None),
                "transformers bf16": C.hf_generate(pair.hf_in(torch.bfloat16), idx, n, None)}
        runs = contenders(new)
        self.log(f"{pair.name}: batch 8")
        times = interleaved(runs, self.reps, warm=contenders(2))
        tps = {k: 8 * new / median(v) for k, v in times.items()}
        best = max(tps["transformers fp32"], tps["transformers bf16"])
        t = Table(f"Batch throughput, {pair.name}: 8 prompts of 32 tokens, {new} new tokens each (tokens/s)",
                  ["contender", "tokens/s", "vs transformers best"])
        for k, v in tps.items():
            t.add(k, v, ratio(v, best))
        self.raw[f"batch_{pair.name}"] = times
        self.add(t)
        self.summary.append(f"batch 8 {pair.name}: ours bf16 {tps['ours bf16']:.0f} tok/s, fp32 "
                            f"{tps['ours fp32']:.0f} = {tps['ours bf16'] / best:.2f}x / "
                            f"{tps['ours fp32'] / best:.2f}x transformers best ({best:.0f})")

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
            got = {p: C.ours_generate(model, idx, new, p)() for p in OURS}
            agree = {p: int((got[p] == (ref if p == "fp32" else got["fp32"])).cumprod(1).sum()) for p in OURS}
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help="comma-separated: gpt2,gpt2-medium (default both)")
    p.add_argument("--sections",
                   default="bandwidth,fidelity,decode,levers,prefill,batch,attention,misc,patching,memory,threads")
    p.add_argument("--lever-steps", type=int, default=16)
    p.add_argument("--weights", default=str(ROOT / "weights" / "default.safetensors"),
                   help="the shipped model, for the fidelity section")
    p.add_argument("--fidelity-tokens", type=int, default=40)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--book-tokens", type=int, default=16,
                   help="new tokens for the (slow) book loop, run on gpt2 only")
    p.add_argument("--large-new-tokens", type=int, default=64,
                   help="new tokens per decode run for models larger than gpt2 (keeps the run near 10 minutes)")
    p.add_argument("--screen-tokens", type=int, default=32,
                   help="new tokens of the one run that picks transformers' best variant")
    p.add_argument("--batch-tokens", type=int, default=32)
    p.add_argument("--thread-tokens", type=int, default=8)
    p.add_argument("--prefill-lengths", default="32,256,1024")
    p.add_argument("--book-prefill-max", type=int, default=256)
    p.add_argument("--large-prefill-lengths", default="256",
                   help="prefill lengths for models larger than gpt2 (3 repetitions each)")
    p.add_argument("--attention-lengths", default="64,256,1024")
    p.add_argument("--app-reps", type=int, default=2)
    p.add_argument("--skip-app", action="store_true")
    p.add_argument("--quick", action="store_true", help="smoke run: gpt2, 2 reps, short generations")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    if args.quick:
        args.models, args.reps = args.models or "gpt2", 2
        args.new_tokens, args.book_tokens, args.batch_tokens, args.thread_tokens = 16, 4, 8, 4
        args.large_new_tokens = 16
        args.prefill_lengths, args.attention_lengths, args.app_reps = "32,256", "64", 1
        args.fidelity_tokens, args.lever_steps = 8, 4
    args.models = args.models or "gpt2,gpt2-medium"
    args.prefill_lengths = [int(x) for x in args.prefill_lengths.split(",")]
    args.large_prefill_lengths = [int(x) for x in args.large_prefill_lengths.split(",")]
    args.attention_lengths = [int(x) for x in args.attention_lengths.split(",")]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    return_freed_memory()
    torch.manual_seed(0)
    bench = Bench(args)
    machine = machine_info()
    bench.log(f"machine: {machine}")
    sections = args.sections.split(",")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        with bench.timed("bandwidth"):
            if "bandwidth" in sections:
                bench.run_bandwidth()
            else:
                bench.bandwidth = read_bandwidth(0.25)
        if "fidelity" in sections:
            with bench.timed("fidelity"):
                bench.run_fidelity()
        for name in args.models.split(","):
            bench.log(f"building {name}")
            with bench.timed(f"building {name} (random weights, saved and loaded both ways)"):
                pair = C.make_pair(name, Path(tmp))
            for section in ("decode", "levers", "prefill", "batch", "attention", "misc", "patching", "memory",
                            "threads"):
                if section not in sections:
                    continue
                if section in ("levers", "batch", "attention", "misc", "patching", "memory", "threads") \
                        and name != "gpt2":
                    continue  # the 124M model only, to keep the run near 10 minutes
                with bench.timed(f"{section} {name}"):
                    getattr(bench, f"run_{section}")(pair)
            del pair
    seconds = time.perf_counter() - start
    bench.add_timings(seconds)
    stem = "quick" if args.quick else "latest"
    md, js = write(Path(args.out), machine, bench.tables, bench.summary, bench.raw, seconds, stem)
    bench.log(f"wrote {md} and {js} ({seconds / 60:.1f} min)")
    print(md.read_text())


if __name__ == "__main__":
    main()
