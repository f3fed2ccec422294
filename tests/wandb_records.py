"""Reads back the records of an offline W&B run (``run-ID.wandb``) for the tracking tests.

The file is a LevelDB-style log (W&B's own datastore format): a 7-byte header (``:W&B``, magic
0xBEE1, version 0), then 32 KiB blocks of records, each with a 7-byte header (CRC-32C, length,
type FULL=1 / FIRST=2 / MIDDLE=3 / LAST=4); a record never straddles a block, and a block tail
under 7 bytes is padding. Each record's payload is a ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7


def records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B datastore"
    position, pending, found = HEADER, b"", []
    while position + HEADER <= len(data):
        left_in_block = BLOCK - position % BLOCK
        if left_in_block < HEADER:
            position += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + HEADER])
        payload = data[position + HEADER : position + HEADER + length]
        position += HEADER + length
        if kind == 0 and length == 0:
            break  # zero-filled tail
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            found.append(record)
    return found


def history(path: Path) -> list[dict[str, Any]]:
    """The ``run.log`` rows, in order, as ``{key: value}`` (``_step`` included)."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return rows
