"""`sercli export FORMAT RECORDS -o OUT` and `sercli import FORMAT SOURCE`: records in the
formats peers use. A format is a corpus plugin that can also write (``Corpus.export``) and read
back (``Corpus.import_records``) its own format: `emobox` (EmoBox's jsonl), `datasets` (a Hugging
Face datasets folder, with pooled features).

`sercli export NAME RUN -o DIR`, where NAME is a run exporter (`onnx`), writes a trained run
for deployment instead (sercli.runs.export); `sercli predict DIR AUDIO...` runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sercli.core.errors import SercliError
from sercli.core.log import info
from sercli.core.options import Dedupe, Inputs, Output, PluginOptions

Format = Annotated[str, typer.Argument(help="A format: a corpus plugin that can write records (emobox, datasets), "
                                            "or a run exporter (onnx) followed by a run folder.",
                                       show_default=False)]


def export(
    format: Format,
    inputs: Inputs,
    output: Annotated[Path, typer.Option("--output", "-o", help="The file or folder to write (replaced whole).")],
    root: Annotated[Optional[Path], typer.Option(
        "--root", help="Write audio paths relative to this folder (emobox; default: the output's folder).")] = None,
    dedupe: Dedupe = False,
    job: Annotated[Optional[str], typer.Option(
        "--job", help="A run exporter: export one job of a CV run (default: every job, probabilities averaged).")] = None,
    option: PluginOptions = None,
) -> None:
    """Write records in another toolkit's format: EmoBox jsonl, or a Hugging Face datasets
    folder (records and their pooled features). With a run exporter (onnx) and a run folder:
    the run's encoder and head for deployment (a folder `sercli predict DIR` reads).

    Examples:
      sercli export emobox emodb.jsonl -o emobox/emodb.jsonl
      sercli export datasets emodb_feats.jsonl -o emodb_ds/
      sercli export onnx runs/mix -o deploy/mix
    """
    from sercli.core import plugins
    from sercli.core.inputs import LabelCheck, read_inputs
    from sercli.core.records import refuse_input

    if format in plugins.names("exporter"):
        return _export_run(format, inputs, output, root, dedupe, job, option)
    if job or option:
        raise SercliError(f"--job and -O are for run exporters ({', '.join(plugins.names('exporter')) or 'none'}), "
                          f"not for the record format {format!r}")
    fmt = _format(format, "export")
    records = read_inputs([(inputs, ())], dedupe, LabelCheck(strict=False))[0]
    if not records:
        raise SercliError("no records to export")
    refuse_input(str(output))
    output.parent.mkdir(parents=True, exist_ok=True)
    fmt.export(records, output, root)
    info(f"Wrote {len(records)} records as {format} to {output}")


def import_(
    format: Format,
    source: Annotated[Path, typer.Argument(help="What `sercli export FORMAT` wrote (a file or folder).")],
    output: Output = None,
    store: Annotated[Optional[Path], typer.Option(
        "--store", "-s", help="Feature store for the features the source carries (datasets).")] = None,
) -> None:
    """Read records back from another toolkit's format, every field as it was (features into
    --store). For a corpus in that format with audio, `sercli prepare FORMAT` also works.

    Examples:
      sercli import datasets emodb_ds/ -s feats/ -o emodb_feats.jsonl
      sercli import emobox data/casia/casia.jsonl -o casia.jsonl
    """
    from sercli.core.records import open_writer, remember_input

    fmt = _format(format, "import_records")
    if not source.exists():
        raise SercliError(f"{source}: no such file or folder")
    remember_input(source.resolve())
    n = 0
    with open_writer(output) as out:
        for rec in fmt.import_records(source, store):
            out.write(rec)
            n += 1
    info(f"Read {n} records from {source}")


def _export_run(fmt: str, inputs: list[str], output: Path, root, dedupe: bool, job, option) -> None:
    from sercli.contract.common import parse_option_pairs
    from sercli.runs.export import export_run

    if len(inputs) != 1:
        raise SercliError(f"export {fmt} takes one run folder, not {len(inputs)} inputs")
    if root is not None or dedupe:
        raise SercliError(f"--root and --dedupe are for record formats, not for the run exporter {fmt!r}")
    run = Path(inputs[0])
    manifest = export_run(fmt, run, output, parse_option_pairs(option), job)
    files = ", ".join(manifest["files"].values())
    info(f"Wrote {run} as {fmt} to {output} ({files}, manifest.json): `sercli predict {output} AUDIO...` runs it")


def _format(name: str, method: str):
    from sercli.core import plugins
    from sercli.contract.corpus import Corpus

    fmt = plugins.create("corpus", name)
    if getattr(type(fmt), method) is getattr(Corpus, method):
        able = [n for n in plugins.names("corpus")
                if getattr(plugins.get_class("corpus", n), method) is not getattr(Corpus, method)]
        verb = "export" if method == "export" else "import"
        raise SercliError(f"corpus reader {name!r} cannot {verb} records; formats that can: {', '.join(able) or 'none'}")
    return fmt
