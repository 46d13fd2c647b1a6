"""Known answers: the label a model gave every test-split text, and the probe set drawn from them.

Written by training as models/<version>/answers.json (listed with its sha256 in the manifest,
byte-identical on every retrain), read by those who have no data set: the build step
(training/golden.py), the PreTraffic hook and the evidence judge. Models are deterministic, so
a healthy deployed version answers exactly these labels; the texts themselves never enter the
repository, only row ids (the CSV's first column). Standard library only (the build step runs
without a virtualenv).

    {"format": "known-answers/1", "split": "test", "n": 4953,
     "row_ids_sha256": sha256 of the row ids in split order, decimal, joined by ",",
     "row_ids": [2, 7, ...],                   # split order (the CSV's)
     "labels": ["hate_speech", ...],           # what the digits of "answers" index
     "answers": "1120...",                     # answers[i]: the label given to row_ids[i]
     "probe": {"balanced_over": ..., "per_label": {label: count}, "row_ids": [...]}}

The probe set: PROBE_PER_LABEL rows of each label THIS model gave, the ones whose
sha256("probe:<row id>") sorts first, interleaved label by label so that any prefix the probe
cycles through is balanced too. Balanced over the model's own answers because the evidence
judge's plan assumes a probe set balanced over the CANARY's labels, and either model can be the
canary (a rollback is a canary of the old one); each model's set depends on that model alone, so
adding a model never rewrites the answers of the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

FILE = "answers.json"
FORMAT = "known-answers/1"
PROBE_PER_LABEL = 100  # 300 probe texts for three labels


def fingerprint(row_ids: Sequence[int]) -> str:
    """sha256 of the row ids in order, decimal, joined by ","."""
    return hashlib.sha256(",".join(str(int(r)) for r in row_ids).encode()).hexdigest()


def _probe_rank(row_id: int) -> str:
    return hashlib.sha256(f"probe:{row_id}".encode()).hexdigest()


def probe_set(
    row_ids: Sequence[int], answers: Sequence[int], n_labels: int, per_label: int = PROBE_PER_LABEL
) -> tuple[list[int], list[int]]:
    """(probe row ids, count per label): per label the first per_label rows by sha256 rank (all
    of them when the model gave that label fewer times), interleaved label by label."""
    ranked: list[list[int]] = [[] for _ in range(n_labels)]
    for row_id, label in sorted(zip(row_ids, answers, strict=True), key=lambda ra: _probe_rank(ra[0])):
        if len(ranked[label]) < per_label:
            ranked[label].append(int(row_id))
    order = [ranked[k][i] for i in range(per_label) for k in range(n_labels) if i < len(ranked[k])]
    return order, [len(r) for r in ranked]


def build(
    split: str,
    row_ids: Sequence[int],
    answers: Sequence[int],
    labels: Sequence[str],
    probe_per_label: int = PROBE_PER_LABEL,
) -> dict[str, Any]:
    """The answers.json document for one model: answers[i] indexes labels for row_ids[i]."""
    row_ids = [int(r) for r in row_ids]
    answers = [int(a) for a in answers]
    if len(row_ids) != len(answers):
        raise ValueError(f"{len(row_ids)} row ids but {len(answers)} answers")
    if len(set(row_ids)) != len(row_ids):
        raise ValueError("row ids repeat")
    if len(labels) > 10 or any(not 0 <= a < len(labels) for a in answers):
        raise ValueError(f"answers must index the {len(labels)} labels with one digit each")
    probe, counts = probe_set(row_ids, answers, len(labels), probe_per_label)
    return {
        "format": FORMAT,
        "split": split,
        "n": len(row_ids),
        "row_ids_sha256": fingerprint(row_ids),
        "row_ids": row_ids,
        "labels": list(labels),
        "answers": "".join(str(a) for a in answers),
        "probe": {
            "balanced_over": "this model's answers",
            "per_label": dict(zip(labels, counts, strict=True)),
            "row_ids": probe,
        },
    }


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """What the manifest says about the known answers (the file holds the rest)."""
    return {
        "file": FILE,
        "split": doc["split"],
        "n": doc["n"],
        "row_ids_sha256": doc["row_ids_sha256"],
        "probe": {"n": len(doc["probe"]["row_ids"]), "per_label": doc["probe"]["per_label"]},
    }


def labels_by_row(doc: dict[str, Any]) -> dict[int, str]:
    """{row id: label} of an answers.json document (ValueError if it is not one)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document")
    row_ids, labels, answers = doc.get("row_ids"), doc.get("labels"), doc.get("answers")
    if not isinstance(row_ids, list) or not isinstance(labels, list) or not isinstance(answers, str):
        raise ValueError("row_ids, labels and answers must be a list, a list and a string")
    if len(row_ids) != len(answers) or fingerprint(row_ids) != doc.get("row_ids_sha256"):
        raise ValueError("row_ids do not match answers or row_ids_sha256")
    try:
        return {int(r): labels[int(a)] for r, a in zip(row_ids, answers, strict=True)}
    except (ValueError, IndexError, TypeError):
        raise ValueError("an answer is not the index of a label") from None
