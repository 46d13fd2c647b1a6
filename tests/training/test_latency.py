"""The manifests' machine-measured latency expectation (training/latency.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from training import latency

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    """A clock each fake model moves by its own cost per text."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[tuple[str, str]] = []

    def __call__(self) -> float:
        return self.now

    def model(self, name: str, seconds_per_char: float):
        def predict(text: str) -> str:
            self.calls.append((name, text))
            self.now += seconds_per_char * len(text)
            return name

        return predict


def test_per_text_times_are_medians_over_repeats_and_the_ratio_the_median_of_per_text_ratios():
    """Model b costs 3x model a on every text: per-text ms are exact and the ratio is 3 both ways
    round (1/3 for a)."""
    clock = FakeClock()
    predictors = {"a": clock.model("a", 0.001), "b": clock.model("b", 0.003)}
    texts = ["x", "xx", "xxxx"]
    times = latency.per_text_ms(predictors, texts, repeats=3, clock=clock)
    assert times["a"] == pytest.approx([1.0, 2.0, 4.0])
    assert times["b"] == pytest.approx([3.0, 6.0, 12.0])
    assert latency.ratio(times["b"], times["a"]) == pytest.approx(3.0)
    assert latency.ratio(times["a"], times["b"]) == pytest.approx(1 / 3)


def test_the_models_are_interleaved_text_by_text_and_alternate_who_goes_first():
    """One warm-up pass, then every text timed for both models in turn, the order flipping each
    repeat: a machine slowing down mid-run slows both alike."""
    clock = FakeClock()
    predictors = {"a": clock.model("a", 0.001), "b": clock.model("b", 0.001)}
    latency.per_text_ms(predictors, ["t1", "t2"], repeats=2, clock=clock)
    timed = clock.calls[4:]  # after the warm-up pass
    assert timed == [("a", "t1"), ("b", "t1"), ("a", "t2"), ("b", "t2")] + [
        ("b", "t1"), ("a", "t1"), ("b", "t2"), ("a", "t2")
    ]  # fmt: skip


def test_ratios_round_to_one_decimal_and_never_to_zero():
    """7.26 -> 7.3; a model 20x faster is recorded as 0.1, not 0 (which would mean free)."""
    assert latency.rounded(7.26) == 7.3
    assert latency.rounded(0.04) == latency.MIN_RATIO == 0.1


def test_bad_input_is_refused():
    """No text, no repeat or no positive time: a ValueError, not a ratio of nothing."""
    with pytest.raises(ValueError):
        latency.per_text_ms({"a": str}, [], repeats=1)
    with pytest.raises(ValueError):
        latency.per_text_ms({"a": str}, ["x"], repeats=0)
    with pytest.raises(ValueError):
        latency.ratio([0.0], [1.0])


def test_measure_times_the_committed_models_with_the_runtime_scorer():
    """On the committed v1 and v2 (a few texts): each gets ratio_to the other, rounded to 0.1,
    positive, and the entry says on how many texts and repeats."""
    texts = ["have a nice day", "you are trash lol", "go back where you came from"]
    measured = latency.measure({"v1": ROOT / "models/v1", "v2": ROOT / "models/v2"}, texts, repeats=2)
    assert set(measured) == {"v1", "v2"}
    for name, other in (("v1", "v2"), ("v2", "v1")):
        entry = measured[name]
        assert set(entry["ratio_to"]) == {other}
        value = entry["ratio_to"][other]
        assert value >= latency.MIN_RATIO and round(value, 1) == value
        assert (entry["texts"], entry["repeats"]) == (3, 2)


def test_one_model_alone_has_nothing_to_compare_with():
    """A single model gets no latency entry (no other model to be a ratio to)."""
    assert latency.measure({"v2": ROOT / "models/v2"}, ["text"]) == {}
