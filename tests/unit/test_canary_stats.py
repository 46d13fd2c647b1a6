"""The judge's pure-Python statistics agree with scipy.stats (scipy is a dev dependency only)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sp
from scipy.spatial.distance import jensenshannon

from canary import stats


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 8])
def test_chi2_sf_matches_scipy(df):
    """The closed-form chi-square tail equals scipy's, deep into the tail too."""
    for x in (0.0, 0.05, 0.5, 2.0, 7.5, 20.0, 60.0, 150.0):
        assert stats.chi2_sf(x, df) == pytest.approx(sp.chi2.sf(x, df), rel=1e-9, abs=1e-300)


def test_norm_sf_matches_scipy_in_the_tail():
    """norm_sf stays accurate where 1 - cdf would round to zero."""
    for z in (-3.0, 0.0, 1.0, 5.0, 12.0, 30.0):
        assert stats.norm_sf(z) == pytest.approx(sp.norm.sf(z), rel=1e-12)


def test_mann_whitney_matches_scipy_with_ties():
    """U, tie-corrected z and the one-sided p match scipy's asymptotic Mann-Whitney."""
    rng = np.random.default_rng(3)
    x = np.round(rng.lognormal(1.15, 0.4, 300), 1)
    y = np.sort(np.round(rng.lognormal(1.1, 0.4, 2700), 1))
    u, _, p = stats.mann_whitney_greater(x.tolist(), y.tolist())
    expected = sp.mannwhitneyu(x, y, alternative="greater", method="asymptotic", use_continuity=True)
    assert u == expected.statistic
    assert p == pytest.approx(expected.pvalue, rel=1e-9)


@pytest.mark.parametrize(
    ("a", "a_n", "b", "b_n"), [(6, 300, 3, 2700), (0, 100, 5, 900), (30, 1500, 14, 13500), (3, 50, 0, 450)]
)
def test_fisher_greater_matches_scipy(a, a_n, b, b_n):
    """Fisher's one-sided exact p equals scipy.stats.fisher_exact(alternative="greater")."""
    expected = sp.fisher_exact([[a, a_n - a], [b, b_n - b]], alternative="greater").pvalue
    assert stats.fisher_greater(a, a_n, b, b_n) == pytest.approx(expected, rel=1e-9)


def _pearson(a, b):
    """scipy's Pearson statistic of the 2 x k table (no continuity correction): the reference."""
    return sp.chi2_contingency(np.array([a, b]), correction=False)[0]


def _brute_exact(a, b):
    totals = [x + y for x, y in zip(a, b, strict=True)]
    n_a = sum(a)
    observed = _pearson(a, b)
    p = 0.0
    for c0, c1 in itertools.product(range(totals[0] + 1), range(totals[1] + 1)):
        c2 = n_a - c0 - c1
        if not 0 <= c2 <= totals[2]:
            continue
        table = [c0, c1, c2]
        other = [t - c for t, c in zip(totals, table, strict=True)]
        if _pearson(table, other) >= observed - 1e-9:
            p += sp.multivariate_hypergeom.pmf(table, totals, n_a)
    return p


@pytest.mark.parametrize(
    ("a", "b"), [([1, 20, 5], [10, 150, 40]), ([4, 10, 1], [2, 50, 10]), ([0, 30, 2], [5, 100, 30])]
)
def test_exact_homogeneity_matches_brute_force(a, b):
    """The pruned exact conditional test equals full enumeration with scipy's hypergeometric pmf."""
    assert stats.exact_homogeneity(a, b) == pytest.approx(_brute_exact(a, b), rel=1e-9)


def test_exact_multinomial_tail_matches_brute_force():
    """The pruned exact multinomial tail equals full enumeration with scipy's multinomial pmf."""
    counts, probs = [1, 40, 9], [0.03, 0.8, 0.17]
    n = sum(counts)
    observed = sum((c - n * p) ** 2 / (n * p) for c, p in zip(counts, probs, strict=True))
    brute = 0.0
    for c0, c1 in itertools.product(range(n + 1), repeat=2):
        table = [c0, c1, n - c0 - c1]
        if table[2] < 0:
            continue
        if sum((c - n * p) ** 2 / (n * p) for c, p in zip(table, probs, strict=True)) >= observed - 1e-9:
            brute += sp.multinomial.pmf(table, n, probs)
    assert stats.exact_multinomial_tail(counts, probs, observed) == pytest.approx(brute, rel=1e-9)


def test_exact_tests_stay_fast_for_a_rare_label_in_a_big_sample():
    """A rare label in a 1,500-request canary is enumerated with pruning, not (n+1)^2 tables."""
    import time

    started = time.perf_counter()
    p = stats.exact_multinomial_tail([2, 1200, 298], [0.002, 0.8, 0.198], 5.0)
    assert 0.0 < p < 1.0
    assert time.perf_counter() - started < 1.0


def test_jensen_shannon_distance_matches_scipy():
    """Base-2 JS distance equals scipy.spatial.distance.jensenshannon(base=2), zeros included."""
    for p, q in (
        ([1, 2, 3], [3, 2, 1]),
        ([0.05, 0.76, 0.19], [0.21, 0.63, 0.16]),
        ([0, 1, 0], [0.5, 0.5, 0]),
    ):
        assert stats.jensen_shannon_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)


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
