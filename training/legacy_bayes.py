"""The legacy model: the Naive Bayes rule of natural's BayesClassifier, as a scikit-learn
estimator.

natural scores a class as P(c) * prod over the features present of (df_c(f) + 1) / (N_c + 1),
where df_c(f) is the number of class-c training documents containing f and N_c the number
of class-c documents; absent features contribute nothing (unlike BernoulliNB) and the
per-feature probabilities are not normalised over the vocabulary (unlike MultinomialNB).
This estimator computes the same rule in log space (natural multiplies raw probabilities
and can underflow), so the legacy baseline is the seed service's model, not a straw man.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted


class LegacyBayes(ClassifierMixin, BaseEstimator):
    """natural's BayesClassifier over binary features; alpha is its smoothing (1 there)."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, X, y):
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        X = (X > 0).astype(np.float64)
        docs = np.array([(y == c).sum() for c in self.classes_], dtype=np.float64)
        df = np.vstack([np.asarray(X[y == c].sum(axis=0)).ravel() for c in self.classes_])
        self.feature_log_prob_ = np.log((df + self.alpha) / (docs[:, None] + self.alpha))
        totals = docs + self.alpha
        self.class_log_prior_ = np.log(totals / totals.sum())
        return self

    def decision_function(self, X):
        check_is_fitted(self)
        X = (X > 0).astype(np.float64)
        return np.asarray(X @ self.feature_log_prob_.T) + self.class_log_prior_

    def predict_proba(self, X):
        scores = self.decision_function(X)
        scores = scores - scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]
