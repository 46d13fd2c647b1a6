"""The SAM CLI, offline (no AWS credentials, no Docker): `sam validate --lint` and `sam build`.

The build goes to a temporary directory and runs the real makefile method: cp312 manylinux
wheels, the packages, both models and the golden set. Package sizes are printed for
BENCHMARKS.md and checked against Lambda's unzipped limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from samcli.lib.utils.hash import dir_checksum

from tests.template.cfn import REGION, ROOT, load_template

SAM = Path(sys.executable).with_name("sam")
FUNCTIONS = (
    "InferenceFunction",
    "PreTrafficHookFunction",
    "CanaryJudgeFunction",
    "PostTrafficGateFunction",
    "CanaryProbeFunction",
)
# Lambda refuses a package whose unzipped size is not below 262,144,000 bytes (250 MiB).
LAMBDA_UNZIPPED_LIMIT = 262_144_000
IN_RUNTIME = ("boto3", "botocore", "s3transfer")

pytestmark = pytest.mark.slow


def offline_env() -> dict[str, str]:
    """This process's environment without any AWS credentials or profile, with a region."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        SAM_CLI_TELEMETRY="0",
    )
    return env


def run_sam(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SAM), *args], cwd=ROOT, env=offline_env(), capture_output=True, text=True, timeout=timeout
    )


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def zipped_bytes(path: Path, out: Path) -> int:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(path))
    return out.stat().st_size


def sam_build(build_dir: Path) -> float:
    """`sam build` of template.yaml into `build_dir`; the seconds it took."""
    started = time.perf_counter()
    result = run_sam(
        "build", "--build-in-source", "--build-dir", str(build_dir), "--template-file", "template.yaml"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def built(tmp_path_factory, dataset):
    """A build of the template in a temporary directory: (build dir, seconds it took)."""
    build_dir = tmp_path_factory.mktemp("sam-build")
    return build_dir, sam_build(build_dir)


def test_sam_validate_lint_passes_offline():
    """`sam validate --lint` accepts the template with no credentials at all."""
    result = run_sam("validate", "--lint", "--template-file", "template.yaml", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


@pytest.mark.data
def test_sam_build_packages_fit_lambda_and_sizes_are_reported(built, tmp_path, capsys):
    """Every package stays under Lambda's 250 MB unzipped limit; sizes and build time are printed."""
    build_dir, seconds = built
    rows = []
    for name in FUNCTIONS:
        package = build_dir / name
        unzipped = tree_bytes(package)
        zipped = zipped_bytes(package, tmp_path / f"{name}.zip")
        rows.append((name, unzipped, zipped))
        assert unzipped < LAMBDA_UNZIPPED_LIMIT, f"{name} unzips to {unzipped:,} bytes"
    with capsys.disabled():
        print(f"\nsam build ({len(FUNCTIONS)} functions, offline, makefile method): {seconds:.1f} s")
        print("| function | unzipped MB | zipped MB | share of the 250 MB limit |")
        print("|---|---|---|---|")
        for name, unzipped, zipped in rows:
            share = unzipped / LAMBDA_UNZIPPED_LIMIT
            print(f"| {name} | {unzipped / 1e6:.1f} | {zipped / 1e6:.1f} | {share:.1%} |")


@pytest.mark.data
def test_built_template_points_each_function_at_its_own_package(built):
    """The built template's CodeUri of each function is that function's package directory."""
    build_dir, _ = built
    template = load_template(build_dir / "template.yaml")
    for name in FUNCTIONS:
        assert template["Resources"][name]["Properties"]["CodeUri"] == name


@pytest.mark.data
def test_packages_hold_cp312_wheels_the_code_and_both_models_but_not_boto(built):
    """Linux cp312 wheels, the Python packages each handler needs, models v1 and v2; no boto3/botocore
    (the runtime has them) and no bytecode but CPython 3.12's (this machine's 3.11 would be useless)."""
    build_dir, _ = built
    needs = {
        "InferenceFunction": ("infer",),
        "PreTrafficHookFunction": ("canary", "infer"),
        "CanaryJudgeFunction": ("canary", "infer"),
        "PostTrafficGateFunction": ("canary", "infer"),
        "CanaryProbeFunction": ("canary", "infer"),
    }
    for name, packages in needs.items():
        package = build_dir / name
        assert (package / "aws_lambda_powertools").is_dir()
        native = [p.name for p in package.rglob("*.so")]
        # Since the X-Ray SDK (and wrapt's C extension) left (issue 11) nothing native ships;
        # whatever does must be CPython 3.12 Linux code.
        assert all("cpython-312-x86_64-linux-gnu" in so or ".abi3." in so for so in native), native
        for source in packages:
            assert (package / source / "__init__.py").is_file(), (name, source)
        for version in ("v1", "v2"):
            manifest = json.loads((package / "models" / version / "manifest.json").read_text())
            for file_name in manifest["files"]:
                assert (package / "models" / version / file_name).is_file(), (name, version, file_name)
        assert not [p for p in IN_RUNTIME if (package / p).exists()], name
        foreign = [p.name for p in package.rglob("*.pyc") if ".cpython-312." not in p.name]
        assert not foreign, (name, foreign[:5])


@pytest.mark.data
def test_only_the_hook_ships_the_golden_set_built_from_the_test_split(built, dataset):
    """golden.jsonl: 300 labelled texts of the test split, in the hook's package only."""
    build_dir, _ = built
    rows = [
        json.loads(line)
        for line in (build_dir / "PreTrafficHookFunction" / "golden.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 300
    test_texts = {row.text for row in dataset.test}
    assert all(row["text"] in test_texts for row in rows)
    assert {row["label"] for row in rows} <= {"hate_speech", "offensive_language", "neither"}
    assert not (build_dir / "InferenceFunction" / "golden.jsonl").exists()
    for name in ("CanaryJudgeFunction", "PostTrafficGateFunction", "CanaryProbeFunction"):
        assert not (build_dir / name / "golden.jsonl").exists(), name


@pytest.mark.data
def test_only_the_hook_ships_the_behavioural_suite_as_committed(built):
    """suite.jsonl in the hook's package is training/suite/cases.jsonl byte for byte (the suite the
    models' suite answers were recorded on, whose fingerprint the hook checks); no other package
    ships it."""
    build_dir, _ = built
    shipped = build_dir / "PreTrafficHookFunction" / "suite.jsonl"
    assert shipped.read_bytes() == (ROOT / "training" / "suite" / "cases.jsonl").read_bytes()
    for name in FUNCTIONS:
        if name != "PreTrafficHookFunction":
            assert not (build_dir / name / "suite.jsonl").exists(), name


@pytest.mark.data
def test_the_probe_ships_only_its_probe_set_and_the_gate_no_texts(built, dataset):
    """probe.jsonl ({"id", "text"} rows of the test split) is in the probe's package with no other
    text file; the gate's package holds no texts, only the models' known answers."""
    build_dir, _ = built
    probe = build_dir / "CanaryProbeFunction"
    rows = [json.loads(line) for line in (probe / "probe.jsonl").read_text().splitlines()]
    test_rows = {str(row.row_id): row.text for row in dataset.test}
    assert rows and all(test_rows[r["id"]] == r["text"] for r in rows)
    assert not [p.name for p in probe.glob("*.jsonl") if p.name != "probe.jsonl"]
    assert not (probe / ".texts").exists()
    assert not list((build_dir / "PostTrafficGateFunction").glob("*.jsonl"))


@pytest.mark.data
def test_rebuilding_unchanged_sources_gives_identical_packages(built, tmp_path):
    """Same sources, same package checksums (sam deploy's S3 key): a deploy with nothing changed
    uploads nothing new, publishes no Lambda version and so starts no canary."""
    build_dir, _ = built
    sam_build(tmp_path / "again")
    for name in FUNCTIONS:
        assert dir_checksum(str(tmp_path / "again" / name)) == dir_checksum(str(build_dir / name)), name
