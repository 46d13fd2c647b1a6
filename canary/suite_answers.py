"""The behavioural suite's recorded answers: one format for training, which writes them, and the
PreTraffic hook, which demands them of the deployed version. Standard library only.

models/<version>/suite_answers.json (checksummed in the manifest like every artifact):

    {"format": "suite-answers/1", "suite_sha256": fingerprint of the cases' (id, text) pairs,
     "ids": ["benign-001", ...], "labels": ["hate_speech", ...], "answers": "2201..."}

answers[i] indexes labels for ids[i]. The suite itself (training/suite/cases.jsonl: one JSON object
per line with at least id and text) is written for this project and committed; the hook's package
ships a copy. The fingerprint covers ids and texts only, so rewording a case's reason or allowed
labels does not invalidate the recorded answers; changing a text does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

FILE = "suite_answers.json"
FORMAT = "suite-answers/1"
# The copy of training/suite/cases.jsonl the hook's package ships, next to its golden set
# (deploy/lambda.mk build-PreTrafficHookFunction; the local stack writes it there too).
PACKAGE_FILE = "suite.jsonl"


def fingerprint(pairs: Sequence[tuple[str, str]]) -> str:
    """sha256 of the cases' (id, text) pairs, in suite order."""
    blob = json.dumps([[case_id, text] for case_id, text in pairs], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def read_texts(path: str | Path) -> list[tuple[str, str]]:
    """(id, text) of every case of a suite file, in order (ValueError naming the line if unusable)."""
    pairs = []
    # split on "\n" only, as training.behaviour.load_suite: str.splitlines would also cut at U+2028
    # and friends, which a case's text may hold unescaped (JSON allows it)
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        try:
            case = json.loads(line)
            pairs.append((str(case["id"]), str(case["text"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: not a suite case ({type(exc).__name__})") from None
    return pairs


def build(
    pairs: Sequence[tuple[str, str]], labels_of: Mapping[str, str], labels: Sequence[str]
) -> dict[str, Any]:
    """The document for one model: labels_of maps each case id to the model's label."""
    index = {label: str(i) for i, label in enumerate(labels)}
    return {
        "format": FORMAT,
        "suite_sha256": fingerprint(pairs),
        "ids": [case_id for case_id, _ in pairs],
        "labels": list(labels),
        "answers": "".join(index[labels_of[case_id]] for case_id, _ in pairs),
    }


def labels_by_id(doc: Mapping[str, Any]) -> dict[str, str]:
    """{case id: label} from a suite_answers.json document (ValueError if malformed)."""
    if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
        raise ValueError(
            f"format {doc.get('format') if isinstance(doc, Mapping) else None!r}, expected {FORMAT!r}"
        )
    ids, labels, answers = doc["ids"], doc["labels"], doc["answers"]
    if len(ids) != len(answers) or len(set(ids)) != len(ids):
        raise ValueError("ids and answers differ in length, or an id repeats")
    return {case_id: labels[int(a)] for case_id, a in zip(ids, answers, strict=True)}
