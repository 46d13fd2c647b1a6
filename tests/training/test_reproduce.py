"""The reproduction contract (training/reproduce.py) on tiny synthetic model folders.

No data set and no retrain: a logistic regression fitted in milliseconds on a dozen neutral texts
is exported the way `make train` exports v2, then perturbed the ways a retrain could differ.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from infer.model import LABELS
from tests.usermake import run_make
from training import cards, reproduce
from training.export import ModelWriter, npy_bytes
from training.train import export_v2, main, v2_features

TEXTS = [
    "alpha storm over the hills today",
    "the alpha storm again today",
    "alpha winds and storm clouds",
    "alpha storm warning for tonight",
    "bravo concert in the park tonight",
    "the bravo concert was loud",
    "bravo music and concert lights",
    "tickets for the bravo concert",
    "charlie garden with red flowers",
    "the charlie garden in spring",
    "charlie flowers and garden paths",
    "walk in the charlie garden",
]
Y = np.array([0] * 4 + [1] * 4 + [2] * 4)
# What the behaviour check scores: the training texts and a few the model has not seen.
CHECK_TEXTS = [*TEXTS, "storm and concert", "flowers tonight", "", "nothing known here"]


@pytest.fixture(scope="module")
def pipe():
    return make_pipeline(v2_features(), LogisticRegression(C=1.0, max_iter=1000)).fit(TEXTS, Y)


def write_model(folder: Path, pipe, patch=None, accuracy: float = 1.0, latency: float | None = None) -> Path:
    """Export `pipe` as v2 into folder/v2, as train.py does; patch(writer) edits files first;
    `latency`: a measured latency.ratio_to.v1, in the manifest and in the card's line."""
    writer = ModelWriter(folder / "v2")
    model = export_v2(pipe, writer)
    if patch:
        patch(writer)
    manifest = {
        "version": "v2",
        "labels": list(LABELS),
        "model": model,
        "training": {"data_sha256": "0" * 64},
        "metrics": {"test": {"accuracy": accuracy}},
    }
    if latency is not None:
        manifest["latency"] = {
            "ratio_to": {"v1": latency},
            "median_ms": latency / 10,
            "texts": 12,
            "repeats": 5,
        }

    def card(full: dict) -> dict[str, str]:
        return {"MODEL_CARD.md": f"# Model card: {full['version']}\n\n{cards.latency_line(full)}\nEnd.\n"}

    writer.write(manifest, card)
    return folder / "v2"


def shifted(pipe, coef: float = 0.0, intercept=(0.0, 0.0, 0.0), at=None):
    """A copy of pipe with its coefficients (all, or only the one at `at`) and intercept moved."""
    other = copy.deepcopy(pipe)
    if at is None:
        other[-1].coef_ = other[-1].coef_ + coef
    else:
        other[-1].coef_[at] += coef
    other[-1].intercept_ = other[-1].intercept_ + np.array(intercept)
    return other


def check(tmp_path: Path, committed_pipe, fresh_pipe, **fresh_kwargs) -> reproduce.Result:
    committed = write_model(tmp_path / "committed", committed_pipe)
    fresh = write_model(tmp_path / "fresh", fresh_pipe, **fresh_kwargs)
    return reproduce.check_version("v2", fresh, committed, fresh_pipe, CHECK_TEXTS)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_an_identical_retrain_is_reported_byte_identical(tmp_path, pipe):
    """Same model, same bytes: reproduced, byte-identical, and the summary says so."""
    result = check(tmp_path, pipe, pipe)
    assert result.mismatches == []
    assert result.byte_identical
    assert result.summary().startswith("v2: byte-identical (8 files); same label on all 16 test texts")


def test_fitted_arrays_off_by_1e_11_pass_within_tolerance(tmp_path, pipe):
    """The drift another BLAS kernel causes (~1e-11) passes, its size reported, checksums forgiven."""
    result = check(tmp_path, pipe, shifted(pipe, coef=1e-11, intercept=(1e-11, -1e-11, 0.0)))
    assert result.mismatches == []
    assert not result.byte_identical
    assert set(result.within_tolerance) == {"coef.npy", "intercept.npy"}
    assert 5e-12 < result.within_tolerance["coef.npy"] < 2e-11
    assert "coef.npy max |diff| 1.0e-11" in result.summary()
    assert "reproduced within tolerance" in result.summary()


def test_a_fitted_array_off_by_more_than_the_tolerance_is_named_with_its_difference(tmp_path, pipe):
    """One coefficient moved by 1e-6: a line naming v2/coef.npy and the size of the difference."""
    result = check(tmp_path, pipe, shifted(pipe, coef=1e-6, at=(0, 0)))
    assert "v2/coef.npy: max |diff| 1.0e-06 > 1e-08" in result.mismatches
    assert not result.reproduced
    assert result.summary().startswith("v2: NOT reproduced")


def test_a_fitted_array_of_another_shape_is_named(tmp_path, pipe):
    """A coefficient array of another shape cannot be compared value by value: named, not crashed."""

    def grow(writer):
        writer.files["coef.npy"] = npy_bytes(np.zeros((2, 3)))

    result = check(tmp_path, pipe, pipe, patch=grow)
    assert any(
        line.startswith("v2/coef.npy: retrained <f8 (2, 3), committed <f8 (") for line in result.mismatches
    )


def test_an_idf_array_must_be_byte_identical_even_within_the_tolerance(tmp_path, pipe):
    """idf comes from counts, not an optimiser: 1e-12 off is a mismatch with its size."""
    idf = pipe[0].transformer_list[0][1].idf_

    def nudge(writer):
        writer.files["words_idf.npy"] = npy_bytes(idf + 1e-12)

    result = check(tmp_path, pipe, pipe, patch=nudge)
    lines = [line for line in result.mismatches if line.startswith("v2/words_idf.npy: ")]
    assert len(lines) == 1
    assert "must be byte-identical" in lines[0]
    assert "max |diff| 1.0e-12" in lines[0]


def test_a_changed_vocabulary_file_is_named(tmp_path, pipe):
    """One vocabulary entry renamed: the line names the file and the entry that differs."""
    vocab = list(pipe[0].transformer_list[0][1].get_feature_names_out())

    def rename(writer):
        writer.add_json("words_vocabulary.json", ["zzz", *vocab[1:]])

    result = check(tmp_path, pipe, pipe, patch=rename)
    assert f'v2/words_vocabulary.json: [0]: retrained "zzz", committed "{vocab[0]}"' in result.mismatches
    # the manifest records the vocabulary's new checksum: also named, not forgiven
    assert any(line.startswith("v2/manifest.json: files.words_vocabulary.json") for line in result.mismatches)


def test_a_missing_and_an_extra_file_are_named(tmp_path, pipe):
    """A file only in the committed folder, and one only in the retrain, each get their line."""
    committed = write_model(tmp_path / "committed", pipe)
    fresh = write_model(tmp_path / "fresh", pipe)
    (fresh / "MODEL_CARD.md").unlink()
    (fresh / "notes.txt").write_text("extra\n")
    result = reproduce.check_version("v2", fresh, committed, pipe, CHECK_TEXTS)
    assert result.mismatches == [
        "v2/MODEL_CARD.md: committed but missing from the retrain",
        "v2/notes.txt: in the retrain but not committed",
    ]


def test_a_changed_metric_is_named_even_when_the_arrays_are_within_tolerance(tmp_path, pipe):
    """Only the arrays' checksums may differ in manifest.json: a metric must be exactly equal."""
    result = check(tmp_path, pipe, shifted(pipe, coef=1e-11), accuracy=0.9)
    assert result.mismatches == [
        "v2/manifest.json: metrics.test.accuracy: retrained 0.9, committed 1.0 (|diff| 1.0e-01)"
    ]


def test_a_changed_label_is_caught_by_the_behaviour_check(tmp_path, pipe):
    """A retrained pipeline that labels texts differently from the committed artifacts: counted."""
    committed = write_model(tmp_path / "committed", pipe)
    before = pipe.predict(CHECK_TEXTS)
    changed = int((before != 0).sum())  # the shifted pipeline calls every text class 0
    assert changed > 0
    first = int(np.flatnonzero(before != 0)[0])
    lines, _ = reproduce.compare_behaviour(
        "v2", shifted(pipe, intercept=(50.0, 0, 0)), committed, CHECK_TEXTS
    )
    assert (
        lines[0] == f"v2/behaviour: {changed} of 16 test texts get another label (first at position {first})"
    )


def test_a_probability_off_by_more_than_1e_9_is_caught_even_when_every_file_matches(tmp_path, pipe):
    """Files identical, but the pipeline and the runtime scorer disagree by ~1e-8 in probability."""
    committed = write_model(tmp_path / "committed", pipe)
    fresh = write_model(tmp_path / "fresh", pipe)
    result = reproduce.check_version(
        "v2", fresh, committed, shifted(pipe, intercept=(1e-7, 0, 0)), CHECK_TEXTS
    )
    assert len(result.mismatches) == 1
    assert result.mismatches[0].startswith("v2/behaviour: max |probability diff| ")
    assert result.mismatches[0].endswith(" > 1e-09")
    assert 1e-9 < result.max_prob_diff < 1e-7


def test_committed_artifacts_the_runtime_refuses_are_a_mismatch(tmp_path, pipe):
    """A committed folder whose checksums fail is reported with the file the runtime names."""
    committed = write_model(tmp_path / "committed", pipe)
    fresh = write_model(tmp_path / "fresh", pipe)
    (committed / "intercept.npy").write_bytes(npy_bytes(np.zeros(3)))
    (fresh / "intercept.npy").write_bytes(npy_bytes(np.zeros(3)))
    result = reproduce.check_version("v2", fresh, committed, pipe, CHECK_TEXTS)
    assert any("runtime scorer refuses" in line and "intercept.npy" in line for line in result.mismatches)


# --- what `make train` does with the comparison (reproduce.publish) ---


def publish_case(tmp_path: Path, committed_pipe, fresh_pipe) -> tuple[Path, Path, dict[str, bytes]]:
    out = tmp_path / "models"
    write_model(out, committed_pipe)
    fresh_root = tmp_path / "retrain"
    write_model(fresh_root, fresh_pipe)
    return out, fresh_root, snapshot(out / "v2")


def test_train_refuses_to_overwrite_a_committed_version_that_does_not_reproduce(tmp_path, pipe):
    """Exit status 1, the mismatch printed, the committed files untouched."""
    fresh_pipe = shifted(pipe, coef=1e-6, at=(0, 0))
    out, fresh_root, before = publish_case(tmp_path, pipe, fresh_pipe)
    lines: list[str] = []
    status = reproduce.publish(fresh_root, out, {"v2": fresh_pipe}, CHECK_TEXTS, emit=lines.append)
    assert status == 1
    assert snapshot(out / "v2") == before
    assert "v2/coef.npy: max |diff| 1.0e-06 > 1e-08" in lines
    assert lines[-1].startswith(f"v2: refusing to overwrite {out / 'v2'}")


def test_train_with_force_overwrites_and_says_what_changed(tmp_path, pipe):
    """--force writes the retrain and prints the differences it replaced."""
    fresh_pipe = shifted(pipe, coef=1e-6, at=(0, 0))
    out, fresh_root, before = publish_case(tmp_path, pipe, fresh_pipe)
    lines: list[str] = []
    status = reproduce.publish(
        fresh_root, out, {"v2": fresh_pipe}, CHECK_TEXTS, force=True, emit=lines.append
    )
    assert status == 0
    assert snapshot(out / "v2") == snapshot(fresh_root / "v2") != before
    assert "v2/coef.npy: max |diff| 1.0e-06 > 1e-08" in lines
    assert lines[-1].startswith(f"v2: --force: wrote coef.npy, manifest.json in {out / 'v2'}")


def test_train_with_force_keeps_the_committed_bytes_of_arrays_within_tolerance(tmp_path, pipe):
    """--force for a real change elsewhere (here a metric) on a CPU whose arrays drift by 1e-11:
    only the changed files are written; coef.npy and intercept.npy keep their committed bytes and
    the manifest their committed checksums, so the folder then reproduces the retrain exactly."""
    fresh_pipe = shifted(pipe, coef=1e-11, intercept=(1e-11, 0.0, 0.0))
    out = tmp_path / "models"
    write_model(out, pipe, accuracy=0.9)
    fresh_root = tmp_path / "retrain"
    write_model(fresh_root, fresh_pipe, accuracy=0.95)
    before = snapshot(out / "v2")
    lines: list[str] = []
    status = reproduce.publish(
        fresh_root, out, {"v2": fresh_pipe}, CHECK_TEXTS, force=True, emit=lines.append
    )
    after = snapshot(out / "v2")
    assert status == 0
    assert after["coef.npy"] == before["coef.npy"] != snapshot(fresh_root / "v2")["coef.npy"]
    assert after["intercept.npy"] == before["intercept.npy"]
    assert {n for n in after if after[n] != before[n]} == {"manifest.json"}
    assert lines[-1] == (
        f"v2: --force: wrote manifest.json in {out / 'v2'}; kept the committed coef.npy (within "
        "tolerance); kept the committed intercept.npy (within tolerance); the lines above are what changed"
    )
    check = reproduce.check_version("v2", fresh_root / "v2", out / "v2", fresh_pipe, CHECK_TEXTS)
    assert check.mismatches == [] and set(check.within_tolerance) == {"coef.npy", "intercept.npy"}
    # the checksums in the manifest are those of the bytes kept: the runtime loads the folder
    from infer.model import load_model

    assert load_model(out / "v2").manifest["metrics"]["test"]["accuracy"] == 0.95


def test_train_leaves_a_version_that_reproduces_within_tolerance_untouched(tmp_path, pipe):
    """A retrain 1e-11 away keeps the committed bytes (no churn from the CPU) and says so."""
    fresh_pipe = shifted(pipe, coef=1e-11)
    out, fresh_root, before = publish_case(tmp_path, pipe, fresh_pipe)
    lines: list[str] = []
    status = reproduce.publish(
        fresh_root, out, {"v2": fresh_pipe}, CHECK_TEXTS, force=True, emit=lines.append
    )
    assert status == 0
    assert snapshot(out / "v2") == before != snapshot(fresh_root / "v2")
    assert len(lines) == 1
    assert lines[0].startswith("v2: reproduced within tolerance (coef.npy max |diff| 1.0e-11")
    assert lines[0].endswith(f"left {out / 'v2'} untouched")


def test_train_writes_a_version_not_committed_yet(tmp_path, pipe):
    """A version absent from --out is written as before, and named."""
    fresh_root = tmp_path / "retrain"
    write_model(fresh_root, pipe)
    lines: list[str] = []
    status = reproduce.publish(fresh_root, tmp_path / "models", {"v2": pipe}, CHECK_TEXTS, emit=lines.append)
    assert status == 0
    assert snapshot(tmp_path / "models" / "v2") == snapshot(fresh_root / "v2")
    assert lines == [f"v2: not committed yet: wrote {tmp_path / 'models' / 'v2'}"]


def test_check_mode_writes_nothing(tmp_path, pipe):
    """--check reports a mismatch and a missing version with exit status 1 and never writes."""
    fresh_pipe = shifted(pipe, coef=1e-6, at=(0, 0))
    out, fresh_root, before = publish_case(tmp_path, pipe, fresh_pipe)
    shutil.copytree(fresh_root / "v2", fresh_root / "v3")
    lines: list[str] = []
    pipelines = {"v2": fresh_pipe, "v3": fresh_pipe}
    status = reproduce.publish(fresh_root, out, pipelines, CHECK_TEXTS, check=True, emit=lines.append)
    assert status == 1
    assert snapshot(out / "v2") == before
    assert not (out / "v3").exists()
    assert lines[-1] == f"v3: nothing committed at {out / 'v3'}"


def test_check_and_force_cannot_be_combined(capsys):
    """`--check --force` is a usage error (exit 2), not a silent choice of one of them."""
    with pytest.raises(SystemExit) as exc:
        main(["--check", "--force"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "forced"), [([], False), (["FORCE=1"], True)])
def test_make_train_passes_force_only_when_asked(extra, forced):
    """`make train FORCE=1` runs training.train --force; plain `make train` never does."""
    done = run_make("-n", "train", *extra, check=True)
    command = [line for line in done.stdout.splitlines() if "-m training.train" in line]
    assert len(command) == 1
    assert ("--force" in command[0]) is forced


def test_a_retrain_differing_only_in_the_measured_latency_reproduces_and_keeps_the_committed_value(
    tmp_path, pipe
):
    """Another machine times v2 at 6.9x v1 where 7.3x is committed: the manifest's latency entry
    and the card's latency line are machine-measured, left out of the exact comparison, so the
    version reproduces and even --force leaves the committed value (and every byte) in place."""
    out = tmp_path / "models"
    write_model(out, pipe, latency=7.3)
    fresh_root = tmp_path / "retrain"
    write_model(fresh_root, pipe, latency=6.9)
    before = snapshot(out / "v2")
    assert before["MODEL_CARD.md"] != snapshot(fresh_root / "v2")["MODEL_CARD.md"]
    result = reproduce.check_version("v2", fresh_root / "v2", out / "v2", pipe, CHECK_TEXTS)
    assert result.mismatches == []
    assert sorted(result.machine_measured) == ["MODEL_CARD.md", "manifest.json"]
    assert not result.byte_identical
    assert "the committed value stays" in result.summary()
    lines: list[str] = []
    status = reproduce.publish(fresh_root, out, {"v2": pipe}, CHECK_TEXTS, force=True, emit=lines.append)
    assert status == 0 and snapshot(out / "v2") == before
    assert lines[0].endswith(f"left {out / 'v2'} untouched")


def test_a_card_line_other_than_the_latency_one_still_counts(tmp_path, pipe):
    """Only lines starting with the latency prefix are forgiven: any other card change is named."""
    out = tmp_path / "models"
    write_model(out, pipe, latency=7.3)
    fresh_root = tmp_path / "retrain"
    write_model(fresh_root, pipe, latency=6.9)
    card = fresh_root / "v2" / "MODEL_CARD.md"
    card.write_text(card.read_text().replace("End.", "The end."))
    result = reproduce.check_version("v2", fresh_root / "v2", out / "v2", pipe, CHECK_TEXTS)
    assert any(m.startswith("v2/MODEL_CARD.md: differs") for m in result.mismatches)


def test_a_committed_manifest_without_the_latency_is_a_mismatch_force_records_it(tmp_path, pipe):
    """Which models latency.ratio_to covers is compared: a committed manifest without it does
    not reproduce (named, with the way out), and --force writes the measured entry."""
    out = tmp_path / "models"
    write_model(out, pipe)
    fresh_root = tmp_path / "retrain"
    write_model(fresh_root, pipe, latency=7.3)
    lines: list[str] = []
    assert reproduce.publish(fresh_root, out, {"v2": pipe}, CHECK_TEXTS, emit=lines.append) == 1
    assert (
        "v2/manifest.json: latency.ratio_to: the retrain measures ['v1'], committed none "
        "(retrain with --force to record it)"
    ) in lines
    assert reproduce.publish(fresh_root, out, {"v2": pipe}, CHECK_TEXTS, force=True, emit=lines.append) == 0
    assert snapshot(out / "v2") == snapshot(fresh_root / "v2")


def test_the_latency_and_arrays_within_tolerance_together_still_reproduce(tmp_path, pipe):
    """A retrain on another CPU: arrays 1e-11 away and another measured latency: reproduced,
    the summary names both, nothing written."""
    out = tmp_path / "models"
    write_model(out, pipe, latency=7.3)
    fresh_pipe = shifted(pipe, coef=1e-11)
    fresh_root = tmp_path / "retrain"
    write_model(fresh_root, fresh_pipe, latency=7.1)
    result = reproduce.check_version("v2", fresh_root / "v2", out / "v2", fresh_pipe, CHECK_TEXTS)
    assert result.mismatches == []
    assert "manifest.json" in result.machine_measured and "coef.npy" in result.within_tolerance
    assert "reproduced within tolerance" in result.summary() and "latency differs" in result.summary()


def _as_kind(folder: Path, kind: str) -> Path:
    """Rewrite folder's manifest as if its model were of another kind (its files unchanged)."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["model"]["kind"] = kind
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return folder


@pytest.mark.parametrize(("shift", "reproduced"), [(1e-7, True), (1e-5, False)])
def test_an_nb_lr_model_gets_its_kinds_tolerance(tmp_path, pipe, shift, reproduced):
    """v3's kind (nb_logistic_regression) is held to 1e-6, arrays and probabilities: the 1e-7 drift
    of a BLAS kernel passes, a 1e-5 change does not (v2's kind would refuse both)."""
    committed = _as_kind(write_model(tmp_path / "committed", pipe), "nb_logistic_regression")
    moved = shifted(pipe, coef=shift, at=(0, 0))
    fresh = _as_kind(write_model(tmp_path / "fresh", moved), "nb_logistic_regression")
    result = reproduce.check_version("v2", fresh, committed, moved, CHECK_TEXTS)
    assert result.reproduced is reproduced, result.mismatches
    assert (result.array_tolerance, result.probability_tolerance) == (1e-6, 1e-6)
    assert reproduce.tolerances({"model": {"kind": "logistic_regression"}}) == (1e-8, 1e-9)
