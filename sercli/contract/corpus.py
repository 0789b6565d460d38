"""The corpus family (`sercli prepare NAME`, `export`/`import NAME`, hook ``register_corpora``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Iterator

from sercli.contract.common import Plugin


class Corpus(Plugin):
    """Reads a corpus folder in its original layout and yields manifest records."""

    # The setting papers use, applied unless the user passes --classes / --map
    # (IEMOCAP: angry, happy, neutral, sad with excited merged into happy).
    default_classes: ClassVar[tuple[str, ...] | None] = None
    default_map: ClassVar[dict[str, str] | None] = None
    # The corpus's own label codes and the canonical emotion each stands for (EmoDB: "W" ->
    # "angry"): records labelled with a code that every corpus reads the same way are
    # normalised to that emotion by the input check of every command (sercli.core.inputs).
    raw_labels: ClassVar[dict[str, str]] = {}

    def scan(self, path: Path) -> Iterator[dict[str, Any]]:
        """Yield one record per utterance under the corpus folder ``path``: the fields of
        ``sercli.api.RECORD_FIELDS`` (``id``, ``audio``, ``emotion`` from
        ``sercli.api.canonical``, ``raw_label``, ``speaker``...). SercliError when ``path`` is
        not this corpus; a file that cannot be parsed is better skipped with ``warn``."""
        raise NotImplementedError

    # -- optional: a corpus format sercli can also write and read back (`sercli export NAME`,
    # `sercli import NAME`): EmoBox jsonl, a Hugging Face datasets folder ---------------------

    def export(self, records: list[dict[str, Any]], path: Path, root: Path | None = None) -> None:
        """Write ``records`` (sercli records, maybe from another corpus) to ``path`` in this
        format, whole or not at all; audio paths relative to ``root`` when given."""
        raise NotImplementedError

    def import_records(self, path: Path, store: Path | None = None) -> Iterator[dict[str, Any]]:
        """The records ``export`` wrote to ``path``, every field as it was; features it
        carried go into a new feature store ``store`` (SercliError without one)."""
        raise NotImplementedError
