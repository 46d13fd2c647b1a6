"""Logs Insights answers of a simulated canary window, shared by the sources, gate and judge tests.

v1 (baseline, function version 6) -> v2 (canary, version 7): each text has an old label (v1's)
and a new one (v2's); every record carries the other model's label in the shadow. Live requests
come as the counts query's rows, probe requests as rows of the probe query.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from datetime import UTC, datetime

from botocore.stub import ANY

from canary.probe import probe_request_id
from canary.records import LABELS

HATE, OFFENSIVE, NEITHER = LABELS
BASE, CANARY = "6", "7"
T0 = 1795478400.0  # 2026-11-24 00:00:00 UTC: the canary starts
WINDOW = 300.0
RATIO = 0.489 / 0.277  # v2 / v1 handler medians (BENCHMARKS.md)
# (old label, new label) of the texts, like v1 -> v2 on the test split
JOINT = {
    (HATE, HATE): 5, (HATE, OFFENSIVE): 12, (HATE, NEITHER): 4, (OFFENSIVE, OFFENSIVE): 58,
    (OFFENSIVE, HATE): 2, (OFFENSIVE, NEITHER): 3, (NEITHER, NEITHER): 14, (NEITHER, OFFENSIVE): 2,
}  # fmt: skip
MANIFESTS = {
    "v1": {"version": "v1"},
    "v2": {"version": "v2", "latency": {"ratio_to": {"v1": RATIO}}},
}


def stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def cells(**fields) -> list[dict[str, str]]:
    return [{"field": k.replace("__", "."), "value": str(v)} for k, v in fields.items() if v is not None]


def live_count_rows(
    rate: float, *, share: float = 0.1, window: float = WINDOW, forced: float = 0.0, error_rate: float = 0.001
) -> list[list[dict[str, str]]]:
    """The counts query's rows for `rate` live req/s over the window, `share` to the canary; a
    `forced` share of the canary's answers says hate_speech whatever the text (a broken model)."""
    total = round(rate * window)
    weight = sum(JOINT.values())
    rows = []
    for version, model, n in (
        (BASE, "v1", total - round(total * share)),
        (CANARY, "v2", round(total * share)),
    ):
        errors = round(n * error_rate)
        ok = Counter()
        split = {pair: (n - errors) * w // weight for pair, w in JOINT.items()}
        split[(OFFENSIVE, OFFENSIVE)] += n - errors - sum(split.values())  # exact total
        for (old, new), k in split.items():
            served, shadow_model, shadow = (old, "v2", new) if model == "v1" else (new, "v1", old)
            bad = round(k * forced) if model == "v2" else 0
            ok[(served, shadow_model, shadow)] += k - bad
            ok[(HATE, shadow_model, shadow)] += bad
        for (served, shadow_model, shadow), k in ok.items():
            shadows = {"shadow_v1": "-", "shadow_v2": "-", f"shadow_{shadow_model}": shadow}
            rows.append(
                cells(
                    function_version=version, model_version=model, status=200, answer=served, **shadows, n=k
                )
            )
        rows.append(
            cells(
                function_version=version,
                model_version=model,
                status=500,
                answer="-",
                shadow_v1="-",
                shadow_v2="-",
                n=errors,
            )
        )
    return rows


def latency_rows() -> list[list[dict[str, str]]]:
    return [
        cells(function_version=BASE, n=1, p50=0.28, p90=0.4, p99=0.9),
        cells(function_version=CANARY, n=1, p50=0.49, p90=0.7, p99=1.4),
    ]


def probe_texts(n: int = 300, seed: int = 3) -> list[tuple[str, str, str]]:
    """(row id, old label, new label) of a probe set."""
    rng = random.Random(seed)
    pairs = rng.choices(list(JOINT), weights=list(JOINT.values()), k=n)
    return [(f"r{i}", old, new) for i, (old, new) in enumerate(pairs)]


def known_answers(texts: list[tuple[str, str, str]]) -> dict[str, dict[str, str]]:
    return {"v1": {r: old for r, old, _ in texts}, "v2": {r: new for r, _, new in texts}}


def answers_document(labels_by_row: dict[str, str]) -> dict:
    """A models/<v>/answers.json (known-answers/1, training/answers.py) for these rows."""
    rows = sorted(labels_by_row)
    return {
        "format": "known-answers/1",
        "split": "test",
        "n": len(rows),
        "row_ids": rows,
        "labels": list(LABELS),
        "answers": "".join(str(LABELS.index(labels_by_row[r])) for r in rows),
    }


def write_models(folder, texts) -> None:
    """models/<v>/manifest.json (naming its known answers) and answers.json for v1 and v2."""
    for version, manifest in MANIFESTS.items():
        (folder / version).mkdir(parents=True)
        manifest = {**manifest, "known_answers": {"file": "answers.json"}}
        (folder / version / "manifest.json").write_text(json.dumps(manifest))
        doc = answers_document(known_answers(texts)[version])
        (folder / version / "answers.json").write_text(json.dumps(doc))


def probe_rows(
    texts: list[tuple[str, str, str]],
    *,
    rate: float = 5.0,
    window: float = WINDOW,
    forced: float = 0.0,
    seed: int = 1,
) -> list[list[dict[str, str]]]:
    """Rows of the probe query: `rate` texts/s, each to both versions under one probe id."""
    rng = random.Random(seed)
    rows = []
    for seq in range(int(rate * window)):
        row_id, old, new = texts[seq % len(texts)]
        rid = probe_request_id("run1", row_id, seq)
        ts = T0 + seq / rate
        canary_label = HATE if rng.random() < forced else new
        for version, model, label, shadow, ms in (
            (BASE, "v1", old, {"shadow__v2": new}, 0.277 * math.exp(0.23 * rng.gauss(0, 1))),
            (CANARY, "v2", canary_label, {"shadow__v1": old}, 0.489 * math.exp(0.33 * rng.gauss(0, 1))),
        ):
            rows.append(
                cells(
                    **{"@timestamp": stamp(ts)},
                    correlation_id=rid,
                    function_version=version,
                    model_version=model,
                    latency_ms=round(ms, 4),
                    status=200,
                    label=label,
                    **shadow,
                )
            )
    return rows


def stub_window(
    stub, live, latency, probes, *, log_group="/aws/lambda/fn", start=None, end=None, limit=10_000
):
    """The three queries of LogsInsightsSource.evidence_window, in its order: counts, latency,
    probes. Every one must ask for at most `limit` rows (the Stubber checks the parameter)."""
    for query_id, rows in (("counts", live), ("latency", latency), ("probes", probes)):
        params = {
            "logGroupName": log_group,
            "startTime": ANY if start is None else start,
            "endTime": ANY if end is None else end,
            "queryString": ANY,
            "limit": limit,
        }
        stub.add_response("start_query", {"queryId": query_id}, params)
        stub.add_response("get_query_results", {"status": "Complete", "results": rows}, {"queryId": query_id})


HOOK_LOG_GROUP = "/aws/lambda/CodeDeployHook_app-uat-pretraffic"


def hook_record(ratio: float | None, deployment_id: str = "d-ABC123") -> dict:
    """The PreTraffic hook's "pretraffic check" record of a deployment (canary.hook.handle)."""
    reference = {"ratio": ratio, "pairs": 4953 if ratio else 0, "reason": "measured" if ratio else "none"}
    return {
        "message": "pretraffic check",
        "deployment_id": deployment_id,
        "status": "Succeeded",
        "result": {"status": "Succeeded", "latency_reference": reference},
    }


def stub_hook_record(stub, record: dict | None, *, log_group: str = HOOK_LOG_GROUP, query_id: str = "hook"):
    """One canary.sources.hook_record query: the hook's record (None: not visible yet)."""
    stub.add_response(
        "start_query",
        {"queryId": query_id},
        {"logGroupName": log_group, "startTime": ANY, "endTime": ANY, "queryString": ANY, "limit": 1},
    )
    rows = [] if record is None else [cells(**{"@timestamp": stamp(T0 - 60), "@message": json.dumps(record)})]
    stub.add_response("get_query_results", {"status": "Complete", "results": rows}, {"queryId": query_id})
