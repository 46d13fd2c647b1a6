"""Text normalisation and feature extraction shared by training and serving.

Training builds its scikit-learn vectorisers on these functions (as callable analyzers),
so the features the runtime scorer computes are the very ones the model was fitted on.
Pure standard library: this module is on the Lambda's cold-start path.
"""

from __future__ import annotations

import html
import re

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"@[\w_]+")
_SPACE = re.compile(r"\s+")
# Three or more repeats of a character carry no more meaning than two ("loooool").
_REPEAT = re.compile(r"(.)\1{2,}")
_WORD = re.compile(r"[#\w']+|[^\w\s]")
_ALNUM = re.compile(r"\w+")


def normalize(text: str) -> str:
    """Lower-cased text with HTML entities decoded, URLs and @mentions replaced by markers
    and runs of white space collapsed: the form every feature is computed from."""
    text = html.unescape(text)
    text = _URL.sub(" urlhere ", text)
    text = _MENTION.sub(" mentionhere ", text)
    text = _REPEAT.sub(r"\1\1", text.lower())
    return _SPACE.sub(" ", text).strip()


def lowercase(text: str) -> str:
    """The legacy model's only normalisation, as natural's tokenizeAndStem did."""
    return text.lower()


# Name in a model manifest -> function: each feature block says which one it was trained with.
NORMALIZERS = {"tweet": normalize, "lowercase": lowercase}


def word_tokens(text: str) -> list[str]:
    """Word, hashtag and punctuation tokens of already normalised text."""
    return _WORD.findall(text)


def alnum_tokens(text: str) -> list[str]:
    """Alphanumeric runs of already normalised text (the legacy model's tokeniser)."""
    return _ALNUM.findall(text)


def word_ngrams(tokens: list[str], lo: int, hi: int) -> list[str]:
    """Space-joined token n-grams of lengths lo..hi."""
    if lo == hi == 1:
        return list(tokens)
    out: list[str] = []
    n_tok = len(tokens)
    for n in range(lo, hi + 1):
        if n == 1:
            out.extend(tokens)
            continue
        for i in range(n_tok - n + 1):
            out.append(" ".join(tokens[i : i + n]))
    return out


def word_char_ngrams(word: str, lo: int, hi: int) -> list[str]:
    """Character n-grams of lengths lo..hi of one word, padded with a space on each side."""
    padded = f" {word} "
    size = len(padded)
    out: list[str] = []
    for n in range(lo, min(hi, size) + 1):
        out.extend([padded[i : i + n] for i in range(size - n + 1)])
    return out


def char_ngrams(text: str, lo: int, hi: int) -> list[str]:
    """Character n-grams of lengths lo..hi inside each space-padded word of the text."""
    out: list[str] = []
    for word in text.split():
        out.extend(word_char_ngrams(word, lo, hi))
    return out


def terms(analyzer: str, normalized: str, lo: int = 1, hi: int = 1) -> list[str]:
    """The terms a feature block counts: "word" n-grams, "char" n-grams or "alnum" tokens."""
    if analyzer == "char":
        return char_ngrams(normalized, lo, hi)
    if analyzer == "word":
        return word_ngrams(word_tokens(normalized), lo, hi)
    if analyzer == "alnum":
        return alnum_tokens(normalized)
    raise ValueError(f"unknown analyzer {analyzer!r}")
