"""The `hf` backbones on tiny random checkpoints of every family, loaded with from_pretrained
from a temp folder: shapes, frame rate, padding, batching, chunking."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sercli.core import plugins as pl
from sercli.core.errors import SercliError
from sercli.features.extract import ExtractConfig, batches, chunk_bounds, extract_waveform, plan_item, run_extraction
from sercli.features.store import FeatureStore
from sercli_hf.random_models import ARCHITECTURES, save_random_model

from conftest import run_here

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

# Lengths (s) chosen so that batches mix lengths, two clips share one length, one clip is too
# long for a 2 s chunk and one is a chunk plus a fraction of a hop.
LENGTHS = [0.5, 1.3, 1.0, 1.3, 0.77, 4.1, 2.01]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {arch: save_random_model(arch, root / arch) for arch in ARCHITECTURES}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    import soundfile as sf

    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    pairs = []
    for i, secs in enumerate(LENGTHS):
        path = root / f"c{i}.wav"
        wav = 0.1 * rng.standard_normal(int(secs * 16000))
        sf.write(str(path), wav.astype(np.float32), 16000)
        pairs.append((f"c{i}", str(path)))
    return pairs


def backbone_for(folder):
    return pl.create("backbone", f"hf:{folder}")


def extract(backbone, pairs, tmp_path, **kw) -> dict[str, np.ndarray]:
    cfg = ExtractConfig(
        **{"layers": "all", "pool": "none", "store_dtype": "float32", "workers": 0,
           "chunk_seconds": 2.0, "chunk_overlap": 0.5, **kw}
    )
    store = FeatureStore(tmp_path)
    errors: list = []
    run_extraction(backbone, pairs, store, cfg, on_error=lambda k, m: errors.append((k, m)))
    assert not errors
    return {key: store.get(key) for key, _ in pairs}


def reference(folder, path) -> np.ndarray:
    """transformers' own recipe, one file at a time: feature extractor, then the model."""
    import soundfile as sf

    model = transformers.AutoModel.from_pretrained(folder).eval()
    fe = transformers.AutoFeatureExtractor.from_pretrained(folder)
    wav, sr = sf.read(path, dtype="float32")
    inputs = fe(wav, sampling_rate=sr, return_tensors="pt")
    with torch.no_grad():
        out = model(inputs.input_values, output_hidden_states=True)
    return torch.stack(out.hidden_states)[:, 0].numpy()


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_batched_equals_one_by_one_and_transformers(arch, models, clips, tmp_path):
    backbone = backbone_for(models[arch])
    config = backbone.encoder.config
    batched = extract(backbone, clips, tmp_path / "batched", batch_seconds=30.0)
    single = extract(backbone_for(models[arch]), clips, tmp_path / "single", batch_seconds=0.1)
    for key, path in clips:
        got = batched[key]
        n = int(round(LENGTHS[int(key[1:])] * 16000))
        # every hidden state, at the model's frame rate: 400-sample window, 320-sample hop
        assert got.shape == (config.num_hidden_layers + 1, (n - 400) // 320 + 1, config.hidden_size)
        np.testing.assert_allclose(got, single[key], atol=2e-5, rtol=1e-4, err_msg=key)
        if n <= 2 * 16000:  # unchunked: exactly what transformers gives for the file alone
            np.testing.assert_allclose(got, reference(models[arch], path), atol=2e-5, rtol=1e-4, err_msg=key)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_padding_sensitivity_is_declared_where_it_is_real(arch, models):
    """Pad two lengths into one batch the plain way: the short one's frames change exactly
    for the models the backbone declares padding-sensitive (and never pads)."""
    backbone = backbone_for(models[arch])
    backbone.load()
    rng = np.random.default_rng(1)
    short, long = (rng.standard_normal(n).astype(np.float32) for n in (9000, 16000))
    with torch.inference_mode():
        alone = backbone.encoder.forward([short], "cpu")[0]
        padded = backbone.encoder.forward([short, long], "cpu")[0]  # bypasses the grouping
    changed = not torch.allclose(alone, padded, atol=1e-4)
    assert changed == backbone.padding_sensitive
    expected = arch.endswith("-group") or arch == "data2vec"
    assert backbone.padding_sensitive == expected


def test_layer_norm_models_really_batch_mixed_lengths(models, clips):
    backbone = backbone_for(models["wav2vec2-layer"])
    cfg = ExtractConfig(chunk_seconds=2.0, chunk_overlap=0.5)
    items = [plan_item(i, k, p, int(round(LENGTHS[i] * 16000)), backbone, cfg) for i, (k, p) in enumerate(clips)]
    plan = batches(items, 30 * 16000, padding_sensitive=False)
    assert any(len({s.stop - s.start for s in b}) > 1 for b in plan)
    # and group-norm ones only ever share a batch between equal lengths
    plan = batches(items, 30 * 16000, padding_sensitive=True)
    assert all(len({s.stop - s.start for s in b}) == 1 for b in plan)
    assert any(len(b) > 1 for b in plan)  # the two 1.3 s clips, and the equal 2 s chunks


def test_chunk_bounds_cover_the_recording_on_the_hop_grid():
    for n in (32000, 32001, 70000, 100000, 16000 * 61 + 7):
        bounds = chunk_bounds(n, 32000, 8000, 320)
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(s % 320 == 0 for s, _ in bounds)
        assert all(e - s >= 32000 or len(bounds) == 1 for s, e in bounds)
        assert all(s1 < e0 for (_, e0), (s1, _) in zip(bounds, bounds[1:]))  # they overlap


def test_chunked_pooling_equals_pooling_the_stitched_frames(models, clips):
    backbone = backbone_for(models["wavlm-layer"])
    backbone.load()
    wav = np.random.default_rng(2).standard_normal(16000 * 5 + 123).astype(np.float32)
    kw = dict(chunk_seconds=2.0, chunk_overlap=0.5, store_dtype="float32", layers="0,2")
    frames = extract_waveform(backbone, wav, ExtractConfig(pool="none", **kw))
    assert frames.shape == (2, backbone.num_frames(len(wav)), 32)
    stats = extract_waveform(backbone, wav, ExtractConfig(pool="mean+std", **kw))
    expected = np.concatenate([frames.mean(1, keepdims=True), frames.std(1, keepdims=True)], -1)
    np.testing.assert_allclose(stats, expected, atol=1e-5)


def test_short_names_point_at_the_hub_ids():
    expected = {
        "data2vec-base": "facebook/data2vec-audio-base",
        "data2vec-large": "facebook/data2vec-audio-large",
        "wav2vec2-base": "facebook/wav2vec2-base",
        "wav2vec2-large": "facebook/wav2vec2-large-lv60",
        "hubert-base": "facebook/hubert-base-ls960",
        "hubert-large": "facebook/hubert-large-ll60k",
        "wavlm-base": "microsoft/wavlm-base",
        "wavlm-base-plus": "microsoft/wavlm-base-plus",
        "wavlm-large": "microsoft/wavlm-large",
    }
    for name, hub_id in expected.items():
        backbone = pl.create("backbone", name)
        assert backbone.name == name and backbone.source() == hub_id
    assert pl.create("backbone", "hf:org/some-model").source() == "org/some-model"


def test_unknown_folder_and_unsupported_model_are_one_clear_error(tmp_path):
    with pytest.raises(SercliError, match="does not exist"):
        _ = pl.create("backbone", f"hf:{tmp_path / 'nope'}").num_layers
    transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8).save_pretrained(tmp_path / "bert")
    with pytest.raises(SercliError, match="'bert' is not a supported speech encoder"):
        _ = pl.create("backbone", f"hf:{tmp_path / 'bert'}").num_layers


@pytest.mark.slow
def test_cli_extract_records_point_at_frames(models, clips, tmp_path):
    """Through the command line (in this process: the import and exit of a new process are other
    tests'), with two worker processes."""
    manifest = tmp_path / "in.jsonl"
    manifest.write_text("".join(json.dumps({"id": k, "audio": p}) + "\n" for k, p in clips[:4]))
    proc = run_here(
        "extract", manifest, "--backbone", f"hf:{models['hubert-group']}", "--store", tmp_path / "st",
        "--pool", "none", "--layers", "0,2", "--workers", "2", check=True,
    )
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["id"] for r in out] == [k for k, _ in clips[:4]]
    for rec in out:
        n = int(round(LENGTHS[int(rec["id"][1:])] * 16000))
        assert rec["features"]["shape"] == [2, (n - 400) // 320 + 1, 32]
    meta = FeatureStore(tmp_path / "st").meta()
    assert meta["layer_names"] == ["0", "2"] and meta["backbone"]["model_type"] == "hubert"
    assert meta["backbone"]["fingerprint"].startswith("sha256:")


def test_cpu_linear_layers_run_through_onednn_with_transformers_results(models):
    """On CPU the loaded model's linear layers are oneDNN's (sercli_hf.cpu.onednn_linears);
    each gives nn.Linear's result, and falls back to it where gradients are wanted."""
    from torch.nn import functional as F

    backbone = backbone_for(models["wav2vec2-layer"])
    backbone.load()
    linears = [m for m in backbone.encoder.model.modules() if isinstance(m, torch.nn.Linear)]
    swapped = [m for m in linears if type(m) is not torch.nn.Linear]
    assert linears and swapped == linears
    layer = swapped[0]
    x = torch.randn(3, 5, layer.in_features)
    with torch.inference_mode():
        np.testing.assert_allclose(layer(x), F.linear(x, layer.weight, layer.bias), atol=1e-5, rtol=1e-5)
    x.requires_grad_(True)
    layer(x).sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_cpu_feature_encoder_runs_in_tiles_with_the_whole_run_result(arch, models):
    """On CPU the conv feature encoder runs in 1 s tiles (sercli_hf.cpu.tile_feature_encoder);
    its output is the untiled encoder's, for a batch, frame for frame."""
    backbone = backbone_for(models[arch])
    backbone.load()
    encoder = backbone.encoder.model.feature_extractor
    assert "forward" in vars(encoder)  # the tiled forward replaced the class's
    x = torch.randn(2, int(3.37 * 16000), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        tiled = encoder(x)
        whole = type(encoder).forward(encoder, x)
    assert tiled.shape == whole.shape and tiled.shape[-1] == backbone.num_frames(x.shape[1]) > 3 * 50
    # float32 rounding only: the folded GroupNorm sums in another order (up to 2.4e-6 on outputs
    # of magnitude 4.7 over 40 random inputs), while a misplaced tile is off by O(1).
    np.testing.assert_allclose(tiled, whole, atol=1e-5, rtol=1e-5)


def test_folded_group_norm_handles_a_conv_bias():
    """The first layer's GroupNorm folds into per-input weights with the conv's bias too
    (conv_bias=True checkpoints), and tiles are exact however the tile size falls."""
    from sercli_hf.cpu import tile_feature_encoder
    from sercli_hf.random_models import TINY

    config = transformers.Wav2Vec2Config(**TINY, feat_extract_norm="group", conv_bias=True)
    torch.manual_seed(0)
    model = transformers.Wav2Vec2Model(config).eval()
    encoder = model.feature_extractor
    with torch.no_grad():
        encoder.conv_layers[0].conv.bias.normal_()
    x = torch.randn(3, 23_456) + 0.3  # an offset: window means are not zero
    with torch.inference_mode():
        whole = encoder(x)
        for tile in (1, 7, 50):
            assert tile_feature_encoder(model, config, tile=tile)
            np.testing.assert_allclose(encoder(x), whole, atol=1e-5, rtol=1e-5)
