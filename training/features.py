"""scikit-learn vectorisers built on the serving code's own text functions.

Each vectoriser gets a callable analyzer that runs infer.text.normalize and infer.text.terms,
so what the model is fitted on is, term for term, what the runtime scorer computes.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer, TfidfVectorizer

from infer.text import NORMALIZERS, alnum_tokens, terms

# natural's tokenizeAndStem drops stop words before stemming; nltk's own list needs a corpus
# download, scikit-learn's ships with it.
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS)


def block_terms(raw: str, normalizer: str, analyzer: str, lo: int, hi: int) -> list[str]:
    return terms(analyzer, NORMALIZERS[normalizer](raw), lo, hi)


def stem_terms(raw: str, table: dict[str, str]) -> list[str]:
    return [table[t] for t in alnum_tokens(NORMALIZERS["lowercase"](raw)) if t in table]


def stem_table(texts, stem) -> dict[str, str]:
    """Surface token -> Porter stem for every non-stop-word token of the texts."""
    table: dict[str, str] = {}
    for raw in texts:
        for token in alnum_tokens(NORMALIZERS["lowercase"](raw)):
            if token not in table and token not in STOP_WORDS:
                table[token] = stem(token)
    return table


def tfidf_block(spec: dict) -> TfidfVectorizer:
    lo, hi = spec["ngram_range"]
    return TfidfVectorizer(
        analyzer=partial(block_terms, normalizer=spec["normalizer"], analyzer=spec["analyzer"], lo=lo, hi=hi),
        min_df=spec["min_df"],
        sublinear_tf=spec["sublinear_tf"],
        norm=spec["norm"],
        dtype=np.float64,
    )


def stem_block(table: dict[str, str]) -> CountVectorizer:
    return CountVectorizer(analyzer=partial(stem_terms, table=table), binary=True, dtype=np.float64)
