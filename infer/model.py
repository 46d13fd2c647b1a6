"""The runtime scorer: a linear model over sparse text features, scored in plain Python.

Both model versions are linear: v1 (legacy Naive Bayes) sums per-class log probabilities of
the stems present, v2 sums TF-IDF-weighted logistic-regression coefficients. The manifest
says which feature blocks feed the model; this module computes them with the same
functions training used (infer.text) and never imports scikit-learn, SciPy or NumPy.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any

from infer import text as textlib
from infer.artifacts import ArtifactDir, ArtifactError

# Distinct words whose character n-gram columns are remembered per feature block (a few MB).
WORD_CACHE_SIZE = 1 << 16
LABELS = ("hate_speech", "offensive_language", "neither")
# The original API's wording, kept so existing consumers see the same "category".
CATEGORIES = {
    "hate_speech": "Hate Speech",
    "offensive_language": "Offensive Language",
    "neither": "Neither",
}


@dataclass(frozen=True)
class Prediction:
    """One scored text."""

    label: str  # one of LABELS
    scores: dict[str, float]  # probability per label, summing to 1

    @property
    def category(self) -> str:
        return CATEGORIES[self.label]

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "category": self.category, "scores": dict(self.scores)}


class _Block:
    """One feature block: how to cut a text into terms, and how to weight them."""

    def __init__(self, spec: dict[str, Any], art: ArtifactDir, offset: int) -> None:
        self.name = spec["name"]
        self.analyzer = spec["analyzer"]
        self.weighting = spec["weighting"]
        self.normalizer = spec.get("normalizer")
        if self.normalizer not in textlib.NORMALIZERS:
            raise ArtifactError(f"{art.root}: unknown normalizer {self.normalizer!r} in block {self.name!r}")
        lo, hi = spec.get("ngram_range", (1, 1))
        self.lo, self.hi = int(lo), int(hi)
        # Terms map straight to 3 * (global column): the start of that feature's row in the
        # (n_features, 3) coefficient array, which saves arithmetic on the per-request path.
        if self.analyzer == "stem_table":
            # surface token -> column of its stem; tokens whose stem is not a feature are absent
            table: dict[str, int] = art.json(spec["table"])
            self.index = {tok: 3 * (offset + col) for tok, col in table.items()}
            self.size = int(spec["size"])
            self.terms_of = "alnum"
        elif self.analyzer in ("word", "char"):
            vocab = art.json(spec["vocabulary"])
            # dict(zip(...)) builds the map in C: ~4x faster than a comprehension (cold start).
            self.index = dict(zip(vocab, range(3 * offset, 3 * (offset + len(vocab)), 3), strict=True))
            self.size = len(vocab)
            self.terms_of = self.analyzer
        else:
            raise ArtifactError(f"{art.root}: unknown analyzer {self.analyzer!r} in block {self.name!r}")
        self.offset = offset
        self._word_columns = lru_cache(maxsize=WORD_CACHE_SIZE)(self._columns_of_word)
        if self.weighting == "tfidf":
            shape, idf = art.npy(spec["idf"])
            if shape != (self.size,):
                raise ArtifactError(f"{art.root / spec['idf']}: shape {shape}, expected ({self.size},)")
            # idf spread to the coefficient array's stride, so it is read with the same index j
            self.idf = array("d", bytes(8 * 3 * (offset + self.size)))
            self.idf[3 * offset :: 3] = idf
            self.sublinear = bool(spec.get("sublinear_tf"))
            if spec.get("norm") != "l2":
                raise ArtifactError(f"{art.root}: block {self.name!r}: only l2 norm is supported")
        elif self.weighting != "binary":
            raise ArtifactError(f"{art.root}: unknown weighting {self.weighting!r} in block {self.name!r}")

    def counts(self, normalized: str) -> Counter:
        """3 * global column -> occurrences, for the text's terms that are in the vocabulary."""
        if self.terms_of == "char":
            # Character n-grams never cross a word boundary, so each word's columns can be
            # remembered: common words then cost one cache hit instead of dozens of slices.
            return Counter(chain.from_iterable(map(self._word_columns, normalized.split())))
        terms = textlib.terms(self.terms_of, normalized, self.lo, self.hi)
        counts = Counter(map(self.index.get, terms))
        counts.pop(None, None)
        return counts

    def _columns_of_word(self, word: str) -> tuple[int, ...]:
        get = self.index.get
        cols = map(get, textlib.word_char_ngrams(word, self.lo, self.hi))
        return tuple(j for j in cols if j is not None)

    def contribution(self, normalized: str, coef) -> tuple[float, float, float]:
        """This block's share of the three class scores: sum of feature value x coefficient."""
        counts = self.counts(normalized)
        d0 = d1 = d2 = 0.0
        if self.weighting == "binary":
            for j in counts:
                d0 += coef[j]
                d1 += coef[j + 1]
                d2 += coef[j + 2]
            return d0, d1, d2
        idf, sublinear, log = self.idf, self.sublinear, math.log
        sq = 0.0
        for j, n in counts.items():
            w = idf[j]
            if n != 1:
                w *= (1.0 + log(n)) if sublinear else n
            sq += w * w
            d0 += w * coef[j]
            d1 += w * coef[j + 1]
            d2 += w * coef[j + 2]
        if sq == 0.0:
            return 0.0, 0.0, 0.0
        # l2 normalisation of the block's vector, applied once to the dot products
        norm = math.sqrt(sq)
        return d0 / norm, d1 / norm, d2 / norm


class LinearTextModel:
    """A verified model directory, ready to score texts."""

    def __init__(self, root: str | Path) -> None:
        art = ArtifactDir(root)
        m = art.manifest
        self.root = art.root
        self.manifest = m
        self.version: str = m["version"]
        self.labels: tuple[str, ...] = tuple(m["labels"])
        if self.labels != LABELS:
            raise ArtifactError(f"{art.root}: labels {self.labels} differ from the API's {LABELS}")
        self.blocks: list[_Block] = []
        offset = 0
        for spec in m["model"]["blocks"]:
            block = _Block(spec, art, offset)
            self.blocks.append(block)
            offset += block.size
        k = len(self.labels)
        shape, coef = art.npy(m["model"]["coef"])
        if shape != (offset, k):
            raise ArtifactError(f"{art.root / m['model']['coef']}: shape {shape}, expected ({offset}, {k})")
        shape, intercept = art.npy(m["model"]["intercept"])
        if shape != (k,):
            raise ArtifactError(f"{art.root / m['model']['intercept']}: shape {shape}, expected ({k},)")
        self.coef = coef
        self.intercept = list(intercept)
        self.n_features = offset

    def decision(self, text: str) -> list[float]:
        """Per-class raw scores (log-odds up to a constant)."""
        s0, s1, s2 = self.intercept
        normalized: dict[str, str] = {}
        for block in self.blocks:
            name = block.normalizer
            if name not in normalized:
                normalized[name] = textlib.NORMALIZERS[name](text)
            d0, d1, d2 = block.contribution(normalized[name], self.coef)
            s0 += d0
            s1 += d1
            s2 += d2
        return [s0, s1, s2]

    def predict(self, text: str) -> Prediction:
        scores = self.decision(text)
        top = max(scores)
        exp = [math.exp(s - top) for s in scores]
        total = sum(exp)
        probs = {label: e / total for label, e in zip(self.labels, exp, strict=True)}
        best = max(range(len(scores)), key=scores.__getitem__)
        return Prediction(label=self.labels[best], scores=probs)


def load_model(root: str | Path) -> LinearTextModel:
    """Load and verify the model in `root` (raises ArtifactError naming the bad file)."""
    return LinearTextModel(root)
