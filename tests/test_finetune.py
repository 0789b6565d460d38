"""Fine-tuning an encoder with a head (sercli.learning.finetune) on tiny random checkpoints saved from a
config and loaded through `hf:DIR`: what learns, what is saved, what reloads, and the CLI's
train -> eval -> predict round trip on a fine-tuned run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sercli.learning import finetune as ft
from sercli.core import plugins as pl
from sercli.learning.data import collate
from sercli.core.errors import SercliError
from sercli.learning.model import probabilities
from sercli_hf.random_models import save_random_model

from conftest import run_here

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")

# one pytest-xdist worker runs the module (--dist loadgroup), so that its module-scoped fixtures
# (the tiny models and their runs) are made once, not once on each worker
pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.xdist_group("finetune")]

SR = 16000
EMOTIONS = ("angry", "sad")


def clip(seconds: float, emotion: str, seed: int) -> np.ndarray:
    """A voiced sweep: high and fast for angry, low and slow for sad (an easy task)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    f0 = rng.uniform(220, 300) if emotion == "angry" else rng.uniform(90, 130)
    phase = 2 * np.pi * (f0 * t + 20 * np.sin(2 * np.pi * 0.8 * t))
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (0.2 * voiced + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """16 clips of unequal lengths by 4 speakers, both emotions each; and their manifest."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    recs = []
    for i in range(16):
        emotion = EMOTIONS[i % 2]
        path = root / f"u{i}.wav"
        sf.write(str(path), clip(float(rng.uniform(0.4, 1.2)), emotion, i), SR)
        recs.append({"id": f"u{i}", "audio": str(path), "emotion": emotion, "speaker": f"s{i // 4}"})
    manifest = root / "audio.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return recs, manifest


@pytest.fixture(scope="module")
def ssl_model(tmp_path_factory):
    """wav2vec2 with a group-norm feature encoder: padding-sensitive, 2 layers, 32-d."""
    return save_random_model("wav2vec2-group", tmp_path_factory.mktemp("hf") / "w2v")


@pytest.fixture(scope="module")
def masked_model(tmp_path_factory):
    """wav2vec2 with layer norms and an attention mask: batched with padding."""
    return save_random_model("wav2vec2-layer", tmp_path_factory.mktemp("hf") / "w2v-layer")


@pytest.fixture(scope="module")
def whisper_model(tmp_path_factory):
    """A tiny random Whisper (2 encoder layers, 32-d, 3 s of positions): cut input, no mask."""
    config = transformers.WhisperConfig(
        d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
        decoder_attention_heads=2, decoder_ffn_dim=64, vocab_size=100, max_source_positions=150,
        max_target_positions=32, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hf") / "whisper"
    transformers.WhisperModel(config).eval().save_pretrained(folder)
    transformers.WhisperFeatureExtractor().save_pretrained(folder)
    return folder


def build(spec: ft.Finetune, data, hidden: int = 8):
    head = pl.create("head", "mlp", {"hidden": hidden})
    torch.manual_seed(0)
    model = ft.new_model(spec, data, lambda L, D: _named(head.build(L, D, len(EMOTIONS)), head), seed=0)
    return model


def _named(module, head):
    module.config.update(name=head.name, options=head.options.model_dump(mode="json"))
    return module


def data_for(spec, recs):
    meta = ft.features_meta(spec, ft.backbone_for(spec))
    return ft.examples(recs, {e: i for i, e in enumerate(EMOTIONS)}, 0, meta), meta


def train_steps(model, data, steps: int = 3, batch: int = 4):
    opt = torch.optim.AdamW(model.param_groups(1e-2))
    model.train()
    for s in range(steps):
        idx = [(s * batch + i) % len(data) for i in range(batch)]
        x, lengths, y, _ = collate(data, idx)
        loss = torch.nn.functional.cross_entropy(model(x, lengths), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def fresh_encoder(spec):
    return ft.backbone_for(spec).trainable_module("cpu").state_dict()


def test_lora_trains_only_adapters_and_saves_only_them_and_the_head(ssl_model, records):
    spec = ft.parse({"backbone": f"hf:{ssl_model}", "mode": "lora", "lora_rank": 2})
    data, _ = data_for(spec, records[0])
    model = build(spec, data)
    learning = {n for n, p in model.encoder.named_parameters() if p.requires_grad}
    assert learning and all("lora_" in n for n in learning)
    assert all(any(t in n for t in ("q_proj", "v_proj")) for n in learning)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    train_steps(model, data)
    after = model.encoder.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= learning  # the adapters learnt; nothing else moved
    original = fresh_encoder(spec)
    for name, value in after.items():
        if "lora_" not in name:  # the frozen weights are the checkpoint's, untouched
            assert torch.equal(value, original[name.replace(".base_layer", "")]), name
    saved = model.saved_state()
    assert set(saved) == {ft.ENCODER + n for n in learning} | {ft.HEAD + k for k in model.head.state_dict()}
    encoder_bytes = sum(v.numel() * v.element_size() for k, v in saved.items() if k.startswith(ft.ENCODER))
    model_bytes = sum(v.numel() * v.element_size() for v in original.values())
    assert encoder_bytes * 5 < model_bytes


@pytest.mark.parametrize("layers", [1, 2])
def test_top_layers_learn_and_the_rest_stays(whisper_model, records, layers):
    spec = ft.parse({"backbone": f"hf:{whisper_model}", "mode": "top", "layers": layers})
    data, _ = data_for(spec, records[0])
    model = build(spec, data)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    train_steps(model, data)
    after = model.encoder.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    top = {f"layers.{i}." for i in range(2 - layers, 2)}
    assert changed and all(any(k.startswith(t) for t in top) or k.startswith("layer_norm.") for k in changed)
    assert any(k.startswith("layer_norm.") for k in changed)  # the norm after the last layer learns too
    assert not any(k.startswith(("conv1.", "conv2.", "embed_positions.")) for k in changed)
    saved = {k[len(ft.ENCODER):] for k in model.saved_state() if k.startswith(ft.ENCODER)}
    assert saved == {n for n, p in model.encoder.named_parameters() if p.requires_grad}
    assert changed <= saved


@pytest.mark.parametrize("which", ["ssl_model", "whisper_model"])
def test_before_training_the_head_reads_the_features_extraction_stores(which, request, records):
    """The encoder as loaded for fine-tuning (no CPU rewrites, adapters at zero) gives the hidden
    states `sercli extract` gives, each input at its own length; the head's statistics are theirs."""
    folder = request.getfixturevalue(which)
    spec = ft.parse({"backbone": f"hf:{folder}", "mode": "lora", "lora_rank": 2})
    data, _ = data_for(spec, records[0])
    model = build(spec, data).eval()
    x, lengths, _, _ = collate(data, list(range(5)))
    with torch.no_grad():
        hidden, frames = model.hidden(x, lengths)
    reference = pl.create("backbone", f"hf:{folder}")
    reference.load("cpu")
    feats = []
    with torch.inference_mode():
        for i in range(len(data)):
            feats.append(reference.forward([data.features(i)[0, :, 0]], "cpu")[0])
    for i in range(5):
        assert int(frames[i]) == feats[i].shape[1]
        torch.testing.assert_close(hidden[i, :, : frames[i]], feats[i], atol=1e-4, rtol=1e-4)
        assert not hidden[i, :, frames[i]:].any()
    frames_all = torch.cat(feats, dim=1).double()  # (L, all frames, D): every record of the training part
    torch.testing.assert_close(model.head.mean.double(), frames_all.mean(1), atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(model.head.std.double(), frames_all.std(1, unbiased=False), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("which", ["ssl_model", "masked_model", "whisper_model"])
def test_saved_tensors_reload_to_identical_probabilities(which, request, records, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = request.getfixturevalue(which)
    spec = ft.parse({"backbone": f"hf:{folder}", "mode": "lora", "lora_rank": 2})
    data, meta = data_for(spec, records[0])
    model = train_steps(build(spec, data), data)
    save_file(model.saved_state(), str(tmp_path / "model.safetensors"))
    config = {"train": {"finetune": spec.model_dump()}, "features": meta}
    head = pl.create("head", "mlp", {"hidden": 8}).build(model.config["num_layers"], model.config["dim"], 2)
    again = ft.load(head, config, load_file(str(tmp_path / "model.safetensors")))
    p1 = probabilities(model, data, 4)
    p2 = probabilities(again, data, 4)
    assert np.array_equal(p1, p2)
    # a batch gives each input the numbers it gets alone, to float rounding (padding-sensitive
    # backbones never pad; the others mask; the head's products differ with the batch's shape)
    np.testing.assert_allclose(probabilities(again, data, 1), p2, atol=1e-5)


def test_reload_refuses_tensors_that_do_not_fit(ssl_model, records):
    spec = ft.parse({"backbone": f"hf:{ssl_model}", "mode": "lora", "lora_rank": 2})
    data, meta = data_for(spec, records[0])
    model = build(spec, data)
    state = model.saved_state()
    config = {"train": {"finetune": spec.model_dump()}, "features": meta}
    head = lambda: pl.create("head", "mlp", {"hidden": 8}).build(model.config["num_layers"], model.config["dim"], 2)  # noqa: E731
    extra = {**state, "encoder.encoder.layers.0.attention.k_proj.weight": torch.zeros(32, 32)}
    with pytest.raises(ValueError, match="not used"):
        ft.load(head(), config, extra)
    missing = dict(list(state.items())[1:])
    with pytest.raises(ValueError, match="missing"):
        ft.load(head(), config, missing)
    top = {**config, "train": {"finetune": {**spec.model_dump(), "mode": "top", "layers": 1}}}
    with pytest.raises(ValueError):  # adapters saved, unfrozen layers expected
        ft.load(head(), top, state)


@pytest.mark.parametrize("strategy", ["real-only", "noise", "specaugment", "mixup"])
def test_the_trainer_and_strategies_fine_tune_the_same_way_every_time(strategy, ssl_model, records):
    """Through sercli's Trainer: feature-level strategies act on the encoder's hidden states,
    the encoder learns at its own rate, and a seed gives the same model twice."""
    from sercli.learning.train import TrainConfig, Trainer

    spec = ft.parse({"backbone": f"hf:{ssl_model}", "mode": "top", "layers": 1, "backbone_lr": 1e-3})
    data, _ = data_for(spec, records[0])
    train, val, none = data.subset(range(12)), data.subset(range(12, 16)), data.subset([])
    cfg = TrainConfig(head="mlp", head_options={"hidden": 8}, max_epochs=2, batch_size=4, finetune=spec.model_dump())
    runs = []
    for _ in range(2):
        trainer = Trainer(cfg, list(EMOTIONS))
        model = pl.create("strategy", strategy).fit(trainer, train, none, val)
        assert isinstance(model, ft.model_class())
        runs.append((model.saved_state(), trainer.predict(model, val)))
    (first, p1), (second, p2) = runs
    assert np.array_equal(p1, p2) and all(torch.equal(first[k], second[k]) for k in first)
    fresh = ft.backbone_for(spec).trainable_module("cpu").state_dict()
    assert any(not torch.equal(first[ft.ENCODER + k], fresh[k]) for k in fresh if ft.ENCODER + k in first)


def test_bad_settings_are_one_line(ssl_model):
    with pytest.raises(SercliError, match="mode"):
        ft.parse({"backbone": f"hf:{ssl_model}", "mode": "all"})
    with pytest.raises(SercliError, match="has 2 layers"):
        spec = ft.parse({"backbone": f"hf:{ssl_model}", "mode": "top", "layers": 3})
        backbone = ft.backbone_for(spec)
        ft.adapt(backbone.trainable_module("cpu"), backbone, spec)
    with pytest.raises(SercliError, match="cannot be fine-tuned"):
        ft.backbone_for(ft.parse({"backbone": "fbank"}))


# -- the command line: train -> eval -> predict on a fine-tuned run ----------------------------------

def invoke(*args):
    from typer.testing import CliRunner

    from sercli.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


FAST = ["--epochs", "2", "--patience", "1", "--head", "mlp", "-O", "hidden=8", "--batch-size", "4"]


@pytest.fixture(scope="module")
def lora_run(whisper_model, records, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lora"
    invoke("train", records[1], "--cv", "kfold:2", "--out", out, "--finetune", f"hf:{whisper_model}",
           "--finetune-mode", "lora", "--lora-rank", "2", "--backbone-lr", "1e-3", *FAST)
    return out


def test_cli_run_holds_only_what_changed_and_records_how(lora_run, whisper_model):
    from safetensors import safe_open

    job = lora_run / "fold-00-seed-0"
    config = json.loads((job / "config.json").read_text())
    finetune = config["train"]["finetune"]
    assert finetune["backbone"] == f"hf:{whisper_model}" and finetune["mode"] == "lora" and finetune["lora_rank"] == 2
    assert config["features"]["kind"] == "audio" and config["features"]["backbone"]["plugin"] == f"hf:{whisper_model}"
    with safe_open(str(job / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    encoder = {k for k in keys if k.startswith(ft.ENCODER)}
    assert encoder and all("lora_" in k for k in encoder)
    assert keys - encoder and all(k.startswith(ft.HEAD) for k in keys - encoder)
    assert (job / "model.safetensors").stat().st_size * 2 < (whisper_model / "model.safetensors").stat().st_size


def test_cli_eval_and_predict_reproduce_the_training_probabilities(lora_run):
    metrics = json.loads((lora_run / "metrics.json").read_text())
    again = json.loads(invoke("eval", lora_run).stdout.strip().splitlines()[-1])
    assert again["UA"] == metrics["UA"] and again["pooled"] == metrics["pooled"]
    job = lora_run / "fold-01-seed-0"
    saved = {p["id"]: p["probabilities"] for p in map(json.loads, (job / "predictions.jsonl").read_text().splitlines())}
    predicted = [json.loads(line) for line in invoke("predict", job, job / "test.jsonl").stdout.splitlines()]
    assert {p["id"]: p["probabilities"] for p in predicted} == saved and len(saved) == 8


def test_cli_top_layers_and_refusals(ssl_model, records, tmp_path):
    out = tmp_path / "top"
    invoke("train", records[1], "--test-speakers", "s0", "--out", out, "--finetune", f"hf:{ssl_model}",
           "--finetune-mode", "top", "--finetune-layers", "1", *FAST)
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        encoder = {k for k in f.keys() if k.startswith(ft.ENCODER)}
    assert encoder and all(k.startswith(ft.ENCODER + "encoder.layers.1.") for k in encoder)
    for args, message in [(["--finetune", "fbank"], "cannot be fine-tuned"),
                          (["--finetune", f"hf:{ssl_model}", "--finetune-mode", "top", "--finetune-layers", "3"],
                           "has 2 layers"),
                          (["--finetune", f"hf:{ssl_model}", "--norm", "speaker"], "does not go with --finetune")]:
        proc = run_here("train", records[1], "--test-speakers", "s0", "--out", tmp_path / "x", *args)
        assert proc.returncode == 1 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "x").exists()
