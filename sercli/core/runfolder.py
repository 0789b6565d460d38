"""A run folder on disk: written whole or not at all, by one process at a time, and read back
without trusting what its files name.

`staged(out)` yields a temporary sibling folder (``.NAME.tmp-PID``) to build in, holding an
exclusive lock (``.NAME.lock`` next to it) so that a second writer is refused, and renames it
into place only when the body finished; a failed build is removed, and one killed outright is
removed by the next writer. An existing folder is replaced only with ``overwrite`` (and only
once the new one is complete); a folder that is not of the expected kind is never replaced.

The manifests (run.json, sweep.json, config.json) are read with `read_json`, which names the
file when it is damaged, and every folder they name goes through `child`, which refuses
anything but a plain name inside the run folder. This module is the run folder's one owner: its
layout (the names below), its atomic writes (`write_json`, `write_jsonl`, `write_evaluation`)
and the provenance every job records (`provenance`: versions, plugin versions, input hashes).

    RUN/                      one job (no --cv, one seed): the job folder is RUN itself
    RUN/run.json              several jobs (--cv and/or --seeds): RUN/fold-XX-seed-Y/ each
    RUN/sweep.json            a --sweep: RUN/KEY=VALUE/ each a run of one of the above kinds

A job folder holds model.safetensors, config.json, history.json, curves.png, test.jsonl (its
held-out records) and leaked.jsonl; an evaluation (of `train`, or `eval --out`) adds
metrics.json, metrics.csv, confusion.png and per job predictions.jsonl (and metrics.json).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from sercli.core.errors import SercliError
from sercli.core.fsutil import atomic_write_text, exclusive_lock, fsync_dir, inside
from sercli.core.log import warn

RUN_FILE = "run.json"
SWEEP_FILE = "sweep.json"
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
METRICS_CSV = "metrics.csv"
TEST_FILE = "test.jsonl"
HISTORY_FILE = "history.json"
LEAKED_FILE = "leaked.jsonl"
PREDICTIONS_FILE = "predictions.jsonl"
CONFUSION_FILE = "confusion.png"
VALUES_FILE = "values.png"  # a run with dimensional targets: predicted against true values
CURVES_FILE = "curves.png"


# -- reading ------------------------------------------------------------------------------------

def damaged(path: Path, why: str) -> SercliError:
    why = " ".join(str(why).split())[:200]
    return SercliError(f"{path} is damaged ({why}); train the run again or restore the file")


def read_json(path: Path, kind: type = dict) -> Any:
    """The JSON in ``path`` (of type ``kind``), or one line that names the file and says why not."""
    path = own_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SercliError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise damaged(path, "not UTF-8 text") from None
    except OSError as exc:
        raise SercliError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise damaged(path, f"not valid JSON: {exc.msg}, line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, kind):
        raise damaged(path, f"expected a JSON {'object' if kind is dict else kind.__name__}")
    return data


def own_file(path: Path) -> Path:
    """``path``, a file sercli wrote into a run folder, refused if it is a symbolic link: sercli
    never writes one, and one would make eval or predict read a file from outside the run (or
    another job's file) as if it were this run's."""
    path = Path(path)
    if path.is_symlink():
        raise SercliError(f"{path} is a symbolic link, not a file sercli wrote; refusing to read it "
                          "(copy the run with `cp -rL` to resolve links)")
    return path


def child(root: Path, name: Any, source: Path | None = None) -> Path:
    """``root / name`` for a folder name read from a manifest: a plain name that stays inside."""
    text = str(name) if isinstance(name, str) else None
    if (
        text is None or text in ("", ".", "..") or "/" in text or "\\" in text or "\0" in text
        or text.startswith(".")
    ):
        where = f"{source}: " if source else ""
        raise SercliError(f"{where}{name!r} is not a plain folder name inside {root}; refusing to use it")
    path = inside(root, text)
    if path.parent != Path(root).resolve():
        raise SercliError(f"{source or root}: {text!r} names a path outside {root}; refusing to use it")
    if (Path(root) / text).is_symlink():
        raise SercliError(f"{source or root}: {text!r} is a symbolic link in {root}, not a folder sercli wrote; "
                          "refusing to use it")
    return Path(root) / text


def kind(run: Path) -> str:
    """sweep, cv or single; an error for anything else."""
    run = Path(run)
    if (run / SWEEP_FILE).exists():
        return "sweep"
    if (run / RUN_FILE).exists():
        return "cv"
    if (run / CONFIG_FILE).exists():
        return "single"
    raise SercliError(f"{run} is not a sercli run folder (no {CONFIG_FILE}, {RUN_FILE} or {SWEEP_FILE})")


def jobs_of(run: Path) -> list[dict[str, Any]]:
    """[{"name", "fold", "seed", "dir"}] of a run folder (not a sweep); every dir inside ``run``."""
    run = Path(run)
    what = kind(run)
    if what == "sweep":
        raise SercliError(f"{run} is a sweep: pick one of its runs")
    if what == "cv":
        path = run / RUN_FILE
        jobs = read_json(path).get("jobs")
        if not isinstance(jobs, list) or not jobs or not all(isinstance(j, dict) for j in jobs):
            raise damaged(path, "no list of jobs")
        out = []
        for j in jobs:
            if not {"name", "fold", "seed"} <= set(j):
                raise damaged(path, "a job without name, fold or seed")
            folder = child(run, j["name"], path)
            if not folder.is_dir():
                raise damaged(path, f"its job {j['name']!r} has no folder")
            out.append({**j, "dir": folder})
        return out
    path = run / CONFIG_FILE
    config = read_json(path)
    try:
        seed = config["train"]["seed"]
        fold = (config.get("fold") or {}).get("name", "fold-00")
    except (KeyError, TypeError, AttributeError):
        raise damaged(path, "no train.seed") from None
    return [{"name": ".", "fold": fold, "seed": seed, "dir": run}]


def sweep_runs(run: Path) -> list[Path]:
    """The runs of a sweep, each a plain subfolder of it (and not a sweep itself)."""
    path = Path(run) / SWEEP_FILE
    names = read_json(path).get("runs")
    if not isinstance(names, list) or not names:
        raise damaged(path, "no list of runs")
    runs = [child(Path(run), name, path) for name in names]
    for sub in runs:
        if kind(sub) == "sweep":
            raise SercliError(f"{path}: its run {sub.name!r} is a sweep itself; refusing to nest sweeps")
    return runs


def is_run(path: Path) -> bool:
    return any((Path(path) / name).exists() for name in (CONFIG_FILE, RUN_FILE, SWEEP_FILE))


def is_eval_output(path: Path) -> bool:
    return (Path(path) / METRICS_FILE).exists() and not is_run(path)


# -- writing ------------------------------------------------------------------------------------

def write_json(path: Path, data: Any, indent: int = 2) -> None:
    atomic_write_text(path, json.dumps(data, indent=indent))


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """One JSON record a line; nothing at all for no records."""
    if records:
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_sweep(root: Path, swept: dict[str, list[str]], names: list[str]) -> None:
    write_json(Path(root) / SWEEP_FILE, {"sweep": swept, "runs": names})


def job_folder(root: Path, name: str) -> Path:
    """Where job ``name`` ("." for a run of one job) lives under ``root``, created."""
    dest = Path(root) if name == "." else child(Path(root), name)
    dest.mkdir(parents=True, exist_ok=True)
    return dest


# -- provenance ---------------------------------------------------------------------------------

def file_sha256(path: str) -> str | None:
    if path == "-" or not Path(path).exists():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict[str, str]:
    import numpy
    import sklearn
    import torch

    from sercli import __version__

    return {
        "sercli": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "numpy": numpy.__version__, "scikit-learn": sklearn.__version__, "platform": sys.platform,
    }


def plugin_versions(used: dict[str, str]) -> dict[str, str | None]:
    """The plugins behind what a run used ({family: registered name}, e.g. the strategy and
    the backbone): {plugin: version}; a name no plugin registers now is left out."""
    from sercli.core.plugins import registry

    reg = registry()
    reg.load()
    out: dict[str, str | None] = {}
    for family, name in used.items():
        table = reg.classes.get(family, {})
        key = name if name in table else next((k for k in table if k.endswith(":") and str(name).startswith(k)), None)
        if key is not None:
            plugin = table[key][1]
            out[plugin] = getattr(reg.infos.get(plugin), "version", None)
    return out


def provenance(inputs: list[str]) -> dict[str, Any]:
    return {"inputs": {p: file_sha256(p) for p in inputs}, "versions": versions(), "command": sys.argv[1:]}

@contextmanager
def staged(
    out: Path, *, overwrite: bool, replaceable: Callable[[Path], bool] = is_run, what: str = "run folder"
) -> Iterator[Path]:
    """Build ``out`` in a temporary sibling and rename it into place when the body returns."""
    out = Path(os.path.abspath(out))
    if out.parent == out:
        raise SercliError(f"--out {out}: expected a folder to create")
    check_target(out, overwrite, replaceable, what)  # before anything is created next to it
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    lock = exclusive_lock(parent / f".{out.name}.lock", f"{what} {out}")
    try:
        _recover(out)
        check_target(out, overwrite, replaceable, what)
        tmp = parent / f".{out.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            yield tmp
            check_target(out, overwrite, replaceable, what)
            _swap(tmp, out)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        lock.close()


def _occupied(path: Path) -> bool:
    return path.is_symlink() or path.is_file() or (path.is_dir() and any(path.iterdir()))


def check_target(
    out: Path, overwrite: bool, replaceable: Callable[[Path], bool] = is_run, what: str = "run folder"
) -> None:
    """Refuse an ``out`` that exists (unless ``overwrite``) or is not of the kind it replaces."""
    out = Path(out)
    if out.is_symlink():
        raise SercliError(f"--out {out}: is a symbolic link; name the folder itself (sercli never replaces a link)")
    if out.exists() and not out.is_dir():
        raise SercliError(f"--out {out}: exists and is not a folder")
    holder = run_above(out)
    if holder is not None:
        raise SercliError(f"--out {out}: inside the run folder {holder}, which no later command changes; "
                          "choose a folder outside it")
    if not _occupied(out):
        return
    if not overwrite:
        raise SercliError(
            f"--out {out}: already exists; pass --overwrite to replace it (once the new {what} is complete), "
            "or choose another folder"
        )
    if not replaceable(out):
        raise SercliError(f"--out {out}: not a sercli {what}; refusing to replace it even with --overwrite")


def run_above(path: Path) -> Path | None:
    """The nearest folder above ``path`` (itself excluded) that sercli wrote as a run or an
    evaluation, or None. Known by what only sercli writes together (a config.json alone is
    any project's), so that a folder of the user's is never mistaken for one."""
    for parent in Path(os.path.abspath(path)).parents:
        if is_written_by_sercli(parent):
            return parent
    return None


def is_written_by_sercli(folder: Path) -> bool:
    """Whether ``folder`` is a run (job, CV run, sweep) or an evaluation sercli wrote."""
    folder = Path(folder)
    has = lambda name: (folder / name).is_file()  # noqa: E731
    if has(CONFIG_FILE) and has(MODEL_FILE):
        return True  # a job
    if has(METRICS_FILE) and (has(CONFUSION_FILE) or has(VALUES_FILE)):
        return True  # a run's or an evaluation's results
    for name, key in ((RUN_FILE, "jobs"), (SWEEP_FILE, "runs")):
        if has(name):
            try:
                if key in json.loads((folder / name).read_text(encoding="utf-8")):
                    return True
            except (OSError, ValueError, TypeError):
                pass
    return False


def _swap(tmp: Path, out: Path) -> None:
    parent = out.parent
    if _occupied(out):
        old = parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
        os.rename(tmp, out)
        fsync_dir(parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)  # replaces an empty folder
        fsync_dir(parent)


def _recover(out: Path) -> None:
    """Under the lock: undo what a writer killed mid-way left (its temporary and old folders)."""
    pattern = glob.escape(f".{out.name}.")
    olds = sorted(out.parent.glob(pattern + "old-*"))
    if olds and not out.exists():
        os.rename(olds.pop(), out)
        warn(f"{out}: restored the previous folder, whose replacement was interrupted")
    for leftover in olds + sorted(out.parent.glob(pattern + "tmp-*")):
        shutil.rmtree(leftover, ignore_errors=True)
