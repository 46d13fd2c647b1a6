"""The .npy reader used at serving time, checked against NumPy's own writer."""

from __future__ import annotations

import io

import numpy as np
import pytest

from infer.npy import NpyError, parse_npy


def npy(array, **kwargs) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, **kwargs)
    return buf.getvalue()


def test_reads_numpy_float64_matrix_in_c_order():
    """A (4, 3) float64 array written by numpy.save reads back with the same shape and values."""
    a = np.arange(12, dtype="<f8").reshape(4, 3) / 7
    shape, values = parse_npy(npy(a))
    assert shape == (4, 3)
    assert list(values) == a.ravel().tolist()


def test_refuses_object_arrays_that_would_need_pickle():
    """An object array (the kind only pickle can load) is refused, as allow_pickle=False does."""
    blob = npy(np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(NpyError, match="float64"):
        parse_npy(blob)


def test_refuses_other_dtypes():
    """float32 or integer arrays are not silently reinterpreted."""
    with pytest.raises(NpyError, match="float64"):
        parse_npy(npy(np.zeros(3, dtype="<f4")))


def test_refuses_truncated_data():
    """A file cut short is refused with the byte counts."""
    blob = npy(np.zeros(10))
    with pytest.raises(NpyError, match="data bytes"):
        parse_npy(blob[:-8])


def test_refuses_bytes_that_are_not_npy():
    """Random bytes are not a .npy file."""
    with pytest.raises(NpyError, match="magic"):
        parse_npy(b"PK\x03\x04 not numpy at all")


def test_refuses_fortran_order():
    """Column-major data would be read in the wrong order, so it is refused."""
    a = np.asfortranarray(np.arange(6, dtype="<f8").reshape(2, 3))
    with pytest.raises(NpyError, match="C-order"):
        parse_npy(npy(a))
