"""Shared test configuration: offline, deterministic, CPU; slow tests behind --runslow."""

import os

# Must happen before any Hugging Face import (they read these at import time).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# BLAS threads: set before numpy loads. On a busy 2-core machine a threaded 400x400 eigh is 100x slower.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

# One intra-op thread, set at import so module-scoped fixtures get it too: tiny tensors gain nothing from more,
# a busy 2-core machine loses 5-10x with two, and bit-equal comparisons (a resumed run against an
# uninterrupted one) need the same thread count on both sides.
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MSRVTT31 = SHARED_DATA / "msrvtt31"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Every test starts from the same torch state: seed, deterministic kernels, one thread."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield


@pytest.fixture
def msrvtt31() -> Path:
    """The 31 shared MSR-VTT clips; tests that use them skip (with a reason) when ../shared is absent."""
    if not (MSRVTT31 / "captions.csv").exists():
        pytest.skip(f"shared MSR-VTT clips not found at {MSRVTT31}")
    return MSRVTT31


@pytest.fixture(scope="session")
def kandinsky_hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random Kandinsky 2.2 folders, prior/ and decoder/, in the hub layout (fixtures.kandinsky_folders).
    Shared by every test: read them, or copy them before breaking them."""
    from fixtures import kandinsky_folders

    root = tmp_path_factory.mktemp("k22")
    kandinsky_folders(root)
    return root
