"""Calibration on the test split, the training prior, and prior-shift correction of scores.

    python -m training.calibration [--models v1,v2] [--data CSV] [--json]

Per model, on the TEST split only (shared/data/README.md), scored with the serving scorer: a
reliability table (10 equal-width bins of the top-class probability: count, mean confidence,
accuracy) and the expected calibration error, ECE = sum over bins of count/n * |accuracy -
confidence|. Also the training prior (class shares on train).

Prior shift (Saerens, Latinne & Decaestecker 2002, "Adjusting the outputs of a classifier to new a
priori probabilities"): a model trained where the classes have prior P_t outputs p(c|x); where they
have prior P_d the posterior is p(c|x) * P_d(c)/P_t(c), renormalised (`adjust`). When P_d is
unknown it is estimated from unlabelled texts by EM (`em_prior`): adjust every text's scores to the
current estimate, take the mean adjusted posterior as the next estimate, until it stops moving.
The pure functions use the standard library only (the serving side may call them).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infer.model import LABELS, load_model

N_BINS = 10
PRIOR_TOLERANCE = 1e-6  # how far from 1 a prior's sum may be


@dataclass(frozen=True)
class Bin:
    """One reliability bin: texts whose top-class probability is in [lo, hi) ([lo, 1] for the last)."""

    lo: float
    hi: float
    count: int
    confidence: float  # mean top-class probability (0 when empty)
    accuracy: float  # share of correct top labels (0 when empty)

    def as_dict(self) -> dict:
        return {
            "lo": round(self.lo, 2),
            "hi": round(self.hi, 2),
            "count": self.count,
            "confidence": round(self.confidence, 4),
            "accuracy": round(self.accuracy, 4),
        }


def reliability(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = N_BINS) -> list[Bin]:
    """Equal-width bins of the top-class probability over [0, 1]: count, mean confidence, accuracy."""
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences but {len(correct)} correctness flags")
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    sums = [[0, 0.0, 0] for _ in range(n_bins)]  # count, confidence sum, correct count
    for conf, ok in zip(confidences, correct, strict=True):
        if not 0.0 <= conf <= 1.0:
            raise ValueError(f"confidence {conf} is not a probability")
        k = min(int(conf * n_bins), n_bins - 1)  # 1.0 belongs to the last bin
        sums[k][0] += 1
        sums[k][1] += conf
        sums[k][2] += bool(ok)
    return [
        Bin(k / n_bins, (k + 1) / n_bins, c, s / c if c else 0.0, r / c if c else 0.0)
        for k, (c, s, r) in enumerate(sums)
    ]


def ece(bins: Sequence[Bin]) -> float:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| over the bins."""
    n = sum(b.count for b in bins)
    if n == 0:
        raise ValueError("no texts in the bins")
    return sum(b.count / n * abs(b.accuracy - b.confidence) for b in bins)


def class_prior(labels: Sequence[int], n_classes: int = len(LABELS)) -> list[float]:
    """Share of each class index among `labels`."""
    if not labels:
        raise ValueError("no labels")
    counts = [0] * n_classes
    for y in labels:
        counts[y] += 1
    return [c / len(labels) for c in counts]


def _check_prior(prior: Sequence[float], name: str, k: int) -> None:
    if len(prior) != k:
        raise ValueError(f"{name} has {len(prior)} classes, expected {k}")
    if any(not p > 0.0 for p in prior):
        raise ValueError(f"{name} must be positive for every class: {list(prior)}")
    if abs(sum(prior) - 1.0) > PRIOR_TOLERANCE:
        raise ValueError(f"{name} must sum to 1, sums to {sum(prior)}")


def adjust(probs: Sequence[float], train_prior: Sequence[float], new_prior: Sequence[float]) -> list[float]:
    """Posterior under new_prior: p(c|x) * new_prior(c) / train_prior(c), renormalised to sum 1."""
    k = len(probs)
    _check_prior(train_prior, "train_prior", k)
    _check_prior(new_prior, "new_prior", k)
    w = [p * n / t for p, n, t in zip(probs, new_prior, train_prior, strict=True)]
    total = sum(w)
    if not total > 0.0:
        raise ValueError(f"scores {list(probs)} give no mass to any class")
    return [x / total for x in w]


def em_prior(
    probs: Sequence[Sequence[float]],
    train_prior: Sequence[float],
    tol: float = 1e-8,
    max_iter: int = 1000,
) -> tuple[list[float], int]:
    """Saerens et al.'s EM estimate of the class prior of unlabelled texts, and the iterations it took.

    E step: each text's posterior adjusted to the current estimate; M step: their mean is the next
    estimate. Stops when no class share moves by more than tol (or after max_iter iterations).
    """
    if not probs:
        raise ValueError("no texts to estimate a prior from")
    k = len(train_prior)
    prior = list(train_prior)
    for iteration in range(1, max_iter + 1):
        mean = [0.0] * k
        for p in probs:
            for c, q in enumerate(adjust(p, train_prior, prior)):
                mean[c] += q
        new = [m / len(probs) for m in mean]
        # a share that reaches 0 can never come back and would break the next adjust: keep it tiny
        new = [max(x, 1e-12) for x in new]
        total = sum(new)
        new = [x / total for x in new]
        moved = max(abs(a - b) for a, b in zip(new, prior, strict=True))
        prior = new
        if moved <= tol:
            return prior, iteration
    return prior, max_iter


def model_calibration(
    version: str, texts: Sequence[str], labels: Sequence[int], models_dir: Path, train_prior: Sequence[float]
) -> dict:
    """Reliability table, ECE, mean scores of one model on the given labelled texts, and the EM
    estimate of their prior from the scores alone (a check of how far the scores can be trusted)."""
    model = load_model(models_dir / version)
    confidences, correct, scores = [], [], []
    for text, y in zip(texts, labels, strict=True):
        pred = model.predict(text)
        probs = [pred.scores[label] for label in LABELS]
        scores.append(probs)
        confidences.append(max(probs))
        correct.append(pred.label == LABELS[y])
    bins = reliability(confidences, correct)
    em, iterations = em_prior(scores, train_prior)
    return {
        "n": len(texts),
        "accuracy": round(sum(correct) / len(correct), 4),
        "mean_confidence": round(sum(confidences) / len(confidences), 4),
        "ece": round(ece(bins), 4),
        "bins": [b.as_dict() for b in bins],
        "mean_scores": [round(sum(s[c] for s in scores) / len(scores), 4) for c in range(len(LABELS))],
        "em_prior": [round(p, 4) for p in em],
        "em_iterations": iterations,
    }


def report(dataset, versions: Sequence[str], models_dir: Path) -> dict:
    """Training prior, test prior and each model's calibration on the test split."""
    texts = [r.text for r in dataset.test]
    labels = [r.label for r in dataset.test]
    train_prior = class_prior([r.label for r in dataset.train])
    return {
        "labels": list(LABELS),
        "train_prior": [round(p, 4) for p in train_prior],
        "test_prior": [round(p, 4) for p in class_prior(labels)],
        "n_train": len(dataset.train),
        "n_test": len(dataset.test),
        "models": {v: model_calibration(v, texts, labels, models_dir, train_prior) for v in versions},
    }


def render(rep: dict) -> str:
    """The report as Markdown: priors, then per model its ECE and non-empty reliability bins."""
    shares = lambda p: ", ".join(f"{lab} {x:.3f}" for lab, x in zip(rep["labels"], p, strict=True))  # noqa: E731
    out = [
        f"training prior (train, n={rep['n_train']}): {shares(rep['train_prior'])}",
        f"test prior (test, n={rep['n_test']}): {shares(rep['test_prior'])}",
        "",
        "| model | n | accuracy | mean confidence | ECE | mean scores | EM prior of test from scores |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for v, m in rep["models"].items():
        out.append(
            f"| {v} | {m['n']} | {m['accuracy']:.3f} | {m['mean_confidence']:.3f} | {m['ece']:.3f} "
            f"| {shares(m['mean_scores'])} | {shares(m['em_prior'])} ({m['em_iterations']} it.) |"
        )
    for v, m in rep["models"].items():
        out += ["", f"{v}: reliability on test (top-class probability bins; empty bins left out)", ""]
        out += ["| bin | count | mean confidence | accuracy |", "|---|---:|---:|---:|"]
        for b in m["bins"]:
            if b["count"]:
                span = f"{b['lo']:.1f}-{b['hi']:.1f}"
                out.append(f"| {span} | {b['count']} | {b['confidence']:.3f} | {b['accuracy']:.3f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    from canary.manifests import trained_versions
    from infer.artifacts import ArtifactError
    from training.behaviour import MODELS_DIR
    from training.data import load

    parser = argparse.ArgumentParser(
        prog="python -m training.calibration", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--models", help="comma-separated versions (default: every model in models/)")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR, help="where the versions live")
    parser.add_argument(
        "--data", help="labelled CSV (default: $HATE_DATA or ../shared/data/labeled_data.csv)"
    )
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = parser.parse_args(argv)
    try:
        dataset = load(args.data)
        versions = args.models.split(",") if args.models else list(trained_versions(args.models_dir))
        rep = report(dataset, [v.strip() for v in versions if v.strip()], args.models_dir)
    except (ArtifactError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(rep, indent=1) if args.json else render(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
