"""The labelled-tweets data set and the fixed train/test split of ../shared/data/README.md."""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

# The API's labels, in the data set's class order (0, 1, 2); re-exported for training code.
from infer.model import LABELS as LABELS

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "labeled_data.csv"
DATA_ENV = "HATE_DATA"


@dataclass(frozen=True)
class Row:
    """One labelled tweet."""

    row_id: int  # the CSV's unnamed first column
    text: str  # the tweet, as written
    label: int  # majority class: index into LABELS
    votes: tuple[int, int, int]  # annotator votes per class, in LABELS order


@dataclass(frozen=True)
class Dataset:
    """The split data set and what identifies it."""

    train: list[Row]
    test: list[Row]
    sha256: str  # fingerprint of the CSV bytes


def data_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The CSV to read: an explicit path, else $HATE_DATA, else ../shared/data/labeled_data.csv."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA)


def is_test(row_id: int) -> bool:
    """The split rule: sha256 of the decimal row id, as an integer, divisible by 5."""
    return int(hashlib.sha256(str(row_id).encode()).hexdigest(), 16) % 5 == 0


def load(path: str | os.PathLike[str] | None = None) -> Dataset:
    """Read and split the CSV; raises FileNotFoundError naming where to get it."""
    path = data_path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"labelled data not found at {path}: pass --data or set {DATA_ENV}; the file is the "
            "data/labeled_data.csv of the GitHub repository t-davidson/hate-speech-and-offensive-language"
        )
    raw = path.read_bytes()
    train: list[Row] = []
    test: list[Row] = []
    reader = csv.DictReader(raw.decode("utf-8").splitlines(keepends=True))
    for rec in reader:
        row = Row(
            row_id=int(rec[""]),
            text=rec["tweet"],
            label=int(rec["class"]),
            votes=(int(rec["hate_speech"]), int(rec["offensive_language"]), int(rec["neither"])),
        )
        (test if is_test(row.row_id) else train).append(row)
    return Dataset(train=train, test=test, sha256=hashlib.sha256(raw).hexdigest())


def golden_set(dataset: Dataset, n: int = 300) -> list[Row]:
    """A fixed sample of the test split for the pre-traffic check: the n test rows whose
    sha256(row id) sorts first, so the set is the same on every build and every machine."""
    ranked = sorted(dataset.test, key=lambda r: hashlib.sha256(f"golden:{r.row_id}".encode()).hexdigest())
    return ranked[:n]
