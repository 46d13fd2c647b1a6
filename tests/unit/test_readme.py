"""README.md's request/answer examples are what the newest model answers, and stay so.

Every `curl ... -d '<json>'` in a fenced block of README.md must be followed by its answer as
comment lines (`# 200 {...}`, continued on further `#` lines); the body goes through the real
handler serving the highest models/vN, on the route the URL names (`"$API_URL"` the single route,
`"$API_URL/batch"` the batch route), and the status, label, category and each score at the
precision printed must match (each result's, for a batch). Sentences of the form "`<text>` comes
back <Category>" are checked against the same model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

import pytest

from canary.manifests import trained_versions
from infer.model import CATEGORIES
from tests.unit._infer_harness import ROOT, event, invoke, load_app

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

README = ROOT / "README.md"
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
# The body of a curl command: -d, --data or --data-raw followed by a single-quoted string.
CURL_BODY = re.compile(r"(?:-d|--data(?:-raw)?)\s+'([^']*)'")
ANSWER_START = re.compile(r"^#\s*(\d{3})\s+(.*)$")
CLAIM = re.compile(r"`([^`]+)` comes back (\w+(?: \w+)?)")
ROUTE, BATCH_ROUTE = "/infer/hate-speech", "/infer/hate-speech/batch"


@dataclass(frozen=True)
class Example:
    """One documented request and the answer README prints for it."""

    line: int  # line of README.md where the curl command starts
    body: str  # the request body, as curl sends it
    status: int  # the documented status
    answer: str  # the documented answer body (JSON text)
    path: str = ROUTE  # the route the curl URL names


def newest_model_version() -> str:
    """The highest models/vN: the version README's examples must describe."""
    return trained_versions(ROOT / "models")[-1]


def _commands(block: str, first_line: int) -> list[tuple[int, str, list[str]]]:
    """(line, command, comment lines right after it) for each command of a shell block."""
    out: list[tuple[int, str, list[str]]] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        start, command = i, lines[i]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1] + " " + lines[i].strip()
        i += 1
        comments = []
        while i < len(lines) and lines[i].lstrip().startswith("#"):
            comments.append(lines[i].strip())
            i += 1
        out.append((first_line + start, command, comments))
    return out


def examples(markdown: str) -> list[Example]:
    """Every curl request with a body in the markdown's fenced blocks, with its documented answer.

    Raises AssertionError for a request with no answer under it, or an answer with no request."""
    found = []
    for block in FENCE.finditer(markdown):
        first_line = markdown.count("\n", 0, block.start(1)) + 1
        for line, command, comments in _commands(block.group(1), first_line):
            body = CURL_BODY.search(command) if "curl" in command else None
            starts = [ANSWER_START.match(c) for c in comments]
            if body is None:
                orphan = any(starts) or ANSWER_START.match(command.strip())
                assert not orphan, f"README.md line {line}: an answer without a curl request above it"
                continue
            assert comments and starts[0], (
                f"README.md line {line}: the request has no documented answer: "
                "put '# <status> <JSON body>' right under it"
            )
            assert not any(starts[1:]), f"README.md line {line}: one request, several answers"
            parts = [starts[0].group(2)] + [c.lstrip("#").strip() for c in comments[1:]]
            path = BATCH_ROUTE if '$API_URL/batch"' in command else ROUTE
            found.append(Example(line, body.group(1), int(starts[0].group(1)), " ".join(parts), path))
    return found


def _decimals(number: str) -> int:
    return len(number.split(".")[1]) if "." in number else 0


def mismatches(example: Example, status: int, body: dict) -> list[str]:
    """How the real answer differs from the documented one (empty when it is as documented)."""
    try:
        # Floats kept as printed, so each score is compared at the precision README shows.
        documented = json.loads(example.answer, parse_float=str)
    except ValueError:
        return [f"the documented answer is not JSON: {example.answer}"]
    if status != example.status:
        return [f"status {status}, documented {example.status}"]
    if status != 200 or not isinstance(documented, dict):
        return [] if documented == body else [f"body {body}, documented {documented}"]
    if "results" in documented or "results" in body:  # a batch: each result as a single answer
        shown, real = documented.get("results"), body.get("results")
        if not isinstance(shown, list) or not isinstance(real, list) or len(shown) != len(real):
            return [f"results {real}, documented {shown}"]
        return [
            f"results[{i}]: {problem}"
            for i, (one, actual) in enumerate(zip(shown, real, strict=True))
            for problem in _prediction_mismatches(one, actual)
        ]
    return _prediction_mismatches(documented, body)


def _prediction_mismatches(documented: dict, body: dict) -> list[str]:
    """How one prediction differs from the documented one (scores at the printed precision)."""
    problems = []
    if set(documented) != set(body):
        problems.append(f"keys {sorted(body)}, documented {sorted(documented)}")
    for key in ("label", "category"):
        if documented.get(key) != body.get(key):
            problems.append(f"{key} {body.get(key)!r}, documented {documented.get(key)!r}")
    scores = documented.get("scores")
    if not isinstance(scores, dict) or set(scores) != set(body["scores"]):
        return [*problems, f"scores {body['scores']}, documented {scores}"]
    for label, printed in scores.items():
        actual = f"{body['scores'][label]:.{_decimals(str(printed))}f}"
        if actual != str(printed):
            problems.append(f"score {label} {actual}, documented {printed}")
    return problems


def claims(markdown: str) -> list[tuple[str, str]]:
    """(text, category) of every "`<text>` comes back <Category>" sentence."""
    flat = " ".join(markdown.split())  # sentences wrap over lines
    found = CLAIM.findall(flat)
    assert len(found) == flat.count("` comes back "), "a 'comes back' sentence that names no category"
    return found


@pytest.fixture(scope="module")
def app():
    """infer.app serving the newest model, as README's examples describe."""
    return load_app({"MODEL_VERSION": newest_model_version()})


def answer_of(app, body: str, path: str = ROUTE):
    name = "infer-batch-post-valid" if path == BATCH_ROUTE else "infer-post-valid"
    answer = invoke(app, event(name, body=body))
    assert answer.headers.get("x-model-version") == newest_model_version()
    return answer


README_TEXT = README.read_text(encoding="utf-8")


def test_readme_shows_at_least_one_prediction():
    """The API section keeps a worked example: a curl request answered 200 with a prediction."""
    assert any(ex.status == 200 for ex in examples(README_TEXT)), "README.md lost its 200 example"


@pytest.mark.parametrize("example", examples(README_TEXT), ids=lambda ex: f"line{ex.line}")
def test_readme_example_is_what_the_newest_model_answers(app, example):
    """Each documented answer is the real handler's answer with the newest model, to the digits shown."""
    answer = answer_of(app, example.body, example.path)
    problems = mismatches(example, answer.status, answer.body)
    assert not problems, (
        f"README.md line {example.line}: the example {example.body} is not what models/"
        f"{newest_model_version()} answers ({'; '.join(problems)}); the real answer is "
        f"{answer.status} {json.dumps(answer.body)}: fix the example"
    )


@pytest.mark.parametrize("text, category", claims(README_TEXT))
def test_readme_claims_about_single_texts_hold(app, text, category):
    """A sentence saying what the model answers for a text (e.g. a known misreading) stays true."""
    assert category in CATEGORIES.values(), f"README.md names an unknown category {category!r}"
    answer = answer_of(app, json.dumps({"text": text}))
    assert answer.status == 200 and answer.body["category"] == category, (
        f"README.md says `{text}` comes back {category}; models/{newest_model_version()} answers "
        f"{answer.status} {json.dumps(answer.body)}: update the sentence"
    )


def _doctored(example: Example, answer: dict, how: str) -> Example:
    """The example with one part of its documented answer made false."""
    documented = json.loads(example.answer)
    if how == "status":
        return replace(example, status=422 if example.status == 200 else 200)
    if how in ("label", "category"):
        other = next(label for label in CATEGORIES if label != answer["label"])
        documented[how] = other if how == "label" else CATEGORIES[other]
    else:  # a score, one digit off at the printed precision or at one more digit
        label, extra = how.split(":")
        digits = _decimals(re.search(rf'"{label}": ([0-9.]+)', example.answer).group(1)) + int(extra)
        value = answer["scores"][label] + (-1) ** (answer["scores"][label] > 0.5) * 10.0**-digits
        documented["scores"][label] = f"@{value:.{digits}f}@"
    return replace(example, answer=json.dumps(documented).replace('"@', "").replace('@"', ""))


@pytest.mark.parametrize(
    "how, problem",
    [
        ("neither:0", "score neither"),
        ("hate_speech:1", "score hate_speech"),
        ("label", "label "),
        ("category", "category "),
        ("status", "status 200"),
    ],
)
def test_a_false_example_is_caught(app, how, problem):
    """The checker itself: README's example edited into something false is reported, saying what
    differs (a score one digit off, even at a precision finer than README's, a label, a status)."""
    example = next(ex for ex in examples(README_TEXT) if ex.status == 200)
    answer = answer_of(app, example.body)
    assert mismatches(example, answer.status, answer.body) == []
    problems = mismatches(_doctored(example, answer.body, how), answer.status, answer.body)
    assert any(p.startswith(problem) for p in problems), problems


PARSED = """```sh
curl -s -X POST "$API_URL" \\
     -d '{"text": "some text"}'
# 200 {"label": "neither",
#      "scores": {"neither": 1.0}}
```
"""


def test_examples_are_read_across_continued_lines():
    """A curl command continued with backslashes and an answer over two comment lines make one example."""
    (example,) = examples(PARSED)
    assert example.body == '{"text": "some text"}'
    assert example.status == 200
    assert json.loads(example.answer) == {"label": "neither", "scores": {"neither": 1.0}}
    assert example.line == 2


def test_a_request_without_its_answer_is_refused():
    """A curl example whose answer was deleted fails loudly instead of being skipped."""
    stripped = "\n".join(line for line in PARSED.splitlines() if not line.startswith("#")) + "\n"
    with pytest.raises(AssertionError, match="no documented answer"):
        examples(stripped)


def test_an_answer_without_its_request_is_refused():
    """An answer whose curl command was deleted fails loudly too."""
    orphan = "\n".join(line for line in PARSED.splitlines() if "curl" not in line and "-d" not in line)
    with pytest.raises(AssertionError, match="without a curl request"):
        examples(orphan + "\n")


BATCH_TEXTS = ["Congrats to the team on a great season", "shut up you worthless clown"]


def test_a_batch_example_goes_to_the_batch_route_and_each_result_is_checked(app):
    """A curl to "$API_URL/batch" is sent to the batch route and each result is checked: the real
    answer passes; with its second result's label changed, that result is reported by index."""
    body = json.dumps({"texts": BATCH_TEXTS})
    real = answer_of(app, body, BATCH_ROUTE).body
    wrong = json.loads(json.dumps(real))
    wrong["results"][1]["label"] = next(label for label in CATEGORIES if label != real["results"][1]["label"])
    for answer in (real, wrong):
        markdown = (
            f'```sh\ncurl -s -X POST "$API_URL/batch" -H "x-api-key: $API_KEY" \\\n     -d \'{body}\'\n'
            f"# 200 {json.dumps(answer)}\n```\n"
        )
        (example,) = examples(markdown)
        assert example.path == BATCH_ROUTE
        problems = mismatches(example, 200, real)
        if answer is real:
            assert problems == []
        else:
            assert len(problems) == 1 and problems[0].startswith("results[1]: label "), problems
