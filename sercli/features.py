"""Feature store: sharded safetensors files plus an append-only index, read lazily.

Layout of a store folder::

    meta.json              what was extracted (backbone identity, layers, pooling, dtype)
    index.jsonl            {"key", "shard", "shape"} per stored item, appended after its shard is durable
    shard-00000.safetensors

A shard is written to a temporary name, fsynced and renamed; only then are its keys appended
to the index. A run killed at any point therefore leaves only whole shards behind, and the
index names only keys whose data is on disk. Re-running skips indexed keys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from sercli.errors import SercliError

INDEX = "index.jsonl"
META = "meta.json"


class FeatureStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._index: dict[str, dict[str, Any]] | None = None
        self._handles: dict[str, Any] = {}

    # -- metadata -------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        p = self.root / META
        if not p.exists():
            raise SercliError(f"{self.root} is not a sercli feature store (no {META})")
        return json.loads(p.read_text())

    def init(self, meta: dict[str, Any]) -> None:
        """Create the store, or check that an existing one holds the same kind of features."""
        self.root.mkdir(parents=True, exist_ok=True)
        p = self.root / META
        if p.exists():
            old = json.loads(p.read_text())
            if old != json.loads(json.dumps(meta)):
                diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
                raise SercliError(
                    f"Feature store {self.root} holds features made with other settings "
                    f"(differs in: {', '.join(diff)}); use another --store folder"
                )
            return
        _atomic_write_text(p, json.dumps(meta, indent=2, sort_keys=True))

    # -- index ----------------------------------------------------------------------------
    def index(self) -> dict[str, dict[str, Any]]:
        if self._index is None:
            self._index = {}
            p = self.root / INDEX
            if p.exists():
                for line in p.read_text().splitlines():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # torn last line of a killed run
                    if (self.root / row["shard"]).exists():
                        self._index[row["key"]] = row
        return self._index

    def __contains__(self, key: str) -> bool:
        return key in self.index()

    def __len__(self) -> int:
        return len(self.index())

    def get(self, key: str) -> np.ndarray:
        from safetensors import safe_open

        try:
            row = self.index()[key]
        except KeyError:
            raise SercliError(f"feature {key!r} is not in store {self.root}") from None
        shard = row["shard"]
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.root / shard), framework="np")
        return self._handles[shard].get_tensor(key)

    def writer(self, shard_bytes: int = 256 << 20) -> "ShardWriter":
        return ShardWriter(self, shard_bytes)


class ShardWriter:
    """Buffers arrays and writes them as one shard when the buffer is full (or on close)."""

    def __init__(self, store: FeatureStore, shard_bytes: int):
        self.store = store
        self.shard_bytes = shard_bytes
        self.buffer: dict[str, np.ndarray] = {}
        self.size = 0
        existing = [int(p.stem.split("-")[1]) for p in store.root.glob("shard-*.safetensors")]
        self.next_shard = max(existing, default=-1) + 1

    def add(self, key: str, array: np.ndarray) -> None:
        self.buffer[key] = np.ascontiguousarray(array)
        self.size += array.nbytes
        if self.size >= self.shard_bytes:
            self.flush()

    def flush(self) -> None:
        from safetensors.numpy import save_file

        if not self.buffer:
            return
        name = f"shard-{self.next_shard:05d}.safetensors"
        self.next_shard += 1
        final = self.store.root / name
        tmp = final.with_name(f".{name}.tmp")
        save_file(self.buffer, str(tmp))
        _fsync(tmp)
        os.replace(tmp, final)
        rows = [{"key": k, "shard": name, "shape": list(v.shape)} for k, v in self.buffer.items()]
        with open(self.store.root / INDEX, "a") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in rows))
            fh.flush()
            os.fsync(fh.fileno())
        index = self.store.index()
        for r in rows:
            index[r["key"]] = r
        self.buffer.clear()
        self.size = 0

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
