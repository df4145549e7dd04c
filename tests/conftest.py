"""Shared fixtures: tiny seeded models so the suite runs in seconds."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test touches the network
# The fast decoder's measured kernel choices go to a file of this run, not the user's cache.
os.environ.setdefault("PLAYGROUND_KERNEL_CACHE", os.path.join(
    __import__("tempfile").mkdtemp(prefix="playground-kernels-"), "kernels.json"))

# One thread: tiny models gain nothing from two, and the suite must not collapse when the
# machine's other core is busy (two OpenMP threads on a loaded 2-core box run ~10x slower).
torch.set_num_threads(1)

from playground.config import GPTConfig  # noqa: E402
from playground.model import GPTModel  # noqa: E402
from tests.factories import TINY, make_model  # noqa: E402

@pytest.fixture
def tiny_cfg() -> GPTConfig:
    return TINY


@pytest.fixture
def tiny_model() -> GPTModel:
    return make_model()
