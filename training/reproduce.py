"""The reproduction contract: does a retrain reproduce the committed models/<version>?

    python -m training.reproduce [--data CSV] [--out models] [--jobs 2]

(the same as `python -m training.train --check`: retrain into a temporary folder, compare,
write nothing). A retrain reproduces a committed version when:

- both folders hold the same set of files;
- every file not fitted by an iterative optimiser is byte-identical: vocabularies, idf arrays,
  stem tables, all of v1 (counts), answers.json (the label given to every test text, which the
  PreTraffic hook demands of the deployed version), MODEL_CARD.md, EVALUATION.md;
- each array fitted by an iterative optimiser (v2's and v3's coef.npy and intercept.npy) has the
  same dtype and shape and differs by at most its model kind's tolerance (TOLERANCES: 1e-8 for
  v2's L-BFGS fit, 1e-6 for v3's liblinear NB-LR);
- manifest.json is identical except the sha256/bytes entries of those arrays: metrics,
  transitions, golden set and expected label mix must be exactly equal;
- except what is machine-measured: the manifest's `latency` entry (training/latency.py: the
  runtime scorer's time per text on this machine) and the cards' lines about it (they start
  with cards.LATENCY_LINE_PREFIX) are left out of the exact comparison; only WHICH models
  `latency.ratio_to` covers must match. A retrain that reproduces leaves the committed folder
  untouched, so `make train` on another machine keeps the committed latency;
- behaviour: the retrained scikit-learn pipeline and the runtime scorer over the COMMITTED
  artifacts give the same label on every test text, probabilities within the kind's tolerance
  (1e-9 for v2, 1e-6 for v3).

Why not bytes everywhere: OpenBLAS picks its kernels from the CPU (or $OPENBLAS_CORETYPE), and
L-BFGS amplifies their last-bit differences into ~1e-11 changes of the coefficients.

The recorded answers stay true to the committed artifacts: answers.json must equal the retrain's
byte for byte (the retrained pipeline's labels), and the behaviour check gives the runtime scorer
over the committed artifacts the retrained pipeline's label on every test text.

--force writes only what differs beyond this contract: an array within tolerance keeps its
committed bytes (and its checksum in the manifest), so a forced retrain on another CPU does not
churn the arrays with 1e-11 noise.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infer.artifacts import MANIFEST, ArtifactError
from infer.model import LABELS, load_model
from training.cards import LATENCY_LINE_PREFIX
from training.export import manifest_bytes

# Measured on v2 (AMD EPYC, the wheels' OpenBLAS 0.3.31, kernels forced by OPENBLAS_CORETYPE):
# Prescott, Haswell and SkylakeX retrains differ from each other by at most 6e-11 in coef and
# intercept.
# The smallest real changes tried (one train label flipped, one sample weight x0.99, C 1.0 ->
# 1.001) move them by 0.09 to 0.2. 1e-8 sits over 100x above the drift and 10^6 below those.
# The behaviour check below is what bounds what a caller sees, whatever the arrays do.
ARRAY_TOLERANCE = 1e-8
# The runtime scorer and scikit-learn agree to ~1e-14 on the same artifacts, and the kernel
# drift above moves v2's probabilities by at most 5e-11; a real change moves labels.
PROBABILITY_TOLERANCE = 1e-9
# v3's NB-LR (liblinear, run to convergence: training.candidates.LIBLINEAR_TOL) is worse
# conditioned than v2's fit: Prescott and Haswell retrains differ by 9.8e-8 in coef. The smallest
# real changes tried (one sample weight x0.99, C x1.001, one label flipped) move it by 1.3e-4,
# 7e-4 and 0.4: 1e-6 sits 10x above the drift and 100x below those, for arrays and probabilities.
NB_LR_TOLERANCE = 1e-6
# Model kinds fitted by an iterative optimiser -> (array tolerance, probability tolerance); only
# their coef/intercept get a tolerance.
TOLERANCES = {
    "logistic_regression": (ARRAY_TOLERANCE, PROBABILITY_TOLERANCE),
    "nb_logistic_regression": (NB_LR_TOLERANCE, NB_LR_TOLERANCE),
}
ITERATIVE_KINDS = frozenset(TOLERANCES)
MAX_LINES_PER_FILE = 5
CARDS = frozenset({"MODEL_CARD.md", "EVALUATION.md"})
MEASURED = "latency"  # the manifest's machine-measured entry (training/latency.py)


@dataclass
class Result:
    """The comparison of one retrained version with its committed folder."""

    version: str
    mismatches: list[str] = field(default_factory=list)  # one line each: "v2/coef.npy: ..."
    within_tolerance: dict[str, float] = field(default_factory=dict)  # array -> max |diff| (> 0)
    machine_measured: list[str] = field(default_factory=list)  # files differing only in the latency
    n_files: int = 0
    n_texts: int = 0
    max_prob_diff: float = 0.0
    array_tolerance: float = ARRAY_TOLERANCE  # of the committed model's kind (TOLERANCES)
    probability_tolerance: float = PROBABILITY_TOLERANCE

    @property
    def reproduced(self) -> bool:
        return not self.mismatches

    @property
    def byte_identical(self) -> bool:
        return self.reproduced and not self.within_tolerance and not self.machine_measured

    def summary(self) -> str:
        v = self.version
        if not self.reproduced:
            return f"{v}: NOT reproduced ({len(self.mismatches)} mismatch(es))"
        behaviour = (
            f"same label on all {self.n_texts} test texts, probabilities within {self.max_prob_diff:.1e} "
            f"(tolerance {self.probability_tolerance:.0e})"
        )
        if self.byte_identical:
            return f"{v}: byte-identical ({self.n_files} files); {behaviour}"
        measured = (
            f"; the machine-measured latency differs ({', '.join(sorted(self.machine_measured))}): the "
            "committed value stays"
            if self.machine_measured
            else ""
        )
        if not self.within_tolerance:
            return f"{v}: byte-identical except the latency ({self.n_files} files); {behaviour}{measured}"
        arrays = ", ".join(f"{name} max |diff| {d:.1e}" for name, d in sorted(self.within_tolerance.items()))
        return (
            f"{v}: reproduced within tolerance ({arrays}; tolerance {self.array_tolerance:.0e}); {behaviour}"
            + measured
        )


def tolerances(manifest: Any) -> tuple[float, float]:
    """(array, probability) tolerance of this manifest's model kind (the default contract else)."""
    model = manifest.get("model") if isinstance(manifest, dict) else None
    kind = model.get("kind") if isinstance(model, dict) else None
    return TOLERANCES.get(kind, (ARRAY_TOLERANCE, PROBABILITY_TOLERANCE))


def iterative_arrays(manifest: Any) -> set[str]:
    """The arrays of this manifest fitted by an iterative optimiser (compared with a tolerance)."""
    model = manifest.get("model") if isinstance(manifest, dict) else None
    if not isinstance(model, dict) or model.get("kind") not in ITERATIVE_KINDS:
        return set()
    return {model["coef"], model["intercept"]}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def _load_npy(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def _array_diff(fresh: Path, committed: Path) -> tuple[str | None, float]:
    """(why they cannot be compared, or None; max |diff|) of two .npy files."""
    a, b = _load_npy(fresh), _load_npy(committed)
    if a is None or b is None:
        return "not a readable .npy array", math.inf
    if a.dtype != b.dtype or a.shape != b.shape:
        return f"retrained {a.dtype.str} {a.shape}, committed {b.dtype.str} {b.shape}", math.inf
    a, b = a.astype(np.float64), b.astype(np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    if same.all():
        return None, 0.0
    worst = float(np.max(np.abs(a - b)[~same]))
    # NaN on one side only is an infinite difference, not one that max() may skip.
    return None, math.inf if math.isnan(worst) else worst


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


def json_diff(fresh: Any, committed: Any, path: str = "") -> Iterator[str]:
    """Where two JSON values differ: 'path: retrained X, committed Y (|diff| Z)' per leaf."""
    where = path or "(top level)"
    if isinstance(fresh, dict) and isinstance(committed, dict):
        for key in sorted(set(fresh) | set(committed)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in committed:
                yield f"{sub}: only in the retrain"
            elif key not in fresh:
                yield f"{sub}: only in the committed manifest"
            else:
                yield from json_diff(fresh[key], committed[key], sub)
    elif isinstance(fresh, list) and isinstance(committed, list):
        if len(fresh) != len(committed):
            yield f"{where}: retrained {len(fresh)} entries, committed {len(committed)}"
        else:
            for i, (a, b) in enumerate(zip(fresh, committed, strict=True)):
                yield from json_diff(a, b, f"{path}[{i}]")
    elif fresh != committed or type(fresh) is not type(committed):
        line = f"{where}: retrained {_short(fresh)}, committed {_short(committed)}"
        numbers = (int, float)
        if isinstance(fresh, numbers) and isinstance(committed, numbers) and not isinstance(fresh, bool):
            line += f" (|diff| {abs(fresh - committed):.1e})"
        yield line


def _describe(name: str, fresh: Path, committed: Path) -> list[str]:
    """How a file that must be byte-identical differs, sized in its own terms."""
    if name.endswith(".npy"):
        problem, d = _array_diff(fresh, committed)
        return [problem or f"max |diff| {d:.1e}, must be byte-identical"]
    if name.endswith(".json"):
        a, b = _read_json(fresh), _read_json(committed)
        if a is not None and b is not None:
            diffs = list(json_diff(a, b))
            if not diffs:
                return ["same JSON, different bytes (formatting)"]
            more = len(diffs) - MAX_LINES_PER_FILE
            shown = diffs[:MAX_LINES_PER_FILE]
            return shown + ([f"... and {more} more difference(s)"] if more > 0 else [])
    ra, rb = fresh.read_bytes(), committed.read_bytes()
    la, lb = ra.splitlines(), rb.splitlines()
    first = next((i for i, (x, y) in enumerate(zip(la, lb, strict=False)) if x != y), min(len(la), len(lb)))
    return [f"differs from line {first + 1} (retrained {len(ra)} bytes, committed {len(rb)} bytes)"]


def _without_measured_lines(blob: bytes) -> list[bytes]:
    """A card's lines without those about the machine-measured latency."""
    prefix = LATENCY_LINE_PREFIX.encode()
    return [line for line in blob.splitlines() if not line.startswith(prefix)]


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file()} if folder.is_dir() else set()


def compare_files(version: str, fresh: Path, committed: Path) -> Result:
    """The file part of the contract: same files, bytes, arrays within tolerance, manifest."""
    result = Result(version)
    if not committed.is_dir():
        result.mismatches.append(f"{version}: nothing committed at {committed}")
        return result
    have, want = _files(fresh), _files(committed)
    result.n_files = len(want)
    for name in sorted(want - have):
        result.mismatches.append(f"{version}/{name}: committed but missing from the retrain")
    for name in sorted(have - want):
        result.mismatches.append(f"{version}/{name}: in the retrain but not committed")
    committed_manifest = _read_json(committed / MANIFEST)
    tolerant = iterative_arrays(committed_manifest)
    result.array_tolerance, result.probability_tolerance = tolerances(committed_manifest)
    differing = sorted(n for n in have & want if (fresh / n).read_bytes() != (committed / n).read_bytes())
    for name in differing:
        if name == MANIFEST:
            continue  # compared last, once the arrays within tolerance are known
        if name in CARDS and _without_measured_lines((fresh / name).read_bytes()) == _without_measured_lines(
            (committed / name).read_bytes()
        ):
            result.machine_measured.append(name)
            continue
        if name in tolerant and name.endswith(".npy"):
            problem, d = _array_diff(fresh / name, committed / name)
            if problem:
                result.mismatches.append(f"{version}/{name}: {problem}")
            elif d > result.array_tolerance:
                result.mismatches.append(
                    f"{version}/{name}: max |diff| {d:.1e} > {result.array_tolerance:.0e}"
                )
            else:
                result.within_tolerance[name] = d
            continue
        lines = _describe(name, fresh / name, committed / name)
        result.mismatches += [f"{version}/{name}: {line}" for line in lines]
    if MANIFEST in differing:
        result.mismatches += _manifest_mismatches(version, fresh / MANIFEST, committed / MANIFEST, result)
    return result


def _manifest_mismatches(version: str, fresh: Path, committed: Path, result: Result) -> list[str]:
    a, b = _read_json(fresh), _read_json(committed)
    if not isinstance(a, dict) or not isinstance(b, dict):
        return [f"{version}/{MANIFEST}: not a JSON object"]
    # Only the checksums of arrays that passed the tolerance check may differ.
    for m in (a, b):
        files = m.get("files")
        if isinstance(files, dict):
            m["files"] = {k: v for k, v in files.items() if k not in result.within_tolerance}
    # The machine-measured latency: only which models it covers is compared, never its numbers.
    measured = [m.pop(MEASURED, None) for m in (a, b)]
    covers = [sorted((m or {}).get("ratio_to") or {}) if isinstance(m, dict) else [] for m in measured]
    if measured[0] != measured[1] and covers[0] == covers[1]:
        result.machine_measured.append(MANIFEST)
    diffs = list(json_diff(a, b))
    if covers[0] != covers[1]:
        diffs.append(
            f"{MEASURED}.ratio_to: the retrain measures {covers[0] or 'no model'}, committed "
            f"{covers[1] or 'none'} (retrain with --force to record it)"
        )
    if not diffs:
        # Equal JSON: only those checksums, the latency or the formatting differed.
        if result.within_tolerance or MANIFEST in result.machine_measured:
            return []
        return [f"{version}/{MANIFEST}: same JSON, different bytes"]
    lines = [f"{version}/{MANIFEST}: {line}" for line in diffs[:MAX_LINES_PER_FILE]]
    if len(diffs) > MAX_LINES_PER_FILE:
        lines.append(f"{version}/{MANIFEST}: ... and {len(diffs) - MAX_LINES_PER_FILE} more difference(s)")
    sha = [(m.get("training") or {}).get("data_sha256") for m in (a, b)]
    if sha[0] != sha[1]:
        lines.insert(0, f"{version}/{MANIFEST}: the retrain used other data (training.data_sha256 differs)")
    return lines


def compare_behaviour(
    version: str, pipeline, committed: Path, texts: Sequence[str], tolerance: float = PROBABILITY_TOLERANCE
) -> tuple[list[str], float]:
    """Retrained pipeline vs the runtime scorer over the committed artifacts, on every text
    (probabilities within `tolerance`, the model kind's: TOLERANCES)."""
    try:
        model = load_model(committed)
    except ArtifactError as exc:
        return [f"{version}: the runtime scorer refuses the committed artifacts: {exc}"], math.inf
    texts = list(texts)
    reference = pipeline.predict_proba(texts)
    labels = pipeline.predict(texts)
    changed: list[int] = []
    worst = 0.0
    for i, (text, probs, label) in enumerate(zip(texts, reference, labels, strict=True)):
        got = model.predict(text)
        if got.label != LABELS[int(label)]:
            changed.append(i)
        worst = max(worst, *(abs(got.scores[name] - float(probs[k])) for k, name in enumerate(LABELS)))
    lines = []
    if changed:
        # Positions, not texts: the texts are tweets and stay out of logs.
        lines.append(
            f"{version}/behaviour: {len(changed)} of {len(texts)} test texts get another label "
            f"(first at position {changed[0]})"
        )
    if worst > tolerance:
        lines.append(f"{version}/behaviour: max |probability diff| {worst:.1e} > {tolerance:.0e}")
    return lines, worst


def check_version(version: str, fresh: Path, committed: Path, pipeline, texts: Sequence[str]) -> Result:
    """The whole contract for one version: files, arrays, manifest, then behaviour."""
    result = compare_files(version, fresh, committed)
    if committed.is_dir():
        lines, result.max_prob_diff = compare_behaviour(
            version, pipeline, committed, texts, result.probability_tolerance
        )
        result.mismatches += lines
        result.n_texts = len(texts)
    return result


def install(fresh: Path, target: Path, keep: Iterable[str] = ()) -> list[str]:
    """Make target hold the files of fresh, writing only those whose bytes differ, except the
    arrays named in keep (within tolerance), whose committed bytes stay: the manifest written
    then lists their committed checksums. Returns the names written or deleted."""
    target.mkdir(parents=True, exist_ok=True)
    names = _files(fresh)
    keep = {n for n in keep if n in names and n != MANIFEST and (target / n).is_file()}
    blobs = {n: (fresh / n).read_bytes() for n in names - keep}
    if keep and MANIFEST in blobs:
        manifest = json.loads(blobs[MANIFEST])
        for name in sorted(keep):
            committed = (target / name).read_bytes()
            manifest["files"][name] = {
                "sha256": hashlib.sha256(committed).hexdigest(),
                "bytes": len(committed),
            }
        blobs[MANIFEST] = manifest_bytes(manifest)
    changed = sorted(_files(target) - names)
    for stale in changed:
        (target / stale).unlink()
    # The manifest goes last: a folder left half-copied fails its checksums instead of loading.
    for name in sorted(set(blobs) - {MANIFEST}) + sorted(set(blobs) & {MANIFEST}):
        path = target / name
        if not path.is_file() or path.read_bytes() != blobs[name]:
            path.write_bytes(blobs[name])
            changed.append(name)
    return changed


def publish(
    fresh_root: Path,
    out: Path,
    pipelines: dict,
    texts: Sequence[str],
    *,
    check: bool = False,
    force: bool = False,
    emit=print,
) -> int:
    """Compare each retrained version with out/<version> and decide what to write.

    New versions are written; committed ones that reproduce are left untouched; committed ones
    that do not are refused (exit status 1) unless force. With check, nothing is written.
    """
    status = 0
    for version, pipeline in pipelines.items():
        fresh, target = fresh_root / version, out / version
        if not _files(target):
            if check:
                emit(f"{version}: nothing committed at {target}")
                status = 1
            else:
                install(fresh, target)
                emit(f"{version}: not committed yet: wrote {target}")
            continue
        result = check_version(version, fresh, target, pipeline, texts)
        if result.reproduced:
            emit(result.summary() + ("" if check else f"; left {target} untouched"))
            continue
        emit(result.summary())
        for line in result.mismatches:
            emit(line)
        if check:
            status = 1
        elif force:
            written = install(fresh, target, keep=result.within_tolerance)
            kept = "".join(
                f"; kept the committed {name} (within tolerance)" for name in sorted(result.within_tolerance)
            )
            emit(
                f"{version}: --force: wrote {', '.join(written) or 'nothing'} in {target}{kept}; the lines "
                "above are what changed"
            )
        else:
            emit(
                f"{version}: refusing to overwrite {target}: the retrain does not reproduce it (lines "
                "above). Check the data and library versions; to replace it anyway: "
                "python -m training.train --force (make train FORCE=1)"
            )
            status = 1
    return status


def blas_kernels() -> str:
    """The BLAS kernels in use, e.g. 'openblas Haswell' (they set the last bits of v2's arrays)."""
    from threadpoolctl import threadpool_info

    found = {
        f"{info['internal_api']} {info.get('architecture')}"
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    }
    return ", ".join(sorted(found)) or "no BLAS found"


if __name__ == "__main__":
    from training.train import main

    sys.exit(main(["--check", *sys.argv[1:]]))
