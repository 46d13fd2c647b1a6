"""The statistics added to canary/stats.py for the evidence judge agree with scipy (a dev
dependency only) and with published values."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sp

from canary import stats
from canary.stats import Stratum

# UC Berkeley admissions by department (R's UCBAdmissions): (admitted male, rejected male,
# admitted female, rejected female). R: mantelhaen.test(UCBAdmissions) gives X-squared =
# 1.4269 with the continuity correction and 1.5246 without (df = 1).
UCB = {
    "A": (512, 313, 89, 19),
    "B": (353, 207, 17, 8),
    "C": (120, 205, 202, 391),
    "D": (138, 279, 131, 244),
    "E": (53, 138, 94, 299),
    "F": (22, 351, 24, 317),
}


def test_norm_cdf_and_isf_match_scipy():
    """norm_cdf is accurate in the lower tail and norm_isf inverts norm_sf like scipy's isf."""
    for z in (-30.0, -8.0, -1.0, 0.0, 2.5):
        assert stats.norm_cdf(z) == pytest.approx(sp.norm.cdf(z), rel=1e-12)
    for p in (1e-12, 1e-4, 0.00114, 0.05, 0.5, 0.99):
        assert stats.norm_isf(p) == pytest.approx(sp.norm.isf(p), rel=1e-10, abs=1e-12)


def test_norm_isf_rejects_probabilities_outside_zero_one():
    """0 and 1 have no finite quantile: a clear error, not an endless loop."""
    for p in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="0 < p < 1"):
            stats.norm_isf(p)


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [(7, 300, 0.005), (700, 1200, 0.5), (653, 1200, 0.5), (0, 10, 0.3), (11, 10, 0.3), (1, 5, 0.0),
     (5, 5, 1.0), (3, 1500, 0.021), (40, 1500, 0.021), (1, 1, 0.5)],
)  # fmt: skip
def test_binom_sf_matches_scipy(k, n, p):
    """binom_sf(k, n, p) = P(X >= k) = scipy.stats.binom.sf(k - 1, n, p), edges included."""
    assert stats.binom_sf(k, n, p) == pytest.approx(sp.binom.sf(k - 1, n, p), rel=1e-9, abs=1e-300)


def test_pocock_spending_is_lan_demets_pocock_type():
    """S(t) = alpha ln(1 + (e - 1) t): 0 at the start, alpha at the end, increasing, concave,
    clamped outside [0, 1]."""
    alpha = 0.01
    ts = np.linspace(0.0, 1.0, 101)
    values = [stats.pocock_spending(t, alpha) for t in ts]
    assert values[0] == 0.0
    assert values[-1] == pytest.approx(alpha, rel=1e-15)
    assert stats.pocock_spending(0.5, alpha) == pytest.approx(alpha * np.log(1 + (np.e - 1) / 2), rel=1e-15)
    steps = np.diff(values)
    assert (steps > 0).all() and (np.diff(steps) < 0).all()
    assert stats.pocock_spending(-1.0, alpha) == 0.0 and stats.pocock_spending(2.0, alpha) == alpha
    with pytest.raises(ValueError):
        stats.pocock_spending(0.5, 0.0)


def test_stratum_moments_match_scipy_hypergeom():
    """A stratum's null mean and variance are scipy's hypergeometric ones."""
    for a, n1, m, total in ((3, 20, 9, 60), (0, 150, 7, 1500), (40, 300, 100, 1000)):
        s = Stratum(a, n1, m, total)
        assert s.expected == pytest.approx(sp.hypergeom.mean(total, m, n1), rel=1e-12)
        assert s.variance == pytest.approx(sp.hypergeom.var(total, m, n1), rel=1e-12)


@pytest.mark.parametrize("margins", [(5, 3, 9, 10), (3, 2, 4, 10), (-1, 2, 3, 10), (3, 12, 4, 10)])
def test_stratum_rejects_inconsistent_margins(margins):
    """Margins that no 2 x 2 table has are a clear error."""
    with pytest.raises(ValueError, match="inconsistent"):
        Stratum(*margins)


def test_cmh_matches_r_on_ucb_admissions():
    """The CMH statistic on R's UCBAdmissions equals R's mantelhaen.test values (hand-checked
    published numbers: 1.4269 corrected, 1.5246 uncorrected)."""
    strata = [Stratum(am, am + rm, am + af, am + rm + af + rf) for am, rm, af, rf in UCB.values()]
    result = stats.cmh_greater(strata, exact_max_variance=0.0)
    excess = result.statistic - result.expected
    assert (abs(excess) - 0.5) ** 2 / result.variance == pytest.approx(1.4269, abs=5e-5)
    assert excess**2 / result.variance == pytest.approx(1.5246, abs=5e-5)
    assert not result.exact


def test_cmh_normal_path_equals_an_independent_scipy_computation():
    """Above the exact threshold, p = P(Z > (S - E - 1/2) / sqrt(V)) with E and V summed from
    scipy's hypergeometric moments."""
    rng = np.random.default_rng(11)
    strata = []
    for _ in range(6):
        total = int(rng.integers(200, 2000))
        n1 = int(rng.integers(20, total // 3))
        m = int(rng.integers(30, total // 2))
        a = int(sp.hypergeom.rvs(total, m, n1, random_state=rng))
        strata.append(Stratum(a, n1, m, total))
    e = sum(sp.hypergeom.mean(s.total, s.m, s.n1) for s in strata)
    v = sum(sp.hypergeom.var(s.total, s.m, s.n1) for s in strata)
    s_obs = sum(s.a for s in strata)
    result = stats.cmh_greater(strata, exact_max_variance=1.0)
    assert result.p == pytest.approx(sp.norm.sf((s_obs - e - 0.5) / math.sqrt(v)), rel=1e-9)


@pytest.mark.parametrize(
    ("a", "a_n", "b", "b_n"), [(6, 300, 3, 2700), (3, 50, 0, 450), (30, 1500, 3, 1500), (0, 100, 5, 900)]
)
def test_cmh_exact_with_one_stratum_is_fisher(a, a_n, b, b_n):
    """One stratum, exact: the one-sided p is scipy's Fisher exact test (alternative="greater")."""
    result = stats.cmh_greater([Stratum(a, a_n, a + b, a_n + b_n)], exact_max_variance=1e9)
    expected = sp.fisher_exact([[a, a_n - a], [b, b_n - b]], alternative="greater").pvalue
    assert result.exact
    assert result.p == pytest.approx(expected, rel=1e-9)


def test_cmh_exact_equals_brute_force_enumeration():
    """The exact p (convolution of the strata) equals summing scipy's hypergeometric pmf over
    every combination of the strata's counts whose total is at least the observed one."""
    strata = [Stratum(4, 10, 6, 25), Stratum(2, 8, 3, 20), Stratum(5, 12, 9, 30), Stratum(1, 1, 1, 2)]
    supports = [range(max(0, s.n1 - (s.total - s.m)), min(s.n1, s.m) + 1) for s in strata]
    observed = sum(s.a for s in strata)
    brute = 0.0
    for combo in itertools.product(*supports):
        if sum(combo) >= observed:
            brute += math.prod(
                sp.hypergeom.pmf(x, s.total, s.m, s.n1) for x, s in zip(combo, strata, strict=True)
            )
    result = stats.cmh_greater(strata, exact_max_variance=1e9)
    assert result.exact
    assert result.p == pytest.approx(brute, rel=1e-9)


def test_cmh_without_any_variance_is_no_evidence():
    """Strata whose margins leave no freedom (all events, none, or one group) give p = 1."""
    result = stats.cmh_greater([Stratum(0, 10, 0, 20), Stratum(5, 5, 5, 5), Stratum(0, 0, 0, 0)])
    assert result.p == 1.0 and result.variance == 0.0


def test_mh_risk_difference_matches_greenland_robins_by_hand():
    """The Mantel-Haenszel risk difference equals the Greenland-Robins weighted mean computed
    independently with numpy, and ignores strata where one group is empty."""
    tables = [(12, 100, 4, 200), (30, 60, 50, 140), (1, 10, 0, 90)]  # (a, n1, b, n2)
    a, n1, b, n2 = (np.array(x, float) for x in zip(*tables, strict=True))
    w = n1 * n2 / (n1 + n2)
    expected = float(np.sum(w * (a / n1 - b / n2)) / np.sum(w))
    strata = [Stratum(int(x), int(m), int(x + y), int(m + k)) for x, m, y, k in tables]
    assert stats.mh_risk_difference([*strata, Stratum(3, 3, 3, 3)]) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(stats.mh_risk_difference([Stratum(3, 3, 3, 3)]))
