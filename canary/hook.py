"""The PreTraffic hook: handler `canary.hook.lambda_handler`, run by CodeDeploy before any user
request reaches the new version.

It sends every text of the test split (test_texts.jsonl, {"id": "<row id>", "text"} lines built
at `sam build` by training/golden.py) to the new version as API Gateway proxy events, a bounded
pool of them at once, and checks:
  * artifacts: the model files it ships verify against their manifest (sha256), answers.json too;
  * known answers: every answer equals the label the model's answers.json recorded for that row
    id. Models are deterministic (the closest top-two margin on the test split is 0.0012 in
    log-probability), so one differing answer fails the deployment, naming the row ids, never
    the texts. A 1 % forced-label fault changes ~40 of the 4,953 answers: caught 99.99 % of the
    time, where the old label-mix check (TVD 0.02 on 300 golden texts) caught 0 %;
  * errors: no request fails (a model whose files failed their checksum answers 500 to all);
  * model version: every answer came from the expected model;
  * latency: the median round trip is sane; time: every text was sent before the deadline;
  * the latency reference: every text also goes to the baseline (the alias's current version
    before the shift; both versions are read from the deployment, canary.sources.
    deployment_target), paired by row id. Its answers must be ITS model's known answers (a
    baseline disagreeing voids the comparison: Failed, saying so). The reference is the median
    over texts of canary / baseline handler latency (the X-Handler-Latency-Ms header, which
    infer.app sets on hook and probe answers only): the ratio the evidence judge and the gate
    expect of the canary's probe latencies. It is logged in the "pretraffic check" record
    (result.latency_reference, with the deployment_id) where they read it. Checked against the
    manifests' coarse ratio (latency.ratio_to, canary.evidence.expected_latency_ratio): above
    max(1, that ratio) x HOOK_MAX_LATENCY_FACTOR (1.5) the canary is slow from the start. The
    floor of 1: handler time adds the same request overhead to both versions, which pulls the
    ratio toward 1, so a model 10x faster in the scorer alone may well measure ~1 here.
  * the behavioural suite: every case of the suite (training/suite/cases.jsonl, shipped in the
    package as suite.jsonl) goes to the new version, once, and every answer must equal the label
    the model's suite_answers.json recorded for that case id (canary.suite_answers). One differing
    answer fails the deployment, naming how many of the suite's cases differ and the first case
    ids, never the texts. The package's suite must be the one the answers were recorded on (same
    fingerprint of the (id, text) pairs as the manifest's suite.suite_sha256: else "rebuild"), and
    a model without a suite entry (trained before issue 13) fails with "retrain with make train".
    A problem with the suite or its answers fails before anything is sent.
The golden set's accuracy floor and label mix are no longer checked: the same label on every
test text implies the same accuracy and the same mix, and a different one already fails.

The time budget (Timeout 300 s, nothing sent in the last HOOK_TIME_MARGIN_S, 15 s): the known
answers, 4,953 texts to both versions with HOOK_CONCURRENCY (8) in flight, ~20 s at 1,024 MB
(template.yaml: ~2 ms of wall time per invoke); the suite, 364 texts to the new version alone in
the same bounded pool right after them, 4 % of the first pass's invokes: under 1 s; then the
latency reference, the two models' probe sets (331 texts for v2/v3, 386 for v1/v2, 600 at most)
to both at the probe's pace (7 texts/s: 47-55 s, 86 s at most). About 80 s of the 285 s, under
110 s at worst (tests/unit/test_hook.py runs it at these sizes on a simulated clock). The suite is
not paced: it checks answers, not latency, as the known-answer pass does, and it runs before the
reference pass, which still meets environments at least as warm as before. Texts not answered
before the deadline fail the check that needed them (`time`, `suite answers`), never a late report.

Whatever happens (a failed check, a missing file, an exception, the clock running out) it
reports Succeeded or Failed with put_lifecycle_event_hook_execution_status: CodeDeploy is
never left waiting. The checking core, run_pretraffic, takes an `invoke` callable (and an
optional `invoke_baseline`), so the local stack runs this same code against its own function
processes.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger

from canary import suite_answers
from canary.config import MAX_HOOK_CONCURRENCY, HookConfig
from canary.evidence import expected_latency_ratio, scheduled_rate
from canary.manifests import ManifestError, load_manifests
from canary.proxy_event import rest_proxy_event
from canary.records import LABELS
from canary.sources import HOOK_LOG_MESSAGE, aws_client, deployment_target, report_status
from canary.stats import median
from infer.sources import PRETRAFFIC_REQUEST_PREFIX

# An API Gateway proxy event in, the proxy response ({"statusCode", "headers", "body"}) out.
Invoke = Callable[[dict[str, Any]], Mapping[str, Any]]

SUCCEEDED, FAILED = "Succeeded", "Failed"
ANSWERS_FORMAT = "known-answers/1"  # training/answers.py FORMAT
MAX_NAMED_ROWS = 20  # row ids named in a reason; the details carry up to MAX_LISTED_ROWS
MAX_NAMED_CASES = 10  # suite case ids named in a reason (the details carry up to MAX_LISTED_ROWS)
SUITE_REQUEST_TAG = "suite"  # suite request ids: pretraffic-<run id>-suite-<case id>
MAX_LISTED_ROWS = 500
NOT_SENT, NO_ANSWER = "not sent: out of time", "no answer before the deadline"
LATENCY_HEADER = "X-Handler-Latency-Ms"  # infer.app.LATENCY_HEADER (the lean hook does not import it)
logger = Logger(service="canary-pretraffic")


class HookError(RuntimeError):
    """The hook cannot check the new version (missing known-answer texts, ...)."""


@dataclass(frozen=True)
class KnownText:
    """One text of the test split and its row id (the data set's first column)."""

    row_id: int
    text: str


@dataclass(frozen=True)
class SuiteCase:
    """One case of the behavioural suite: its id and text (the text is ours, but only ids are named)."""

    case_id: str
    text: str


@dataclass(frozen=True)
class Answer:
    """What the new version answered to one request."""

    status: int | None  # HTTP status; None when nothing came back
    label: str | None
    model_version: str | None  # the X-Model-Version header
    latency_ms: float  # the invoke's round trip, measured here
    error: str | None = None  # why the request counts as failed
    handler_ms: float | None = None  # the X-Handler-Latency-Ms header: the handler's own time


@dataclass(frozen=True)
class Check:
    """One pre-traffic check and its outcome."""

    name: str
    passed: bool
    observed: Any
    threshold: Any
    reason: str


@dataclass(frozen=True)
class LatencyReference:
    """The canary/baseline handler-latency ratio measured on the known-answer texts."""

    ratio: float | None  # median over paired texts of canary ms / baseline ms; None: not measured
    pairs: int  # texts with a handler time from both versions
    canary_median_ms: float | None
    baseline_median_ms: float | None
    baseline_version: str | None
    baseline_model: str | None
    reason: str  # how it was measured, or why there is none

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HookResult:
    """All checks of one pre-traffic run."""

    checks: tuple[Check, ...]
    sent: int
    answered: int
    model_version: str | None
    details: Mapping[str, Any] = field(default_factory=dict)
    reference: LatencyReference | None = None  # None: the baseline was not asked

    @property
    def latency_reference(self) -> float | None:
        """The measured ratio the judge expects of the canary (None: none measured)."""
        return self.reference.ratio if self.reference else None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def status(self) -> str:
        return SUCCEEDED if self.passed else FAILED

    @property
    def reason(self) -> str:
        failed = [c for c in self.checks if not c.passed]
        if not failed:
            suite = self.details.get("suite_texts")
            also = f" and {suite} suite requests" if suite else ""
            n = len(self.checks)
            return f"all {n} pre-traffic checks passed on {self.sent} known-answer requests{also}"
        return "; ".join(f"{c.name}: {c.reason}" for c in failed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "sent": self.sent,
            "answered": self.answered,
            "model_version": self.model_version,
            "checks": [asdict(c) for c in self.checks],
            "details": dict(self.details),
            "latency_reference": self.reference.as_dict() if self.reference else None,
        }


def load_texts(path: str | Path) -> list[KnownText]:
    """The known-answer texts: JSON lines {"id": "<row id>", "text": str}, row ids unique."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise HookError(
            f"{path}: known-answer texts missing (built by `python -m training.golden` at sam build)"
        ) from None
    rows: list[KnownText] = []
    seen: set[int] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            row_id, text = data["id"], data["text"]
        except (ValueError, KeyError, TypeError) as exc:
            raise HookError(f"{path}:{number}: not a known-answer row ({exc.__class__.__name__})") from None
        if (
            not isinstance(row_id, str)
            or not (row_id.isascii() and row_id.isdecimal())
            or not isinstance(text, str)
        ):
            raise HookError(f"{path}:{number}: id must be a row id (decimal digits) and text a string")
        row = KnownText(row_id=int(row_id), text=text)
        if row.row_id in seen:
            raise HookError(f"{path}:{number}: row id {row.row_id} repeats")
        seen.add(row.row_id)
        rows.append(row)
    if not rows:
        raise HookError(f"{path}: no known-answer texts")
    return rows


def verify_artifacts(models_dir: Path, version: str) -> tuple[Check, Any]:
    """sha256 of every file the model's manifest lists (infer.artifacts): (check, ArtifactDir)."""
    from infer.artifacts import ArtifactDir, ArtifactError

    try:
        art = ArtifactDir(models_dir / version)
    except ArtifactError as exc:
        return Check("artifacts", False, str(exc), "every file matches its sha256", f"{exc}"), None
    files = len(art.manifest.get("files") or {})
    return (
        Check(
            "artifacts",
            True,
            f"{files} files verified",
            "every file matches its sha256",
            f"{files} files match",
        ),
        art,
    )


def recorded_answers(art: Any) -> dict[int, str]:
    """{row id: label} from the verified answers.json the manifest names (HookError if unusable).
    Read from the bytes the checksum was verified on, not from the file again."""
    entry = art.manifest.get("known_answers")
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise HookError(f"{art.root}: the manifest names no known answers: retrain with `make train`")
    try:
        doc = art.json(entry["file"])
        row_ids, labels, answers = doc["row_ids"], doc["labels"], doc["answers"]
        if doc.get("format") != ANSWERS_FORMAT or len(row_ids) != len(answers) or not row_ids:
            raise ValueError(f"not a {ANSWERS_FORMAT} document with one answer per row id")
        recorded = {int(r): labels[int(a)] for r, a in zip(row_ids, answers, strict=True)}
    except Exception as exc:  # whatever is wrong in it, the hook cannot judge with it
        raise HookError(f"{art.root / entry['file']}: unusable known answers ({exc})") from None
    if len(recorded) != len(row_ids) or not set(recorded.values()) <= set(LABELS):
        raise HookError(f"{art.root / entry['file']}: repeated row ids or labels outside {LABELS}")
    return recorded


def hook_event(text: str, row_id: int, config: HookConfig, run_id: str) -> dict[str, Any]:
    """The API Gateway REST proxy event for one known-answer request. Its request id,
    "pretraffic-<run id>-<row id>", keeps the judge from counting it as live traffic and ends
    with the row id (the probe_id of its log record), tying the record to its text."""
    request_id = f"{PRETRAFFIC_REQUEST_PREFIX}{run_id}-{row_id}"
    return direct_event(text, request_id, config.api_path, config.api_stage, check="pretraffic")


def suite_event(case: SuiteCase, config: HookConfig, run_id: str) -> dict[str, Any]:
    """The proxy event for one suite case: request id "pretraffic-<run id>-suite-<case id>" (a hook
    request to the judge, like the known-answer ones; its probe_id names the case, not the text)."""
    request_id = f"{PRETRAFFIC_REQUEST_PREFIX}{run_id}-{SUITE_REQUEST_TAG}-{case.case_id}"
    return direct_event(case.text, request_id, config.api_path, config.api_stage, check="pretraffic")


def direct_event(text: str, request_id: str, api_path: str, api_stage: str, *, check: str) -> dict[str, Any]:
    """The API Gateway REST proxy event of a request sent straight to a function version (the
    hook's and the probe's): `check` names the sender in a header and the user agent."""
    headers = {"Content-Type": "application/json", "Accept": "application/json", "X-Canary-Check": check}
    return rest_proxy_event(
        "POST",
        api_path,
        api_path,
        stage=api_stage,
        request_id=request_id,
        headers=headers.items(),
        body=json.dumps({"text": text}, ensure_ascii=False),
        identity={"sourceIp": "127.0.0.1", "userAgent": f"canary-{check}"},
    )


def response_header(response: Mapping[str, Any], name: str) -> str | None:
    """A header of a proxy response, from "headers" or "multiValueHeaders" (Powertools' REST
    resolver answers with the latter only), case-insensitively."""
    wanted = name.lower()
    for key, value in (response.get("headers") or {}).items():
        if str(key).lower() == wanted:
            return str(value)
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if str(key).lower() == wanted and values:
            return str(values[-1])
    return None


def _ask(invoke: Invoke, event: dict[str, Any], deadline: float | None, clock: Callable[[], float]) -> Answer:
    if deadline is not None and clock() >= deadline:
        return Answer(None, None, None, 0.0, error=NOT_SENT)
    started = clock()
    try:
        response = invoke(event)
    except Exception as exc:  # a failed invoke is a failed request, not a hook crash
        return Answer(
            None, None, None, (clock() - started) * 1000.0, error=f"invoke failed: {type(exc).__name__}"
        )
    elapsed = (clock() - started) * 1000.0
    if not isinstance(response, Mapping):
        return Answer(None, None, None, elapsed, error="not a proxy response")
    status = response.get("statusCode")
    version = response_header(response, "X-Model-Version")
    if response.get("error"):
        return Answer(status, None, version, elapsed, error=str(response["error"]))
    if status != 200:
        return Answer(status, None, version, elapsed, error=f"HTTP {status}")
    try:
        body = json.loads(response.get("body") or "")
        label = body["label"]
    except (ValueError, KeyError, TypeError):
        return Answer(status, None, version, elapsed, error="200 without a label in a JSON body")
    if label not in LABELS:
        return Answer(status, None, version, elapsed, error="label not one of the API's labels")
    return Answer(status, label, version, elapsed, handler_ms=handler_ms(response))


def handler_ms(response: Mapping[str, Any]) -> float | None:
    """The X-Handler-Latency-Ms header as a finite non-negative number, else None (a version
    that predates the header, or a malformed value)."""
    raw = response_header(response, LATENCY_HEADER)
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def send_paired(
    rows: Sequence[KnownText],
    invokes: Sequence[Invoke],
    config: HookConfig,
    run_id: str,
    deadline: float | None,
    clock: Callable[[], float],
) -> list[tuple[Answer, ...]]:
    """Per row, the same event to each invoke in turn (one answer each, in invokes' order);
    config.concurrency rows in flight, so as many requests at once as with one invoke."""

    events = [hook_event(row.text, row.row_id, config, run_id) for row in rows]
    return send_events(events, invokes, config, deadline, clock)


def send_events(
    events: Sequence[dict[str, Any]],
    invokes: Sequence[Invoke],
    config: HookConfig,
    deadline: float | None,
    clock: Callable[[], float],
) -> list[tuple[Answer, ...]]:
    """Per event, each invoke in turn; config.concurrency events in flight; past the deadline
    nothing more is sent and nothing more awaited (send_paired, and the suite's pass)."""

    def ask_each(event: dict[str, Any]) -> tuple[Answer, ...]:
        return tuple(_ask(invoke, event, deadline, clock) for invoke in invokes)

    pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="pretraffic")
    try:
        futures: list[Future[tuple[Answer, ...]]] = [pool.submit(ask_each, event) for event in events]
        wait(futures, timeout=None if deadline is None else max(0.0, deadline - clock()))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return [_outcome(f, len(invokes)) for f in futures]


def _outcome(future: Future[tuple[Answer, ...]], n: int) -> tuple[Answer, ...]:
    if not future.done() or future.cancelled():
        return (Answer(None, None, None, 0.0, NO_ANSWER),) * n
    try:
        return future.result()
    except Exception as exc:  # a response too odd to read is a failed request, not a hook crash
        return (Answer(None, None, None, 0.0, error=f"unreadable response: {type(exc).__name__}"),) * n


def _named(ids: Sequence[Any], limit: int = MAX_NAMED_ROWS) -> str:
    """The first `limit` ids, then how many more (a reason names ids, never texts)."""
    shown = ", ".join(str(i) for i in ids[:limit])
    more = len(ids) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def _differences(
    keyed: Iterable[tuple[Any, Answer]], recorded: Mapping[Any, str]
) -> tuple[int, list[tuple[Any, str, str]]]:
    """Of the answers by row id or case id: how many carry a label, and (id, recorded, answered) for
    each label that is not the recorded one. Shared by the known-answer and the suite checks."""
    answered = [(key, a.label) for key, a in keyed if a.label is not None]
    return len(answered), [(key, recorded[key], got) for key, got in answered if got != recorded[key]]


def _differ_reason(
    differ: Sequence[tuple[Any, str, str]], of: str, version: str, ids: str, limit: int
) -> str:
    """ "N of M <answers> differ from the labels <version> recorded (want -> got: n, ...): <ids> ..."."""
    changes = Counter(f"{want} -> {got}" for _, want, got in differ)
    return (
        f"{len(differ)} of {of} differ from the labels {version} recorded ("
        + ", ".join(f"{k}: {n}" for k, n in changes.most_common())
        + f"): {ids} {_named([key for key, *_ in differ], limit)}"
    )


def known_answers_check(
    rows: Sequence[KnownText], answers: Sequence[Answer], recorded: Mapping[int, str], version: str
) -> tuple[Check, list[int]]:
    """Every label answered must be the one recorded for its row (pure): (check, differing ids)."""
    answered, differ = _differences(((row.row_id, a) for row, a in zip(rows, answers, strict=True)), recorded)
    ids = [row_id for row_id, *_ in differ]
    observed = {"answered": answered, "differ": len(differ), "row_ids": ids[:MAX_NAMED_ROWS]}
    threshold = f"every answer equals the label {version} recorded for its row"
    if not answered:
        return Check("known answers", False, observed, threshold, "no answer to compare"), ids
    if differ:
        reason = _differ_reason(differ, f"{answered} answers", version, "row ids", MAX_NAMED_ROWS)
        return Check("known answers", False, observed, threshold, reason), ids
    reason = f"all {answered} answers equal the labels {version} recorded"
    return Check("known answers", True, observed, threshold, reason), ids


def check_answers(
    rows: Sequence[KnownText],
    answers: Sequence[Answer],
    recorded: Mapping[int, str],
    config: HookConfig,
    expected_version: str,
) -> tuple[list[Check], list[int]]:
    """The checks on what the new version answered (pure): (checks, row ids that differ)."""
    n = len(rows)
    unsent = sum(1 for a in answers if a.error in (NOT_SENT, NO_ANSWER))
    checks = []
    if unsent:
        checks.append(
            Check(
                "time", False, f"{n - unsent}/{n} answered in time", "all", "ran out of time before the end"
            )
        )
    failed = [a for a in answers if a.error and a.error not in (NOT_SENT, NO_ANSWER)]
    first = failed[0].error if failed else None
    hint = (
        " (a model that failed to load, e.g. a bad checksum, answers 500 to every request)" if failed else ""
    )
    checks.append(
        Check(
            "errors",
            len(failed) / n <= config.max_error_rate,
            f"{len(failed)}/{n} failed" + (f", first: {first}" if first else ""),
            f"<= {config.max_error_rate:.1%}",
            f"{len(failed)} of {n} requests failed{hint}" if failed else f"all {n} answered 200",
        )
    )
    served = Counter(a.model_version for a in answers if not a.error)
    wrong = {v: k for v, k in served.items() if v != expected_version}
    checks.append(
        Check(
            "model version",
            not wrong,
            dict(served),
            expected_version,
            f"answers came from {sorted(map(str, wrong))}, expected {expected_version}"
            if wrong
            else f"every answer came from {expected_version}",
        )
    )
    agreement, differ = known_answers_check(rows, answers, recorded, expected_version)
    checks.append(agreement)
    latencies = sorted(a.latency_ms for a in answers if not a.error)
    if latencies:
        med = median(latencies)
        checks.append(
            Check(
                "latency",
                med <= config.max_median_ms,
                round(med, 1),
                config.max_median_ms,
                f"median round trip {med:.1f} ms {'<=' if med <= config.max_median_ms else '>'} "
                f"{config.max_median_ms:g} ms",
            )
        )
    else:
        checks.append(Check("latency", False, None, config.max_median_ms, "no answer to time"))
    return checks, differ


def _known_texts(config: HookConfig, art: Any) -> tuple[list[Check], list[KnownText], dict[int, str]]:
    """The recorded answers and the texts to ask them of, and whether they cover each other."""
    recorded = recorded_answers(art)
    texts = {row.row_id: row for row in load_texts(config.known_texts_path)}
    missing = [r for r in recorded if r not in texts]
    rows = [texts[r] for r in recorded if r in texts]
    check = Check(
        "known-answer set",
        not missing,
        {"recorded": len(recorded), "texts": len(texts), "missing": len(missing)},
        "a text for every recorded row id",
        f"{len(missing)} of {len(recorded)} recorded rows have no text in {config.known_texts_path.name} "
        f"(built from other data?): row ids {_named(missing)}"
        if missing
        else f"{len(rows)} texts, one per recorded row",
    )
    return [check], rows, recorded


def suite_path(config: HookConfig) -> Path:
    """The suite the package ships: suite.jsonl next to the golden set (deploy/lambda.mk)."""
    return config.golden_path.with_name(suite_answers.PACKAGE_FILE)


def recorded_suite(art: Any, version: str) -> tuple[dict[str, str], str]:
    """({case id: label}, suite fingerprint) from the verified suite answers the manifest names
    (HookError saying what to do if there are none or they are unusable)."""
    entry = art.manifest.get("suite")
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise HookError(
            f"{version}'s manifest records no behavioural suite answers (a model trained before issue 13): "
            "retrain with `make train`"
        )
    try:
        doc = art.json(entry["file"])  # the bytes whose sha256 the manifest lists
        recorded = suite_answers.labels_by_id(doc)
        if doc.get("suite_sha256") != entry.get("suite_sha256") or not isinstance(entry["suite_sha256"], str):
            raise ValueError("its suite_sha256 is not the manifest's")
        if not recorded or not set(recorded.values()) <= set(LABELS):
            raise ValueError(f"no answers, or labels outside {LABELS}")
    except Exception as exc:  # whatever is wrong in it, the hook cannot judge with it
        raise HookError(
            f"{art.root / entry['file']}: unusable suite answers ({exc}): retrain with `make train`"
        ) from None
    return recorded, entry["suite_sha256"]


def suite_set(config: HookConfig, art: Any, version: str) -> tuple[Check, list[SuiteCase], dict[str, str]]:
    """The suite's cases to send and the labels recorded for them; a failed check (never an
    exception) when the model has none, they are unusable, or the package's suite is another."""
    name, threshold = "suite set", "the packaged suite is the one the recorded suite answers were made on"
    path = suite_path(config)
    try:
        recorded, recorded_sha = recorded_suite(art, version)
        try:
            pairs = suite_answers.read_texts(path)
        except FileNotFoundError:
            raise HookError(
                f"{path}: the hook's package has no suite (sam build copies training/suite/cases.jsonl "
                f"there as {suite_answers.PACKAGE_FILE}): rebuild"
            ) from None
        except (OSError, ValueError) as exc:
            raise HookError(f"the hook's suite is unreadable ({exc}): rebuild") from None
    except HookError as exc:
        return Check(name, False, None, threshold, str(exc)), [], {}
    packaged = suite_answers.fingerprint(pairs)
    observed = {"cases": len(pairs), "recorded": len(recorded), "suite_sha256": packaged}
    if packaged != recorded_sha:
        reason = (
            f"the hook's suite ({path.name}: {len(pairs)} cases, sha256 {packaged[:12]}) is not the one "
            f"{version}'s answers were recorded on ({len(recorded)} cases, sha256 {recorded_sha[:12]}): "
            f"rebuild (`make build`) with the suite {version} was trained on, or retrain it on this one"
        )
        return Check(name, False, observed, threshold, reason), [], {}
    cases = [SuiteCase(case_id, text) for case_id, text in pairs]
    reason = f"{len(cases)} suite cases, the ones {version}'s suite answers were recorded on"
    return Check(name, True, observed, threshold, reason), cases, recorded


def suite_check(
    cases: Sequence[SuiteCase], answers: Sequence[Answer], recorded: Mapping[str, str], version: str
) -> tuple[Check, list[str]]:
    """Every suite case answered, from `version`, with the label recorded for it (pure):
    (check, the case ids that differ). Unanswered cases fail it too: an unchecked case is no pass."""
    n = len(cases)
    answered, differ = _differences(((c.case_id, a) for c, a in zip(cases, answers, strict=True)), recorded)
    ids = [case_id for case_id, *_ in differ]
    missing = [a for a in answers if a.label is None]
    other_model = {
        str(a.model_version) for a in answers if a.label is not None and a.model_version != version
    }
    observed = {"cases": n, "answered": answered, "differ": len(differ)}
    observed["case_ids"] = ids[:MAX_NAMED_CASES]
    threshold = f"every suite case answered by {version} with the label {version} recorded for it"
    problems = []
    if differ:
        problems.append(_differ_reason(differ, f"{n} suite answers", version, "case ids", MAX_NAMED_CASES))
    if missing:
        problems.append(f"{len(missing)} of {n} suite cases got no answer (first: {missing[0].error})")
    if other_model:
        problems.append(f"suite answers came from {sorted(other_model)}, expected {version}")
    if not n:
        problems.append("no suite case to ask")
    if problems:
        return Check("suite answers", False, observed, threshold, "; ".join(problems)), ids
    reason = f"all {n} suite answers equal the labels {version} recorded"
    return Check("suite answers", True, observed, threshold, reason), ids


def suite_pass(
    cases: Sequence[SuiteCase],
    recorded: Mapping[str, str],
    invoke: Invoke,
    config: HookConfig,
    run_id: str,
    deadline: float | None,
    clock: Callable[[], float],
) -> tuple[Check, list[str]]:
    """Every suite case to the new version alone, in the known-answer pass's bounded pool (not
    paced: it checks answers, not latency), and the check on what came back."""
    events = [suite_event(case, config, run_id) for case in cases]
    answers = [answers[0] for answers in send_events(events, (invoke,), config, deadline, clock)]
    return suite_check(cases, answers, recorded, config.model_version or "")


def run_pretraffic(
    config: HookConfig,
    invoke: Invoke,
    *,
    invoke_baseline: Invoke | None = None,
    baseline_version: str | None = None,
    run_id: str = "local",
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> HookResult:
    """Check the new version through `invoke`; never raises for a bad version, only for a hook
    that cannot run (HookError and the like: the caller reports Failed).

    `invoke_baseline` (the alias's current version, named `baseline_version` in reasons): every
    text goes to it too, paired by row id, for the latency reference and the baseline's own known
    answers; None skips the pairing (latency_reference None, saying why). `deadline` is a clock()
    value after which no more requests are sent or awaited; `sleep` paces the latency reference's
    pass on `clock`. Nothing is sent when the model's files, its known answers or its suite
    answers (or the packaged suite) cannot be trusted: the deployment fails anyway.
    """
    version = config.model_version
    details: dict[str, Any] = {"new_version_arn": config.new_version_arn}
    if not version:
        check = Check(
            "artifacts", False, None, None, "MODEL_VERSION unset: no model to verify or answers to expect"
        )
        return HookResult(checks=(check,), sent=0, answered=0, model_version=None, details=details)
    artifacts, art = verify_artifacts(config.models_dir, version)
    if art is None:
        return HookResult(checks=(artifacts,), sent=0, answered=0, model_version=version, details=details)
    checks, rows, recorded = _known_texts(config, art)
    ready, cases, suite_recorded = suite_set(config, art, version)
    checks = [artifacts, *checks, ready]
    if not all(c.passed for c in checks):
        return HookResult(checks=tuple(checks), sent=0, answered=0, model_version=version, details=details)
    invokes = (invoke,) if invoke_baseline is None else (invoke, invoke_baseline)
    paired = send_paired(rows, invokes, config, run_id, deadline, clock)
    answers = [p[0] for p in paired]
    more, differ = check_answers(rows, answers, recorded, config, version)
    suite, differ_cases = suite_pass(cases, suite_recorded, invoke, config, run_id, deadline, clock)
    more.append(suite)
    details.update(
        texts=len(rows),
        differing_row_ids=differ[:MAX_LISTED_ROWS],
        suite_texts=len(cases),
        differing_case_ids=differ_cases[:MAX_LISTED_ROWS],
    )
    if invoke_baseline is None:
        reference = LatencyReference(
            None, 0, None, None, baseline_version, None,
            "no baseline version to pair with (invoke_baseline not given): no latency reference measured",
        )  # fmt: skip
    else:
        base_checks, model = baseline_checks(
            rows, [p[1] for p in paired], config, baseline_version or "baseline"
        )
        reference = warm_reference(
            rows, invokes, config, f"{run_id}-ref", deadline, clock, (version, model), baseline_version, sleep
        )
        if model is not None:
            base_checks.append(_reference_check(reference, config, version, model))
        more += base_checks
    return HookResult(
        checks=tuple(checks + more),
        sent=sum(1 for a in answers if a.error != NOT_SENT),
        answered=sum(1 for a in answers if not a.error),
        model_version=version,
        details=details,
        reference=reference,
    )


def baseline_checks(
    rows: Sequence[KnownText], baseline: Sequence[Answer], config: HookConfig, baseline_version: str
) -> tuple[list[Check], str | None]:
    """The baseline's own known answers (pure but for reading the baseline model's verified
    files): (checks, the baseline's model, None when it answered nothing)."""
    served = Counter(a.model_version for a in baseline if not a.error and a.model_version)
    model = served.most_common(1)[0][0] if served else None
    who = f"baseline version {baseline_version} ({model or 'no model'})"
    if model is None:
        why = f"{who} answered none of the {len(rows)} texts: no comparison possible"
        return [Check("baseline known answers", False, dict(served), "answers to compare", why)], None
    return [_baseline_agreement(rows, baseline, config, model, who)], model


def warm_reference(
    rows: Sequence[KnownText],
    invokes: Sequence[Invoke],
    config: HookConfig,
    run_id: str,
    deadline: float | None,
    clock: Callable[[], float],
    models: tuple[str, str | None],
    baseline_version: str | None,
    sleep: Callable[[float], None] = time.sleep,
) -> LatencyReference:
    """The latency reference, measured as the probe will measure: a second paired pass over the
    probe set's texts only, at the probe's pace. The ratio depends on the texts (their lengths and
    n-grams) and on how warm each environment is when a text arrives, so neither the first pass's
    timings (every text cold, 8 in flight) nor a pass sent back to back would be the ratio a healthy
    canary shows the probe (BENCHMARKS.md, "The latency reference and the pace")."""
    canary_model, baseline_model = models
    on_probe = probe_row_ids(config.models_dir, [canary_model, baseline_model])
    picked, texts = [row for row in rows if row.row_id in on_probe], "probe-set"
    if not picked:  # no probe set to measure on (answers without one): every text, said so
        picked, texts = list(rows), "known-answer"
    rate = config.reference_rate or scheduled_rate()
    paired = send_paced(picked, invokes, config, run_id, deadline, clock, rate=rate, sleep=sleep)
    return measure_reference(
        [p[0] for p in paired],
        [p[1] for p in paired],
        baseline_version or "baseline",
        baseline_model,
        texts=texts,
    )


def send_paced(
    rows: Sequence[KnownText],
    invokes: Sequence[Invoke],
    config: HookConfig,
    run_id: str,
    deadline: float | None,
    clock: Callable[[], float],
    *,
    rate: float,
    sleep: Callable[[float], None],
) -> list[tuple[Answer, ...]]:
    """Per row, the same event to every invoke at once (as the probe sends a text to both
    versions), one row every 1/rate s of `clock`, as canary.probe.run_probe paces its texts. Rows
    that would be due after `deadline` are not sent (fewer pairs, never a late hook)."""
    if not rate > 0:
        raise HookError(f"the latency reference's pace must be > 0 texts/s, got {rate!r}")
    paired: list[tuple[Answer, ...]] = []
    began = clock()
    with ThreadPoolExecutor(max_workers=len(invokes), thread_name_prefix="reference") as pool:
        for i, row in enumerate(rows):
            due = began + i / rate
            if deadline is not None and due >= deadline:
                break
            wait = due - clock()  # read once: a second read may be past `due` (sleep(< 0) raises)
            if wait > 0:
                sleep(wait)
            event = hook_event(row.text, row.row_id, config, run_id)
            paired.append(tuple(pool.map(lambda invoke, e=event: _ask(invoke, e, deadline, clock), invokes)))
    return paired


def _baseline_agreement(
    rows: Sequence[KnownText], baseline: Sequence[Answer], config: HookConfig, model: str, who: str
) -> Check:
    """The baseline's answers against ITS model's known answers: a baseline that disagrees
    voids the comparison the latency reference rests on."""
    name, void = "baseline known answers", "the paired comparison is void"
    artifacts, art = verify_artifacts(config.models_dir, model)
    if art is None:
        return Check(
            name, False, None, f"{model}'s verified known answers", f"{who}: {artifacts.reason}: {void}"
        )
    try:
        recorded = recorded_answers(art)
    except HookError as exc:
        return Check(name, False, None, f"{model}'s verified known answers", f"{who}: {exc}: {void}")
    mine = [(row, a) for row, a in zip(rows, baseline, strict=True) if row.row_id in recorded]
    mine = [(row, a) for row, a in mine if a.model_version in (None, model)]
    check, _ = known_answers_check([r for r, _ in mine], [a for _, a in mine], recorded, model)
    if check.passed:
        return Check(name, True, check.observed, check.threshold, f"{who}: {check.reason}")
    return Check(name, False, check.observed, check.threshold, f"{who}: {check.reason}: {void}")


def probe_row_ids(models_dir: Path, models: Sequence[str | None]) -> set[int]:
    """The row ids of the probe set the probe sends: the union of these models' probe rows (each
    model's answers.json, as training.golden builds probe.jsonl); empty when none is readable."""
    ids: set[int] = set()
    for model in filter(None, models):
        try:
            data = json.loads((Path(models_dir) / model / "answers.json").read_text(encoding="utf-8"))
            ids.update(int(r) for r in data["probe"]["row_ids"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # the artifact checks already fail a model without readable answers
    return ids


def measure_reference(
    canary: Sequence[Answer],
    baseline: Sequence[Answer],
    baseline_version: str,
    baseline_model: str | None,
    *,
    texts: str = "known-answer",
) -> LatencyReference:
    """Median over the texts both versions answered with a handler time of canary / baseline."""
    pairs = [
        (c.handler_ms, b.handler_ms)
        for c, b in zip(canary, baseline, strict=True)
        if not c.error and not b.error and c.handler_ms and b.handler_ms  # None or 0: no ratio
    ]
    if not pairs:
        timed = {v: sum(1 for a in answers if a.handler_ms is not None) for v, answers in
                 (("canary", canary), ("baseline", baseline))}  # fmt: skip
        why = (
            f"no text has a handler time ({LATENCY_HEADER}) from both versions (answers with one: "
            f"canary {timed['canary']}, baseline {timed['baseline']}; a version built before the "
            "header sends none)"
        )
        return LatencyReference(None, 0, None, None, baseline_version, baseline_model, why)
    ratio = median(sorted(c / b for c, b in pairs))  # stats.median takes sorted values
    canary_ms, baseline_ms = median(sorted(c for c, _ in pairs)), median(sorted(b for _, b in pairs))
    return LatencyReference(
        round(ratio, 4),
        len(pairs),
        round(canary_ms, 4),
        round(baseline_ms, 4),
        baseline_version,
        baseline_model,
        f"median over {len(pairs)} {texts} texts of canary/baseline {LATENCY_HEADER}",
    )


def _reference_check(
    ref: LatencyReference, config: HookConfig, canary_model: str, baseline_model: str
) -> Check:
    """The measured reference against the manifests' coarse ratio: max(1, it) x the factor."""
    name, factor = "latency reference", config.max_latency_factor
    if ref.ratio is None:
        return Check(
            name, False, None, "a measured ratio", f"{ref.reason}: the judge would have no reference"
        )
    try:
        expected = expected_latency_ratio(load_manifests(config.models_dir), baseline_model, canary_model)
    except ManifestError as exc:
        expected, problem = None, str(exc)
    else:
        problem = f"the manifests give no latency.ratio_to for {canary_model}/{baseline_model}: retrain"
    observed = {"ratio": ref.ratio, "pairs": ref.pairs, "expected": expected}
    if expected is None:
        return Check(name, False, observed, None, problem)
    bound = max(1.0, expected) * factor
    ok = ref.ratio <= bound
    reason = (
        f"measured {canary_model}/{baseline_model} handler latency ratio {ref.ratio:.2f} (median of "
        f"{ref.pairs} pairs: {ref.canary_median_ms:g} ms vs {ref.baseline_median_ms:g} ms) "
        f"{'<=' if ok else '>'} {bound:.2f} = max(1, the manifests' {expected:g}) x {factor:g}"
        + ("" if ok else ": the canary is slow from the start")
    )
    return Check(name, ok, observed, round(bound, 4), reason)


def lambda_invoker(lambda_client: Any, qualified_arn: str) -> Invoke:
    """An Invoke that calls the new version synchronously (lambda invoke RequestResponse)."""
    expected = qualified_arn.rsplit(":", 1)[-1]

    def invoke(event: dict[str, Any]) -> Mapping[str, Any]:
        response = lambda_client.invoke(
            FunctionName=qualified_arn, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
        )
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            return {
                "statusCode": None,
                "headers": {},
                "body": "",
                "error": f"function error {response['FunctionError']}",
            }
        executed = response.get("ExecutedVersion")
        if executed is not None and executed != expected:
            return {"statusCode": None, "headers": {}, "body": "", "error": f"ran version {executed}"}
        return json.loads(payload)

    return invoke


def baseline_of(codedeploy: Any, deployment_id: str, config: HookConfig) -> tuple[str, str]:
    """(qualified ARN, version) of the alias's current version, from the deployment itself
    (canary.sources.deployment_target, shared with the gate and the judge). HookError when the
    deployment does not shift to NEW_VERSION_ARN's version or has no other version to pair with."""
    target = deployment_target(codedeploy, deployment_id)
    function_arn, new_version = config.new_version_arn.rsplit(":", 1)
    if target.canary_version != new_version:
        raise HookError(
            f"deployment {deployment_id} shifts to version {target.canary_version}, but NEW_VERSION_ARN "
            f"names version {new_version}"
        )
    if not target.baseline_version.isdigit() or target.baseline_version == new_version:
        raise HookError(
            f"deployment {deployment_id}: current version {target.baseline_version!r} is not another "
            "published version to pair with"
        )
    return f"{function_arn}:{target.baseline_version}", target.baseline_version


def check_alias_serves(
    lambda_client: Any, config: HookConfig, baseline_version: str, deployment_id: str
) -> None:
    """HookError unless the alias still serves the deployment's CurrentVersion alone. After a
    manual rollback (`make rollback`: update-alias outside CloudFormation) the stack's record of
    the alias is stale, and CodeDeploy could shift traffic from that stale version, the one just
    rolled back from: fail before any traffic moves rather than serve it again."""
    function_arn = config.new_version_arn.rsplit(":", 1)[0]
    alias = lambda_client.get_alias(FunctionName=function_arn, Name=config.alias)
    serving = str(alias.get("FunctionVersion"))
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    if serving != baseline_version or weights:
        also = f" (and {', '.join(f'{v} at {w:.0%}' for v, w in weights.items())})" if weights else ""
        raise HookError(
            f"alias {config.alias} serves version {serving}{also}, but deployment {deployment_id} would "
            f"shift traffic from version {baseline_version}: the stack's record of the alias is stale "
            "(a manual rollback?); CodeDeploy would route users to a version that is not live. Nothing "
            "was sent: reconcile first (README, Rolling back)"
        )


def handle(
    event: Mapping[str, Any],
    *,
    codedeploy: Any,
    lambda_client: Any,
    environ: Mapping[str, str] | None = None,
    remaining_ms: Callable[[], int] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """The hook's whole job for one CodeDeploy event; reports Failed on any exception."""
    deployment_id = event.get("DeploymentId")
    execution_id = event.get("LifecycleEventHookExecutionId")
    if not deployment_id or not execution_id:
        # Nothing to report to; CodeDeploy never sends such an event.
        logger.error("not a CodeDeploy lifecycle event: nothing to report")
        return {"status": FAILED, "reason": "event lacks DeploymentId or LifecycleEventHookExecutionId"}
    status, reason, result = FAILED, "hook did not finish", None
    try:
        config = HookConfig.from_env(environ)
        deadline = None
        if remaining_ms is not None:
            deadline = clock() + remaining_ms() / 1000.0 - config.time_margin_s
        baseline_arn, baseline_version = baseline_of(codedeploy, str(deployment_id), config)
        check_alias_serves(lambda_client, config, baseline_version, str(deployment_id))
        result = run_pretraffic(
            config,
            lambda_invoker(lambda_client, config.new_version_arn),
            invoke_baseline=lambda_invoker(lambda_client, baseline_arn),
            baseline_version=baseline_version,
            run_id=str(deployment_id),
            deadline=deadline,
            clock=clock,
        )
        status, reason = result.status, result.reason
    except Exception as exc:
        status, reason = FAILED, f"hook crashed: {type(exc).__name__}: {exc}"
        logger.exception("pre-traffic hook crashed: reporting Failed")
    finally:
        report_status(codedeploy, str(deployment_id), str(execution_id), status)
    # deployment_id: the gate and the judge find this deployment's record (its latency reference) by it.
    logger.info(
        HOOK_LOG_MESSAGE,
        extra={
            "deployment_id": str(deployment_id),
            "status": status,
            "reason": reason,
            "result": result.as_dict() if result else None,
        },
    )
    return {"status": status, "reason": reason}


def _client(name: str) -> Any:
    # One pooled connection per request in flight (botocore's default pool holds 10).
    return aws_client(name, read_timeout=30, max_pool_connections=MAX_HOOK_CONCURRENCY)


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(
        event,
        codedeploy=_client("codedeploy"),
        lambda_client=_client("lambda"),
        remaining_ms=getattr(context, "get_remaining_time_in_millis", None),
    )
