"""The inference handler measured: warm latency, cold start next to a naive handler and the
natural-js peer, and the size of the Lambda package, in one run.

    python -m bench.handler [--data CSV] [--runs 7] [--no-peer] [--no-package] [--python312 PATH]
                            [--baseline GIT_REF] [--json]

- Warm latency: a fresh process imports infer.app, then calls lambda_handler in-process once per
  test-split text (after 200 warm-up calls): p50/p99 of the whole handler (Powertools' resolver,
  logging, EMF metrics) and of the model alone.
- Cold start: a fresh Python process -> its first 200 response, for v1 and v2, side by side (runs
  interleaved) with (a) a naive handler that imports nltk and joblib-loads a scikit-learn pipeline
  (TF-IDF word 1-2-grams over nltk stems + logistic regression, trained here from the data into a
  temporary folder: a comparison only, never served), (b) the natural-js peer
  (`node peer.js --cold`, whole process) and (c) with --baseline, infer/ and models/ as of that
  git commit (exported with `git archive`, run from a temporary folder), so a change is measured
  before and after in the same run. Medians over --runs.
- Package: infer/requirements.txt as cp312 manylinux wheels (pip --platform, --no-compile) plus
  infer/ and models/, unzipped and zipped; with --python312, the same package's cold start on
  Python 3.12, with and without bytecode (/var/task is read-only on Lambda: no __pycache__ can be
  written there, so what is not shipped compiled is compiled at every cold start).

Every handler process runs with the environment the Lambda runtime gives with active tracing on
(LAMBDA_TASK_ROOT, the X-Ray trace header and daemon address): Powertools' Logger reads the trace
id from it, and a handler that still imports the X-Ray SDK (a --baseline from before issue 11)
takes its Lambda code path and sends its segments over UDP to 127.0.0.1:2000 (loopback; nothing
listens). infer.app itself imports no tracing SDK: Lambda records the segment. Benchmarks
measure; they do not assert.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from canary.stats import quantile
from emulator.lambda_context import stand_in, stand_in_fields

ROOT = Path(__file__).resolve().parent.parent
EVENT = ROOT / "events" / "infer-post-valid.json"
REQUIREMENTS = ROOT / "infer" / "requirements.txt"
VERSIONS = ("v1", "v2", "v3")
# What the build (deploy/lambda.mk) removes because the Lambda runtime already has it.
IN_RUNTIME = ("boto3", "botocore", "s3transfer")
INFER_VARS = ("MODEL_VERSION", "SHADOW_MODELS", "MODELS_DIR", "MAX_TEXT_CHARS", "LOG_LEVEL")
WARMUP = 200
# Issue 11's goal (issue 3 had asked for <= 250 ms and >= 6x).
TARGET_COLD_MS = 120.0
TARGET_RATIO = 8.0
TARGET_WARM_P50_MS = 0.5
TARGET_PACKAGE_MB = 50.0

# The Lambda context the benchmarks' handler calls get (emulator.lambda_context's stand-in).
CONTEXT_ARGS = ("bench-infer", "1", "bench-request")  # function name, version, request id

# A cold start as the Lambda runtime performs it: import the handler module (init: Powertools and
# the verified model), then one invocation. Kept to the standard library so it adds nothing (and
# runs from a packaged or exported tree without emulator/): the context's fields come as JSON.
COLD_SNIPPET = """
import json, os, resource, time
from types import SimpleNamespace
started = time.time()
from infer.app import lambda_handler
imported = time.time()
ctx = SimpleNamespace(**json.loads(os.environ["BENCH_CONTEXT"]))
with open(os.environ["BENCH_EVENT"]) as fh:
    event = json.load(fh)
response = lambda_handler(event, ctx)
done = time.time()
t0 = float(os.environ["BENCH_T0"])
with open(os.environ["BENCH_RESULT"], "w") as fh:
    json.dump({"status": response["statusCode"], "first_200_ms": (done - t0) * 1000,
               "init_ms": (imported - started) * 1000, "python_start_ms": (started - t0) * 1000,
               "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, fh)
"""

NAIVE_MODULE = '''"""A naive port of the seed service: the scikit-learn pipeline itself, joblib-loaded at
init, with nltk imported for its stemmer. A benchmark comparison only; never served."""
import json
import os

import joblib
import nltk  # noqa: F401  (the whole package, as a straight port of the training code imports it)
from nltk.stem.porter import PorterStemmer

_STEMMER = PorterStemmer()


def stem_tokens(text):
    return [_STEMMER.stem(token) for token in text.lower().split()]


def train(rows_json, out):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    with open(rows_json) as fh:
        rows = json.load(fh)
    pipeline = Pipeline([
        ("tfidf", TfidfVectorizer(tokenizer=stem_tokens, token_pattern=None, lowercase=False,
                                  ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
        ("clf", LogisticRegression(max_iter=2000)),
    ])
    pipeline.fit([r[0] for r in rows], [r[1] for r in rows])
    joblib.dump(pipeline, out)


PIPELINE = joblib.load(os.environ["NAIVE_PIPELINE"]) if os.environ.get("NAIVE_PIPELINE") else None


def lambda_handler(event, context):
    text = json.loads(event["body"])["text"]
    probs = PIPELINE.predict_proba([text])[0]
    scores = {str(c): float(p) for c, p in zip(PIPELINE.classes_, probs)}
    label = max(scores, key=scores.get)
    return {"statusCode": 200, "body": json.dumps({"label": label, "scores": scores})}
'''

NAIVE_COLD_SNIPPET = """
import json, os, time
started = time.time()
import naive_handler
imported = time.time()
with open(os.environ["BENCH_EVENT"]) as fh:
    event = json.load(fh)
response = naive_handler.lambda_handler(event, None)
done = time.time()
t0 = float(os.environ["BENCH_T0"])
with open(os.environ["BENCH_RESULT"], "w") as fh:
    json.dump({"status": response["statusCode"], "first_200_ms": (done - t0) * 1000,
               "init_ms": (imported - started) * 1000, "python_start_ms": (started - t0) * 1000}, fh)
"""


def log(message: str) -> None:
    print(f"[bench.handler] {message}", file=sys.stderr, flush=True)


def lambda_env(version: str, task_root: Path) -> dict[str, str]:
    """The process environment of a Lambda execution environment serving `version`."""
    env = {k: v for k, v in os.environ.items() if k not in INFER_VARS and not k.startswith("POWERTOOLS_")}
    env.update(
        MODEL_VERSION=version,
        LAMBDA_TASK_ROOT=str(task_root),
        AWS_LAMBDA_FUNCTION_NAME="bench-infer",
        AWS_LAMBDA_FUNCTION_VERSION="1",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
        AWS_REGION=env.get("AWS_REGION", "us-east-1"),
        _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:2000",
        AWS_XRAY_CONTEXT_MISSING="IGNORE_ERROR",
    )
    return env


def pct(sorted_values: list[float], q: float) -> float:
    """The judge's percentile (canary.stats.quantile, linear interpolation): one definition."""
    return quantile(sorted_values, q)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


# ---------------------------------------------------------------- one process, timed from outside


def timed_process(cmd: list[str], *, cwd: Path, env: dict[str, str], scratch: Path) -> dict:
    """Run one fresh process; wall time from spawn to exit, plus what the process reports."""
    result_path = scratch / "result.json"
    result_path.unlink(missing_ok=True)
    env = {**env, "BENCH_EVENT": str(EVENT), "BENCH_RESULT": str(result_path)}
    env["BENCH_CONTEXT"] = json.dumps(stand_in_fields(*CONTEXT_ARGS))
    env["BENCH_T0"] = repr(time.time())
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall_ms = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} in {cwd} failed: {done.stderr[-1500:]}")
    report = json.loads(result_path.read_text()) if result_path.exists() else {}
    if report and report.get("status") != 200:
        raise RuntimeError(f"{cmd[0]} in {cwd} answered {report.get('status')}, not 200")
    return {"wall_ms": wall_ms, **report, "stdout": done.stdout}


# ---------------------------------------------------------------- warm latency


def text_events(texts_path: str) -> tuple[list[str], list[dict]]:
    """(In a warm child) the texts of the JSON list at texts_path and, for each, the sample event
    events/infer-post-valid.json with that text as its body."""
    base = json.loads(EVENT.read_text())
    texts = json.loads(Path(texts_path).read_text())
    return texts, [{**base, "body": json.dumps({"text": t})} for t in texts]


def measure_warm(module: str, version: str, texts: list[str], scratch: Path, env: dict[str, str]) -> dict:
    """Run `python -m <module> --child-warm` (its warm_child) on the texts in a fresh process with
    `env`; its result, which must have seen only 200 answers."""
    texts_path, out_path = scratch / "texts.json", scratch / f"warm-{version}.json"
    texts_path.write_text(json.dumps(texts))
    cmd = [sys.executable, "-m", module, "--child-warm", version, str(texts_path), str(out_path)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise RuntimeError(f"warm benchmark of {version} failed: {done.stderr.decode()[-1500:]}")
    result = json.loads(out_path.read_text())
    if result["statuses"] != [200]:
        raise RuntimeError(f"warm benchmark of {version}: answers {result['statuses']}, expected only 200")
    return result


def warm_child(version: str, texts_path: str, out_path: str) -> None:
    """(In the child process) time lambda_handler and the model on every text."""
    from infer import app  # init, as on Lambda

    context = stand_in(*CONTEXT_ARGS)
    texts, events = text_events(texts_path)
    for ev in events[:WARMUP]:
        app.lambda_handler(ev, context)
    handler_ms, statuses = [], set()
    perf = time.perf_counter
    for ev in events:
        t = perf()
        response = app.lambda_handler(ev, context)
        handler_ms.append((perf() - t) * 1000)
        statuses.add(response["statusCode"])
    model = app.SERVICE.model
    model_ms = []
    for text in texts:
        t = perf()
        model.predict(text)
        model_ms.append((perf() - t) * 1000)
    handler_ms.sort()
    model_ms.sort()
    Path(out_path).write_text(
        json.dumps(
            {
                "version": version,
                "n": len(texts),
                "statuses": sorted(statuses),
                "handler_p50_ms": pct(handler_ms, 0.5),
                "handler_p99_ms": pct(handler_ms, 0.99),
                "model_p50_ms": pct(model_ms, 0.5),
                "model_p99_ms": pct(model_ms, 0.99),
            }
        )
    )


# ---------------------------------------------------------------- the naive handler


def build_naive(rows: list[tuple[str, str]], folder: Path) -> Path:
    """Write the naive handler module and train its scikit-learn pipeline into `folder`."""
    (folder / "naive_handler.py").write_text(NAIVE_MODULE)
    rows_path = folder / "rows.json"
    rows_path.write_text(json.dumps(rows))
    pipeline = folder / "pipeline.joblib"
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import naive_handler; naive_handler.train({str(rows_path)!r}, {str(pipeline)!r})",
        ],
        cwd=folder,
        check=True,
    )
    rows_path.unlink()
    return pipeline


# ---------------------------------------------------------------- the baseline


BASELINE_PREFIX = "baseline"


def export_baseline(ref: str, target: Path) -> Path:
    """infer/ and models/ as of git commit `ref`, in `target` (git archive: the work tree, the
    index and HEAD are left alone). Run from there, `import infer.app` finds this copy first."""
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "infer", "models"], capture_output=True
    )
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {ref} failed: {archive.stderr.decode()[-500:]}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


# ---------------------------------------------------------------- the package


def tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_package(target: Path) -> None:
    """infer/requirements.txt as cp312 manylinux wheels, then infer/ and models/ (no bytecode)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-conflicts",
            "--no-compile",
            "--platform",
            "manylinux2014_x86_64",
            "--implementation",
            "cp",
            "--python-version",
            "3.12",
            "--only-binary=:all:",
            "--target",
            str(target),
            "-r",
            str(REQUIREMENTS),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install of {REQUIREMENTS} failed: {done.stderr[-1500:]}")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "infer", target / "infer", ignore=ignore)
    for version in VERSIONS:
        shutil.copytree(ROOT / "models" / version, target / "models" / version, ignore=ignore)


def zipped_bytes(folder: Path, scratch: Path) -> int:
    archive = scratch / "package.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder))
    size = archive.stat().st_size
    archive.unlink()
    return size


def measure_package(scratch: Path) -> tuple[dict, Path]:
    target = scratch / "package"
    build_package(target)
    in_runtime = [p for p in target.iterdir() if p.name.split("-")[0] in IN_RUNTIME]
    runtime_bytes = sum(tree_bytes(p) for p in in_runtime)
    infer_bytes = tree_bytes(target / "infer")
    models_bytes = tree_bytes(target / "models")
    total = tree_bytes(target)
    full_zip = zipped_bytes(target, scratch)
    for p in in_runtime:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
    shipped_zip = zipped_bytes(target, scratch)
    return {
        "pip_total_mb": total / 1e6,
        "in_runtime_mb": runtime_bytes / 1e6,
        "dependencies_mb": (total - runtime_bytes - infer_bytes - models_bytes) / 1e6,
        "infer_mb": infer_bytes / 1e6,
        "models_mb": models_bytes / 1e6,
        "shipped_mb": (total - runtime_bytes) / 1e6,
        "pip_total_zip_mb": full_zip / 1e6,
        "shipped_zip_mb": shipped_zip / 1e6,
    }, target


def find_python312(explicit: str | None) -> str | None:
    candidates = [explicit] if explicit else []
    candidates += [shutil.which("python3.12") or ""]
    candidates += sorted(
        glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")), reverse=True
    )
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    return None


# ---------------------------------------------------------------- the run


# A contender of the cold-start race: (command, working folder, environment).
Contender = tuple[list[str], Path, dict[str, str]]


def run(args: argparse.Namespace) -> dict:
    from training.data import LABELS, load

    dataset = load(args.data)
    texts = [row.text for row in dataset.test]
    results: dict = {
        "command": "python -m bench.handler " + " ".join(args.argv),
        "machine": f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}",
        "runs": args.runs,
        "warm": [],
        "cold": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-handler-") as tmp:
        scratch = Path(tmp)

        for version in VERSIONS:
            log(f"warm latency of {version}: {len(texts)} requests in one process")
            env = lambda_env(version, ROOT)
            results["warm"].append(measure_warm("bench.handler", version, texts, scratch, env))

        log("training the naive scikit-learn pipeline (comparison only)")
        naive_dir = scratch / "naive"
        naive_dir.mkdir()
        pipeline = build_naive([(row.text, LABELS[row.label]) for row in dataset.train], naive_dir)

        contenders = _handler_contenders(args, scratch)
        naive_env = {**lambda_env("v2", naive_dir), "NAIVE_PIPELINE": str(pipeline)}
        contenders["naive: nltk + joblib sklearn pipeline"] = (
            [sys.executable, "-c", NAIVE_COLD_SNIPPET],
            naive_dir,
            naive_env,
        )
        contenders.update(_peer_contender(args))
        if not args.no_package:
            log("building the package (cp312 manylinux wheels + infer/ + models/)")
            results["package"], package_dir = measure_package(scratch)
            contenders.update(_package_contenders(args, package_dir, scratch))
        results["cold"] = _cold_starts(contenders, args.runs, scratch)
    return results


def _handler_contenders(args: argparse.Namespace, scratch: Path) -> dict[str, Contender]:
    """infer.app as it is, v1 and v2, and with --baseline as of that commit."""
    contenders: dict[str, Contender] = {}
    for version in VERSIONS:
        contenders[f"infer.app ({version})"] = (
            [sys.executable, "-c", COLD_SNIPPET],
            ROOT,
            lambda_env(version, ROOT),
        )
    if args.baseline:
        baseline_dir = export_baseline(args.baseline, scratch / "baseline")
        for version in VERSIONS:
            if not (baseline_dir / "models" / version / "manifest.json").is_file():
                continue  # a model trained after that commit
            contenders[f"{BASELINE_PREFIX} {args.baseline}: infer.app ({version})"] = (
                [sys.executable, "-c", COLD_SNIPPET],
                baseline_dir,
                lambda_env(version, baseline_dir),
            )
    return contenders


def _peer_contender(args: argparse.Namespace) -> dict[str, Contender]:
    """The natural-js peer's whole process (none with --no-peer or when node is unavailable)."""
    from bench import peer as peer_mod

    if args.no_peer:
        return {}
    peer_text = json.loads(json.loads(EVENT.read_text())["body"])["text"]
    try:
        if not (peer_mod.WORKDIR / "model.json").is_file():
            log("training the natural-js peer once (~100 s, cached in .cache/natural-js)")
            peer_mod.measure(Path(args.data) if args.data else _default_data())
        return {
            "natural-js peer (node, whole process)": (
                peer_mod.cold_start_command(peer_text),
                ROOT,
                dict(os.environ),
            )
        }
    except (peer_mod.PeerUnavailable, OSError, subprocess.CalledProcessError) as exc:
        log(f"natural-js peer not measured: {exc}")
        return {}


def _package_contenders(args: argparse.Namespace, package_dir: Path, scratch: Path) -> dict[str, Contender]:
    """The built package on Python 3.12, without and with bytecode (none without a 3.12)."""
    python312 = find_python312(args.python312)
    if python312 is None:
        log("no Python 3.12 found: the packaged cold start is not measured (--python312 PATH)")
        return {}
    compiled_dir = scratch / "package-compiled"
    shutil.copytree(package_dir, compiled_dir)
    subprocess.run([python312, "-m", "compileall", "-q", "-j", "0", str(compiled_dir)], check=True)
    contenders: dict[str, Contender] = {}
    for label, folder in (("no bytecode", package_dir), ("bytecode shipped", compiled_dir)):
        env = {**lambda_env("v2", folder), "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("PYTHONPATH", None)
        contenders[f"package on Python 3.12, v2, {label}"] = (
            [python312, "-s", "-c", COLD_SNIPPET],
            folder,
            env,
        )
    return contenders


def _cold_starts(contenders: dict[str, Contender], runs: int, scratch: Path) -> dict[str, dict]:
    """Each contender's cold-start summary over `runs` rounds, interleaved, after one warm-up round."""
    samples: dict[str, list[dict]] = {name: [] for name in contenders}
    log(f"cold starts: {len(contenders)} contenders x (1 warm-up + {runs} runs), interleaved")
    for round_no in range(runs + 1):
        for name, (cmd, cwd, env) in contenders.items():
            sample = timed_process(cmd, cwd=cwd, env=env, scratch=scratch)
            if round_no > 0:  # the first round only warms the page cache
                samples[name].append(sample)
    rows = {}
    for name, taken in samples.items():
        row = {"wall_ms": summary([r["wall_ms"] for r in taken])}
        if "first_200_ms" in taken[0]:
            row["first_200_ms"] = summary([r["first_200_ms"] for r in taken])
            row["init_ms"] = summary([r["init_ms"] for r in taken])
        else:  # the peer reports its own split, from after node's boot
            reports = [json.loads(r["stdout"].strip().splitlines()[-1]) for r in taken]
            row["peer_require_ms"] = summary([r["require_ms"] for r in reports])
            row["peer_load_and_first_ms"] = summary([r["load_and_first_ms"] for r in reports])
        rows[name] = row
    return rows


def _default_data() -> Path:
    from training.data import data_path

    return data_path()


# ---------------------------------------------------------------- the report


def _cold_line(name: str, row: dict, naive: dict | None) -> str:
    """One contender's row of the cold-start table."""
    first = row.get("first_200_ms")
    init = row.get("init_ms")
    ratio = ""
    if naive and first and "first_200_ms" in naive:
        ratio = f"{naive['first_200_ms']['median'] / first['median']:.1f}x"
    first_cell = f"{first['median']:.0f} ({first['min']:.0f}-{first['max']:.0f})" if first else "-"
    if init:
        init_cell = f"{init['median']:.0f}"
    elif "peer_require_ms" in row:
        init_cell = (
            f"require {row['peer_require_ms']['median']:.0f} + load and classify "
            f"{row['peer_load_and_first_ms']['median']:.0f}"
        )
    else:
        init_cell = "-"
    wall = row["wall_ms"]
    return (
        f"| {name} | {first_cell} | {wall['median']:.0f} ({wall['min']:.0f}-{wall['max']:.0f}) | "
        f"{init_cell} | {ratio} |"
    )


def render(results: dict) -> str:
    cold = results["cold"]
    ours = {name: row for name, row in cold.items() if name.startswith("infer.app")}
    naive = next((row for name, row in cold.items() if name.startswith("naive")), None)
    lines = [
        f"Command: `{results['command']}` ({results['machine']}; medians of {results['runs']} runs).",
        "",
        "Cold start: fresh process -> first 200 response (ms)",
        "",
        "| handler | to first 200 | whole process | init (import + load) | naive / this (first 200) |",
        "|---|---|---|---|---|",
    ]
    lines += [_cold_line(name, row, naive) for name, row in cold.items()]
    lines += [
        "",
        "Warm latency, in-process, one request per test-split text (ms)",
        "",
        "| model | requests | handler p50 | handler p99 | model alone p50 | model alone p99 |",
        "|---|---|---|---|---|---|",
    ]
    for w in results["warm"]:
        lines.append(
            f"| {w['version']} | {w['n']} | {w['handler_p50_ms']:.3f} | "
            f"{w['handler_p99_ms']:.3f} | {w['model_p50_ms']:.3f} | {w['model_p99_ms']:.3f} |"
        )
    if "package" in results:
        p = results["package"]
        lines += [
            "",
            "Lambda package (cp312 manylinux wheels of infer/requirements.txt + infer/ + models/v1, v2), MB",
            "",
            "| part | unzipped MB |",
            "|---|---|",
            f"| dependencies (Powertools, X-Ray SDK, wrapt, ...) | {p['dependencies_mb']:.1f} |",
            f"| infer/ | {p['infer_mb']:.2f} |",
            f"| models/v1 + models/v2 | {p['models_mb']:.1f} |",
            f"| **package as shipped** (boto3/botocore left to the runtime) | **{p['shipped_mb']:.1f}** "
            f"(zipped {p['shipped_zip_mb']:.1f}) |",
            f"| botocore & co. that pip also fetches (the build removes them) | {p['in_runtime_mb']:.1f} |",
            f"| everything pip installs + infer/ + models/ | {p['pip_total_mb']:.1f} "
            f"(zipped {p['pip_total_zip_mb']:.1f}) |",
        ]
    lines += ["", "Targets"]
    best = [row["first_200_ms"]["median"] for row in ours.values()]
    if best:
        worst_ours = max(best)
        slowest = f"the slowest of {', '.join(VERSIONS)}"
        lines.append(f"- cold start <= {TARGET_COLD_MS:.0f} ms: {worst_ours:.0f} ms ({slowest})")
        if naive:
            lines.append(
                f"- >= {TARGET_RATIO:.0f}x faster than the naive handler: "
                f"{naive['first_200_ms']['median'] / worst_ours:.1f}x"
            )
    for w in results["warm"]:
        lines.append(f"- warm p50 <= {TARGET_WARM_P50_MS} ms ({w['version']}): {w['handler_p50_ms']:.3f} ms")
    if "package" in results:
        p = results["package"]
        lines.append(
            f"- package <= {TARGET_PACKAGE_MB:.0f} MB unzipped: {p['shipped_mb']:.1f} MB as shipped, "
            f"{p['pip_total_mb']:.1f} MB with botocore"
        )
    return "\n".join(lines)


def bench_main(
    argv: list[str] | None,
    *,
    module: str,
    doc: str,
    warm_child: Callable[..., None],
    run: Callable[[argparse.Namespace], dict],
    render: Callable[[dict], str],
    add_options: Callable[[argparse.ArgumentParser], None] = lambda parser: None,
) -> int:
    """The command line of a handler benchmark (bench.handler, bench.shadow): its warm child when
    called with --child-warm, else --data, --runs, its own options and --json, then run and print."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child-warm"]:
        warm_child(*argv[1:4])
        return 0
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.splitlines()[0])
    parser.add_argument("--data", default=None, help="labelled CSV (default $HATE_DATA or ../shared/data)")
    parser.add_argument("--runs", type=int, default=7, help="cold starts per contender (default 7)")
    add_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.argv = argv
    results = run(args)
    print(json.dumps(results, indent=2) if args.json else render(results))
    return 0


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-peer", action="store_true", help="skip the natural-js peer")
    parser.add_argument("--no-package", action="store_true", help="skip the package size and its 3.12 runs")
    parser.add_argument("--python312", default=None, help="a Python 3.12 for the packaged cold start")
    parser.add_argument(
        "--baseline", default=None, metavar="GIT_REF", help="also cold-start infer/ as of this commit"
    )


def main(argv: list[str] | None = None) -> int:
    return bench_main(
        argv,
        module="bench.handler",
        doc=__doc__,
        warm_child=warm_child,
        run=run,
        render=render,
        add_options=_options,
    )


if __name__ == "__main__":
    sys.exit(main())
