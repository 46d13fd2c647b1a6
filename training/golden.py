"""Write the texts the pre-traffic hook (and the probe) send, for a Lambda package.

    python -m training.golden --out PATH [--data CSV] [--n 300] [--models models]

Writes three JSON-lines files: PATH, the golden set ({"text", "label"}: a fixed sample of the
test split with its true labels), and next to it TEST_TEXTS (the whole test split in split
order: the hook's known-answer set) and PROBE_TEXTS (the union of every model's probe set), both
{"id": "<row id>", "text": ...} (the rows canary.probe.load_probe_set reads). The labels the
texts must get are in each model's answers.json (training/answers.py); the build refuses data
other than the data the models were trained on, whose answers would not be for these texts.

Run at build time (sam build), never committed: the data set stays out of the repository.
Standard library only, so the SAM build step needs no virtualenv.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training import answers
from training.data import LABELS, Dataset, golden_set, load

TEST_TEXTS = "test_texts.jsonl"
PROBE_TEXTS = "probe.jsonl"  # canary.config.DEFAULT_PROBE_SET's name
DEFAULT_MODELS = Path("models")


class BuildError(RuntimeError):
    """The hook's files cannot be built from this data and these models (the message says why)."""


def known_answers(models_dir: Path) -> dict[str, dict]:
    """{model folder name: its answers.json} for every models_dir/*/manifest.json."""
    found = {}
    for manifest_path in sorted(Path(models_dir).glob("*/manifest.json")):
        try:
            manifest = json.loads(manifest_path.read_bytes())
            entry = manifest.get("known_answers")
            if not entry:
                raise BuildError(f"{manifest_path}: no known_answers: retrain with `make train`")
            path = manifest_path.parent / entry["file"]
            doc = json.loads(path.read_bytes())
            answers.labels_by_row(doc)  # validates the document
            doc["data_sha256"] = (manifest.get("training") or {}).get("data_sha256")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BuildError(f"{manifest_path.parent}: unreadable known answers ({exc})") from None
        found[manifest_path.parent.name] = doc
    if not found:
        raise BuildError(f"{models_dir}: no model (no */manifest.json): run `make train`")
    return found


def _write_lines(path: Path, rows) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_hook_files(dataset: Dataset, golden_path: Path, models_dir: Path, n: int = 300) -> dict[str, int]:
    """Write the golden set at golden_path and TEST_TEXTS, PROBE_TEXTS next to it; {path: rows}."""
    recorded = known_answers(models_dir)
    row_ids = [r.row_id for r in dataset.test]
    for model, doc in recorded.items():
        if doc["data_sha256"] != dataset.sha256:
            raise BuildError(
                f"{models_dir}/{model} was trained on data sha256 {str(doc['data_sha256'])[:12]}..., this "
                f"data set is {dataset.sha256[:12]}...: its known answers are not for these texts"
            )
        if doc.get("split") != "test" or doc.get("row_ids_sha256") != answers.fingerprint(row_ids):
            raise BuildError(f"{models_dir}/{model}/{answers.FILE}: not the row ids of this test split")
    probe_ids = {int(r) for doc in recorded.values() for r in doc["probe"]["row_ids"]}
    golden = golden_set(dataset, n)
    out = Path(golden_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = {
        out: [{"text": r.text, "label": LABELS[r.label]} for r in golden],
        out.parent / TEST_TEXTS: [{"id": str(r.row_id), "text": r.text} for r in dataset.test],
        out.parent / PROBE_TEXTS: [
            {"id": str(r.row_id), "text": r.text} for r in dataset.test if r.row_id in probe_ids
        ],
    }
    for path, rows in files.items():
        _write_lines(path, rows)
    return {str(path): len(rows) for path, rows in files.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.golden", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="the golden set's JSON-lines file to write")
    parser.add_argument("--data", default=None, help="labelled CSV (default $HATE_DATA or ../shared/data)")
    parser.add_argument("--n", type=int, default=300, help="rows in the golden set (default 300)")
    parser.add_argument(
        "--models", type=Path, default=DEFAULT_MODELS, help="folder of the models' answers (default models)"
    )
    args = parser.parse_args(argv)
    try:
        dataset = load(args.data)
        written = write_hook_files(dataset, args.out, args.models, args.n)
    except (FileNotFoundError, BuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path, rows in written.items():
        print(f"wrote {rows} rows to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
