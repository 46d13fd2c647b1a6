"""The harness that chooses v3: named candidate configurations, compared on the train split only.

    python -m training.candidates [--only NAME ...] [--data CSV] [--suite FILE] [--json]

Every candidate is a linear model over sparse word and character n-grams (v2's feature blocks), so it
exports as plain arrays the serving scorer (infer.model) reads. For each candidate:

- 5-fold stratified cross-validation on the TRAIN split (v2's seed, so v2's own folds): per fold
  macro-F1, weighted F1 and hate_speech recall, reported as mean and sample sd over the folds; and
  the expected calibration error of the out-of-fold probabilities (training.calibration, 10 bins).
  Post-processing learnt from scores (class offsets, a temperature) is cross-fitted: a fold's rows
  get the offsets / temperature chosen on the other four folds' out-of-fold scores, so no row is
  scored by anything that saw its label.
- one fit on the whole train split, the same post-processing chosen on all out-of-fold scores,
  written to a temporary model directory (training.export) and scored on the behavioural suite with
  the serving scorer (training.behaviour): pass rate per functionality, everyday benign -> neither,
  hateful -> hate_speech.

The test split is never read by the harness: `main` hands it `Dataset.train` only. Candidates that
share features and classifier share their fits (v2 and v2_calibrated differ only after the fit).
"""

from __future__ import annotations

import os

# One BLAS thread: reproducible floating point, and the machine is shared.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sklearn.feature_extraction.text import CountVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score, recall_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402
from sklearn.preprocessing import normalize  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from infer.model import LABELS, load_model  # noqa: E402
from training import behaviour, calibration  # noqa: E402
from training.export import ModelWriter  # noqa: E402
from training.features import block_terms  # noqa: E402
from training.train import OFFSET_GRID, SEED, V2_BLOCKS, agreement  # noqa: E402

FOLDS = 5
NB_ALPHA = 1.0  # Wang & Manning's smoothing of the log-count ratio
HATE = LABELS.index("hate_speech")
T_GRID = np.exp(np.linspace(np.log(0.25), np.log(4.0), 121))  # temperatures tried (log-spaced)


@dataclass(frozen=True)
class Candidate:
    """One configuration: features, classifier, and what is learnt from out-of-fold scores."""

    name: str
    summary: str
    # "tfidf": v2's TF-IDF blocks; "nb": binary presence scaled by NB log-count ratios (Wang & Manning);
    # "nb_tfidf": v2's TF-IDF values scaled by log-count ratios computed on them
    features: str
    C: float
    class_weight: str | None = None  # None or "balanced"
    offsets: bool = False  # class offsets tuned for macro-F1 + weighted F1 (v2's rule), in the intercept
    temperature: bool = False  # scores divided by a temperature minimising log loss (labels unchanged)
    # a deployment prior (Saerens et al. 2002): log(prior / training prior) added to the calibrated
    # scores, which moves the labels; None keeps the training prior
    prior: tuple[float, float, float] | None = None

    @property
    def fit_key(self) -> tuple:
        return (self.features, self.C, self.class_weight)


# The closed list, in table order. C: v2's chosen C for the TF-IDF models. NB-LR's C was chosen by
# this harness's CV on train (offsets rule, macro-F1 mean over folds): binary NB-LR C 0.03 0.7615,
# 0.05 0.7634, 0.1 0.7577, 0.3 0.7481, 1.0 0.738; NB over TF-IDF C 0.5 0.7527, 1 0.758, 4 0.7556.
NB_C = 0.05
# liblinear's stopping tolerance for NB-LR. scikit-learn's liblinear calls BLAS (OpenBLAS), whose
# kernel depends on the CPU: at liblinear's default 1e-4 the fit stops early enough that two
# kernels give coefficients 1e-4 apart (measured: Prescott vs Haswell, 1.3e-4). Run to
# convergence, the kernels agree to ~1e-11, as v2's L-BFGS fit does (training/reproduce.py).
LIBLINEAR_TOL = 1e-10
CANDIDATES: tuple[Candidate, ...] = (
    Candidate("v2", "v2 as trained: TF-IDF LR, offsets in the intercept", "tfidf", 1.0, offsets=True),
    Candidate("v2_calibrated", "v2's fit, no offsets, temperature-scaled", "tfidf", 1.0, temperature=True),
    Candidate("v2_balanced", "v2 features, class-balanced LR, no offsets", "tfidf", 1.0, "balanced"),
    Candidate("nblr", "NB-LR (binary n-grams) one-vs-rest, offsets like v2", "nb", NB_C, offsets=True),
    Candidate("nblr_balanced", "NB-LR one-vs-rest, class-balanced, no offsets", "nb", NB_C, "balanced"),
    Candidate(
        "nblr_calibrated", "NB-LR one-vs-rest, no offsets, temperature-scaled", "nb", NB_C, temperature=True
    ),
    Candidate(
        "nblr_uniform_prior",
        "nblr_calibrated shifted to a uniform class prior",
        "nb",
        NB_C,
        temperature=True,
        prior=(1 / 3, 1 / 3, 1 / 3),
    ),
    Candidate(
        "nblr_tfidf",
        "NB ratios over v2's TF-IDF values, LR one-vs-rest, offsets",
        "nb_tfidf",
        1.0,
        offsets=True,
    ),
)
BY_NAME = {c.name: c for c in CANDIDATES}


def log(msg: str) -> None:
    print(f"[candidates {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- features ----------------------------------------------------------------------------------------


class Corpus:
    """Term counts of the harness's texts per v2 block, over every term seen (min_df applied per fit).

    The texts are cut into terms once; each fold then keeps the columns with df >= min_df on its own
    training rows, which is what a vectoriser fitted on those rows would keep, in the same order.
    """

    def __init__(self, texts: Sequence[str], blocks: Sequence[dict] = tuple(V2_BLOCKS)) -> None:
        self.blocks = list(blocks)
        self.vectorizers = []
        self.counts = []
        for spec in self.blocks:
            lo, hi = spec["ngram_range"]
            analyzer = partial(
                block_terms, normalizer=spec["normalizer"], analyzer=spec["analyzer"], lo=lo, hi=hi
            )
            vec = CountVectorizer(analyzer=analyzer, dtype=np.float64)
            self.counts.append(vec.fit_transform(texts).tocsr())
            self.vectorizers.append(vec)
        self.n = len(texts)

    def other(self, texts: Sequence[str]) -> list[sp.csr_matrix]:
        """Counts of texts outside the corpus (the suite), in the corpus's columns."""
        return [vec.transform(texts).tocsr() for vec in self.vectorizers]

    def vocabulary(self, b: int) -> np.ndarray:
        return self.vectorizers[b].get_feature_names_out()


@dataclass
class Featurizer:
    """Per block: the kept columns and (TF-IDF) their idf, fitted on some rows of a Corpus."""

    kind: str
    kept: list[np.ndarray]
    idf: list[np.ndarray | None]

    @classmethod
    def fit(cls, kind: str, corpus: Corpus, rows: np.ndarray) -> Featurizer:
        kept, idf = [], []
        for spec, counts in zip(corpus.blocks, corpus.counts, strict=True):
            df = np.asarray((counts[rows] > 0).sum(axis=0)).ravel()
            cols = np.flatnonzero(df >= spec["min_df"])
            kept.append(cols)
            # scikit-learn's smooth idf: ln((1 + n) / (1 + df)) + 1
            idf.append(np.log((1.0 + len(rows)) / (1.0 + df[cols])) + 1.0 if kind == "tfidf" else None)
        return cls(kind, kept, idf)

    def transform(self, counts: Sequence[sp.csr_matrix], rows: np.ndarray | None = None) -> sp.csr_matrix:
        parts = []
        for b, block_counts in enumerate(counts):
            x = (block_counts if rows is None else block_counts[rows])[:, self.kept[b]].tocsr()
            if self.kind == "tfidf":
                x = x.copy()
                x.data = 1.0 + np.log(x.data)  # sublinear tf, as v2's blocks say
                x = normalize(x @ sp.diags(self.idf[b]), norm="l2").tocsr()
            else:
                x = (x > 0).astype(np.float64)
            parts.append(x)
        return sp.hstack(parts, format="csr")


def nb_ratios(x: sp.csr_matrix, y: np.ndarray, alpha: float = NB_ALPHA) -> np.ndarray:
    """One-vs-rest log-count ratios (Wang & Manning 2012), one column per class:
    r_c = log(p / |p|_1) - log(q / |q|_1), p = alpha + feature sums over class c, q over the rest."""
    x = sp.csr_matrix(x)
    total = np.asarray(x.sum(axis=0)).ravel()
    out = np.empty((x.shape[1], len(LABELS)))
    for c in range(len(LABELS)):
        p = alpha + np.asarray(x[y == c].sum(axis=0)).ravel()
        q = alpha + total - (p - alpha)
        out[:, c] = np.log(p / p.sum()) - np.log(q / q.sum())
    return out


# --- one fitted linear model -------------------------------------------------------------------------


@dataclass
class Linear:
    """A fitted candidate as the scorer sees it: features, coef (n_features, 3), intercept (3,)."""

    featurizer: Featurizer
    coef: np.ndarray
    intercept: np.ndarray

    def decision(self, counts: Sequence[sp.csr_matrix], rows: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(self.featurizer.transform(counts, rows) @ self.coef) + self.intercept


def fit_linear(cand: Candidate, corpus: Corpus, y: np.ndarray, w: np.ndarray, rows: np.ndarray) -> Linear:
    """Fit the candidate's features and classifier on `rows` of the corpus (labels y, weights w)."""
    feats = Featurizer.fit("binary" if cand.features == "nb" else "tfidf", corpus, rows)
    x = feats.transform(corpus.counts, rows)
    yr, wr = y[rows], w[rows]
    if not cand.features.startswith("nb"):
        clf = LogisticRegression(C=cand.C, max_iter=5000, class_weight=cand.class_weight)
        clf.fit(x, yr, sample_weight=wr)
        return Linear(feats, clf.coef_.T.copy(), clf.intercept_.copy())
    # NB-LR: one binary LR per class on x * r_c; w_c . (r_c * x) = (r_c * w_c) . x, so the ratios
    # fold into the coefficients and the served model is an ordinary linear model on binary features.
    r = nb_ratios(x, yr)
    coef = np.empty_like(r)
    intercept = np.empty(len(LABELS))
    for c in range(len(LABELS)):
        clf = LogisticRegression(
            C=cand.C,
            solver="liblinear",
            class_weight=cand.class_weight,
            random_state=SEED,
            tol=LIBLINEAR_TOL,
            max_iter=10000,
        )
        clf.fit(x @ sp.diags(r[:, c]), (yr == c).astype(int), sample_weight=wr)
        coef[:, c] = r[:, c] * clf.coef_.ravel()
        intercept[c] = clf.intercept_[0]
    return Linear(feats, coef, intercept)


# --- what is learnt from out-of-fold scores ----------------------------------------------------------


def softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The temperature T on the grid minimising the mean log loss of softmax(scores / T)."""
    idx = np.arange(len(y))
    losses = [-np.log(softmax(scores / t)[idx, y] + 1e-300).mean() for t in T_GRID]
    return float(T_GRID[int(np.argmin(losses))])


@dataclass
class Post:
    """Post-processing of raw scores: (scores + offsets) / temperature + shift. Labels use argmax."""

    offsets: np.ndarray = field(default_factory=lambda: np.zeros(len(LABELS)))
    temperature: float = 1.0
    shift: np.ndarray = field(default_factory=lambda: np.zeros(len(LABELS)))  # log prior ratio

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return (scores + self.offsets) / self.temperature + self.shift


def f1_pair(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Macro and weighted F1 over the three labels from the confusion matrix (scikit-learn's values
    when every label occurs in y, zero where undefined), ~100x faster than two f1_score calls."""
    k = len(LABELS)
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k).astype(float)
    tp, support, said = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    denom = support + said
    f1 = np.divide(2.0 * tp, denom, out=np.zeros(k), where=denom > 0)
    return float(f1.mean()), float((f1 * support).sum() / support.sum())


def tune_offsets(scores: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """training.train.tune_offsets (v2's rule: the grid, the order, the tie-break), with f1_pair:
    offsets (hate, neither) maximising macro F1 + weighted F1 of argmax(scores + offsets)."""
    best = (-1.0, 0.0, 0.0, 0.0, 0.0)
    for o0 in OFFSET_GRID:
        for o2 in OFFSET_GRID:
            mf, wf = f1_pair(y, (scores + np.array([o0, 0.0, o2])).argmax(axis=1))
            if mf + wf > best[0] + 1e-12:
                best = (mf + wf, float(o0), float(o2), mf, wf)
    return best[1:]


def learn_post(cand: Candidate, scores: np.ndarray, y: np.ndarray) -> Post:
    post = Post()
    if cand.offsets:
        o0, o2, _, _ = tune_offsets(scores, y)
        post.offsets = np.array([o0, 0.0, o2])
    if cand.temperature:
        post.temperature = fit_temperature(post.apply(scores), y)
    if cand.prior is not None:
        train_prior = np.bincount(y, minlength=len(LABELS)) / len(y)
        post.shift = np.log(np.array(cand.prior)) - np.log(train_prior)
    return post


# --- cross-validation --------------------------------------------------------------------------------


def make_folds(y: np.ndarray, seed: int = SEED, k: int = FOLDS) -> list[tuple[np.ndarray, np.ndarray]]:
    """v2's folds: stratified, shuffled with the seed (training/train.py uses the same call)."""
    return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def cv_scores(cands, corpus, y, w, folds) -> dict[tuple, np.ndarray]:
    """Raw out-of-fold decision scores per distinct fit (candidates sharing a fit share them)."""
    out: dict[tuple, np.ndarray] = {}
    for cand in cands:
        if cand.fit_key in out:
            continue
        scores = np.zeros((len(y), len(LABELS)))
        t = time.perf_counter()
        for tr, va in folds:
            scores[va] = fit_linear(cand, corpus, y, w, tr).decision(corpus.counts, va)
        out[cand.fit_key] = scores
        log(f"CV of {cand.fit_key} in {time.perf_counter() - t:.0f} s")
    return out


def mean_sd(values: Sequence[float]) -> dict:
    return {"mean": round(float(np.mean(values)), 4), "sd": round(float(np.std(values, ddof=1)), 4)}


def cv_report(cand: Candidate, raw: np.ndarray, y: np.ndarray, folds) -> dict:
    """Per-fold metrics and OOF ECE, each fold post-processed by what the other folds' scores chose."""
    probs = np.zeros_like(raw)
    macro, weighted, hate_recall = [], [], []
    for tr, va in folds:
        # tr's rows are themselves out-of-fold scores, so nothing here saw va's labels
        post = learn_post(cand, raw[tr], y[tr])
        s = post.apply(raw[va])
        probs[va] = softmax(s)
        pred = s.argmax(axis=1)
        macro.append(f1_score(y[va], pred, average="macro"))
        weighted.append(f1_score(y[va], pred, average="weighted"))
        hate_recall.append(recall_score(y[va], pred, labels=[HATE], average="macro", zero_division=0))
    top = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    bins = calibration.reliability(top.tolist(), correct.tolist())
    return {
        "folds": len(folds),
        "macro_f1": mean_sd(macro),
        "weighted_f1": mean_sd(weighted),
        "hate_recall": mean_sd(hate_recall),
        "ece_oof": round(calibration.ece(bins), 4),
        "per_fold_macro_f1": [round(float(m), 4) for m in macro],
        "mean_prob": [round(float(p), 4) for p in probs.mean(axis=0)],
    }


# --- the final fit, exported and scored by the serving scorer ----------------------------------------


def export(lin: Linear, corpus: Corpus, name: str, out_dir: Path) -> Path:
    """Write the fitted model as plain arrays in the serving format (a temporary directory)."""
    writer = ModelWriter(out_dir)
    blocks = []
    for b, spec in enumerate(corpus.blocks):
        vocab = corpus.vocabulary(b)[lin.featurizer.kept[b]].tolist()
        entry = {**spec, "vocabulary": writer.add_json(f"{spec['name']}_vocabulary.json", vocab)}
        if lin.featurizer.kind == "tfidf":
            entry.update(
                weighting="tfidf", idf=writer.add_npy(f"{spec['name']}_idf.npy", lin.featurizer.idf[b])
            )
        else:
            entry.update(weighting="binary")
        blocks.append(entry)
    model = {
        "kind": "logistic_regression",
        "output": "softmax",
        "blocks": blocks,
        "coef": writer.add_npy("coef.npy", lin.coef),
        "intercept": writer.add_npy("intercept.npy", lin.intercept),
    }
    writer.write({"version": name, "labels": list(LABELS), "model": model}, lambda full: {})
    return out_dir


def final_fit(cand, corpus, y, w, raw_oof, cases, fitted: dict, tmp: Path) -> dict:
    """Fit on all of train, fold the post-processing chosen on all OOF scores into the arrays,
    export, and score the suite with the serving scorer; checks the scorer against the arrays."""
    if cand.fit_key not in fitted:
        t = time.perf_counter()
        fitted[cand.fit_key] = fit_linear(cand, corpus, y, w, np.arange(len(y)))
        log(f"final fit of {cand.fit_key} in {time.perf_counter() - t:.0f} s")
    base = fitted[cand.fit_key]
    post = learn_post(cand, raw_oof, y)
    lin = Linear(base.featurizer, base.coef / post.temperature, post.apply(base.intercept))
    served = load_model(export(lin, corpus, cand.name, tmp / cand.name))
    texts = [c.text for c in cases]
    arrays = lin.decision(corpus.other(texts)).argmax(axis=1)
    labels = {t: served.predict(t).label for t in texts}
    mismatch = sum(labels[t] != LABELS[a] for t, a in zip(texts, arrays, strict=True))
    suite = behaviour.run(cases, {cand.name: labels.__getitem__})["predictors"][cand.name]
    return {
        "offsets": [round(float(o), 2) for o in post.offsets],
        "prior_shift": [round(float(o), 3) for o in post.shift],
        "temperature": round(post.temperature, 3),
        "n_features": int(lin.coef.shape[0]),
        "artifact_mb": round(sum(p.stat().st_size for p in (tmp / cand.name).iterdir()) / 1e6, 2),
        "scorer_vs_arrays_mismatches": mismatch,
        "suite": suite,
        "suite_labels": [labels[t] for t in texts],
    }


def run(rows, cands: Sequence[Candidate], cases, seed: int = SEED) -> dict:
    """The whole comparison on `rows` (the train split; the caller never passes test rows)."""
    t0 = time.perf_counter()
    texts = [r.text for r in rows]
    y = np.array([r.label for r in rows])
    w = agreement(rows)
    folds = make_folds(y, seed)
    with threadpool_limits(limits=1):
        corpus = Corpus(texts)
        log(f"terms of {len(texts)} texts in {time.perf_counter() - t0:.0f} s")
        raw = cv_scores(cands, corpus, y, w, folds)
        fitted: dict[tuple, Linear] = {}
        results = {}
        with tempfile.TemporaryDirectory(prefix="candidates-") as tmp:
            for cand in cands:
                results[cand.name] = {
                    "summary": cand.summary,
                    "config": {"features": cand.features, "C": cand.C, "class_weight": cand.class_weight},
                    "cv": cv_report(cand, raw[cand.fit_key], y, folds),
                    "final": final_fit(cand, corpus, y, w, raw[cand.fit_key], cases, fitted, Path(tmp)),
                }
    return {
        "n_rows": len(rows),
        "row_ids": [r.row_id for r in rows],
        "folds": [va.tolist() for _, va in folds],
        "seed": seed,
        "test_split_used": False,
        "seconds": round(time.perf_counter() - t0, 1),
        "candidates": results,
    }


# --- output ------------------------------------------------------------------------------------------


def table(report: dict) -> str:
    """One Markdown table: a column per candidate; CV rows, then the suite per functionality."""
    res = report["candidates"]
    names = list(res)
    rows: list[tuple[str, list[str]]] = []
    pm = lambda d: f"{d['mean']:.3f} ± {d['sd']:.3f}"  # noqa: E731
    rows.append(("CV macro-F1 (mean ± sd)", [pm(res[n]["cv"]["macro_f1"]) for n in names]))
    rows.append(("CV weighted F1", [pm(res[n]["cv"]["weighted_f1"]) for n in names]))
    rows.append(("CV hate_speech recall", [pm(res[n]["cv"]["hate_recall"]) for n in names]))
    rows.append(("ECE, OOF (10 bins)", [f"{res[n]['cv']['ece_oof']:.3f}" for n in names]))
    rows.append(("mean OOF hate score", [f"{res[n]['cv']['mean_prob'][HATE]:.3f}" for n in names]))
    suites = {n: res[n]["final"]["suite"] for n in names}
    for func in behaviour.FUNCTIONALITIES:
        if func in suites[names[0]]["functionalities"]:
            k = suites[names[0]]["functionalities"][func]["n"]
            rows.append(
                (
                    f"suite: {func} (n={k})",
                    [f"{suites[n]['functionalities'][func]['pass_rate']:.2f}" for n in names],
                )
            )
    rows.append(
        ("suite: mean over functionalities", [f"{suites[n]['mean_over_functionalities']:.2f}" for n in names])
    )
    rows.append(
        ("**everyday benign -> neither**", [f"{suites[n]['benign_neither_rate']['rate']:.2f}" for n in names])
    )
    rows.append(
        ("**hateful -> hate_speech**", [f"{suites[n]['hateful_said_hate']['rate']:.2f}" for n in names])
    )
    rows.append(
        ("non-hateful -> hate_speech", [f"{suites[n]['non_hateful_said_hate']['rate']:.2f}" for n in names])
    )
    rows.append(
        (
            "offsets (hate, off., neither)",
            [" / ".join(f"{o:+.2f}" for o in res[n]["final"]["offsets"]) for n in names],
        )
    )
    rows.append(("temperature", [f"{res[n]['final']['temperature']:.2f}" for n in names]))
    rows.append(
        (
            "prior shift (log ratio)",
            [" / ".join(f"{o:+.2f}" for o in res[n]["final"]["prior_shift"]) for n in names],
        )
    )
    rows.append(
        (
            "features / artifact MB",
            [f"{res[n]['final']['n_features']} / {res[n]['final']['artifact_mb']:.1f}" for n in names],
        )
    )
    rows.append(
        ("scorer vs arrays mismatches", [str(res[n]["final"]["scorer_vs_arrays_mismatches"]) for n in names])
    )
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    lines.append("")
    lines.append(
        f"{report['n_rows']} train rows, {len(report['folds'])}-fold stratified CV (seed {report['seed']}); "
        f"test split not used; run time {report['seconds']:.0f} s."
    )
    return "\n".join(lines)


def v2_check(report: dict, cases) -> str | None:
    """Whether the v2 candidate, retrained here, gives the served models/v2's suite labels."""
    served_dir = behaviour.MODELS_DIR / "v2"
    if "v2" not in report["candidates"] or not (served_dir / "manifest.json").is_file():
        return None
    served = load_model(served_dir)
    ours = report["candidates"]["v2"]["final"]["suite_labels"]
    differ = sum(served.predict(c.text).label != label for c, label in zip(cases, ours, strict=True))
    return f"the v2 candidate and the served models/v2 differ on {differ} of {len(cases)} suite cases"


def main(argv: list[str] | None = None) -> int:
    from training.data import load

    parser = argparse.ArgumentParser(
        prog="python -m training.candidates", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help=f"candidates to run (of {', '.join(BY_NAME)})"
    )
    parser.add_argument("--data", default=None, help="labelled CSV (default $HATE_DATA or ../shared/data)")
    parser.add_argument("--suite", type=Path, default=behaviour.DEFAULT_SUITE, help="behavioural suite file")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only or ()) - set(BY_NAME))
    if unknown:
        print(f"error: unknown candidate(s) {unknown}; known: {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    cands = [c for c in CANDIDATES if not args.only or c.name in args.only]
    try:
        ds = load(args.data)
        cases = behaviour.load_suite(args.suite)
    except (FileNotFoundError, behaviour.SuiteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = run(ds.train, cands, cases)  # the train split only: the test split is for reporting
    report["v2_check"] = v2_check(report, cases)
    if args.json:
        # the row ids and fold members are for the tests; the printed report says how many
        slim = {**report, "row_ids": len(report["row_ids"]), "folds": [len(f) for f in report["folds"]]}
        print(json.dumps(slim, indent=1))
    else:
        print(table(report))
        if report["v2_check"]:
            print(report["v2_check"] + ".")
    return 0


if __name__ == "__main__":
    sys.exit(main())
