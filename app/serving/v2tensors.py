"""Tensors of the Open Inference Protocol (V2) as plain Python: the raw (binary) encodings that
gRPC's raw_input_contents and REST's binary tensor extension carry, and their row counts.

Pure: no HTTP, no gRPC. A tensor here is a name, a datatype, a shape and a flat row-major list.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

# Little-endian, as the protocol's raw contents are.
NUMPY = {
    "BOOL": "?",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
DATATYPES = frozenset({*NUMPY, "BYTES"})


class TensorError(ValueError):
    """A tensor that cannot be read: its message names the tensor and what is wrong."""


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any]

    @property
    def rows(self) -> int:
        """The batch size: a decision input is [N] or [N, 1]."""
        if len(self.shape) not in (1, 2) or (len(self.shape) == 2 and self.shape[1] != 1):
            raise TensorError(
                f"input {self.name!r} has shape {list(self.shape)}; expected [N] or [N, 1] "
                "(one value per application)"
            )
        return self.shape[0]


def element_count(name: str, shape: list[int] | tuple[int, ...]) -> int:
    if any(d < 0 for d in shape):
        raise TensorError(f"input {name!r} has a negative dimension in its shape {list(shape)}")
    return math.prod(shape)


def decode_raw(name: str, datatype: str, shape: tuple[int, ...], raw: bytes) -> list[Any]:
    """A tensor's values from its raw bytes (fixed-size little-endian elements, or for BYTES
    each element's 4-byte little-endian length, then its bytes)."""
    count = element_count(name, shape)
    if datatype == "BYTES":
        values, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise TensorError(f"input {name!r}: raw BYTES end inside a length prefix")
            (size,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            if offset + size > len(raw):
                raise TensorError(f"input {name!r}: raw BYTES element longer than its data")
            values.append(raw[offset : offset + size])
            offset += size
    elif datatype in NUMPY:
        dtype = np.dtype(NUMPY[datatype])
        if len(raw) != count * dtype.itemsize:
            raise TensorError(
                f"input {name!r}: {len(raw)} raw bytes for shape {list(shape)} of {datatype} "
                f"(expected {count * dtype.itemsize})"
            )
        values = np.frombuffer(raw, dtype=dtype).tolist()
    else:
        raise TensorError(f"input {name!r}: unknown datatype {datatype!r}")
    if len(values) != count:
        raise TensorError(f"input {name!r}: {len(values)} values for shape {list(shape)}")
    return values


def encode_raw(datatype: str, values: list[Any]) -> bytes:
    """`decode_raw`'s inverse, for the outputs."""
    if datatype == "BYTES":
        parts = []
        for value in values:
            data = value if isinstance(value, bytes) else str(value).encode()
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    return np.asarray(values, dtype=NUMPY[datatype]).tobytes()


def flatten(data: Any) -> list[Any]:
    """REST `data` may be nested row-major lists; the protocol reads it flat."""
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(v, list) for v in data):
        return data
    flat: list[Any] = []
    for value in data:
        flat.extend(flatten(value))
    return flat
