"""Text normalisation and n-grams shared by training and serving, and what counts as a text to classify."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infer.model import load_model
from infer.text import char_ngrams, classifiable, normalize, terms, word_ngrams, word_tokens


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


# --- classifiable: which texts have something to classify (issue 9) ---------------------------------

# Characters that carry nothing to read, by Unicode category: white space and separators, control
# (NUL too), format (zero-width, BOM, direction marks), lone surrogates and combining marks; plus
# noncharacters and U+FFFD, which stands for bytes that could not be decoded.
INVISIBLE_CATEGORIES = ["Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Mn", "Mc", "Me"]
invisible_chars = st.characters(categories=INVISIBLE_CATEGORIES) | st.sampled_from(
    ["\ufffd", "\ufdd0", "\ufffe", "\uffff", "\U0001fffe", "\U0010ffff"]
)
# A character a model can read: a letter, number, punctuation mark or symbol (emoji are symbols).
readable_chars = st.characters(categories=["L", "N", "P", "S"]).filter(lambda c: c != "\ufffd")


@pytest.mark.parametrize(
    "text",
    [
        "\x00",
        "\x00\x00\x07\x1b\x7f",
        "\u200b\u200c\u200d\u2060\ufeff",
        "\u200e\u200f\u202e",
        "\ud800",
        "\udfff\ud800",
        "\u0301\u0308",
        "\ufe0f\u20e3",
        "\u00a0\u3000\u2028",
        "\ufffd\ufffd",
        "\uffff\ufdd0",
        "&#8203;",
        "&nbsp;&#x200D;",
        "&#xd800;",
    ],
    ids=repr,
)
def test_texts_of_invisible_characters_are_not_classifiable(text):
    """NULs and other controls, zero-width and other format characters, lone surrogates, bare combining
    marks, U+FFFD, noncharacters, and HTML entities that decode to them: nothing to classify."""
    assert not classifiable(text)


@pytest.mark.parametrize(
    "text",
    [
        "a",
        "7",
        "?!",
        "...",
        "\U0001f602",
        "&#128514;",
        "&amp;",
        "$",
        "\ue412",
        "\U0001fae8",
        "\u200b\u200bno\u200b",
        "\x00x",
        "a\ud800",
        "\u4f60\u597d",
    ],
    ids=repr,
)
def test_texts_with_a_letter_digit_punctuation_or_emoji_are_classifiable(text):
    """One readable character among any amount of invisible ones is enough; emoji-only and
    punctuation-only texts, pre-Unicode private-use emoji and emoji newer than Python's Unicode tables
    (unassigned code points) count as readable."""
    assert classifiable(text)


@settings(max_examples=300, deadline=None)
@given(text=st.text(invisible_chars, min_size=1, max_size=40))
def test_no_text_of_invisible_characters_is_classifiable(text):
    """Property: a text drawn only from the invisible categories is never classifiable."""
    assert not classifiable(text)


@settings(max_examples=300, deadline=None)
@given(
    before=st.text(invisible_chars, max_size=20),
    readable=readable_chars,
    after=st.text(invisible_chars | readable_chars, max_size=20),
)
def test_any_readable_character_makes_a_text_classifiable(before, readable, after):
    """Property: wherever a letter, number, punctuation mark or symbol stands, the text is classifiable."""
    assert classifiable(before + readable + after)


@pytest.fixture(scope="module")
def models(models_dir):
    """Both committed models."""
    return [load_model(models_dir / version) for version in ("v1", "v2")]


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(categories=["Zs", "Zl", "Zp", "Cc", "Cf", "Cs"]), min_size=1, max_size=40))
def test_models_find_no_feature_in_unclassifiable_texts(models, text):
    """Why the rule exists: for such texts both models score the intercept alone, i.e. the training
    prior, whatever the text - an answer that reads nothing."""
    for model in models:
        assert model.decision(text) == list(model.intercept)


def test_no_text_of_the_data_set_is_unclassifiable(dataset):
    """The rule refuses no real tweet: none of the train or test split (the canary's golden set is
    drawn from test) is unclassifiable."""
    refused = [row.row_id for row in dataset.train + dataset.test if not classifiable(row.text)]
    assert refused == []
