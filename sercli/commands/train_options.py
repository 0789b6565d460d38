"""What `sercli train` makes of its KEY=VALUE options: -O routed to the head or the strategy,
--tune and --sweep value lists, and where the jobs train (--jobs, --devices, --cluster), all
checked before any training."""

from __future__ import annotations

from typing import Any, Optional

from sercli.core import plugins as pl
from sercli.contract.common import parse_option_pairs
from sercli.core.errors import SercliError


def split(text: Optional[str]) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()] if text else []


def value_lists(pairs: list[str] | None, what: str) -> dict[str, list[str]]:
    """``["lr=1e-3,3e-4"]`` -> ``{"lr": ["1e-3", "3e-4"]}``."""
    out = {}
    for key, value in parse_option_pairs(pairs).items():
        values = split(value)
        if not values:
            raise SercliError(f"{what} {key}=: expected comma-separated values")
        out[key] = values
    return out


def tune_grid(pairs: list[str] | None, head: str, head_options: dict[str, Any]) -> dict[str, list[Any]]:
    """--tune KEY=V1,V2: a trainer key (typed as TrainConfig's field) or an option of the head
    (each value checked by the head's Options, with the other -O options)."""
    from pydantic import TypeAdapter, ValidationError

    from sercli.contract.common import validate_options
    from sercli.learning.train import TUNABLE, TrainConfig
    from sercli.learning.heads import tunable

    types = {"int": int, "float": float, "bool": bool, "str": str}
    head_cls = pl.get_class("head", head)
    grid = {}
    for key, values in value_lists(pairs, "--tune").items():
        if key in TUNABLE:
            kind = types[TrainConfig.__dataclass_fields__[key].type]
            try:
                grid[key] = [TypeAdapter(kind).validate_python(v) for v in values]
            except ValidationError:
                raise SercliError(f"--tune {key}={','.join(values)}: expected {kind.__name__} values") from None
            from sercli.core.numbers import check_number

            for value in grid[key]:  # --tune lr=inf: as --lr inf
                check_number(f"--{key.replace('_', '-')}", value)
        elif key in head_cls.Options.model_fields:
            try:
                grid[key] = [validate_options(head_cls, {**head_options, key: v}, f"head {head!r}").model_dump(
                    mode="json")[key] for v in values]
            except SercliError as exc:
                raise SercliError(f"--tune {key}={','.join(values)}: {exc}") from None
        else:
            raise SercliError(f"--tune {key}: not tunable (tunable: {', '.join(tunable(head))})")
    return grid


def route_options(pairs: list[str] | None, head: str, strategy: str) -> tuple[dict[str, str], dict[str, str]]:
    """-O KEY=VALUE -> (head options, strategy options): ``head.KEY`` and ``strategy.KEY`` say
    which; a bare KEY goes to the one whose Options has it."""
    fields = {"head": pl.get_class("head", head).Options.model_fields,
              "strategy": pl.get_class("strategy", strategy).Options.model_fields}
    routed: dict[str, dict[str, str]] = {"head": {}, "strategy": {}}
    for key, value in parse_option_pairs(pairs).items():
        family, dot, name = key.partition(".")
        if dot and family in routed:
            routed[family][name] = value
            continue
        owners = [f for f in routed if key in fields[f]]
        if len(owners) == 2:
            raise SercliError(f"-O {key}: both head {head!r} and strategy {strategy!r} have this option: "
                              f"use head.{key} or strategy.{key}")
        if not owners:
            listed = "; ".join(f"{f} {name!r}: {', '.join(fields[f]) or 'none'}"
                               for f, name in (("head", head), ("strategy", strategy)))
            raise SercliError(f"-O {key}: no such option ({listed})")
        routed[owners[0]][key] = value
    return routed["head"], routed["strategy"]


def runner(jobs: int | None, device: str, devices: str | None, cluster: str | None) -> dict[str, Any]:
    """Where the jobs train (`sercli.runs.jobs.trained_jobs`): jobs, devices and the --cluster spec, checked."""
    from sercli.core.cluster import cluster_name, parse_devices

    device_list = parse_devices(devices)
    if device_list and cluster:
        raise SercliError("--devices and --cluster: choose one (a cluster places the jobs on its own workers)")
    if device_list and jobs:
        raise SercliError("--devices trains one job per device at a time: drop --jobs")
    if device_list and device != "cpu":
        raise SercliError("--device and --devices: choose one")
    if cluster:
        pl.get_class("cluster", cluster_name(cluster)[0])  # an unknown engine fails before any work
    return {"jobs": jobs if jobs or cluster else 1, "devices": device_list, "cluster": cluster}


def finetune_spec(backbone, mode, layers, rank, backbone_lr, norm) -> dict[str, Any] | None:
    """TrainConfig.finetune of the --finetune options, checked (sercli.learning.finetune); None without."""
    if not backbone:
        return None
    from sercli.learning import finetune as ft

    if norm == "speaker":
        raise SercliError("--norm speaker standardises stored features: it does not go with --finetune")
    spec = ft.parse({"backbone": backbone, "mode": mode, "layers": layers, "lora_rank": rank, "backbone_lr": backbone_lr})
    ft.backbone_for(spec)
    return spec.model_dump(mode="json")


def seed_list(seeds: str, cv, test_speakers, test, val_speakers) -> list[int]:
    """The --seeds, once the protocol options are known to go together."""
    if cv and (test_speakers or test or val_speakers):
        raise SercliError("--cv chooses the test and validation parts itself: drop --test-speakers/--test/--val-speakers")
    if test_speakers and test:
        raise SercliError("use either --test-speakers or --test, not both")
    try:
        seed_list = [int(s) for s in split(seeds)]
    except ValueError:
        raise SercliError(f"--seeds {seeds!r}: expected comma-separated integers") from None
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise SercliError(f"--seeds {seeds!r}: expected distinct integers")
    from sercli.core.numbers import check_number

    for seed in seed_list:
        check_number("--seeds", seed)
    return seed_list


def targets(target: str | None, classes: str | None) -> tuple[bool, list[str]]:
    """(whether the emotion is learnt, the numeric --target fields), checked (sercli.core.targets)."""
    from sercli.core.targets import parse

    classify, fields = parse(target)
    if classes and not classify:
        raise SercliError(f"--classes chooses the emotions to classify; --target {target} learns no emotion "
                          f"(add it: --target emotion,{target})")
    return classify, fields


def with_targets(real: list, synthetic: list, tests: list, fields: list[str]) -> tuple[list, list, list]:
    """The records of each input that have every --target field (each input says how many it
    skipped); none left to train on is refused."""
    from sercli.core.targets import keep

    if not fields:
        return real, synthetic, tests
    out = (keep(real, fields, "training records"), keep(synthetic, fields, "--synthetic"), keep(tests, fields, "--test"))
    if not out[0]:
        raise SercliError(f"no training records have {', '.join(fields)}: nothing to learn --target from")
    return out
