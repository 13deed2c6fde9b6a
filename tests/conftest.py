"""Shared fixtures: an isolated cache, analytic priors, and float64 reference implementations."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Tests never read or write the user's cache."""
    old = os.environ.get("DIFFREP_CACHE_DIR")
    os.environ["DIFFREP_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("DIFFREP_CACHE_DIR", None)
    else:
        os.environ["DIFFREP_CACHE_DIR"] = old


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


def brute_force_posterior_mean(data: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Float64 reference: ``sum_i p(i | x_t) x_i`` with Gaussian likelihoods written out, one row at a time."""
    X = data.to(torch.float64).flatten(1)
    out = []
    for x, ab in zip(x_t.to(torch.float64).flatten(1), alpha_bar.to(torch.float64)):
        log_lik = -((x - ab.sqrt() * X) ** 2).sum(1) / (2 * (1 - ab))
        out.append(torch.softmax(log_lik, 0) @ X)
    return torch.stack(out).view(x_t.shape)


@pytest.fixture(scope="session")
def toy_prior(_isolated_cache):
    """A small toy-world empirical prior (generated once per test session)."""
    from diffrep.priors import toyworld_prior

    return toyworld_prior(n=600, res=32, seed=0)


def pytest_configure(config):
    """One thread per test process: with two xdist workers (or anything else running) on two cores,
    torch's second thread makes small kernels 10-100x slower instead of faster. The one place tests set it: nothing in
    diffrep leaves it changed (the renderer's ``threads`` restores it, and bench nerf3d sets 1)."""
    torch.set_num_threads(1)
