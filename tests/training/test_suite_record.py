"""The behavioural suite's recorded answers (canary/suite_answers.py) and the release gate
(training/suite_record.py, training.train.release_gate): format, fingerprint, sign test, gate."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from canary import suite_answers
from infer.model import LABELS
from training import behaviour, suite_record, train
from training.behaviour import Case


def make_case(case_id: str, func: str, expected: str, text: str | None = None) -> Case:
    return Case(case_id, func, text or f"text of {case_id}", frozenset({expected}), "a reason", 1)


CASES = [make_case(f"d{i}", "hate_derogation", "hate_speech") for i in range(8)] + [
    make_case(f"b{i}", "everyday_benign", "neither") for i in range(4)
]


def labels(**overrides: str) -> dict[str, str]:
    """Every case answered correctly, except the ids overridden."""
    base = {c.id: next(iter(c.expected)) for c in CASES}
    return {**base, **overrides}


def test_the_document_round_trips_and_indexes_the_labels():
    """build() writes one digit per case; labels_by_id() gives the same labels back."""
    got = labels(d0="neither", b1="offensive_language")
    doc = suite_record.build(CASES, {c.text: got[c.id] for c in CASES}.__getitem__, LABELS)
    assert doc["format"] == suite_answers.FORMAT and len(doc["answers"]) == len(CASES)
    assert suite_answers.labels_by_id(doc) == got


def test_the_fingerprint_covers_ids_and_texts_not_reasons():
    """Rewording a reason keeps the recorded answers valid; changing a text does not."""
    pairs = [(c.id, c.text) for c in CASES]
    same = suite_answers.fingerprint(pairs)
    assert suite_answers.fingerprint(list(pairs)) == same
    changed = [(pairs[0][0], pairs[0][1] + "!"), *pairs[1:]]
    assert suite_answers.fingerprint(changed) != same


@pytest.mark.parametrize(
    "doc",
    [
        {"format": "other/1", "ids": [], "labels": [], "answers": ""},
        {"format": suite_answers.FORMAT, "ids": ["a", "a"], "labels": list(LABELS), "answers": "00"},
        {"format": suite_answers.FORMAT, "ids": ["a"], "labels": list(LABELS), "answers": "01"},
    ],
)
def test_a_malformed_document_is_refused(doc):
    """Another format, a repeated id, or ids and answers of different lengths: ValueError."""
    with pytest.raises(ValueError):
        suite_answers.labels_by_id(doc)


def test_the_committed_suite_reads_as_id_text_pairs_matching_the_loader():
    """read_texts (the hook's reader, standard library) agrees with training's loader."""
    pairs = suite_answers.read_texts(behaviour.DEFAULT_SUITE)
    assert pairs == [(c.id, c.text) for c in behaviour.load_suite()]


@pytest.mark.parametrize(
    ("gains", "losses", "p"), [(0, 0, 1.0), (0, 3, 0.25), (3, 0, 0.25), (1, 14, 0.00098)]
)
def test_the_sign_test_is_two_sided_and_exact(gains, losses, p):
    """p = 2 x P(X <= min) under Binomial(n, 1/2), capped at 1."""
    assert suite_record.sign_test_p(gains, losses) == pytest.approx(p, abs=1e-5)


def test_compare_counts_gains_and_losses_case_by_case():
    """The new model fixes d0 and breaks d1..d7: +1/-7 on derogation (sign test p 0.07, not beyond
    noise at 0.05); benign unchanged."""
    old = labels(d0="neither")
    new = labels(**{f"d{i}": "offensive_language" for i in range(1, 8)})
    changes = {c.functionality: c for c in suite_record.compare(CASES, new, old)}
    derogation = changes["hate_derogation"]
    assert (derogation.gains, derogation.losses, derogation.n) == (1, 7, 8)
    assert derogation.p == pytest.approx(0.0703, abs=1e-4) and not derogation.regression  # 1 gain: noise
    assert not derogation.better
    assert (changes["everyday_benign"].gains, changes["everyday_benign"].losses) == (0, 0)


def test_a_loss_within_noise_is_not_a_regression():
    """Three losses and no gain (p 0.25) is not beyond noise at p < 0.05."""
    new = labels(d0="neither", d1="neither", d2="neither")
    (_, derogation) = suite_record.compare(CASES, new, labels())  # suite order: benign first
    assert derogation.losses == 3 and not derogation.regression


def test_the_gate_names_an_unacknowledged_regression_and_lets_an_acknowledged_one_through():
    """Seven of eight derogation cases lost: the gate says so, unless the card acknowledges it."""
    new = labels(**{f"d{i}": "neither" for i in range(7)})
    changes = suite_record.compare(CASES, new, labels())
    (line,) = suite_record.gate("v9", "v8", changes)
    assert "v9 regresses against v8 on hate_derogation: +0/-7 of 8" in line and "acknowledge" in line
    assert suite_record.gate("v9", "v8", changes, acknowledged=["hate_derogation"]) == []


def _trained(docs: dict[str, dict[str, str]]) -> SimpleNamespace:
    """A stand-in for training.train.Trained holding only suite_answers.json per version."""
    cases = behaviour.load_suite()
    writers = {}
    for version, got in docs.items():
        doc = suite_record.build(cases, {c.text: got.get(c.id, "neither") for c in cases}.__getitem__, LABELS)
        writers[version] = SimpleNamespace(files={suite_record.FILE: json.dumps(doc).encode()})
    return SimpleNamespace(writers=writers)


def test_release_gate_compares_each_version_with_the_one_before_and_honours_acknowledgements(monkeypatch):
    """v2 losing every hateful case v1 had, unacknowledged: a line; acknowledged: none."""
    cases = behaviour.load_suite()
    hateful = {c.id: "hate_speech" for c in cases if c.functionality == "hate_derogation"}
    trained = _trained({"v1": hateful, "v2": {}})
    monkeypatch.setattr(train, "ACKNOWLEDGED", {})
    (line,) = train.release_gate(trained)
    assert line.startswith("v2 regresses against v1 on hate_derogation")
    monkeypatch.setattr(train, "ACKNOWLEDGED", {"v2": {"hate_derogation": "known"}})
    assert train.release_gate(trained) == []


def test_make_train_writes_nothing_when_the_gate_refuses(monkeypatch, tmp_path, capsys):
    """main(): a gate line is printed, nothing is published, exit 1."""
    monkeypatch.setattr(train, "load", lambda path: SimpleNamespace(train=[], test=[], sha256="0" * 64))
    monkeypatch.setattr(train, "train_all", lambda ds, out, jobs: "trained")
    monkeypatch.setattr(train, "release_gate", lambda trained: ["v3 regresses against v2 on threat_group"])
    published = []
    monkeypatch.setattr(train.reproduce, "publish", lambda *a, **k: published.append(a) or 0)
    assert train.main(["--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "release gate: v3 regresses against v2 on threat_group" in out and "nothing written" in out
    assert published == []


# --- the class prior (training.v3) ------------------------------------------------------------------


def test_the_decision_prior_is_the_training_prior_moved_by_the_offsets_over_the_temperature():
    """Offsets (log 2, 0, 0) at T = 1 double hate's share before renormalising."""
    import math

    from training import v3

    got = v3.decision_prior([0.1, 0.6, 0.3], [math.log(2.0), 0.0, 0.0], 1.0)
    assert got == pytest.approx([0.2 / 1.1, 0.6 / 1.1, 0.3 / 1.1], abs=1e-4)


def test_with_prior_reweights_every_probability_by_the_prior_ratio_saerens_style():
    """The restated model's probabilities are the old ones x new/reference, renormalised (the
    correction training.calibration.adjust computes), and a rarer hate prior moves labels off it."""
    import numpy as np

    from training import calibration, v3

    pipe = v3.NBLRPipeline(
        corpus=None, featurizer=None, coef=np.zeros((1, 3)), intercept=np.array([1.0, 0.5, 0.0])
    )
    reference, prior = [0.2, 0.6, 0.2], [0.02, 0.38, 0.60]
    moved = v3.with_prior(pipe, reference, prior)
    before = v3.softmax(pipe.intercept[None, :])[0]
    after = v3.softmax(moved.intercept[None, :])[0]
    assert after == pytest.approx(calibration.adjust(list(before), reference, prior), abs=1e-12)
    assert before.argmax() == 0 and after.argmax() != 0


@pytest.mark.parametrize("prior", [[0.5, 0.5], [0.0, 0.5, 0.5], [0.3, 0.3, 0.3]])
def test_a_prior_that_is_not_three_positive_shares_summing_to_one_is_refused(prior):
    """Wrong length, a zero share (log 0), or shares not summing to 1: ValueError naming it."""
    import numpy as np

    from training import v3

    pipe = v3.NBLRPipeline(corpus=None, featurizer=None, coef=np.zeros((1, 3)), intercept=np.zeros(3))
    with pytest.raises(ValueError, match="positive shares"):
        v3.with_prior(pipe, [1 / 3] * 3, prior)


def test_a_prior_variant_is_v3_restated_with_its_prior_and_says_so():
    """training.train.prior_variants: same coefficients, intercept moved by log(prior / v3's
    decision prior), hyperparameters naming v3 and the new prior; another base is refused."""
    import numpy as np

    from training import v3

    base_pipe = v3.NBLRPipeline(corpus=None, featurizer=None, coef=np.ones((2, 3)), intercept=np.zeros(3))
    base = train.Fitted(
        base_pipe, {"folds": 5}, {"decision_prior": [0.2, 0.6, 0.2], "temperature": 1.5}, None
    )
    ((name, variant),) = train.prior_variants(base, {"v4": ("v3", (0.02, 0.38, 0.60))}).items()
    assert name == "v4" and variant.pipeline.coef is base_pipe.coef
    assert variant.pipeline.intercept == pytest.approx(np.log([0.02 / 0.2, 0.38 / 0.6, 0.60 / 0.2]))
    assert variant.hyperparameters["derived_from"] == "v3"
    assert variant.hyperparameters["decision_prior"] == [0.02, 0.38, 0.6]
    assert variant.exporter is v3.export_v3 and variant.cv == {"folds": 5}
    with pytest.raises(ValueError, match="only v3"):
        train.prior_variants(base, {"v4": ("v2", (0.02, 0.38, 0.60))})
