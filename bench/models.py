"""v1 and v2 next to the natural-js peer on the test split, measured in one run.

    python -m bench.models [--data CSV] [--json]

Quality (accuracy, weighted and macro F1, hate-speech F1), artifact size, load time (median
of repeated in-process loads) and per-text latency (each test text scored once, in order,
median and p99). The peer is the seed service's model run by Node.js.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from bench import peer
from infer.model import LABELS, load_model
from training import evaluate
from training.data import data_path, load

ROOT = Path(__file__).resolve().parent.parent
LOADS = 15


def quality(truth: list[str], preds: list[str]) -> dict:
    """The headline figures of training.evaluate.report, the same code the manifests use."""
    r = evaluate.report([LABELS.index(t) for t in truth], [LABELS.index(p) for p in preds])
    keys = ("accuracy", "macro_f1", "weighted_f1")
    return {**{k: r[k] for k in keys}, "hate_f1": r["per_class"]["hate_speech"]["f1"]}


def measure_model(version: str, texts: list[str], truth: list[str]) -> dict:
    root = ROOT / "models" / version
    loads = []
    for _ in range(LOADS):
        t = time.perf_counter()
        model = load_model(root)
        loads.append((time.perf_counter() - t) * 1e3)
    preds, lat = [], []
    for text in texts:
        t = time.perf_counter()
        preds.append(model.predict(text).label)
        lat.append((time.perf_counter() - t) * 1e3)
    lat.sort()
    size = sum(f["bytes"] for f in model.manifest["files"].values())
    return {
        "model": f"{version} ({model.manifest['model']['kind']})",
        **quality(truth, preds),
        "artifact_mb": size / 1e6,
        "load_ms": statistics.median(loads),
        "per_text_ms_p50": lat[len(lat) // 2],
        "per_text_ms_p99": lat[int(len(lat) * 0.99)],
    }


def measure_peer(data: Path) -> dict | None:
    try:
        r = peer.measure(data)
    except (peer.PeerUnavailable, OSError) as exc:
        print(f"natural-js peer not measured: {exc}", file=sys.stderr)
        return None
    return {
        "model": "natural-js peer (BayesClassifier)",
        "accuracy": r["accuracy"],
        "macro_f1": r["macro_f1"],
        "weighted_f1": r["weighted_f1"],
        "hate_f1": r["f1"]["hate_speech"],
        "artifact_mb": r["model_bytes"] / 1e6,
        "load_ms": r["load_ms"],
        "per_text_ms_p50": r["classify_ms_p50"],
        "per_text_ms_p99": r["classify_ms_p99"],
    }


def render(rows: list[dict]) -> str:
    head = (
        "| model | accuracy | weighted F1 | macro F1 | hate F1 | artifact MB | load ms "
        "| per text ms p50 / p99 |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['accuracy']:.3f} | {r['weighted_f1']:.3f} | {r['macro_f1']:.3f} | "
            f"{r['hate_f1']:.2f} | {r['artifact_mb']:.2f} | {r['load_ms']:.1f} | "
            f"{r['per_text_ms_p50']:.3f} / {r['per_text_ms_p99']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.models", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="labelled CSV (default $HATE_DATA or ../shared/data)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    args = parser.parse_args(argv)
    ds = load(args.data)
    texts = [r.text for r in ds.test]
    truth = [LABELS[r.label] for r in ds.test]
    rows = [measure_model(v, texts, truth) for v in ("v1", "v2")]
    peer_row = measure_peer(data_path(args.data))
    if peer_row:
        rows.append(peer_row)
    print(json.dumps(rows, indent=2) if args.json else render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
