"""Text normalisation and feature extraction shared by training and serving.

Training builds its scikit-learn vectorisers on these functions (as callable analyzers),
so the features the runtime scorer computes are the very ones the model was fitted on.
Pure standard library: this module is on the Lambda's cold-start path.
"""

from __future__ import annotations

import html
import re
import unicodedata

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"@[\w_]+")
_SPACE = re.compile(r"\s+")
# Three or more repeats of a character carry no more meaning than two ("loooool").
_REPEAT = re.compile(r"(.)\1{2,}")
_WORD = re.compile(r"[#\w']+|[^\w\s]")
_ALNUM = re.compile(r"\w+")
# What a text needs for the API to classify it (see `classifiable`): characters of these Unicode
# general categories. Letters and numbers are what both models read; punctuation and symbols (emoji
# are symbols, So) are what v2's word and character n-grams read, and punctuation-only or emoji-only
# tweets are real tweets. Private use (Co) holds the pre-Unicode Apple and Google emoji that tweets of
# the data set carry and v2 has features for. Unassigned code points (Cn) may be emoji newer than this
# Python's Unicode tables (3.11 knows Unicode 14, the 3.12 runtime 15): counting them keeps the
# Lambda and a 3.11 batch run in agreement, and such a text is no less a text.
_CONTENT_CATEGORIES = frozenset("Lu Ll Lt Lm Lo Nd Nl No Pc Pd Ps Pe Pi Pf Po Sm Sc Sk So Co Cn".split())
# U+FFFD stands for bytes that could not be decoded (the batch CLI reads stdin with errors="replace",
# html.unescape turns bad character references into it): it says nothing about the text.
_REPLACEMENT = "\ufffd"


def normalize(text: str) -> str:
    """Lower-cased text with HTML entities decoded, URLs and @mentions replaced by markers
    and runs of white space collapsed: the form every feature is computed from."""
    text = html.unescape(text)
    text = _URL.sub(" urlhere ", text)
    text = _MENTION.sub(" mentionhere ", text)
    text = _REPEAT.sub(r"\1\1", text.lower())
    return _SPACE.sub(" ", text).strip()


def _is_content(char: str) -> bool:
    category = unicodedata.category(char)
    if category not in _CONTENT_CATEGORIES:
        return False
    if category == "Cn":
        # Noncharacters (U+FDD0..U+FDEF and the last two code points of every plane) will never be
        # assigned, so they cannot be an emoji this Python does not know yet.
        code = ord(char)
        return not (0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE)
    return char != _REPLACEMENT


def classifiable(text: str) -> bool:
    """True when the text has something a model can read: at least one letter, number, punctuation
    mark, symbol or emoji, once HTML entities are decoded as `normalize` decodes them.

    Texts made only of white space, control characters (NUL included), format characters
    (zero-width spaces and joiners, byte-order marks, direction marks), lone surrogates, combining
    marks with nothing to combine with, noncharacters or U+FFFD are not: the models' analyzers find
    no feature in them (v2's vocabularies hold no term made of such characters but two marks that the
    data set only has after an emoji, a digit or a punctuation mark), so any answer would be the
    training set's prior, not a reading of the text.
    Decided on characters, not on a model's vocabulary, so every model version accepts the same texts.
    """
    return any(map(_is_content, html.unescape(text)))


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
