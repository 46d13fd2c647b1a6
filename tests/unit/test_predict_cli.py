"""The batch scoring CLI: JSON lines in, one result per line out, bad lines reported in place."""

from __future__ import annotations

import json
import subprocess
import sys

from infer.request import NOTHING_TO_CLASSIFY


def run_cli(stdin: bytes, models_dir, *args):
    return subprocess.run(
        [sys.executable, "-m", "infer.predict", "--model", str(models_dir / "v2"), *args],
        input=stdin,
        capture_output=True,
        check=False,
    )


def test_every_line_is_scored_in_order(models_dir):
    """Two good lines give two results in input order with label, category and scores."""
    out = run_cli(b'{"text": "have a nice day"}\n{"text": "shut up bitch"}\n', models_dir)
    assert out.returncode == 0
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 2
    assert rows[1]["label"] == "offensive_language"
    assert rows[1]["category"] == "Offensive Language"
    assert set(rows[0]["scores"]) == {"hate_speech", "offensive_language", "neither"}


def test_bad_lines_get_an_error_object_and_the_rest_are_scored(models_dir):
    """Not JSON, not an object, missing or empty text: each gets {"line", "issue"}; exit 1."""
    stdin = b'not json\n[1]\n{"txt": "x"}\n{"text": "   "}\n{"text": "hello"}\n'
    out = run_cli(stdin, models_dir)
    assert out.returncode == 1
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r.get("line") for r in rows] == [1, 2, 3, 4, None]
    assert all("issue" in r for r in rows[:4])
    assert rows[4]["label"] in {"hate_speech", "offensive_language", "neither"}


def test_invalid_utf8_does_not_abort_the_batch(models_dir):
    """A line with undecodable bytes is still handled and later lines are scored."""
    out = run_cli(b'{"text": "caf\xe9 \xff"}\n{"text": "ok"}\n', models_dir)
    assert out.returncode == 0
    assert len(out.stdout.splitlines()) == 2


def test_text_over_the_limit_is_reported(models_dir):
    """A text longer than --max-chars is an error line, not a crash."""
    out = run_cli(b'{"text": "aaaaaaaaaaa"}\n', models_dir, "--max-chars", "5")
    assert out.returncode == 1
    assert "limit is 5" in json.loads(out.stdout)["issue"]


def test_missing_model_exits_2_with_a_clear_message(tmp_path):
    """A model directory that does not exist is a load error (exit 2), not a traceback."""
    out = subprocess.run(
        [sys.executable, "-m", "infer.predict", "--model", str(tmp_path / "nope")],
        input=b"",
        capture_output=True,
        check=False,
    )
    assert out.returncode == 2
    assert b"cannot load model" in out.stderr
    assert b"Traceback" not in out.stderr


def test_lines_with_nothing_to_classify_get_the_api_s_issue(models_dir):
    """NULs, zero-width characters, an escaped lone surrogate and undecodable bytes only: each line gets
    the API's 422 issue instead of a label; emoji-only and punctuation-only lines are scored."""
    stdin = (
        b'{"text": "\\u0000\\u0007"}\n'
        b'{"text": "\\u200b\\ufeff"}\n'
        b'{"text": "\\ud800"}\n'
        b'{"text": "\xff\xfe"}\n'
        b'{"text": "\\ud83d\\ude02"}\n'
        b'{"text": "?!"}\n'
    )
    out = run_cli(stdin, models_dir)
    assert out.returncode == 1
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert rows[:4] == [{"line": n, "issue": NOTHING_TO_CLASSIFY} for n in (1, 2, 3, 4)]
    assert [r["label"] in {"hate_speech", "offensive_language", "neither"} for r in rows[4:]] == [True, True]
    assert b"4 line(s) could not be scored" in out.stderr
