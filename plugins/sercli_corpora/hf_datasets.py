"""Records (and their pooled features) as a Hugging Face ``datasets`` folder, and back.

`sercli export datasets RECORDS -o DIR` writes ``Dataset.save_to_disk(DIR)`` (Arrow files,
``dataset_info.json``, ``state.json``): one row per record, a column per field. Text, numbers
and booleans stay as they are; an object or list field (provenance...) is a JSON string column,
listed in the dataset's description so that it is read back as the object it was. Records with
pooled features (`sercli extract --pool mean` or ``mean+std``: one frame) carry them in an
``embedding`` column, (layers, dim) float32, and the feature store's metadata goes into the
description too. `datasets.load_from_disk(DIR)` opens it in Python; `sercli import datasets DIR
--store S` gives the records back, every field as it was, their features in a new store ``S``.
`sercli prepare datasets DIR` reads a folder of audio records (an ``audio`` path column, or an
``Audio`` feature with paths, and an ``emotion`` or ``label`` column) as a corpus.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterator

from sercli.api import Corpus, SercliError, canonical

MARK = "sercli"  # the key of sercli's metadata in the dataset's description


def _datasets():
    try:
        import datasets
    except ImportError:
        raise SercliError("the Hugging Face datasets library is not installed: python3 -m pip install datasets") from None
    return datasets


class HFDatasets(Corpus):
    name = "datasets"
    description = "A Hugging Face datasets folder (save_to_disk): records and pooled features, written by `sercli export datasets`"

    def scan(self, path: Path) -> Iterator[dict[str, Any]]:
        ds = self._load(path)
        columns = set(ds.column_names)
        label = next((c for c in ("emotion", "label", "raw_label") if c in columns), None)
        if "audio" not in columns or label is None:
            raise SercliError(f"{path}: expected an audio column and an emotion or label column; "
                              f"found {', '.join(sorted(columns))}")
        names = getattr(ds.features[label], "names", None)  # a ClassLabel: ints with names
        if hasattr(ds.features["audio"], "decode"):
            ds = ds.cast_column("audio", type(ds.features["audio"])(decode=False))
        for i, row in enumerate(self._rows(ds, path)):
            audio = row["audio"]["path"] if isinstance(row["audio"], dict) else row["audio"]
            raw = names[row[label]] if names and isinstance(row[label], int) else str(row[label])
            rec = {k: v for k, v in row.items() if k not in ("audio", label, "embedding", "features")}
            rec.update(id=str(row.get("id") or i), audio=str(Path(path, audio) if not Path(audio).is_absolute() else audio),
                       emotion=canonical(raw), raw_label=row.get("raw_label") or raw)
            yield rec

    def export(self, records: list[dict[str, Any]], path: Path, root: Path | None = None) -> None:
        import numpy as np

        from sercli.api import read_features

        datasets = _datasets()
        json_columns = sorted({k for r in records for k, v in r.items() if isinstance(v, (dict, list)) and k != "features"})
        columns = list(dict.fromkeys(k for r in records for k in r if k != "features"))
        rows: dict[str, list] = {c: [] for c in columns}
        embeddings, metas = [], set()
        with_features = [r for r in records if r.get("features")]
        if with_features and len(with_features) != len(records):
            raise SercliError(f"{len(records) - len(with_features)} of {len(records)} records have no features: "
                              "export all with features or none")
        for rec in records:
            for c in columns:
                v = rec.get(c)
                rows[c].append(json.dumps(v, ensure_ascii=False) if c in json_columns and v is not None else v)
            if with_features:
                x = read_features(rec)
                if x.shape[1] != 1:
                    raise SercliError(f"record {rec['id']!r}: {x.shape[1]} frames; only pooled features are exported "
                                      "(extract with --pool mean or mean+std)")
                embeddings.append(x[:, 0, :].astype(np.float32))
                metas.add(json.dumps(_store_meta(rec), sort_keys=True))
        if len(metas) > 1:
            raise SercliError("the records' features come from different feature stores of different kinds")
        if with_features:
            rows["embedding"] = [e.tolist() for e in embeddings]
            rows["features"] = [json.dumps({k: v for k, v in r["features"].items() if k != "store"}) for r in records]
        features = {c: _arrow_type(datasets, rows[c]) for c in rows if c not in ("embedding",)}
        if with_features:
            features["embedding"] = datasets.Sequence(datasets.Sequence(datasets.Value("float32")))
        info = {MARK: {"json_columns": json_columns + (["features"] if with_features else []),
                       "store_meta": json.loads(metas.pop()) if with_features else None}}
        features = datasets.Features(features)
        ds = datasets.Dataset.from_dict(rows, features=features,
                                        info=datasets.DatasetInfo(description=json.dumps(info), features=features))
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        ds.save_to_disk(str(tmp))
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)

    def import_records(self, path: Path, store: Path | None = None) -> Iterator[dict[str, Any]]:
        import numpy as np

        from sercli.api import FeatureStore

        ds = self._load(path)
        meta = self._meta(ds, path)
        json_columns = set(meta.get("json_columns") or [])
        has_features = "embedding" in ds.column_names
        if has_features and store is None:
            raise SercliError(f"{path} holds features: give --store DIR, a feature store to put them in")
        writer = None
        if has_features:
            fs = FeatureStore(store)
            fs.init(meta["store_meta"])  # a store of another kind is refused
            dtype = meta["store_meta"].get("dtype", "float32")
            writer = fs.writer()
        try:
            for row in self._rows(ds, path):
                rec = {}
                for k, v in row.items():
                    if k == "embedding" or v is None:
                        continue
                    rec[k] = json.loads(v) if k in json_columns else v
                if has_features:
                    x = np.asarray(row["embedding"], dtype=np.float32)[:, None, :]
                    key = rec["features"]["key"]
                    if key not in fs:
                        writer.add(key, x.astype(dtype if dtype in ("float16", "float32") else "float32"))
                    rec["features"] = {"store": str(Path(store).resolve()), **rec["features"]}
                yield rec
        finally:
            if writer is not None:
                writer.close()

    def _load(self, path: Path):
        datasets = _datasets()
        if not (path.is_dir() and (path / "dataset_info.json").exists()):
            raise SercliError(f"{path}: expected a folder written by Dataset.save_to_disk (with dataset_info.json)")
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            raise SercliError(f"{path} holds several splits ({', '.join(ds)}): give one split's folder")
        return ds

    @staticmethod
    def _meta(ds, path: Path) -> dict[str, Any]:
        try:
            return json.loads(ds.info.description or "{}").get(MARK) or {}
        except (json.JSONDecodeError, AttributeError):
            return {}

    @staticmethod
    def _rows(ds, path: Path):
        for row in ds:
            # a column that is None in this row came from a record without that field
            yield {k: v for k, v in row.items() if v is not None}


def _store_meta(rec: dict[str, Any]) -> dict[str, Any]:
    from sercli.api import FeatureStore

    return FeatureStore(rec["features"]["store"]).meta()


def _arrow_type(datasets, values: list):
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {bool}:
        return datasets.Value("bool")
    if kinds <= {int}:
        return datasets.Value("int64")
    if kinds <= {int, float}:
        return datasets.Value("float64")
    return datasets.Value("string")
