"""``make bench``'s generation sections: decode, the levers, prefill and batches, ours against the peer."""
from __future__ import annotations

import time

import torch

from bench import contenders as C
from bench.measure import (interleaved, median)
from bench.report import Table, ratio
from playground.fast_decode import FastWeights, fast_weights


class DecodeSections:
    """Sections of :class:`bench.run.Bench` (its ``args``, ``reps``, ``raw``, ``add``, ``log`` and ``summary``)."""

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
        for dt in C.DTYPES:
            for attn in ("sdpa", "eager"):
                for cache in (None, "static"):
                    hf = pair.hf_variant(C.DTYPES[dt], attn)
                    run = C.hf_generate(hf, idx, screen_new, cache)
                    C.hf_generate(hf, idx, 4, cache)()          # warm-up
                    t0 = time.perf_counter()
                    run()
                    screen[(dt, f"{cache or 'dynamic'} cache, {attn}")] = screen_new / (time.perf_counter() - t0)
        best = {dt: max((v, c) for (d, c), v in screen.items() if d == dt)[1] for dt in C.DTYPES}
        peer_dt = max(C.DTYPES, key=lambda d: screen[(d, best[d])])
        self.log(f"{pair.name}: screen {screen}; peer: {peer_dt} {best[peer_dt]}")

        def best_of(dt: str, n: int):
            """transformers' fastest screened variant in ``dt``, generating ``n`` tokens."""
            cache, attn = best[dt].split(" cache, ")
            return C.hf_generate(pair.hf_variant(C.DTYPES[dt], attn), idx, n, None if cache == "dynamic" else "static")

        def contenders(n: int, book_n: int) -> dict:
            runs = {f"ours {p}": C.ours_generate(pair.ours_for(p), idx, n, p) for p in C.OURS}
            runs[peer] = best_of(peer_dt, n)
            if peer32 != peer:   # the fp32 target is paired with transformers' best fp32 variant
                runs[peer32] = best_of("fp32", n)
            for dt in book_dts:
                runs[f"book {dt}"] = C.book_generate(pair.ours_in(C.DTYPES[dt]), idx, book_n)
            return runs

        peer = f"transformers {peer_dt} ({best[peer_dt]})"
        peer32 = f"transformers fp32 ({best['fp32']})" if pair.name == "gpt2" else peer
        book_dts = ["fp32", "bf16"] if pair.name == "gpt2" else []   # the book loop: gpt2 shows it
        runs = contenders(new, book_new)
        prep = {p: self._prepare_seconds(pair, p) for p in C.OURS}
        fixed = {p: self._fixed_cost(pair, p) for p in C.OURS}
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

        fw = {p: fast_weights(pair.ours_for(p), p) for p in C.OURS}
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
        kernels = {p: fw[p].kernels() for p in C.OURS}
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
            return {f"ours {p}": C.ours_generate(pair.ours_for(p), idx, n, p) for p in C.OURS} | {
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
