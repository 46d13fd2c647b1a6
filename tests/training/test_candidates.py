"""The v3 candidate harness (training/candidates.py) on a tiny synthetic data set: train split only,
folds that partition it, determinism, every candidate fitting and exporting, NB log-count ratios."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from infer.model import LABELS
from training import candidates
from training.behaviour import load_suite
from training.calibration import adjust
from training.data import Row, is_test
from training.train import tune_offsets as train_tune_offsets
from training.train import v2_features

# Made-up words, so the synthetic texts need no real slurs: each class has its own vocabulary.
WORDS = {
    0: ["zorgs", "vermin", "plague", "expel", "filthy", "tribe"],
    1: ["bleep", "jerk", "idiot", "shut", "loser", "dumb"],
    2: ["sunny", "lunch", "meeting", "coffee", "garden", "train"],
}
SHARED = ["the", "are", "you", "so", "today", "lol"]
TEST_MARK = "testonlyword"
SUITE = [
    {"id": "b-1", "functionality": "everyday_benign", "text": "sunny coffee garden", "expected": "neither"},
    {"id": "b-2", "functionality": "everyday_benign", "text": "lunch meeting today", "expected": "neither"},
    {"id": "h-1", "functionality": "hate_derogation", "text": "zorgs are vermin", "expected": "hate_speech"},
    {"id": "i-1", "functionality": "insult_person", "text": "you jerk", "expected": "offensive_language"},
]


def synthetic_rows(n: int = 120, seed: int = 7, start: int = 0) -> list[Row]:
    """n rows, a third per class, each text three class words and two shared words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 3
        words = rng.sample(WORDS[label], 3) + rng.sample(SHARED, 2)
        rng.shuffle(words)
        votes = [0, 0, 0]
        votes[label] = 3
        rows.append(Row(row_id=start + i, text=" ".join(words), label=label, votes=tuple(votes)))
    return rows


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return synthetic_rows()


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    path = tmp_path_factory.mktemp("suite") / "cases.jsonl"
    path.write_text(
        "\n".join(json.dumps({**c, "reason": "synthetic"}) for c in SUITE) + "\n", encoding="utf-8"
    )
    return load_suite(path)


@pytest.fixture(scope="module")
def report(rows, cases):
    return candidates.run(rows, candidates.CANDIDATES, cases, seed=3)


def write_csv(path: Path, rows: list[Row]) -> None:
    """The data set's CSV layout (unnamed id column, votes, class, tweet)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["", "count", "hate_speech", "offensive_language", "neither", "class", "tweet"])
        for r in rows:
            out.writerow([r.row_id, sum(r.votes), *r.votes, r.label, r.text])


def test_the_cli_hands_the_harness_the_train_split_only(tmp_path, monkeypatch, capsys):
    """main() loads the CSV, splits it by the fixed rule and passes only the train rows: no test row
    id reaches run(), and no test text reaches the term counts; the table says so and gives the time."""
    all_rows = synthetic_rows(200)
    # test rows carry a word of their own, so a leak would show in the corpus's texts
    all_rows = [
        Row(r.row_id, f"{r.text} {TEST_MARK}", r.label, r.votes) if is_test(r.row_id) else r for r in all_rows
    ]
    write_csv(tmp_path / "data.csv", all_rows)
    suite = tmp_path / "cases.jsonl"
    suite.write_text(
        "\n".join(json.dumps({**c, "reason": "synthetic"}) for c in SUITE) + "\n", encoding="utf-8"
    )
    seen: dict[str, list] = {"rows": [], "texts": []}
    real_run, real_corpus = candidates.run, candidates.Corpus

    def spy_run(rows, cands, cases, seed=candidates.SEED):
        seen["rows"] = list(rows)
        return real_run(rows, cands, cases, seed)

    class SpyCorpus(real_corpus):
        def __init__(self, texts, *args, **kwargs):
            seen["texts"] += list(texts)
            super().__init__(texts, *args, **kwargs)

    monkeypatch.setattr(candidates, "run", spy_run)
    monkeypatch.setattr(candidates, "Corpus", SpyCorpus)
    status = candidates.main(["--data", str(tmp_path / "data.csv"), "--suite", str(suite), "--only", "v2"])
    assert status == 0
    train_ids = {r.row_id for r in all_rows if not is_test(r.row_id)}
    test_ids = {r.row_id for r in all_rows if is_test(r.row_id)}
    assert test_ids, "the synthetic set must have test rows for this test to mean anything"
    assert {r.row_id for r in seen["rows"]} == train_ids
    assert seen["texts"] and not any(TEST_MARK in t for t in seen["texts"])
    out = capsys.readouterr().out
    assert "test split not used" in out and "run time" in out


def test_folds_partition_the_rows_and_keep_every_class(rows):
    """The validation parts are disjoint and cover every row once; a fold's training part is the rest."""
    y = np.array([r.label for r in rows])
    folds = candidates.make_folds(y, seed=3)
    assert len(folds) == candidates.FOLDS
    val = np.concatenate([va for _, va in folds])
    assert sorted(val.tolist()) == list(range(len(rows)))
    for tr, va in folds:
        assert not set(tr) & set(va)
        assert len(tr) + len(va) == len(rows)
        assert set(y[va]) == {0, 1, 2}


def test_the_report_covers_exactly_the_rows_given(report, rows):
    """run() records the ids it was given and folds over exactly those rows; test split flagged unused."""
    assert report["row_ids"] == [r.row_id for r in rows]
    assert sorted(i for f in report["folds"] for i in f) == list(range(len(rows)))
    assert report["test_split_used"] is False


def test_results_are_deterministic_for_a_seed(report, rows, cases):
    """The same rows and seed give the same report (run time aside); another seed gives other folds."""
    again = candidates.run(rows, candidates.CANDIDATES, cases, seed=3)
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    assert strip(again) == strip(report)
    y = np.array([r.label for r in rows])
    other = [va.tolist() for _, va in candidates.make_folds(y, seed=4)]
    assert other != report["folds"]


@pytest.mark.parametrize("name", [c.name for c in candidates.CANDIDATES])
def test_every_candidate_fits_exports_and_predicts_the_three_labels(report, name):
    """Each named candidate has CV figures, an exported model the serving scorer agrees with, and
    on separable synthetic data it recovers every suite label (so all three labels come out)."""
    res = report["candidates"][name]
    assert 0.0 <= res["cv"]["macro_f1"]["mean"] <= 1.0
    assert 0.0 <= res["cv"]["ece_oof"] <= 1.0
    final = res["final"]
    assert final["scorer_vs_arrays_mismatches"] == 0
    assert final["suite_labels"] == [c["expected"] for c in SUITE]
    assert set(final["suite_labels"]) == set(LABELS)


def test_every_candidate_predicts_all_three_labels_on_its_training_rows(rows):
    """fit_linear gives (n, 3) decision scores whose argmax uses every label, for every fit kind."""
    y = np.array([r.label for r in rows])
    corpus = candidates.Corpus([r.text for r in rows])
    for cand in candidates.CANDIDATES:
        lin = candidates.fit_linear(cand, corpus, y, np.ones(len(y)), np.arange(len(y)))
        scores = lin.decision(corpus.counts)
        assert scores.shape == (len(rows), 3)
        assert set(scores.argmax(axis=1)) == {0, 1, 2}, cand.name


def test_nb_ratios_match_a_hand_computed_example():
    """Three texts, three features, alpha 1. Class 0 (row 0: features a, c): p = 1 + [1, 0, 1] =
    [2, 1, 2] (sum 5), q = 1 + [1, 2, 1] = [2, 3, 2] (sum 7): r = [ln(7/5), ln(7/15), ln(7/5)]."""
    x = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=float)
    y = np.array([0, 1, 2])
    r = candidates.nb_ratios(x, y, alpha=1.0)
    assert r[:, 0] == pytest.approx([np.log(7 / 5), np.log(7 / 15), np.log(7 / 5)])
    # class 1 (row 1: a, b): p = [2, 2, 1] (5), q = 1 + [1, 1, 2] = [2, 2, 3] (7)
    assert r[:, 1] == pytest.approx([np.log(7 / 5), np.log(7 / 5), np.log(7 / 15)])


def test_the_fast_tfidf_path_equals_v2s_vectorisers(rows):
    """Counting terms once and keeping df >= min_df per fold gives v2's TF-IDF matrix (same columns,
    same values) for the fold's rows, so the v2 candidate is v2's own configuration."""
    texts = [r.text for r in rows]
    corpus = candidates.Corpus(texts)
    fold_rows = np.arange(0, len(rows), 2)
    feats = candidates.Featurizer.fit("tfidf", corpus, fold_rows)
    ours = feats.transform(corpus.counts, fold_rows).toarray()
    theirs = v2_features().fit_transform([texts[i] for i in fold_rows]).toarray()
    assert ours.shape == theirs.shape
    assert np.allclose(ours, theirs)


def test_an_unknown_candidate_is_refused_with_the_known_names(capsys):
    """--only with a name not in the closed list exits 2 naming the known candidates."""
    assert candidates.main(["--only", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown candidate(s) ['nope']" in err and "nblr" in err


def test_the_fast_offset_tuner_chooses_what_v2s_tuner_chooses():
    """candidates.tune_offsets (confusion-matrix F1) returns training.train.tune_offsets's offsets
    and F1 values on random scores with an imbalanced label mix like the data set's."""
    rng = np.random.default_rng(5)
    y = rng.choice(3, size=400, p=[0.06, 0.77, 0.17])
    scores = rng.normal(size=(400, 3)) + 1.5 * np.eye(3)[y]
    ours = candidates.tune_offsets(scores, y)
    theirs = train_tune_offsets(scores, y)
    assert ours[:2] == theirs[:2]
    assert ours[2:] == pytest.approx(theirs[2:])


def test_a_deployment_prior_shift_is_saerens_adjustment_of_the_calibrated_scores():
    """The uniform-prior candidate adds log(1/3) - log(training prior) to its calibrated scores; the
    softmax of that equals training.calibration.adjust of the calibrated probabilities."""
    cand = candidates.BY_NAME["nblr_uniform_prior"]
    rng = np.random.default_rng(2)
    y = rng.choice(3, size=300, p=[0.1, 0.7, 0.2])
    scores = rng.normal(size=(300, 3)) + 2.0 * np.eye(3)[y]
    post = candidates.learn_post(cand, scores, y)
    train_prior = np.bincount(y, minlength=3) / len(y)
    assert post.shift == pytest.approx(np.log(1 / 3) - np.log(train_prior))
    calibrated = candidates.softmax(scores[:5] / post.temperature)
    shifted = candidates.softmax(post.apply(scores[:5]))
    for p, q in zip(calibrated, shifted, strict=True):
        assert q == pytest.approx(adjust(p.tolist(), train_prior.tolist(), [1 / 3] * 3))
