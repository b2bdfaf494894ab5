"""Scalar logging of a training run: a JSON-lines file and TensorBoard event files.

  writer = MetricWriter(workdir)            # WORKDIR/metrics.jsonl + WORKDIR/tensorboard/events.*
  writer.write(step, {"loss": 0.3, "lr": 1e-4})
  writer.close()

The TensorBoard writer is self-contained (no TensorFlow, no tensorboardX): an event file is a
sequence of TFRecord frames `[len u64][masked crc32c(len) u32][Event bytes][masked crc32c(data) u32]`
and each `Event` protobuf is encoded by hand (wall_time=1 double, step=2 int64, file_version=3
string, summary=5 {value=1 {tag=1 string, simple_value=2 float}}). tensorboardX was the first choice,
but importing it imports torch (about 3.5 s on this machine) and boto3, which training should not pay.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import socket
import struct
import time
from typing import Mapping


def _crc32c_table() -> list[int]:
  table = []
  for i in range(256):
    crc = i
    for _ in range(8):
      crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    table.append(crc)
  return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli), the checksum of TFRecord frames."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
  out = bytearray()
  value &= (1 << 64) - 1
  while True:
    bits = value & 0x7F
    value >>= 7
    if value:
      out.append(bits | 0x80)
    else:
      out.append(bits)
      return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
  return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def encode_event(wall_time: float, step: int = 0, *, file_version: str | None = None,
                 scalars: Mapping[str, float] | None = None) -> bytes:
  """The serialised `tensorboard.Event` protobuf of a file-version header or of scalar summaries."""
  out = bytearray(_varint((1 << 3) | 1) + struct.pack("<d", wall_time))
  out += _varint(2 << 3) + _varint(int(step))
  if file_version is not None:
    out += _field_bytes(3, file_version.encode())
  if scalars:
    summary = bytearray()
    for tag, value in scalars.items():
      entry = _field_bytes(1, tag.encode()) + _varint((2 << 3) | 5) + struct.pack("<f", value)
      summary += _field_bytes(1, entry)
    out += _field_bytes(5, bytes(summary))
  return bytes(out)


class TensorBoardWriter:
  """Appends scalar summaries to `directory/events.out.tfevents.<time>.<host>`."""

  def __init__(self, directory: str | os.PathLike):
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    self.path = directory / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
    self._file = open(self.path, "ab")
    self._record(encode_event(time.time(), file_version="brain.Event:2"))

  def _record(self, data: bytes) -> None:
    header = struct.pack("<Q", len(data))
    self._file.write(header + struct.pack("<I", _masked_crc(header)) + data
                     + struct.pack("<I", _masked_crc(data)))

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    self._record(encode_event(time.time(), step, scalars=scalars))
    self._file.flush()

  def close(self) -> None:
    self._file.close()


class JsonlWriter:
  """Appends one JSON object per call, `{"step": s, **scalars}`, to `path`."""

  def __init__(self, path: str | os.PathLike):
    self.path = pathlib.Path(path)
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self._file = open(self.path, "a", encoding="utf-8")

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    row = {"step": int(step)}
    row.update({k: (v if math.isfinite(v) else str(v)) for k, v in scalars.items()})
    self._file.write(json.dumps(row) + "\n")
    self._file.flush()

  def close(self) -> None:
    self._file.close()


class MetricWriter:
  """Both writers under a workdir; inactive (writes nothing) on processes other than 0."""

  def __init__(self, workdir: str | os.PathLike, active: bool = True):
    workdir = pathlib.Path(workdir)
    self.jsonl_path = workdir / "metrics.jsonl"
    self._writers = ([JsonlWriter(self.jsonl_path), TensorBoardWriter(workdir / "tensorboard")]
                     if active else [])

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    scalars = {k: float(v) for k, v in scalars.items()}
    for writer in self._writers:
      writer.write(step, scalars)

  def close(self) -> None:
    for writer in self._writers:
      writer.close()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
  """The rows of a metrics.jsonl file (for plots and tests)."""
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]
