"""Read what an offline W&B run wrote: the records of its ``run-<id>.wandb`` file.

The file is a 7-byte header (``:W&B``, magic, version) followed by LevelDB-log records in
32 KiB blocks (each record: crc32, length, type FULL/FIRST/MIDDLE/LAST), each a protobuf
``wandb_internal_pb2.Record``. wandb 0.31 ships no reader of its own (its core is in Go).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

BLOCK, HEADER = 32768, 7


def records(path: Path) -> Iterator:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B run file"
    pos, buf = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0:  # zero padding up to the end of the block
            pos += left
            continue
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            full = chunk
        elif kind == 2:
            buf = chunk
            continue
        elif kind == 3:
            buf += chunk
            continue
        else:
            full = buf + chunk
        rec = pb.Record()
        rec.ParseFromString(full)
        yield rec


def read_run(run_dir: Path, wait_s: float = 60.0) -> dict:
    """The run record (group, tags, name), the config keys and the history rows of the one
    offline run under ``<run_dir>/wandb``, once its ``exit`` record is written (W&B's core
    process writes the file after ``finish()`` returns)."""
    import time

    files = sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, f"expected one offline W&B run under {run_dir}, got {files}"
    deadline = time.monotonic() + wait_s
    while not any(r.WhichOneof("record_type") == "exit" for r in records(files[0])):
        assert time.monotonic() < deadline, f"{files[0]}: no exit record after {wait_s} s"
        time.sleep(0.5)
    out: dict = {"history": [], "config": {}, "file": files[0]}
    for r in records(files[0]):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["run"] = {"group": r.run.run_group, "tags": list(r.run.tags),
                          "name": r.run.display_name, "project": r.run.project}
        elif kind == "config":
            for item in r.config.update:
                out["config"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                   for i in r.history.item})
    return out
