"""Batch scoring: JSON lines in, one JSON object per line out, in order.

    python -m infer.predict --model models/v2 < texts.jsonl > scores.jsonl

Each input line is {"text": "..."}; each output line is {"label", "category", "scores"}, or
{"line": N, "issue": "..."} for a line that cannot be scored (the rest are still scored): a line is
checked by the API's own infer.request.read_text, so it is refused exactly when the API would refuse
that body, with the same issue (a text with nothing to classify, say).
Exit status: 0 all lines scored, 1 some lines failed, 2 the model could not be loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from infer.artifacts import ArtifactError
from infer.config import Config
from infer.model import LinearTextModel, load_model
from infer.request import RequestError, read_text

# The API's default limit, so a batch accepts exactly what the endpoint accepts.
MAX_TEXT_CHARS = Config.__dataclass_fields__["max_text_chars"].default


def score_line(model: LinearTextModel, line: str, max_chars: int = MAX_TEXT_CHARS) -> dict:
    """The output object for one input line (raises RequestError, as the API would answer it)."""
    return model.predict(read_text(line, False, max_chars)).as_dict()


def run(model: LinearTextModel, lines: TextIO, out: TextIO, max_chars: int = MAX_TEXT_CHARS) -> int:
    """Score every line; returns how many lines failed."""
    failed = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            result = score_line(model, line, max_chars)
        except RequestError as exc:
            failed += 1
            result = {"line": number, "issue": exc.issue}
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infer.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/v2", help="model directory (default models/v2)")
    parser.add_argument("--max-chars", type=int, default=MAX_TEXT_CHARS, help="longest text accepted")
    args = parser.parse_args(argv)
    try:
        model = load_model(args.model)
    except ArtifactError as exc:
        print(f"error: cannot load model: {exc}", file=sys.stderr)
        return 2
    # Undecodable bytes become U+FFFD rather than aborting the whole batch.
    stdin = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    failed = run(model, stdin, sys.stdout, args.max_chars)
    if failed:
        print(f"{failed} line(s) could not be scored", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
