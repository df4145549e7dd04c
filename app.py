"""GPT-2 Playground, the web app: ``python app.py [--weights PATH] [--host HOST] [--port PORT]``.

Importing this module builds ``demo`` without starting a server (tests and
``gradio app.py`` use it); the server starts only under ``__main__``. The
weights file comes from ``--weights``, else ``$PLAYGROUND_WEIGHTS``, else
``weights/default.safetensors``; ``gpt2`` (or ``gpt2-medium``, ``-large``, ``-xl``)
means OpenAI's model from the Hugging Face Hub, downloaded once at start (progress in
the log; ``HF_ENDPOINT`` names a mirror). When it is missing the app still starts
and says so, and a model can be chosen in the Model tab.
"""
from __future__ import annotations

import time

_STARTED = time.perf_counter()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Threads: all cores, but idle OpenMP threads sleep instead of spinning. On a shared 2-core box
# one competing busy process dropped bf16 decode from 79 to 23 tok/s with the default (active)
# policy, while the passive one kept 50 (idle: 60 vs 79). OpenMP reads this once, before torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from playground import settings as app_settings  # noqa: E402
from playground.paths import DEFAULT_WEIGHTS, WEIGHTS_DIR  # noqa: E402
from playground.settings import WEIGHTS_ENV  # noqa: E402
from playground.ui import ModelHolder, build_demo, launch_kwargs  # noqa: E402

# Every PLAYGROUND_* setting (weights, device, lock, queue size, upload limit, batch, training caps):
# playground/settings.py.
settings = app_settings.from_env()
holder = ModelHolder(settings.weights, device=settings.device)
batcher = settings.batcher()              # every generation's shared batch (tests read its state)
demo = build_demo(holder, weights_dir=WEIGHTS_DIR, allow_model_change=not settings.lock_model,
                  queue_size=settings.queue_size, max_upload_mb=settings.max_upload_mb,
                  batcher=batcher, training=settings.training_line())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="GPT-2 Playground web app")
    p.add_argument("--weights", default=None,
                   help=f"safetensors file to serve, or gpt2 / gpt2-medium / gpt2-large / gpt2-xl from the Hub "
                        f"(default: ${WEIGHTS_ENV} or {DEFAULT_WEIGHTS})")
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1; 0.0.0.0 for everyone)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860, or the next free one)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.weights:
        holder.default_path = Path(args.weights)
    if args.device:
        holder.device = args.device
    # Load while the server starts; the first request waits for it if it comes sooner.
    threading.Thread(target=holder.ensure_loaded, name="load-default", daemon=True).start()
    demo.launch(server_name=args.host, server_port=args.port, prevent_thread_lock=True,
                **launch_kwargs(settings.max_upload_mb))
    print(f"Serving after {time.perf_counter() - _STARTED:.1f} s; the model loads in the background.", flush=True)
    demo.block_thread()


if __name__ == "__main__":
    main()
