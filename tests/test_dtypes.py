"""The dtype table: 15 dtypes, one C type each, the same in fjffi.h, in
Buffer, in the buffer protocol and in to_buffer; everything else refused.
"""

import os
import re
import struct
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import fjffi

# name: (code in fjffi.h, itemsize, buffer-protocol format)
TABLE = {
    "float64": (0, 8, "d"), "float32": (1, 4, "f"), "float16": (2, 2, "e"),
    "bfloat16": (3, 2, "H"), "int64": (4, 8, "q"), "int32": (5, 4, "i"),
    "int16": (6, 2, "h"), "int8": (7, 1, "b"), "uint64": (8, 8, "Q"), "uint32": (9, 4, "I"),
    "uint16": (10, 2, "H"), "uint8": (11, 1, "B"), "bool": (12, 1, "?"),
    "complex64": (13, 8, "Zf"), "complex128": (14, 16, "Zd"),
}


def np_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def header():
    with open(os.path.join(fjffi.get_include(), "fjffi.h")) as f:
        return f.read()


def test_header_codes_match_the_table():
    codes = dict(re.findall(r"FJFFI_(\w+) = (\d+),", header()))
    for name, (code, _, _) in TABLE.items():
        assert int(codes[name.upper()]) == code, name
    assert "FJFFI_NUM_DTYPES = 15" in header()


def test_header_table_matches():
    """fjffi.h's one dtype table: name, itemsize and format of every code."""
    rows = re.findall(r'\[FJFFI_(\w+)\] = \{"(\w+)", (\d+), (\d+), "([^"]+)"', header())
    assert len(rows) == len(TABLE)
    for enum, name, size, align, fmt in rows:
        assert enum == name.upper()
        assert (int(size), fmt) == TABLE[name][1:], name
        assert int(align) == (int(size) // 2 if name.startswith("complex") else int(size))
    assert fjffi._core.DTYPE_NAMES == tuple(sorted(TABLE, key=lambda n: TABLE[n][0]))


@pytest.mark.parametrize("name", sorted(TABLE))
def test_buffer_dtype_itemsize_and_format(name):
    _, size, fmt = TABLE[name]
    buf = fjffi.Buffer.zeros((2, 3), name)
    assert buf.dtype == np_dtype(name)
    assert buf.nbytes == 6 * size
    view = memoryview(buf)
    assert (view.format, view.itemsize, view.shape) == (fmt, size, (2, 3))


@pytest.mark.parametrize("name", sorted(TABLE))
def test_to_buffer_keeps_every_dtype(name):
    arr = np.ones(3, np_dtype(name))
    buf = fjffi.to_buffer(arr)
    assert buf.dtype == arr.dtype
    assert fjffi.from_buffer(buf).tobytes() == arr.tobytes()


def test_buffer_protocol_views_through_numpy():
    assert np.asarray(fjffi.Buffer.zeros(2, "complex64")).dtype == np.complex64
    assert np.asarray(fjffi.Buffer.zeros(2, "bool")).dtype == np.bool_
    assert np.asarray(fjffi.Buffer.zeros(2, "float16")).dtype == np.float16
    # bfloat16 has no PEP 3118 code: the protocol shows its raw bits.
    assert np.asarray(fjffi.Buffer.zeros(2, "bfloat16")).dtype == np.uint16


@pytest.mark.parametrize("spelling, name", [
    (np.float64, "float64"), (float, "float64"), ("d", "float64"), ("f8", "float64"),
    (np.float32, "float32"), ("f", "float32"), (np.half, "float16"),
    (ml_dtypes.bfloat16, "bfloat16"), ("bfloat16", "bfloat16"),
    (int, "int64"), (np.int_, "int64"), (np.longlong, "int64"), ("l", "int64"), ("q", "int64"),
    (np.intc, "int32"), ("i4", "int32"), (np.short, "int16"), (np.byte, "int8"),
    (np.ulonglong, "uint64"), ("L", "uint64"), ("Q", "uint64"), (np.uintc, "uint32"),
    (np.ushort, "uint16"), (np.ubyte, "uint8"), (bool, "bool"), (np.bool_, "bool"),
    ("?", "bool"), (complex, "complex128"), (np.csingle, "complex64"),
    (np.dtype("=f8"), "float64"),
])
def test_dtype_spellings(spelling, name):
    assert fjffi.Buffer.zeros((), spelling).dtype == np_dtype(name)


@pytest.mark.parametrize("spelling", [
    np.longdouble, np.clongdouble, object, "U3", "S3", "datetime64[s]", "timedelta64[s]",
    "V4", np.dtype([("a", "i4")]), "notadtype",
])
def test_other_dtypes_are_refused(spelling):
    with pytest.raises(fjffi.UnsupportedDtypeError) as info:
        fjffi.Buffer.zeros((1,), spelling)
    assert "fjffi takes float64" in str(info.value)


@pytest.mark.parametrize("name", ["float64", "int32", "complex64", "uint16"])
def test_non_native_byte_order_is_refused(name):
    swapped = np.dtype(name).newbyteorder("S")
    with pytest.raises(fjffi.UnsupportedDtypeError, match="byte order"):
        fjffi.Buffer.zeros((1,), swapped)


def test_element_layouts():
    order = "<" if sys.byteorder == "little" else ">"
    assert fjffi.to_buffer(np.complex64(1 + 2j)).tobytes() == struct.pack(order + "ff", 1, 2)
    assert fjffi.to_buffer(np.complex128(-1.5 + 0.25j)).tobytes() == struct.pack(
        order + "dd", -1.5, 0.25)
    assert fjffi.to_buffer(np.array([True, False])).tobytes() == b"\x01\x00"
    assert fjffi.to_buffer(np.float16(1.0)).tobytes() == struct.pack(order + "H", 0x3C00)
    assert fjffi.to_buffer(np.array(1.0, ml_dtypes.bfloat16)).tobytes() == struct.pack(
        order + "H", 0x3F80)
    assert fjffi.to_buffer(np.int16(-2)).tobytes() == struct.pack(order + "h", -2)


def test_bfloat16_without_ml_dtypes(tmp_path):
    # A child process where ml_dtypes fails to import, as when it is not
    # installed: raw bytes still make a bfloat16 Buffer; only the numpy
    # view needs ml_dtypes.
    (tmp_path / "ml_dtypes").mkdir()
    (tmp_path / "ml_dtypes" / "__init__.py").write_text("raise ImportError('not installed')\n")
    code = (
        "import numpy as np, fjffi\n"
        "buf = fjffi.Buffer(bytearray(b'\\x80\\x3f\\x00\\xc0'), (2,), 'bfloat16')\n"
        "assert buf.dtype == 'bfloat16' and buf.nbytes == 4, buf.dtype\n"
        "assert np.asarray(buf).dtype == np.uint16\n"
        "assert fjffi.Buffer.zeros((3,), 'bfloat16').nbytes == 6\n"
        "try:\n"
        "    fjffi.from_buffer(buf)\n"
        "except fjffi.UnsupportedDtypeError as e:\n"
        "    assert 'ml_dtypes' in str(e)\n"
        "else:\n"
        "    raise AssertionError('from_buffer needs ml_dtypes')\n"
        "print(buf.tobytes().hex())\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], check=False,
                          capture_output=True, text=True, timeout=60, cwd="/", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "803f00c0"
