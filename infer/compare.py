"""Score texts with every model version in models/ side by side.

python -m infer.compare [TEXT ...]      (no TEXT: a built-in handful of samples)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infer.artifacts import ArtifactError
from infer.model import load_model

MODELS = Path(__file__).resolve().parent.parent / "models"
SAMPLES = (
    "Have a lovely weekend, see you at the game on Sunday!",
    "This traffic is a bitch, I'm going to be late again",
    "shut up you stupid hoe",
    "those people are trash and should all be sent back where they came from",
    "Yankees lose again, what a terrible season",
)


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infer.compare", description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="*", help="texts to score (default: built-in samples)")
    parser.add_argument("--models", default=str(MODELS), help="folder holding the model versions (vN/)")
    args = parser.parse_args(argv)
    root = Path(args.models)
    found = sorted(
        (p.parent.name for p in root.glob("v*/manifest.json") if p.parent.name[1:].isdigit()),
        key=lambda v: int(v[1:]),
    )
    if not found:
        print(f"error: no model (vN/manifest.json) in {root}", file=sys.stderr)
        return 2
    try:
        models = [load_model(root / v) for v in found]
    except ArtifactError as exc:
        print(f"error: cannot load model: {exc}", file=sys.stderr)
        return 2
    texts = args.texts or list(SAMPLES)
    print(f"{'text':44}" + "".join(f" {v:>22}" for v in found))
    print("-" * (44 + 23 * len(found)))
    for text in texts:
        cells = []
        for model in models:
            p = model.predict(text)
            cells.append(f"{p.category} {p.scores[p.label]:.2f}")
        print(f"{shorten(text, 44):44}" + "".join(f" {c:>22}" for c in cells))
    for model in models:
        t = model.manifest["metrics"]["test"]
        print(
            f"{model.version}: test accuracy {t['accuracy']:.3f}, macro-F1 {t['macro_f1']:.3f}, "
            f"weighted-F1 {t['weighted_f1']:.3f} (models/{model.version}/EVALUATION.md)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
