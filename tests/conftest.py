import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def npz_task(tmp_path):
    """A tiny two-class series task in an .npz file: ``npz:PATH``."""
    rng = np.random.default_rng(0)
    n, T, C = 60, 10, 4
    y = np.arange(n) % 2
    X = rng.normal(size=(n, T, C)).astype(np.float32)
    X[y == 1, :5, 0] += 2.0  # class 1: channel 0 high early
    path = tmp_path / "toy.npz"
    np.savez(path, X=X, y=y)
    return f"npz:{path}"
