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

# Neuron indexes of the test models go to a folder of this run, not the user's cache.
os.environ.setdefault("PLAYGROUND_NEURON_CACHE", __import__("tempfile").mkdtemp(prefix="playground-neurons-"))

# One thread: tiny models gain nothing from two, and the suite must not collapse when the
# machine's other core is busy (two OpenMP threads on a loaded 2-core box run ~10x slower).
torch.set_num_threads(1)

from hypothesis import settings as hypothesis_settings  # noqa: E402

# Property tests replay their failures: on CI ($CI set) every run draws the same examples (derandomize),
# so a failure there fails again on the next run and on a laptop with CI=1; elsewhere examples are random
# and each failing one is kept in .hypothesis/ (the example database), tried first on the next run.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.register_profile("dev", print_blob=True)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")

from playground.config import GPTConfig  # noqa: E402
from playground.model import GPTModel  # noqa: E402
from tests.factories import TINY, make_model  # noqa: E402

# Fixtures that launch the app (a server on a port, or a browser on it): every test using one is marked
# ``slow``, so ``make test-fast`` (-m "not slow") starts none. Tests that launch a server inline carry
# the mark themselves.
SERVER_FIXTURES = frozenset({"live", "server", "http_url", "app_url", "page", "browser"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def tiny_cfg() -> GPTConfig:
    return TINY


@pytest.fixture
def tiny_model() -> GPTModel:
    return make_model()
