"""The behavioural suite (training/behaviour.py, training/suite/cases.jsonl) and calibration and
prior-shift correction (training/calibration.py): loader rules, evaluation, known answers."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from training import behaviour, calibration
from training.behaviour import BENIGN, FUNCTIONALITIES, SuiteError, evaluate, load_suite

GOOD = {
    "id": "benign-x",
    "functionality": BENIGN,
    "text": "good morning",
    "expected": "neither",
    "reason": "a greeting",
}


def write_suite(tmp_path: Path, *lines: object) -> Path:
    """A suite file whose lines are the given dicts (as JSON) or raw strings."""
    path = tmp_path / "cases.jsonl"
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8"
    )
    return path


def case(**changes) -> dict:
    return {**GOOD, **changes}


# --- the loader -------------------------------------------------------------------------------------


def test_a_valid_file_loads_with_one_label_or_an_allowed_set_and_skips_blank_lines(tmp_path):
    """A string `expected` becomes a one-label set, a list stays a set; blank lines are skipped but
    line numbers still count them."""
    path = write_suite(
        tmp_path,
        case(),
        "",
        case(id="p-1", functionality="profanity_no_target", expected=["offensive_language", "neither"]),
    )
    cases = load_suite(path)
    assert [c.id for c in cases] == ["benign-x", "p-1"]
    assert cases[0].expected == frozenset({"neither"})
    assert cases[1].expected == frozenset({"offensive_language", "neither"})
    assert cases[1].line == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a", "list"]', "expected a JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "reason"}), "missing field(s) ['reason']"),
        (json.dumps(case(note="extra")), "unknown field(s) ['note']"),
        (json.dumps(case(reason="  ")), "'reason' must be a non-empty string"),
        (json.dumps(case(id="")), "'id' must be a non-empty string"),
        (json.dumps(case(text=5)), "'text' must be a non-empty string"),
        (json.dumps(case(functionality="sarcasm")), "unknown functionality 'sarcasm'"),
        (json.dumps(case(expected="Hate Speech")), "unknown expected label(s) ['Hate Speech']"),
        (json.dumps(case(expected=["neither", "toxic"])), "unknown expected label(s) ['toxic']"),
        (json.dumps(case(expected=[])), "'expected' must be a label or a non-empty list"),
    ],
    ids=[
        "bad-json",
        "not-object",
        "missing-field",
        "unknown-field",
        "empty-reason",
        "empty-id",
        "text-not-string",
        "unknown-functionality",
        "unknown-label",
        "unknown-label-in-set",
        "empty-expected",
    ],
)
def test_each_broken_rule_is_refused_with_the_file_and_line_named(tmp_path, line, message):
    """The bad line is the second one: the error names path:2 and the rule that was broken."""
    path = write_suite(tmp_path, case(id="ok-1"), line)
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert f"{path}:2:" in str(err.value)
    assert message in str(err.value)


def test_a_duplicate_id_is_refused_naming_both_lines(tmp_path):
    """Ids identify cases in results and failing lists, so they must be unique."""
    path = write_suite(tmp_path, case(), case(id="other", text="hello"), case())
    with pytest.raises(SuiteError, match=r":3: duplicate id 'benign-x' \(first on line 1\)"):
        load_suite(path)


def test_a_text_with_a_unicode_line_separator_stays_one_case(tmp_path):
    """U+2028 inside a JSON string (written raw, as ensure_ascii=False does) does not split the line."""
    path = tmp_path / "cases.jsonl"
    path.write_text(
        json.dumps(case(text="line one\u2028line two"), ensure_ascii=False) + "\n", encoding="utf-8"
    )
    assert [c.text for c in load_suite(path)] == ["line one\u2028line two"]


def test_a_missing_or_empty_file_is_a_clear_error(tmp_path):
    """No file, or a file with no cases, never yields an empty suite silently."""
    with pytest.raises(SuiteError, match="suite file not found"):
        load_suite(tmp_path / "nope.jsonl")
    with pytest.raises(SuiteError, match="no cases"):
        load_suite(write_suite(tmp_path, ""))


# --- the suite itself -------------------------------------------------------------------------------


def test_the_project_suite_loads_and_meets_the_size_rules():
    """>= 300 cases, >= 12 functionalities (every one of the closed list used), >= 40 everyday benign
    cases that all expect exactly `neither`, and no text appears twice."""
    cases = load_suite()
    funcs = {c.functionality for c in cases}
    benign = [c for c in cases if c.functionality == BENIGN]
    assert len(cases) >= 300
    assert len(funcs) >= 12 and funcs == set(FUNCTIONALITIES)
    assert len(benign) >= 40 and all(c.expected == {"neither"} for c in benign)
    assert len({c.text for c in cases}) == len(cases)


# --- evaluation ------------------------------------------------------------------------------------


def test_evaluate_counts_passes_per_functionality_against_the_allowed_set(tmp_path):
    """A fake predictor: a case passes when its label is anywhere in the allowed set; results come in
    the closed list's order with the failing ids in suite order."""
    path = write_suite(
        tmp_path,
        case(id="b1", text="hi"),
        case(id="b2", text="hello"),
        case(id="b3", text="good night"),
        case(
            id="p1",
            functionality="profanity_no_target",
            text="damn",
            expected=["offensive_language", "neither"],
        ),
        case(id="h1", functionality="hate_derogation", text="group hate", expected="hate_speech"),
    )
    answers = {"hi": "neither", "hello": "offensive_language", "good night": "hate_speech", "damn": "neither"}
    results = evaluate(lambda t: answers.get(t, "offensive_language"), load_suite(path))
    assert list(results) == [BENIGN, "profanity_no_target", "hate_derogation"]
    assert (results[BENIGN].n, results[BENIGN].passed, results[BENIGN].failing) == (3, 1, ("b2", "b3"))
    assert results[BENIGN].pass_rate == pytest.approx(1 / 3)
    assert results["profanity_no_target"].pass_rate == 1.0
    assert results["hate_derogation"].failing == ("h1",)
    assert behaviour.neither_rate(lambda t: answers.get(t), load_suite(path)) == (pytest.approx(1 / 3), 3)
    rates = behaviour.hate_rates(lambda t: answers.get(t, "offensive_language"), load_suite(path))
    # one hateful case (not called hate); four others, of which "good night" was called hate
    assert rates == {
        "hateful_said_hate": {"n": 1, "rate": 0.0},
        "non_hateful_said_hate": {"n": 4, "rate": 0.25},
    }


def test_the_cli_scores_every_model_next_to_the_constant_answers(capsys):
    """--json: v1, v2 and both constants, every functionality with its n; `always neither` passes
    every benign case and `always offensive_language` none."""
    assert behaviour.main(["--models", "v1,v2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    preds = report["predictors"]
    assert list(preds) == ["v1", "v2", "always offensive_language", "always neither"]
    for p in preds.values():
        assert list(p["functionalities"]) == list(FUNCTIONALITIES)
        assert sum(f["n"] for f in p["functionalities"].values()) == report["n_cases"]
    assert preds["always neither"]["benign_neither_rate"]["rate"] == 1.0
    assert preds["always offensive_language"]["functionalities"][BENIGN]["pass_rate"] == 0.0


def test_the_cli_table_has_a_row_per_functionality_and_the_benign_rate(capsys):
    """The Markdown table: header with the predictors, one row per functionality, the summary rows."""
    assert behaviour.main(["--models", "v2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| functionality | n | v2 | always offensive_language | always neither |"
    assert len(out) == 2 + len(FUNCTIONALITIES) + 5
    assert out[-3].startswith("| **everyday benign -> neither** |")


def test_the_cli_refuses_an_unknown_model_with_exit_2(capsys):
    """A version not in models/ is reported on stderr, no traceback."""
    assert behaviour.main(["--models", "v99"]) == 2
    assert "v99" in capsys.readouterr().err


def test_calibration_cli_without_the_data_set_exits_2_naming_the_path(tmp_path, capsys):
    """A missing CSV is an error on stderr naming the path, no traceback."""
    assert calibration.main(["--data", str(tmp_path / "none.csv"), "--models", "v2"]) == 2
    assert "none.csv" in capsys.readouterr().err


# --- calibration -----------------------------------------------------------------------------------


def test_reliability_bins_and_ece_on_a_hand_made_example():
    """Six texts: 0.9-1.0 holds 0.95, 0.92 and 1.0 (2 of 3 right), 0.5-0.6 holds 0.55 and 0.5 (both
    right), 0.3-0.4 holds 0.35 (wrong). ECE = 3/6*0.29 + 2/6*0.475 + 1/6*0.35 = 0.361667."""
    bins = calibration.reliability([0.95, 0.92, 0.55, 0.5, 1.0, 0.35], [True, False, True, True, True, False])
    assert len(bins) == 10
    assert [b.count for b in bins] == [0, 0, 0, 1, 0, 2, 0, 0, 0, 3]
    assert bins[9].confidence == pytest.approx(2.87 / 3) and bins[9].accuracy == pytest.approx(2 / 3)
    assert bins[5].confidence == pytest.approx(0.525) and bins[5].accuracy == 1.0
    assert (bins[3].confidence, bins[3].accuracy) == (pytest.approx(0.35), 0.0)
    assert calibration.ece(bins) == pytest.approx(0.361667, abs=1e-6)


def test_reliability_refuses_mismatched_or_impossible_inputs():
    """Lengths must match and confidences must be probabilities; ECE needs at least one text."""
    with pytest.raises(ValueError, match="2 confidences but 1"):
        calibration.reliability([0.5, 0.6], [True])
    with pytest.raises(ValueError, match="not a probability"):
        calibration.reliability([1.2], [True])
    with pytest.raises(ValueError, match="no texts"):
        calibration.ece(calibration.reliability([], []))


def test_class_prior_is_the_share_of_each_class():
    """Labels 0, 1, 1, 2 -> 1/4, 1/2, 1/4."""
    assert calibration.class_prior([0, 1, 1, 2]) == [0.25, 0.5, 0.25]


# --- prior-shift correction ------------------------------------------------------------------------


def test_adjust_is_the_identity_when_the_priors_are_equal():
    """new_prior == train_prior leaves every score vector unchanged."""
    rng = random.Random(1)
    prior = [0.06, 0.77, 0.17]
    for _ in range(50):
        raw = [rng.random() + 1e-3 for _ in range(3)]
        probs = [x / sum(raw) for x in raw]
        assert calibration.adjust(probs, prior, prior) == pytest.approx(probs, abs=1e-12)


def test_adjust_matches_a_hand_computed_example():
    """(0.2, 0.5, 0.3) trained at (0.1, 0.8, 0.1), deployed at uniform: weights (2/3, 0.208333, 1),
    sum 1.875 -> (0.355556, 0.111111, 0.533333)."""
    out = calibration.adjust([0.2, 0.5, 0.3], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3])
    assert out == pytest.approx([0.355556, 0.111111, 0.533333], abs=1e-6)
    assert sum(out) == pytest.approx(1.0)


def test_adjust_refuses_priors_that_are_not_distributions():
    """Wrong length, a zero share or a sum off 1 is a ValueError naming the prior."""
    with pytest.raises(ValueError, match="new_prior has 2 classes"):
        calibration.adjust([0.2, 0.5, 0.3], [0.1, 0.8, 0.1], [0.5, 0.5])
    with pytest.raises(ValueError, match="train_prior must be positive"):
        calibration.adjust([0.2, 0.5, 0.3], [0.0, 0.9, 0.1], [0.2, 0.6, 0.2])
    with pytest.raises(ValueError, match="new_prior must sum to 1"):
        calibration.adjust([0.2, 0.5, 0.3], [0.1, 0.8, 0.1], [0.2, 0.6, 0.3])


def _synthetic_posteriors(rng: random.Random, train_prior, deploy_prior, n: int) -> list[list[float]]:
    """Texts drawn at deploy_prior from three unit Gaussians (means 0, 2, 4), scored with the exact
    posterior under train_prior: a perfectly calibrated model trained elsewhere."""
    means = (0.0, 2.0, 4.0)
    out = []
    for _ in range(n):
        c = rng.choices(range(3), weights=deploy_prior)[0]
        x = rng.gauss(means[c], 1.0)
        joint = [train_prior[k] * pow(2.718281828459045, -0.5 * (x - means[k]) ** 2) for k in range(3)]
        out.append([j / sum(joint) for j in joint])
    return out


def test_em_recovers_a_known_shifted_prior_on_synthetic_data():
    """Trained at (0.06, 0.77, 0.17), deployed at (0.02, 0.28, 0.70): EM on 3,000 unlabelled texts
    recovers the deployment prior within 0.03 per class (sampling noise is ~0.01)."""
    train, deploy = [0.06, 0.77, 0.17], [0.02, 0.28, 0.70]
    probs = _synthetic_posteriors(random.Random(7), train, deploy, 3000)
    estimate, iterations = calibration.em_prior(probs, train)
    assert estimate == pytest.approx(deploy, abs=0.03)
    assert iterations < 1000  # converged, not stopped by the cap
    # the naive estimate (mean score, no EM) stays much closer to the training prior
    naive = [sum(p[k] for p in probs) / len(probs) for k in range(3)]
    assert abs(naive[2] - deploy[2]) > abs(estimate[2] - deploy[2])


def test_em_keeps_the_training_prior_when_nothing_shifted():
    """Texts drawn at the training prior itself: the estimate stays near it."""
    train = [0.06, 0.77, 0.17]
    estimate, _ = calibration.em_prior(_synthetic_posteriors(random.Random(3), train, train, 3000), train)
    assert estimate == pytest.approx(train, abs=0.03)


# --- on the data set ----------------------------------------------------------------------------------


def test_training_prior_and_test_calibration_of_the_served_models(dataset, models_dir):
    """Train shares are the README's counts minus test (1168, 15357, 3305 of 19,830); the serving
    scorer's accuracy on test equals what v1 and v2's manifests recorded at training, and every
    test text lands in exactly one bin."""
    rep = calibration.report(dataset, ["v1", "v2"], models_dir)
    assert rep["n_train"] == 19830
    assert rep["train_prior"] == pytest.approx([1168 / 19830, 15357 / 19830, 3305 / 19830], abs=1e-4)
    for version in ("v1", "v2"):
        manifest = json.loads((models_dir / version / "manifest.json").read_text())
        m = rep["models"][version]
        assert m["accuracy"] == manifest["metrics"]["test"]["accuracy"]
        assert sum(b["count"] for b in m["bins"]) == 4953
        assert 0.0 <= m["ece"] < 0.5
