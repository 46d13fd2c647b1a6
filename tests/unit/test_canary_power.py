"""The evidence judge's power simulation (bench/canary_power.py)."""

from __future__ import annotations

import math

import pytest

from bench import canary_power as bench
from canary.evidence import EvidenceConfig


@pytest.fixture(scope="module")
def replay(dataset):
    """The real models' answers on the test split (scored once for this module)."""
    data = bench.load_data()
    bench._init(data)
    return data


def test_wilson_interval_matches_the_closed_form():
    """0 of 400 gives the upper bound z^2 / (n + z^2) (under 1 %); 400 of 400 mirrors it."""
    z2 = 1.959964**2
    lo, hi = bench.wilson(0, 400)
    assert lo == 0.0 and hi == pytest.approx(z2 / (400 + z2), rel=1e-12)
    assert hi < 0.01
    lo, hi = bench.wilson(400, 400)
    assert hi == 1.0 and lo == pytest.approx(1 - z2 / (400 + z2), rel=1e-12)
    lo, hi = bench.wilson(20, 100)
    assert lo < 0.2 < hi and (lo, hi) == pytest.approx((0.1333, 0.2888), abs=1e-4)


def test_the_cells_cover_the_issue_list():
    """Good versions under four mixes and every fault the issue names are simulated."""
    names = {c.name for c in bench.CELLS}
    assert {"good: test mix", "good: 2x hate speech", "good: 3x hate speech", "good: 2x neither"} <= names
    assert {"+2 % errors", "1.25x latency", "1.5x latency", "judge crashes"} <= names
    for share in ("20%", "10%"):
        assert all(f"{share} forced to {label}" in names for label in bench.LABELS)
    assert any(c.offset == (0, 0.3) for c in bench.CELLS)
    assert bench.RATES == (0.004, 1.0, 5.0, 20.0, 50.0)


def test_the_cli_rejects_rates_it_does_not_simulate(capsys):
    """A rate outside the issue's list is a usage error (exit 2) that names the valid ones."""
    with pytest.raises(SystemExit) as exc:
        bench.main(["--rates", "3"])
    assert exc.value.code == 2
    assert "0.004,1,5,20,50" in capsys.readouterr().err


def test_without_the_data_set_the_bench_says_where_to_get_it(monkeypatch, tmp_path, capsys):
    """A missing data set is exit 2 with the loader's message, not a traceback."""
    monkeypatch.setenv("HATE_DATA", str(tmp_path / "missing.csv"))
    assert bench.main(["--sims", "1", "--workers", "1", "--only", "crash"]) == 2
    assert "labelled data not found" in capsys.readouterr().err


@pytest.mark.data
def test_a_small_run_catches_faults_more_often_than_it_rolls_back_good_versions(replay):
    """Seeded smoke run at 50 req/s: a 20 % forced-to-majority fault is rolled back more often
    than a good v2, and a crashing judge always fails the gate."""
    cfg = EvidenceConfig()
    cells = {c.name: c for c in bench.CELLS}

    def rolled_back(name: str, runs: int) -> float:
        outs = [bench.simulate(cells[name], 50.0, seed, 5.0, cfg) for seed in range(runs)]
        return sum(o.rolled_back for o in outs) / runs

    good = rolled_back("good: test mix", 3)
    fault = rolled_back("20% forced to offensive_language", 3)
    assert fault > good
    assert fault == 1.0
    assert rolled_back("judge crashes", 2) == 1.0


@pytest.mark.data
def test_the_probe_set_is_balanced_over_v2s_labels(replay, dataset):
    """The probe set has 200 texts of each v2 label (so a forced label changes 2/3 of the
    answers it hits), and the replayed labels are the models' own."""
    data = replay
    counts = [int((data.v2[data.probe] == j).sum()) for j in range(3)]
    assert counts == [bench.PROBE_PER_LABEL] * 3
    assert len(data.v1) == len(data.truth) == len(dataset.test)
    assert math.isclose(float((data.v1 == data.truth).mean()), 0.777, abs_tol=0.002)  # v1's test accuracy
