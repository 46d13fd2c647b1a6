"""v3: NB-LR over v2's word and character n-grams, with a decision rule chosen on train CV under the
behavioural suite's constraints, and probabilities calibrated by a temperature.

The recipe (training.candidates has the comparison that led here, EVALUATION.md the figures):

1. Features: binary presence of v2's blocks (word 1-2-grams, char 2-5-grams, min_df 2).
2. Classifier: a blend of two one-vs-rest NB-LR fits (Wang & Manning 2012; liblinear, C 0.05,
   annotator-agreement weights): BLEND x the plain fit + (1 - BLEND) x the class-balanced fit.
   Both are linear in the same features, so the blend is one coefficient array. The plain fit
   finds hate; the balanced one keeps identity terms, counter-speech and everyday text out of it.
3. Decision rule: class offsets (hate, neither) on the grid v2 uses, maximising CV macro F1 +
   weighted F1 on the out-of-fold scores (v2's criterion), among the offsets whose final fit
   meets the suite's constraints: >= BENIGN_FLOOR of everyday benign text `neither`, and no
   functionality regressing against the previous model beyond noise (training.suite_record).
4. Temperature: one T, fitted on the out-of-fold scores after the offsets by log loss, divides
   coefficients and intercept. Labels are unchanged (argmax); probabilities become calibrated
   at the class mix the offsets aim at (EVALUATION.md: ECE).

The suite is therefore used to choose v3's rule: it is not an untouched test of v3 (the model
card says so). The test split is read once, by training.train, to report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from joblib import Parallel, delayed

from infer.model import LABELS
from training import suite_record
from training.behaviour import Case, neither_rate
from training.candidates import (
    NB_C,
    Candidate,
    Corpus,
    Featurizer,
    Linear,
    f1_pair,
    fit_linear,
    fit_temperature,
    softmax,
)
from training.export import ModelWriter

BLEND = 0.7  # weight of the plain NB-LR fit; the rest is the class-balanced fit
BENIGN_FLOOR = 0.95  # share of everyday benign suite texts that must come out `neither`
ACKNOWLEDGED: tuple[str, ...] = ()  # suite functionalities the model card accepts a regression on
PLAIN = Candidate("v3_plain", "NB-LR one-vs-rest", "nb", NB_C)
BALANCED = Candidate("v3_balanced", "NB-LR one-vs-rest, class-balanced", "nb", NB_C, "balanced")


def fit_blend(corpus: Corpus, y: np.ndarray, w: np.ndarray, rows: np.ndarray) -> Linear:
    """The two NB-LR fits on `rows`, blended into one linear model (same features)."""
    plain = fit_linear(PLAIN, corpus, y, w, rows)
    balanced = fit_linear(BALANCED, corpus, y, w, rows)
    coef = BLEND * plain.coef + (1.0 - BLEND) * balanced.coef
    intercept = BLEND * plain.intercept + (1.0 - BLEND) * balanced.intercept
    return Linear(plain.featurizer, coef, intercept)


@dataclass
class NBLRPipeline:
    """The fitted v3 as scikit-learn's vectorisers and NumPy see it: the reference the runtime
    scorer must match (predict / predict_proba over raw texts, like a scikit-learn pipeline)."""

    corpus: Corpus
    featurizer: Featurizer
    coef: np.ndarray  # (n_features, 3), offsets and temperature folded in
    intercept: np.ndarray  # (3,)

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        x = self.featurizer.transform(self.corpus.other(list(texts)))
        return np.asarray(x @ self.coef) + self.intercept

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return softmax(self.decision_function(texts))

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.decision_function(texts).argmax(axis=1)


def _suite_labels(scores: np.ndarray, offsets: np.ndarray, cases: Sequence[Case]) -> dict[str, str]:
    return {c.id: LABELS[k] for c, k in zip(cases, (scores + offsets).argmax(axis=1), strict=True)}


def choose_rule(
    oof: np.ndarray,
    y: np.ndarray,
    suite_scores: np.ndarray,
    cases: Sequence[Case],
    previous: Mapping[str, str],
    grid: Sequence[float],
) -> dict:
    """The offsets (hate, neither) with the best CV macro + weighted F1 among those meeting the
    suite's constraints; every grid point is kept in the returned `tried` count."""
    feasible = []
    for o0 in grid:
        for o2 in grid:
            offsets = np.array([o0, 0.0, o2])
            mf, wf = f1_pair(y, (oof + offsets).argmax(axis=1))
            labels = _suite_labels(suite_scores, offsets, cases)
            by_text = {c.text: labels[c.id] for c in cases}
            benign_rate, _ = neither_rate(by_text.__getitem__, cases)
            changes = suite_record.compare(cases, labels, previous)
            regressions = suite_record.gate("v3", "previous", changes, ACKNOWLEDGED)
            if benign_rate >= BENIGN_FLOOR and not regressions:
                feasible.append((mf + wf, float(o0), float(o2), mf, wf, benign_rate, changes))
    if not feasible:
        raise RuntimeError("no offsets on the grid meet the suite's constraints: v3 cannot ship")
    best = max(feasible, key=lambda f: (round(f[0], 12), -abs(f[1]) - abs(f[2])))
    _, o0, o2, mf, wf, benign_rate, changes = best
    return {
        "offsets": [o0, 0.0, o2],
        "macro_f1": round(mf, 4),
        "weighted_f1": round(wf, 4),
        "suite_benign_neither": round(benign_rate, 4),
        "suite_better": sum(c.better for c in changes),
        "suite_worse": sum(c.losses > c.gains for c in changes),
        "feasible": len(feasible),
        "tried": len(grid) ** 2,
    }


def train_v3(
    texts: Sequence[str],
    y: np.ndarray,
    w: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    cases: Sequence[Case],
    previous: Mapping[str, str],
    grid: Sequence[float],
    jobs: int = 1,
) -> tuple[NBLRPipeline, dict]:
    """Fit v3 on all of `texts` (the train split): CV for the rule and the temperature, then the
    final fit with both folded into its arrays. `previous`: the previous model's suite labels."""
    corpus = Corpus(texts)
    # The five fold fits and the final one are independent; liblinear releases the GIL, so
    # threads share the corpus without copying it (the fits are the same as one after another).
    rows = [tr for tr, _ in folds] + [np.arange(len(y))]
    fits = Parallel(n_jobs=jobs, prefer="threads")(delayed(fit_blend)(corpus, y, w, r) for r in rows)
    oof = np.zeros((len(y), len(LABELS)))
    for (_, va), fit in zip(folds, fits, strict=False):
        oof[va] = fit.decision(corpus.counts, va)
    full = fits[-1]
    suite_scores = full.decision(corpus.other([c.text for c in cases]))
    chosen = choose_rule(oof, y, suite_scores, cases, previous, grid)
    offsets = np.array(chosen["offsets"])
    temperature = fit_temperature(oof + offsets, y)
    per_fold = [f1_pair(y[va], (oof[va] + offsets).argmax(axis=1)) for _, va in folds]
    cv = {
        "folds": len(folds),
        "macro_f1": chosen["macro_f1"],
        "weighted_f1": chosen["weighted_f1"],
        "per_fold_macro_f1": [round(m, 4) for m, _ in per_fold],
        "macro_f1_sd": round(float(np.std([m for m, _ in per_fold], ddof=1)), 4),
        "chosen": {**chosen, "temperature": round(temperature, 4)},
    }
    pipe = NBLRPipeline(
        corpus, full.featurizer, full.coef / temperature, (full.intercept + offsets) / temperature
    )
    return pipe, cv


def decision_prior(train_prior: Sequence[float], offsets: Sequence[float], temperature: float) -> list[float]:
    """The class prior v3's probabilities stand for: the offsets, divided by the temperature like
    the rest of the scores, are log prior ratios (Saerens et al. 2002) applied to the training
    prior, so pi_dec is proportional to pi_train x exp(offsets / T)."""
    shifted = np.asarray(train_prior, dtype=float) * np.exp(np.asarray(offsets, dtype=float) / temperature)
    return [round(float(p), 4) for p in shifted / shifted.sum()]


def with_prior(pipe: NBLRPipeline, reference: Sequence[float], prior: Sequence[float]) -> NBLRPipeline:
    """The same model for a deployment whose class mix is `prior` (hate, offensive, neither):
    log(prior / reference) added to the intercept, so every probability is re-weighted by
    prior / reference and renormalised (Saerens et al.'s correction), and the labels follow."""
    new, ref = np.asarray(prior, dtype=float), np.asarray(reference, dtype=float)
    if new.shape != (len(LABELS),) or (new <= 0).any() or abs(new.sum() - 1.0) > 1e-6:
        raise ValueError(f"a prior is {len(LABELS)} positive shares summing to 1, not {list(prior)}")
    return NBLRPipeline(pipe.corpus, pipe.featurizer, pipe.coef, pipe.intercept + np.log(new) - np.log(ref))


def export_v3(pipe: NBLRPipeline, writer: ModelWriter) -> dict:
    """v3's arrays in the serving format: binary-weighted word and char blocks, one linear layer."""
    blocks = []
    for b, spec in enumerate(pipe.corpus.blocks):
        vocab = pipe.corpus.vocabulary(b)[pipe.featurizer.kept[b]].tolist()
        blocks.append(
            {
                "name": spec["name"],
                "analyzer": spec["analyzer"],
                "normalizer": spec["normalizer"],
                "ngram_range": spec["ngram_range"],
                "min_df": spec["min_df"],
                "weighting": "binary",
                "vocabulary": writer.add_json(f"{spec['name']}_vocabulary.json", vocab),
            }
        )
    return {
        "kind": "nb_logistic_regression",
        "output": "softmax",
        "blocks": blocks,
        "coef": writer.add_npy("coef.npy", np.asarray(pipe.coef)),
        "intercept": writer.add_npy("intercept.npy", np.asarray(pipe.intercept)),
    }
