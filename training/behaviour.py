"""The behavioural suite: hand-written cases per functionality (CheckList-style), scored per model.

    python -m training.behaviour [--models v1,v2] [--suite FILE] [--json]

The suite (training/suite/cases.jsonl, one JSON object per line: id, functionality, text, expected,
reason) was written for this project; it is not copied or generated from any outside suite. A
case's `expected` is one label or a list of allowed labels (where the data set's annotation scheme
allows either, the reason says why). A case passes when the model's label is in its allowed set.

Each model in models/ is scored with the serving scorer (infer.model.load_model, the Lambda's own
loader and arithmetic), next to two constant answers as reference rows. The table gives the pass
rate and n per functionality, and the share of everyday benign texts labelled `neither` (the set
issue 13 wants at >= 95 %). Standard library and infer only: no data set is needed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from canary.manifests import trained_versions
from infer.artifacts import ArtifactError
from infer.model import LABELS, load_model

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SUITE = Path(__file__).resolve().parent / "suite" / "cases.jsonl"
MODELS_DIR = ROOT / "models"
BENIGN = "everyday_benign"
FIELDS = ("id", "functionality", "text", "expected", "reason")

# The closed list of functionalities, in table order, with what each one tests.
FUNCTIONALITIES: dict[str, str] = {
    BENIGN: "everyday text (greetings, work, weather, food; tweet style)",
    "profanity_no_target": "swearing aimed at nobody",
    "insult_person": "insult of one person, no group",
    "hate_derogation": "derogation of a protected group",
    "hate_dehumanisation": "a group called animals, vermin, disease",
    "threat_group": "threats or calls for violence against a group",
    "negated_hate": "hate negated ('I don't hate X')",
    "counter_speech": "condemning hate against a group",
    "quote_condemn": "quoting or reporting hate to condemn it",
    "identity_neutral": "identity terms in neutral statements",
    "identity_positive": "identity terms in positive statements",
    "reclaimed_terms": "in-group reclaimed terms",
    "homonym_terms": "slur homonyms in their ordinary sense",
    "spelling_variants": "hate with typos, leetspeak, spacing",
    "hate_non_people": "'I hate <thing>' about non-people",
}

Predict = Callable[[str], str]


class SuiteError(ValueError):
    """A suite file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Case:
    """One behavioural test case."""

    id: str
    functionality: str  # one of FUNCTIONALITIES
    text: str
    expected: frozenset[str]  # the labels that pass
    reason: str  # why these labels, under the data set's annotation scheme
    line: int  # 1-based line in the suite file


@dataclass(frozen=True)
class Result:
    """One functionality's outcome for one predictor."""

    functionality: str
    n: int
    passed: int
    failing: tuple[str, ...]  # ids of the cases whose label was not allowed, in suite order

    @property
    def pass_rate(self) -> float:
        return self.passed / self.n if self.n else 0.0

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "passed": self.passed,
            "pass_rate": round(self.pass_rate, 4),
            "failing": list(self.failing),
        }


def _expected(value: object, where: str) -> frozenset[str]:
    labels = [value] if isinstance(value, str) else value
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise SuiteError(f"{where}: 'expected' must be a label or a non-empty list of labels")
    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        raise SuiteError(f"{where}: unknown expected label(s) {unknown}; the API's labels are {list(LABELS)}")
    return frozenset(labels)


def parse_case(raw: str, path: Path, line: int) -> Case:
    """One suite line as a Case; raises SuiteError naming path:line for any broken rule."""
    where = f"{path}:{line}"
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise SuiteError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise SuiteError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [f for f in FIELDS if f not in obj]
    if missing:
        raise SuiteError(f"{where}: missing field(s) {missing}")
    extra = sorted(set(obj) - set(FIELDS))
    if extra:
        raise SuiteError(f"{where}: unknown field(s) {extra}")
    for name in ("id", "functionality", "text", "reason"):
        if not isinstance(obj[name], str) or not obj[name].strip():
            raise SuiteError(f"{where}: {name!r} must be a non-empty string")
    if obj["functionality"] not in FUNCTIONALITIES:
        raise SuiteError(
            f"{where}: unknown functionality {obj['functionality']!r}; known: {', '.join(FUNCTIONALITIES)}"
        )
    return Case(
        obj["id"], obj["functionality"], obj["text"], _expected(obj["expected"], where), obj["reason"], line
    )


def load_suite(path: str | Path = DEFAULT_SUITE) -> list[Case]:
    """Read and validate a suite file: every line a valid case, ids unique; blank lines skipped."""
    path = Path(path)
    try:
        # split on "\n" only: str.splitlines would also cut at U+2028 and friends inside a JSON string
        lines = path.read_text(encoding="utf-8").split("\n")
    except FileNotFoundError as exc:
        raise SuiteError(f"{path}: suite file not found") from exc
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path}: not UTF-8 ({exc})") from exc
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        case = parse_case(raw, path, number)
        if case.id in seen:
            raise SuiteError(f"{path}:{number}: duplicate id {case.id!r} (first on line {seen[case.id]})")
        seen[case.id] = number
        cases.append(case)
    if not cases:
        raise SuiteError(f"{path}: no cases")
    return cases


def evaluate(predict: Predict, cases: Iterable[Case]) -> dict[str, Result]:
    """Per functionality (in FUNCTIONALITIES order, only those with cases): n, passes, failing ids."""
    by_func: dict[str, list[Case]] = {}
    for case in cases:
        by_func.setdefault(case.functionality, []).append(case)
    results: dict[str, Result] = {}
    for func in FUNCTIONALITIES:
        group = by_func.get(func, [])
        if not group:
            continue
        failing = tuple(c.id for c in group if predict(c.text) not in c.expected)
        results[func] = Result(func, len(group), len(group) - len(failing), failing)
    return results


def neither_rate(predict: Predict, cases: Iterable[Case]) -> tuple[float, int]:
    """Share of everyday benign cases labelled `neither`, and how many there are."""
    benign = [c for c in cases if c.functionality == BENIGN]
    if not benign:
        return 0.0, 0
    return sum(predict(c.text) == "neither" for c in benign) / len(benign), len(benign)


def hate_rates(predict: Predict, cases: Iterable[Case]) -> dict[str, dict]:
    """`hate_speech` given where it is allowed (hateful cases: recall) and where it is not (false alarms)."""
    hateful, other = [0, 0], [0, 0]  # [said hate_speech, n]
    for c in cases:
        tally = hateful if "hate_speech" in c.expected else other
        tally[0] += predict(c.text) == "hate_speech"
        tally[1] += 1
    return {
        name: {"n": n, "rate": round(said / n, 4) if n else 0.0}
        for name, (said, n) in (("hateful_said_hate", hateful), ("non_hateful_said_hate", other))
    }


def predictors(versions: Sequence[str], models_dir: Path = MODELS_DIR) -> dict[str, Predict]:
    """Each model's serving scorer as text -> label, then the constant reference answers."""
    out: dict[str, Predict] = {}
    for version in versions:
        model = load_model(models_dir / version)
        out[version] = lambda text, m=model: m.predict(text).label
    for label in ("offensive_language", "neither"):
        out[f"always {label}"] = lambda text, lab=label: lab
    return out


def run(cases: list[Case], preds: dict[str, Predict]) -> dict:
    """Every predictor's per-functionality results, overall pass share and benign neither rate."""
    report: dict = {"n_cases": len(cases), "functionalities": list(FUNCTIONALITIES), "predictors": {}}
    for name, predict in preds.items():
        results = evaluate(predict, cases)
        rate, n_benign = neither_rate(predict, cases)
        passed = sum(r.passed for r in results.values())
        report["predictors"][name] = {
            "functionalities": {f: r.as_dict() for f, r in results.items()},
            "overall": {"n": len(cases), "pass_rate": round(passed / len(cases), 4)},
            "mean_over_functionalities": round(sum(r.pass_rate for r in results.values()) / len(results), 4),
            "benign_neither_rate": {"n": n_benign, "rate": round(rate, 4)},
            **hate_rates(predict, cases),
        }
    return report


def table(report: dict) -> str:
    """Markdown table: functionality x predictor, pass rate, with n per row."""
    names = list(report["predictors"])
    first = report["predictors"][names[0]]["functionalities"]
    lines = ["| functionality | n | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for func in report["functionalities"]:
        if func not in first:
            continue
        cells = [f"{report['predictors'][m]['functionalities'][func]['pass_rate']:.2f}" for m in names]
        lines.append(f"| {func} | {first[func]['n']} | " + " | ".join(cells) + " |")
    overall = [f"{report['predictors'][m]['overall']['pass_rate']:.2f}" for m in names]
    lines.append(f"| **all cases** | {report['n_cases']} | " + " | ".join(overall) + " |")
    mean = [f"{report['predictors'][m]['mean_over_functionalities']:.2f}" for m in names]
    lines.append(f"| **mean over functionalities** | {len(first)} | " + " | ".join(mean) + " |")
    for key, title in (
        ("benign_neither_rate", "everyday benign -> neither"),
        ("hateful_said_hate", "hateful cases -> hate_speech"),
        ("non_hateful_said_hate", "non-hateful cases -> hate_speech"),
    ):
        n = report["predictors"][names[0]][key]["n"]
        rates = [f"{report['predictors'][m][key]['rate']:.2f}" for m in names]
        lines.append(f"| **{title}** | {n} | " + " | ".join(rates) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.behaviour", description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated versions (default: every model in models/)")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR, help="where the versions live")
    parser.add_argument("--suite", type=Path, default=DEFAULT_SUITE, help="suite file (JSON lines)")
    parser.add_argument(
        "--json", action="store_true", help="print the full report (with failing ids) as JSON"
    )
    args = parser.parse_args(argv)
    try:
        cases = load_suite(args.suite)
        versions = args.models.split(",") if args.models else list(trained_versions(args.models_dir))
        preds = predictors([v.strip() for v in versions if v.strip()], args.models_dir)
    except (SuiteError, ArtifactError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = run(cases, preds)
    print(json.dumps(report, indent=1) if args.json else table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
