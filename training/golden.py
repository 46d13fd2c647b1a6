"""Write the golden set (a fixed sample of the test split) for the pre-traffic check.

    python -m training.golden --out PATH [--data CSV] [--n 300]

Run at build time (sam build), never committed: the data set stays out of the repository.
Standard library only, so the SAM build step needs no virtualenv.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.data import LABELS, golden_set, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.golden", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="JSON-lines file to write")
    parser.add_argument("--data", default=None, help="labelled CSV (default $HATE_DATA or ../shared/data)")
    parser.add_argument("--n", type=int, default=300, help="rows in the golden set (default 300)")
    args = parser.parse_args(argv)
    try:
        dataset = load(args.data)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = golden_set(dataset, args.n)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({"text": row.text, "label": LABELS[row.label]}, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} golden rows to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
