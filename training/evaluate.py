"""Evaluation figures: the per-model report and the version-to-version transition matrix."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from infer.model import LABELS


def r4(x: float) -> float:
    return round(float(x), 4)


def distribution(pred) -> dict[str, float]:
    pred = np.asarray(pred)
    return {label: r4((pred == i).mean()) for i, label in enumerate(LABELS)}


def report(y_true, y_pred) -> dict:
    """Accuracy, weighted and macro F1, per-class P/R/F1, confusion matrix, predicted shares."""
    k = range(len(LABELS))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=list(k), zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": r4(accuracy_score(y_true, y_pred)),
        "macro_f1": r4(f1_score(y_true, y_pred, average="macro")),
        "weighted_f1": r4(f1_score(y_true, y_pred, average="weighted")),
        "per_class": {
            LABELS[i]: {"precision": r4(p[i]), "recall": r4(r[i]), "f1": r4(f[i]), "support": int(s[i])}
            for i in k
        },
        # rows: true label, columns: predicted label, in LABELS order
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=list(k)).tolist(),
        "predicted_distribution": distribution(y_pred),
    }


def transition(from_pred, to_pred) -> dict:
    """P(to-model label | from-model label) over the same texts, with the counts behind it."""
    from_pred, to_pred = np.asarray(from_pred), np.asarray(to_pred)
    matrix, counts = {}, {}
    for i, a in enumerate(LABELS):
        rows = to_pred[from_pred == i]
        counts[a] = int(len(rows))
        matrix[a] = {
            b: r4((rows == j).mean()) if len(rows) else (1.0 if i == j else 0.0) for j, b in enumerate(LABELS)
        }
    return {"n": int(len(from_pred)), "from_counts": counts, "matrix": matrix}
