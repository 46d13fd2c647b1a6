"""Known answers (training/answers.py) and the build step that writes the hook's texts
(training/golden.py), on small synthetic data: no data set, no retrain."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from training import answers, golden
from training.data import LABELS, Dataset, Row

# 40 rows: labels 0, 1, 2 in a 1:2:1 mix, row ids that are not positions.
ROW_IDS = [11 + 7 * i for i in range(40)]
GIVEN = [(0, 1, 1, 2)[i % 4] for i in range(40)]


def test_answers_record_one_label_per_row_id_with_the_fingerprint_of_their_order():
    """answers[i] is the label index of row_ids[i]; the fingerprint is sha256 of "11,18,..."."""
    d = answers.build("test", ROW_IDS, GIVEN, LABELS)
    assert d["row_ids"] == ROW_IDS and d["answers"] == "".join(map(str, GIVEN))
    assert d["row_ids_sha256"] == hashlib.sha256(",".join(map(str, ROW_IDS)).encode()).hexdigest()
    assert answers.labels_by_row(d) == {r: LABELS[g] for r, g in zip(ROW_IDS, GIVEN, strict=True)}
    assert answers.summary(d)["file"] == "answers.json" and answers.summary(d)["n"] == 40


def test_the_probe_set_is_balanced_over_the_models_own_labels_and_interleaved():
    """per_label rows of each label the model gave, chosen by sha256 rank (not by position), in
    label-interleaved order so that every prefix the probe cycles through is balanced too."""
    labels = answers.labels_by_row(answers.build("test", ROW_IDS, GIVEN, LABELS))
    probe, counts = answers.probe_set(ROW_IDS, GIVEN, 3, per_label=4)
    assert counts == [4, 4, 4] and len(set(probe)) == 12
    assert [labels[r] for r in probe[:6]] == list(LABELS) * 2
    rank = lambda r: hashlib.sha256(f"probe:{r}".encode()).hexdigest()  # noqa: E731
    hate = sorted((r for r in ROW_IDS if labels[r] == LABELS[0]), key=rank)[:4]
    assert [r for r in probe if labels[r] == LABELS[0]] == hate


def test_a_label_given_less_often_than_per_label_contributes_all_its_rows():
    """A model that rarely says hate speech: all its hate rows, the other labels still per_label."""
    given = [0 if i < 2 else 1 + i % 2 for i in range(40)]
    probe, counts = answers.probe_set(ROW_IDS, given, 3, per_label=5)
    assert counts == [2, 5, 5] and len(probe) == 12


@pytest.mark.parametrize(
    ("row_ids", "given", "message"),
    [([1, 2], [0], "2 row ids but 1 answers"), ([1, 1], [0, 0], "repeat"), ([1, 2], [0, 3], "index")],
)
def test_build_refuses_inconsistent_answers(row_ids, given, message):
    """Mismatched lengths, repeated row ids, an answer that is no label: ValueError saying which."""
    with pytest.raises(ValueError, match=message):
        answers.build("test", row_ids, given, LABELS)


def test_a_document_whose_row_ids_were_edited_is_refused():
    """labels_by_row checks the row ids against their fingerprint."""
    d = answers.build("test", ROW_IDS, GIVEN, LABELS)
    d["row_ids"][0] += 1
    with pytest.raises(ValueError, match="row_ids_sha256"):
        answers.labels_by_row(d)


def test_the_hook_reads_the_format_training_writes():
    """canary/hook.py cannot import training (not in its package): its constants must agree."""
    from canary import config, hook

    assert hook.ANSWERS_FORMAT == answers.FORMAT
    assert config.TEST_TEXTS == golden.TEST_TEXTS
    assert config.DEFAULT_PROBE_SET.name == golden.PROBE_TEXTS


# --- the build step ---


def dataset(sha: str = "d" * 64) -> Dataset:
    test = [Row(r, f"text of row {r}", g, (0, 0, 3)) for r, g in zip(ROW_IDS, GIVEN, strict=True)]
    return Dataset(train=[], test=test, sha256=sha)


def models(tmp_path: Path, sha: str = "d" * 64) -> Path:
    """models/v1 and v2 as training writes their answers (v2 disagrees with v1 on some rows)."""
    root = tmp_path / "models"
    for version, given in (("v1", GIVEN), ("v2", [i % 3 for i in range(len(GIVEN))])):
        (root / version).mkdir(parents=True)
        d = answers.build("test", ROW_IDS, given, LABELS, probe_per_label=4)
        (root / version / answers.FILE).write_text(json.dumps(d))
        manifest = {"version": version, "training": {"data_sha256": sha}, "known_answers": answers.summary(d)}
        (root / version / "manifest.json").write_text(json.dumps(manifest))
    return root


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_build_writes_the_golden_set_the_test_split_and_every_models_probe_texts(tmp_path):
    """golden.jsonl as before; test_texts.jsonl: every test row by id in split order; probe.jsonl:
    the union of v1's and v2's probe sets."""
    root = models(tmp_path)
    out = tmp_path / "package" / "golden.jsonl"
    written = golden.write_hook_files(dataset(), out, root, n=10)
    union = {
        r for v in ("v1", "v2") for r in json.loads((root / v / answers.FILE).read_text())["probe"]["row_ids"]
    }
    assert len(union) > 12  # the two models' sets differ
    assert written == {
        str(out): 10,
        str(out.parent / "test_texts.jsonl"): 40,
        str(out.parent / "probe.jsonl"): len(union),
    }
    assert all(set(row) == {"text", "label"} for row in read_lines(out))
    texts = read_lines(out.parent / golden.TEST_TEXTS)
    assert texts == [{"id": str(r), "text": f"text of row {r}"} for r in ROW_IDS]
    probe = read_lines(out.parent / golden.PROBE_TEXTS)
    assert {int(row["id"]) for row in probe} == union
    assert all(row["text"] == f"text of row {row['id']}" for row in probe)


def test_the_build_refuses_data_the_models_were_not_trained_on(tmp_path, capsys, monkeypatch):
    """Other data would give the recorded answers to other texts: exit 2, saying which model."""
    root = models(tmp_path, sha="a" * 64)
    with pytest.raises(golden.BuildError, match=r"models/v1 was trained on data sha256 aaaaaaaaaaaa"):
        golden.write_hook_files(dataset(), tmp_path / "golden.jsonl", root)
    monkeypatch.setattr(golden, "load", lambda _path: dataset())
    status = golden.main(["--out", str(tmp_path / "golden.jsonl"), "--models", str(root)])
    assert status == 2 and "its known answers are not for these texts" in capsys.readouterr().err
    assert not (tmp_path / "golden.jsonl").exists()


def test_the_build_refuses_models_without_known_answers(tmp_path):
    """A model trained before known answers existed: retrain, says the error."""
    root = models(tmp_path)
    manifest = json.loads((root / "v2" / "manifest.json").read_text())
    del manifest["known_answers"]
    (root / "v2" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(golden.BuildError, match="no known_answers: retrain"):
        golden.write_hook_files(dataset(), tmp_path / "golden.jsonl", root)
