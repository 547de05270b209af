"""CSV column typing and tf.Example encoding, a whole batch of rows at a time.

TFX's CsvExampleGen types each column over every row of every file (INT,
then FLOAT, then STRING: the widest type any cell needs; UNKNOWN when every
cell is empty) and turns each row into a tf.Example in Python, one cell at a
time. This module gives the same answers on Arrow arrays of raw cell text:

- a cell's type follows `tfx_bsl.coders.csv_decoder._InferValueType` exactly
  (Python's `int()` of the cell's bytes within int64, else `float()`, else
  text). Arrow parses numbers by slightly different rules (it takes `0x10`
  as 16 and refuses `+5`, ` 5` and `1_0`, all of which Python reads), so a
  cell counts as a number on the fast path only when it matches the plain
  grammar both agree on (`INT_CELL`, `FLOAT_CELL`); every other cell is typed
  by the Python rule itself, once per distinct value;
- a value is Python's `int()`/`float()` of the cell (floats stored as
  float32, as tf.train.FloatList does); Arrow converts a column when it can
  parse every cell, and the Python rule converts it otherwise;
- an empty cell is a feature with an empty value list, and a column with no
  value at all is a feature with no kind, as CsvExampleGen writes them.

tests/test_example_gen.py checks all of it against CsvExampleGen itself.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Cells that Python's int() and Arrow's int64 parser both read, to the same value.
INT_CELL = r"^-?[0-9]+$"
# Cells that Python's float() and Arrow's float64 parser both read, to the same value.
FLOAT_CELL = r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class ColumnType(enum.IntEnum):
    """A column's type; a wider type wins (tfx_bsl's csv_decoder.ColumnType order)."""

    UNKNOWN = -1
    INT = 0
    FLOAT = 1
    STRING = 2


def cell_type(cell: bytes) -> ColumnType:
    """The type CsvExampleGen infers from one cell (tfx_bsl's `_InferValueType`)."""
    if not cell:
        return ColumnType.UNKNOWN
    try:
        # Out of int64's range, an integer is kept as text.
        return ColumnType.INT if _INT64_MIN <= int(cell) <= _INT64_MAX else ColumnType.STRING
    except ValueError:
        pass
    try:
        float(cell)
    except ValueError:
        return ColumnType.STRING
    return ColumnType.FLOAT


def _python_type(cells: pa.Array) -> ColumnType:
    """The widest `cell_type` of the distinct cells."""
    return max(
        (cell_type(value.encode()) for value in pc.unique(cells).to_pylist()),
        default=ColumnType.UNKNOWN,
    )


def _fits_int64(cells: pa.Array) -> bool:
    try:
        pc.cast(cells, pa.int64())
    except pa.ArrowInvalid:
        return False
    return True


def array_type(cells: pa.Array) -> ColumnType:
    """The widest type any of these cells (Arrow strings, "" for empty) needs."""
    cells = cells.filter(pc.not_equal(cells, ""))
    if len(cells) == 0:
        return ColumnType.UNKNOWN
    is_int = pc.match_substring_regex(cells, INT_CELL)
    is_number = pc.or_(is_int, pc.match_substring_regex(cells, FLOAT_CELL))
    found = ColumnType.UNKNOWN
    ints = cells.filter(is_int)
    if len(ints):
        found = ColumnType.INT if _fits_int64(ints) else _python_type(ints)
    if pc.any(pc.and_not(is_number, is_int)).as_py():
        found = max(found, ColumnType.FLOAT)
    others = cells.filter(pc.invert(is_number))
    if len(others):
        found = max(found, _python_type(others))
    return found


def batch_types(batch: pa.RecordBatch) -> dict[str, ColumnType]:
    """`array_type` of every column of a batch of cell text."""
    return {name: array_type(batch.column(name)) for name in batch.schema.names}


def widest(per_part: Iterable[Mapping[str, ColumnType]]) -> dict[str, ColumnType]:
    """Merges the column types of several parts (batches, files): the widest wins."""
    merged: dict[str, ColumnType] = {}
    for types in per_part:
        for name, found in types.items():
            merged[name] = max(found, merged.get(name, ColumnType.UNKNOWN))
    return merged


def _values(cells: pa.Array, column_type: ColumnType) -> pa.Array:
    """Cells (none empty) as int64 or float32 values, converted as Python does."""
    try:
        if column_type == ColumnType.INT:
            return pc.cast(cells, pa.int64())
        return pc.cast(pc.cast(cells, pa.float64()), pa.float32(), safe=False)
    except pa.ArrowInvalid:
        # Cells only Python reads (" 5", "+5", "1_0", "+.5"): convert them as it does.
        if column_type == ColumnType.INT:
            return pa.array([int(value.encode()) for value in cells.to_pylist()], pa.int64())
        converted = pa.array([float(value.encode()) for value in cells.to_pylist()], pa.float64())
        return pc.cast(converted, pa.float32(), safe=False)


# The wire format of tf.train.Example (tensorflow/core/example/{example,feature}.proto):
# Example.features = 1, Features.feature = 1 (map entries: key = 1, value = 2),
# Feature.bytes_list = 1, float_list = 2, int64_list = 3, and each list's value = 1
# (floats and int64s packed). Every field here is length-delimited: tag (field << 3 | 2).
_TAG_1 = b"\x0a"
_TAG_2 = b"\x12"
_TAG_3 = b"\x1a"
_KIND_TAG = {ColumnType.STRING: _TAG_1, ColumnType.FLOAT: _TAG_2, ColumnType.INT: _TAG_3}


def _bytes(value: bytes) -> pa.Scalar:
    return pa.scalar(value, pa.large_binary())


_EMPTY = _bytes(b"")


def _join(*parts: pa.Array | pa.Scalar) -> pa.Array:
    """Row by row, the parts' bytes one after another."""
    return pc.binary_join_element_wise(*parts, _EMPTY)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _varints(values: np.ndarray) -> pa.Array:
    """Each value (int64; negatives as their 64-bit two's complement) as a protobuf varint."""
    unsigned = np.ascontiguousarray(values, dtype=np.int64).view(np.uint64)
    groups = np.stack(
        [(unsigned >> np.uint64(7 * j)) & np.uint64(0x7F) for j in range(10)], axis=1
    ).astype(np.uint8)
    sizes = np.ones(len(unsigned), np.int64)
    for j in range(1, 10):
        sizes += unsigned >= np.uint64(1 << (7 * j))
    position = np.arange(10)[None, :]
    groups |= np.where(position < sizes[:, None] - 1, np.uint8(0x80), np.uint8(0))
    data = groups[position < sizes[:, None]]
    offsets = np.concatenate([np.zeros(1, np.int64), np.cumsum(sizes)])
    return pa.Array.from_buffers(
        pa.large_binary(), len(sizes), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _lengths(parts: pa.Array) -> np.ndarray:
    return np.asarray(pc.binary_length(parts), dtype=np.int64)


def _delimited(tag: bytes, payload: pa.Array) -> pa.Array:
    """`tag`, the payload's length, the payload: a length-delimited field per row."""
    return _join(_bytes(tag), _varints(_lengths(payload)), payload)


def _value_list(cells: pa.Array, column_type: ColumnType) -> pa.Array:
    """Per row, the list message's bytes: its one value, or nothing for an empty cell."""
    present = pc.not_equal(cells, "")
    if column_type == ColumnType.STRING:
        one = _delimited(_TAG_1, pc.cast(cells, pa.large_binary()))
    else:
        values = _values(pc.if_else(present, cells, "0"), column_type).to_numpy()
        if column_type == ColumnType.INT:
            one = _delimited(_TAG_1, _varints(values))
        else:
            packed = values.astype("<f4").view(np.uint8)
            floats = pa.Array.from_buffers(
                pa.large_binary(),
                len(values),
                [
                    None,
                    pa.py_buffer(np.arange(len(values) + 1, dtype=np.int64) * 4),
                    pa.py_buffer(packed),
                ],
            )
            one = _join(_bytes(_TAG_1 + b"\x04"), floats)
    return pc.if_else(present, one, _EMPTY)


def _feature(cells: pa.Array, column_type: ColumnType) -> pa.Array:
    """Per row, the column's tf.train.Feature bytes."""
    if column_type == ColumnType.UNKNOWN:
        # No kind at all (tf.train.Feature()), as CsvExampleGen writes an untyped column.
        return pa.repeat(_EMPTY, len(cells))
    return _delimited(_KIND_TAG[column_type], _value_list(cells, column_type))


def encode(batch: pa.RecordBatch, types: Mapping[str, ColumnType]) -> list[bytes]:
    """Serialized tf.Examples of a batch of cell text, one per row, columns typed by `types`.

    The bytes are the deterministic serialization (map entries sorted by key)
    that CsvExampleGen hashes to split rows, so a split made from them holds
    the same rows as CsvExampleGen's.

    Raises:
        KeyError: A column of the batch has no type in `types`.
    """
    entries = []
    for name in sorted(batch.schema.names, key=str.encode):
        key = name.encode()
        feature = _feature(batch.column(name), types[name])
        key_field = _bytes(_TAG_1 + _varint(len(key)) + key + _TAG_2)
        entry = _join(key_field, _varints(_lengths(feature)), feature)
        entries.append(_delimited(_TAG_1, entry))
    features = _join(*entries) if entries else pa.repeat(_EMPTY, batch.num_rows)
    return _delimited(_TAG_1, features).to_pylist()


def text_schema(names: Sequence[str]) -> dict[str, pa.DataType]:
    """Arrow column types that keep every cell as its text."""
    return {name: pa.string() for name in names}
