"""Feature store: sharded safetensors files plus an append-only index, read lazily.

Layout of a store folder::

    meta.json              what was extracted (backbone identity, layers, pooling, dtype)
    index.jsonl            {"key", "shard", "shape", "finite"} per stored item, appended after its shard is durable
    shard-00000.safetensors

A shard is written to a temporary name, fsynced and renamed; only then are its keys appended
to the index. A run killed at any point therefore leaves only whole shards behind, and the
index names only keys whose data is on disk. Re-running skips indexed keys. A writer holds an
exclusive lock on the store, so two runs never interleave shards or index lines.

Keys are chosen by the caller; ``sercli extract`` keys a record's features by its id and its
audio (sercli.core.fingerprint). Only finite numbers are stored: the writer refuses anything else,
and its index rows say ``"finite": true`` (rows of older stores lack it: their values are
checked when read for training, see sercli.learning.data).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from sercli.core.errors import RecordError, SercliError

INDEX = "index.jsonl"
META = "meta.json"
LOCK = ".lock"
SHARD_GLOB = "shard-*.safetensors"


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
        return _read_meta(p)

    def init(self, meta: dict[str, Any]) -> None:
        """Create the store, or check that an existing one holds the same kind of features."""
        self.root.mkdir(parents=True, exist_ok=True)
        p = self.root / META
        if p.exists():
            old = _read_meta(p)
            new = json.loads(json.dumps(meta))
            if old != new:
                diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
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
                present = {q.name for q in self.root.glob(SHARD_GLOB)}
                for line in p.read_text().splitlines():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # torn last line of a killed run
                    if not (isinstance(row, dict) and isinstance(row.get("key"), str)
                            and isinstance(row.get("shard"), str)):
                        continue  # not a row this store wrote: its key is not there
                    if row["shard"] in present:
                        self._index.setdefault(row["key"], row)
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
        try:
            if shard not in self._handles:
                self._handles[shard] = safe_open(str(self.root / shard), framework="np")
            return self._handles[shard].get_tensor(key)
        except Exception as exc:  # noqa: BLE001 - a torn or damaged shard (safetensors' own error types)
            why = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise SercliError(f"{self.root / shard} (feature {key!r}) is damaged ({why}): extract the records "
                              f"into a new --store") from None

    def writer(self, shard_bytes: int = 256 << 20) -> "ShardWriter":
        return ShardWriter(self, shard_bytes)


class ShardWriter:
    """Buffers arrays and writes them as one shard when the buffer is full (or on close).

    Opening a writer takes the store's lock and tidies what a killed run may have left:
    temporary files, shards that never made it into the index, and a torn last index line.
    """

    def __init__(self, store: FeatureStore, shard_bytes: int):
        self.store = store
        self.shard_bytes = shard_bytes
        self.buffer: dict[str, np.ndarray] = {}
        self.size = 0
        self.dim: int | None = None  # the feature dim of every item
        store.root.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(store.root / LOCK)
        self._tidy()
        existing = [int(p.stem.split("-")[1]) for p in store.root.glob(SHARD_GLOB)]
        self.next_shard = max(existing, default=-1) + 1

    def _tidy(self) -> None:
        root = self.store.root
        for tmp in root.glob(".shard-*.tmp"):
            tmp.unlink()
        index_path = root / INDEX
        if index_path.exists():
            _truncate_torn_tail(index_path)
        self.store._index = None  # re-read: another run may have added keys since
        referenced = {row["shard"] for row in self.store.index().values()}
        for shard in root.glob(SHARD_GLOB):
            if shard.name not in referenced:  # renamed, but killed before its index lines
                shard.unlink()

    def add(self, key: str, array: np.ndarray) -> None:
        """Buffer ``array`` under ``key``; RecordError if any value is NaN or infinite."""
        if not np.isfinite(array).all():
            raise RecordError("non-finite features (NaN or infinity): not stored")
        self._check_shape(array.shape)
        self.buffer[key] = np.ascontiguousarray(array)
        self.size += array.nbytes
        if self.size >= self.shard_bytes:
            self.flush()

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        """RecordError unless ``shape`` is (layers, frames, dim), each at least 1, with the dim
        of what the store already holds (the first stored item decides; the layers are the
        backbone's, checked by sercli.core.guards)."""
        if len(shape) != 3 or min(shape) < 1:
            raise RecordError(f"features of shape {list(shape)}, not (layers, frames, dim): not stored")
        if self.dim is None:
            first = next((r.get("shape") for r in self.store.index().values()), None)
            self.dim = first[-1] if isinstance(first, list) and len(first) == 3 else shape[2]
        if shape[2] != self.dim:
            raise RecordError(f"features of dim {shape[2]}, but the store holds dim {self.dim}: not stored")

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
        _fsync_dir(self.store.root)
        rows = [{"key": k, "shard": name, "shape": list(v.shape), "finite": True} for k, v in self.buffer.items()]
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
        try:
            self.flush()
        finally:
            self._lock.close()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise SercliError(f"{path} is damaged ({why}): extract into a new --store") from None
    if not isinstance(meta, dict):
        raise SercliError(f"{path} is damaged (expected a JSON object): extract into a new --store")
    return meta


def _lock(path: Path):
    """An exclusive lock held while the returned file stays open (released on close or death)."""
    import fcntl

    fh = open(path, "a")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise SercliError(
            f"Feature store {path.parent} is being written by another sercli process; "
            "wait for it or use another --store folder"
        ) from None
    return fh


def _truncate_torn_tail(path: Path) -> None:
    """A run killed mid-append may leave a partial last line; cut it so appends start clean."""
    from sercli.core.fsutil import repair_torn_tail

    repair_torn_tail(path)


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write_text(path: Path, text: str) -> None:
    from sercli.core.fsutil import atomic_write_text

    atomic_write_text(path, text)
