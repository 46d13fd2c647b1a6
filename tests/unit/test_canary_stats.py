"""The judge's pure-Python statistics agree with scipy.stats (scipy is a dev dependency only)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sp

from canary import stats


def test_norm_sf_matches_scipy_in_the_tail():
    """norm_sf stays accurate where 1 - cdf would round to zero."""
    for z in (-3.0, 0.0, 1.0, 5.0, 12.0, 30.0):
        assert stats.norm_sf(z) == pytest.approx(sp.norm.sf(z), rel=1e-12)


@pytest.mark.parametrize(
    ("a", "a_n", "b", "b_n"), [(6, 300, 3, 2700), (0, 100, 5, 900), (30, 1500, 14, 13500), (3, 50, 0, 450)]
)
def test_fisher_greater_matches_scipy(a, a_n, b, b_n):
    """Fisher's one-sided exact p equals scipy.stats.fisher_exact(alternative="greater")."""
    expected = sp.fisher_exact([[a, a_n - a], [b, b_n - b]], alternative="greater").pvalue
    assert stats.fisher_greater(a, a_n, b, b_n) == pytest.approx(expected, rel=1e-9)


def test_quantile_matches_numpy():
    """Linear-interpolation quantiles equal numpy.quantile's default."""
    values = sorted(np.random.default_rng(5).lognormal(1, 0.5, 101).tolist())
    for q in (0.0, 0.5, 0.9, 0.99, 1.0):
        assert stats.quantile(values, q) == pytest.approx(float(np.quantile(values, q)), rel=1e-12)


def test_holm_steps_down_and_stops_at_the_first_acceptance():
    """Holm compares the k-th smallest p with alpha/(m-k+1) and stops rejecting at the first failure."""
    decisions = stats.holm([0.001, 0.04, 0.012], alpha=0.05)
    assert decisions[0] == (True, pytest.approx(0.05 / 3))
    assert decisions[2] == (True, pytest.approx(0.05 / 2))
    assert decisions[1] == (True, pytest.approx(0.05))
    assert [d[0] for d in stats.holm([0.001, 0.03, 0.04], alpha=0.05)] == [True, False, False]


def test_percentiles_are_the_quantiles_the_judge_uses_scaled_and_named():
    """One definition of a percentile: the benchmark's and the rehearsal traffic's p99 is
    canary.stats.quantile (interpolated), scaled (seconds to ms) and rounded; nothing measured is {}."""
    values = [0.004, 0.001, 0.003, 0.002]
    assert stats.percentiles(values, {"p50": 0.5, "max": 1.0}, scale=1000.0) == {"p50": 2.5, "max": 4.0}
    assert stats.percentiles(values, {"p99": 0.99}) == {"p99": round(stats.quantile(sorted(values), 0.99), 3)}
    assert stats.percentiles([], {"p50": 0.5}) == {}
