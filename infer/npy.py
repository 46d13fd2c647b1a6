"""Read NumPy .npy files of little-endian float64 without NumPy (which is too big for the
Lambda package). Only plain numeric data is accepted: an object array, the only kind that
needs pickle, is refused, which is what numpy.load(allow_pickle=False) does too."""

from __future__ import annotations

import ast
import sys
from array import array

_MAGIC = b"\x93NUMPY"


class NpyError(ValueError):
    """The bytes are not a .npy array this reader accepts."""


def parse_npy(data: bytes) -> tuple[tuple[int, ...], array]:
    """Shape and flat C-order values of a '<f8' .npy file's bytes."""
    if not data.startswith(_MAGIC) or len(data) < 10:
        raise NpyError("not a .npy file (bad magic)")
    major = data[6]
    if major == 1:
        header_len, start = int.from_bytes(data[8:10], "little"), 10
    elif major in (2, 3):
        header_len, start = int.from_bytes(data[8:12], "little"), 12
    else:
        raise NpyError(f"unsupported .npy version {major}")
    header_end = start + header_len
    try:
        header = ast.literal_eval(data[start:header_end].decode("latin1"))
    except (ValueError, SyntaxError) as exc:
        raise NpyError("unreadable .npy header") from exc
    if not isinstance(header, dict) or header.get("descr") != "<f8":
        raise NpyError("only little-endian float64 ('<f8') arrays are accepted")
    if header.get("fortran_order") is not False:
        raise NpyError("only C-order arrays are accepted")
    shape = header.get("shape")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise NpyError("bad .npy shape")
    count = 1
    for n in shape:
        count *= n
    body = data[header_end:]
    if len(body) != 8 * count:
        raise NpyError(f"expected {8 * count} data bytes for shape {shape}, found {len(body)}")
    values = array("d")
    values.frombytes(body)
    if sys.byteorder != "little":
        values.byteswap()
    return shape, values
