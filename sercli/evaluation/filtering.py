"""The engine of `sercli filter`: quality gates between `synthesize` and `extract`.

Each input record goes through the gates in the order given; the first gate that drops it
writes it to the dropped file with ``filter_reason`` (``"asr: WER 0.62 > 0.4 ..."``) and
``filter_gate``; a record every gate keeps goes to the kept output. Both get what each gate
measured in ``provenance.filter.<gate>`` (the gate's plugin and options, and its scores).

Like the other stages the run is resumable and idempotent: both files are append-only and
locked while written, a record whose id either file already holds is not judged again (only
if the same gates with the same options judged it: another setting is refused, as mixing two
settings in one file would be), and a record a gate cannot judge (a RecordError) is reported
and left out of both files, so that a re-run judges it. With the kept records on stdout, only
the dropped file is resumed from.

Also here: :func:`run_probabilities`, the class probabilities of a trained run on records
(every model of a CV run, averaged), through sercli's one inference path
(`sercli.evaluation.evaluate.probabilities`); exported to plugins as ``sercli.api.run_probabilities``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sercli.core.errors import RecordError, SercliError
from sercli.core.log import info, progress, warn
from sercli.core.records import is_stdout, open_writer, output_lock, read_existing

CHUNK = 64  # records judged between writes: a killed run loses at most this much work


def gate_options(names: list[str], pairs: dict[str, str]) -> dict[str, dict[str, str]]:
    """``-O key=value`` per gate: ``gate.key=value``, or a plain ``key=value`` with one gate."""
    out: dict[str, dict[str, str]] = {name: {} for name in names}
    for key, value in pairs.items():
        gate, dot, field = key.partition(".")
        if dot:
            if gate not in out:
                raise SercliError(f"-O {key}={value}: {gate!r} is not one of the gates given ({', '.join(names)})")
            out[gate][field] = value
        elif len(names) == 1:
            out[names[0]][key] = value
        else:
            raise SercliError(f"-O {key}={value}: with several gates, name the gate: -O {names[0]}.{key}={value}")
    return out


def _settings(gate) -> dict[str, Any]:
    return gate.provenance()


def check_resume(existing: list[dict], gates: dict[str, Any], where: str, kept: bool) -> None:
    """Records already in an output count as judged only if this run's gates, with these
    options, judged them."""
    for rec in existing:
        judged = (rec.get("provenance") or {}).get("filter") or {}
        names = list(gates)
        if kept:
            upto = names
        elif rec.get("filter_gate") in gates:
            upto = names[: names.index(rec["filter_gate"]) + 1]  # the gates that saw it
        else:
            raise SercliError(f"{where} holds {rec.get('id')!r}, dropped by gate {rec.get('filter_gate')!r}, which "
                              "this run does not use; write to other files or use the same gates")
        for name in upto:
            made = {k: v for k, v in (judged.get(name) or {}).items() if k != "scores"}
            if made != _settings(gates[name]):
                raise SercliError(f"{where} holds {rec.get('id')!r}, judged by gate {name!r} with other options "
                                  "(or not at all); resume with the same -g and -O, or write to other files")


def run(records: list[dict], gates: dict[str, Any], output: str | None, dropped: str, device: str) -> None:
    """Judge ``records`` with ``gates`` ({name: Gate}, in order); kept ones to ``output`` (None:
    stdout), dropped ones to ``dropped``."""
    if not is_stdout(output) and Path(output).resolve() == Path(dropped).resolve():
        raise SercliError("--dropped and -o are the same file; give the dropped records their own file")
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise SercliError(f"id {twice!r} appears twice in the input; give each record its own id")
    for name, gate in gates.items():
        missing = [r["id"] for r in records if any(r.get(f) in (None, "") for f in gate.needs)]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise SercliError(f"gate {name!r} needs {', '.join(gate.needs)} in every record; "
                              f"{missing[0]!r}{more} lacks it")
        gate.check(records)

    with output_lock(output), output_lock(dropped):
        old_kept, old_dropped = read_existing(output), read_existing(dropped)
        check_resume(old_kept, gates, str(output), kept=True)
        check_resume(old_dropped, gates, dropped, kept=False)
        done = {r.get("id") for r in old_kept} | {r.get("id") for r in old_dropped}
        todo = [r for r in records if r["id"] not in done]
        if done:
            info(f"Resuming: {len(records) - len(todo)} records already judged "
                 f"({len(old_kept)} kept, {len(old_dropped)} dropped)")
        counts = _judge(todo, gates, output, dropped, device) if todo else {"kept": 0, "failed": 0}
    by_gate = {k: v for k, v in counts.items() if k not in ("kept", "failed")}
    info(f"filter: {counts['kept']} kept, {sum(by_gate.values())} dropped"
         + (f" ({', '.join(f'{g}: {n}' for g, n in by_gate.items())})" if by_gate else "")
         + (f", {counts['failed']} could not be judged" if counts["failed"] else "")
         + (f"; {len(records) - len(todo)} judged before" if len(todo) < len(records) else ""))
    if counts["failed"]:
        raise SercliError(f"{counts['failed']} of {len(todo)} records could not be judged (see warnings above); "
                          "re-run the same command to retry them")


def _judge(todo: list[dict], gates: dict[str, Any], output, dropped: str, device: str) -> dict[str, int]:
    counts = {"kept": 0, "failed": 0}
    for gate in gates.values():
        gate.load(device)
    with open_writer(output, append=True) as keep, open_writer(dropped, append=True) as drop, progress() as bar:
        task = bar.add_task(f"filter ({', '.join(gates)})", total=len(todo))
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start: start + CHUNK]
            judged: dict[str, dict[str, Any]] = {r["id"]: {} for r in chunk}
            alive = chunk
            for name, gate in gates.items():
                verdicts = []
                for i in range(0, len(alive), max(1, gate.batch_size)):
                    verdicts += _verdicts(gate, name, alive[i: i + max(1, gate.batch_size)])
                survivors = []
                for rec, verdict in zip(alive, verdicts):
                    if isinstance(verdict, RecordError):
                        warn(f"{rec['id']}: gate {name!r}: {verdict}")
                        counts["failed"] += 1
                        continue
                    reason, scores = verdict
                    judged[rec["id"]][name] = {**_settings(gate), "scores": scores}
                    if reason:
                        drop.write({**_stamped(rec, judged[rec["id"]]), "filter_gate": name,
                                    "filter_reason": f"{name}: {reason}"})
                        counts[name] = counts.get(name, 0) + 1
                    else:
                        survivors.append(rec)
                alive = survivors
            for rec in alive:
                keep.write(_stamped(rec, judged[rec["id"]]))
                counts["kept"] += 1
            bar.advance(task, len(chunk))
    return counts


def _verdicts(gate, name: str, batch: list[dict]) -> list:
    """The gate's verdicts on ``batch``, each checked: ``(None | str, dict)`` or a RecordError,
    one per record. Anything else is a bug in the gate, one line naming its plugin (a verdict
    such as ``"ok"`` would otherwise be unpacked as ``("o", "k")`` and drop the record)."""
    from sercli.core.plugins import describe

    out = gate.judge(batch)
    if not isinstance(out, (list, tuple)) or len(out) != len(batch):
        got = f"{len(out)} verdicts" if isinstance(out, (list, tuple)) else f"a {type(out).__name__}"
        raise SercliError(f"{describe('gate', gate)} returned {got} for {len(batch)} records, not a list of "
                          "one verdict per record (a bug in the gate)")
    for rec, verdict in zip(batch, out):
        if isinstance(verdict, RecordError):
            continue
        ok = (isinstance(verdict, (tuple, list)) and len(verdict) == 2 and (verdict[0] is None or isinstance(verdict[0], str))
              and isinstance(verdict[1], dict))
        if not ok:
            shown = " ".join(repr(verdict).split())[:60]
            raise SercliError(f"{describe('gate', gate)} returned the verdict {shown} for {rec['id']!r}, not "
                              "(None or a reason, a dict of scores) or a RecordError (a bug in the gate)")
    return list(out)


def _stamped(rec: dict, judged: dict[str, Any]) -> dict:
    prov = dict(rec.get("provenance") or {})
    prov["filter"] = {**(prov.get("filter") or {}), **judged}
    out = {k: v for k, v in rec.items() if k not in ("filter_reason", "filter_gate")}
    out["provenance"] = prov
    return out


# -- a trained run's view of records -----------------------------------------------------------

def run_probabilities(run: str | Path, records: list[dict[str, Any]], where: str = "") -> tuple[list[str], Any]:
    """(labels, probabilities (N, C)) of the trained ``run`` on ``records`` (features from
    `sercli extract`, of the kind the run was trained on): the mean over the run's models
    (folds x seeds of a CV run), each through `sercli.evaluation.evaluate.probabilities` as `eval` and
    `predict` compute them. A model trained with ``norm: speaker`` has each speaker's features
    standardised with that speaker's statistics over ``records``."""
    import numpy as np

    from sercli.learning import speakernorm
    from sercli.learning.data import Examples
    from sercli.features.read import check_dims, feature_meta
    from sercli.evaluation.evaluate import norm_of
    from sercli.learning.model import probabilities
    from sercli.core.runfolder import jobs_of
    from sercli.learning.train import load_model

    run = Path(run)
    where = where or str(run)
    if not run.is_dir():
        raise SercliError(f"{run}: no such run folder (train one with `sercli train ... --out {run}`)")
    models = [load_model(job["dir"]) for job in jobs_of(run)]
    config = models[0][1]
    for _, other in models[1:]:
        if other["labels"] != config["labels"] or other["features"] != config["features"]:
            raise SercliError(f"{run}: its models use different labels or features")
    labels = list(config["labels"])
    if config.get("targets"):
        raise SercliError(f"{where}: run {run} predicts {', '.join(config['targets'])} (--target); a gate "
                          "needs a run that classifies emotions")
    if not records:
        return labels, np.zeros((0, len(labels)), dtype=np.float32)
    if feature_meta(records) != config["features"]:
        raise SercliError(f"{where}: the records' features were extracted with other settings than the run's "
                          "(extract them with the backbone and options the run was trained on)")
    check_dims(records, config["head"], where)
    index = {lab: i for i, lab in enumerate(labels)}
    data = Examples([dict(r) for r in records], [index.get(r.get("emotion"), 0) for r in records], [1] * len(records))
    if norm_of(config) == "speaker":
        data = speakernorm.apply(data, where)
    probs = [probabilities(model.to("cpu"), data, int(cfg["train"].get("batch_size", 32)), "cpu")
             for model, cfg in models]
    return labels, np.mean(probs, axis=0)
