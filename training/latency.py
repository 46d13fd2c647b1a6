"""The manifests' coarse latency expectation: `latency.ratio_to.<other model>`.

Measured at training time with the runtime scorer (infer.model.load_model(...).predict, the code
the inference function runs) on the probe texts (the union of the models' probe sets in their
answers.json: the texts the synthetic probe sends), both models in one process, interleaved text
by text so that a machine getting busier slows both alike. Per text: the median of REPEATS
timings; the ratio is the median over texts of (this model's time / the other's), the statistic
the PreTraffic hook measures on the deployed versions; rounded to one decimal.

It is machine-measured: another CPU gives another number, so the reproduction contract
(training/reproduce.py) leaves it out of the exact comparison and a retrain that reproduces the
models keeps the committed value. It is only a coarse expectation: the PreTraffic hook fails a
canary whose measured ratio exceeds it x 1.5 (a model slow from the start); the evidence judge
tests against the ratio the hook measured where the versions run, not against this one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from infer.model import load_model

REPEATS = 5
DECIMALS = 1
MIN_RATIO = 10.0**-DECIMALS  # a ratio that rounds to 0 would say "free": the smallest we record


def per_text_ms(
    predictors: Mapping[str, Callable[[str], Any]],
    texts: Sequence[str],
    repeats: int = REPEATS,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """{model: per-text median ms over `repeats`}, the models timed in turn on each text (after
    one untimed pass that warms caches, as traffic does on a deployed version)."""
    if not texts or repeats < 1:
        raise ValueError("need at least one text and one repeat")
    names = sorted(predictors)
    for text in texts:
        for name in names:
            predictors[name](text)
    samples: dict[str, list[list[float]]] = {n: [[] for _ in texts] for n in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]  # neither model always goes first
        for i, text in enumerate(texts):
            for name in order:
                started = clock()
                predictors[name](text)
                samples[name][i].append((clock() - started) * 1000.0)
    return {n: [statistics.median(s) for s in samples[n]] for n in names}


def ratio(mine: Sequence[float], theirs: Sequence[float]) -> float:
    """Median over texts of mine / theirs (texts timed at 0 on either side left out)."""
    ratios = [a / b for a, b in zip(mine, theirs, strict=True) if a > 0 and b > 0]
    if not ratios:
        raise ValueError("no text with a positive time for both models")
    return statistics.median(ratios)


def rounded(value: float) -> float:
    return max(MIN_RATIO, round(value, DECIMALS))


def measure(
    model_dirs: Mapping[str, Path],
    texts: Sequence[str],
    repeats: int = REPEATS,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, dict[str, Any]]:
    """{model: its manifest's `latency` entry} for every model in model_dirs (>= 2 models)."""
    if len(model_dirs) < 2:
        return {}
    predictors = {name: load_model(path).predict for name, path in model_dirs.items()}
    times = per_text_ms(predictors, texts, repeats, clock)
    out = {}
    for name in sorted(times):
        out[name] = {
            "ratio_to": {
                other: rounded(ratio(times[name], times[other])) for other in sorted(times) if other != name
            },
            "median_ms": round(statistics.median(times[name]), 3),
            "texts": len(texts),
            "repeats": repeats,
            "method": "runtime scorer on the probe texts, models interleaved; median per text over the "
            "repeats, ratio = median over texts; machine-measured, kept across reproducing retrains",
        }
    return out
