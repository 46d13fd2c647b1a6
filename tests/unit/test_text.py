"""Text normalisation and n-grams shared by training and serving."""

from __future__ import annotations

from infer.text import char_ngrams, normalize, terms, word_ngrams, word_tokens


def test_normalize_replaces_urls_and_mentions_and_decodes_entities():
    """Tweets' noise becomes markers, HTML entities become characters, case is folded."""
    out = normalize("RT @Some_One: LOOK &amp; see https://t.co/AbC   now!!!!")
    assert out == "rt mentionhere : look & see urlhere now!!"


def test_char_ngrams_stay_inside_words():
    """Character n-grams are taken per space-padded word, never across two words."""
    assert char_ngrams("ab c", 2, 3) == [" a", "ab", "b ", " ab", "ab ", " c", "c ", " c "]


def test_word_ngrams_join_adjacent_tokens():
    """Unigrams then bigrams, in text order."""
    assert word_ngrams(["a", "b", "c"], 1, 2) == ["a", "b", "c", "a b", "b c"]


def test_word_tokens_keep_hashtags_and_split_punctuation():
    """Hashtags stay whole; punctuation marks are tokens of their own."""
    assert word_tokens("#maga is it?") == ["#maga", "is", "it", "?"]


def test_terms_dispatches_on_the_analyzer_name():
    """The manifest's analyzer names select the matching term function."""
    assert terms("alnum", "hi, you") == ["hi", "you"]
    assert terms("word", "hi you", 2, 2) == ["hi you"]
