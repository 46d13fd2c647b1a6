"""The runtime scorer on the committed models: output shape, and what it does not import."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from infer.model import CATEGORIES, LABELS, load_model


@pytest.fixture(scope="module", params=["v1", "v2"])
def model(request, models_dir):
    return load_model(models_dir / request.param)


def test_prediction_has_a_label_a_category_and_probabilities(model):
    """Every answer names one of the three labels, the original API's category and sums to 1."""
    p = model.predict("you are a stupid bitch")
    assert p.label in LABELS
    assert p.category == CATEGORIES[p.label]
    assert set(p.scores) == set(LABELS)
    assert math.isclose(sum(p.scores.values()), 1.0, rel_tol=1e-12)
    assert p.label == max(p.scores, key=p.scores.get)


def test_text_with_no_known_feature_gets_the_prior(model):
    """A text of unknown symbols scores the intercept alone, without dividing by zero."""
    p = model.predict("ꙮꙮꙮ ꙮ")
    assert p.label in LABELS
    assert math.isclose(sum(p.scores.values()), 1.0, rel_tol=1e-12)


def test_offensive_text_is_labelled_offensive(model):
    """A plainly offensive tweet gets the offensive-language label from both versions."""
    assert model.predict("shut up bitch, you ugly hoe").label == "offensive_language"


def test_scoring_is_deterministic(model):
    """The same text gives the same scores twice (the word cache must not change results)."""
    text = "RT @someone: those hoes aint loyal http://t.co/x &amp; you know it"
    assert model.predict(text) == model.predict(text)


def test_runtime_scorer_imports_no_sklearn_scipy_numpy_or_nltk(models_dir):
    """Serving must stay lean: loading and scoring pulls in none of the training libraries."""
    code = (
        "import sys; from infer.model import load_model; "
        f"[load_model({str(models_dir)!r} + '/' + v).predict('hello') for v in ('v1', 'v2')]; "
        "print(' '.join(m for m in ('sklearn', 'scipy', 'numpy', 'nltk', 'joblib', 'pickle') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert not loaded & {"sklearn", "scipy", "numpy", "nltk", "joblib"}, loaded
