"""The ``resynth`` engine: recorded utterances remade as new speakers with WORLD.

Measured on the audio it writes, never on what the engine says it did: the F0 of the output
(autocorrelation, not WORLD's tracker), its spectral envelope against the source's, its length.
Seeded, resumable, records that carry ``derived_from``; it reads only the audio of the records
it is given, and `sercli train --cv loso` keeps, per job, only speech derived from that job's
training speakers. Inputs are a few short synthetic vowels with a pitch glide (a glide makes
the harmonics sweep the spectral envelope, so the long-term spectrum shows the envelope).
"""

from __future__ import annotations

import json
import os
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import run_here

pytest.importorskip("pyworld", reason="the resynth engine needs pyworld-prebuilt (the test extra installs it)")

SR = 16000
ONLY = {"SERCLI_LOAD_PLUGINS": "resynth,espeak"}  # plugin loading costs seconds: just these


# -- helpers ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    """The environment the CLI runs with. Until the package is reinstalled with the ``resynth``
    entry point, a distribution folder on PYTHONPATH registers it, as pip would."""
    if any(ep.name == "resynth" for ep in entry_points(group="sercli")):
        return {}
    site = tmp_path_factory.mktemp("site")
    info = site / "sercli_resynth_local-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sercli-resynth-local\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[sercli]\nresynth = sercli_resynth\n")
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), str(site)) if p)
    return {"PYTHONPATH": path}


def cli(env, *args, only=True, check=False):
    """The CLI in this process (a subprocess where ``env`` sets PYTHONPATH: see ``run_here``)."""
    return run_here(*args, env={**env, **(ONLY if only else {})}, check=check)


def vowel(seconds: float, f0_start: float, f0_end: float, seed: int = 0) -> np.ndarray:
    """A vowel-like harmonic signal: F0 glides from ``f0_start`` to ``f0_end``, three formants."""
    t = np.arange(int(seconds * SR)) / SR
    f0 = f0_start * (f0_end / f0_start) ** (t / seconds)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = np.zeros_like(t)
    for h in range(1, 40):
        fh = h * f0
        amp = sum(1 / (1 + ((fh - fc) / bw) ** 2) for fc, bw in ((700, 90), (1200, 110), (2600, 160))) + 0.02
        x += np.where(fh < SR / 2 - 200, amp / h ** 0.5, 0) * np.sin(h * phase)
    x += np.random.default_rng(seed).normal(scale=1e-3, size=len(x))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


SPEAKERS = {"spk0": (110, 160), "spk1": (200, 280), "spk2": (130, 190), "spk3": (170, 240)}


def corpus(root: Path, speakers=("spk0", "spk1"), emotions=("angry", "sad"), per=1, seconds=0.6) -> Path:
    """Real audio records, one WAV each; returns the manifest."""
    (root / "wav").mkdir(parents=True, exist_ok=True)
    recs = []
    for s in speakers:
        lo, hi = SPEAKERS[s]
        for e in emotions:
            for k in range(per):
                rid = f"{s}-{e}-{k}"
                path = root / "wav" / f"{rid}.wav"
                sf.write(path, vowel(seconds, lo, hi, seed=len(recs)), SR)
                recs.append({"id": rid, "audio": str(path), "emotion": e, "speaker": s, "source": "real",
                             "gender": "f", "session": "a", "transcript": "Aah."})
    manifest = root / "real.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return manifest


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def median_f0(wav: np.ndarray, lo: float = 60, hi: float = 500) -> float:
    """Median F0 by normalised autocorrelation over 40 ms frames (voiced frames only)."""
    n = int(0.04 * SR)
    found = []
    for start in range(0, len(wav) - n, n // 2):
        seg = wav[start:start + n] * np.hanning(n)
        if np.sqrt(np.mean(seg ** 2)) < 1e-3:
            continue
        r = np.correlate(seg, seg, "full")[n - 1:]
        r = r / (r[0] + 1e-12)
        a, b = int(SR / hi), int(SR / lo)
        k = a + int(np.argmax(r[a:b]))
        if r[k] < 0.5:
            continue
        k = k + 0.5 * (r[k - 1] - r[k + 1]) / (r[k - 1] - 2 * r[k] + r[k + 1])  # parabolic peak
        found.append(SR / k)
    assert found, "no voiced frame"
    return float(np.median(found))


def envelope_shift(x: np.ndarray, y: np.ndarray) -> float:
    """The factor along frequency that best maps the long-term spectral envelope of ``x`` onto
    that of ``y`` (cross-correlation of smoothed log spectra on a log-frequency axis)."""
    def log_spectrum(w):
        n = 1024
        frames = [w[i:i + n] * np.hanning(n) for i in range(0, len(w) - n, n // 4)]
        power = np.mean([np.abs(np.fft.rfft(f)) ** 2 for f in frames], axis=0)
        grid = np.exp(np.linspace(np.log(300), np.log(5000), 600))
        curve = np.log(np.interp(grid, np.fft.rfftfreq(n, 1 / SR), power) + 1e-12)
        return np.convolve(curve, np.ones(25) / 25, "same"), np.log(grid[1] / grid[0])

    (lx, step), (ly, _) = log_spectrum(x), log_spectrum(y)
    best = max(range(-60, 61), key=lambda s: np.corrcoef(lx[80:520], ly[80 + s:520 + s])[0, 1])
    return float(np.exp(best * step))


def engine(**options):
    from sercli_resynth.engine import ResynthEngine

    return ResynthEngine(options=ResynthEngine.Options(**options))


def source_of(rec: dict, real: dict) -> np.ndarray:
    return sf.read(real[rec["derived_from"]["id"]]["audio"], dtype="float32")[0]


# -- what the audio is -----------------------------------------------------------------------

def test_each_voice_shifts_pitch_and_tempo_by_its_own_factors(tmp_path, env):
    manifest = corpus(tmp_path)
    out = tmp_path / "rs.jsonl"
    cli(env, "synthesize", manifest, "-t", "resynth", "--voices-per-text", "3", "-d", tmp_path / "a", "-o", out,
        check=True)
    real = {r["id"]: r for r in lines(manifest)}
    made = lines(out)
    assert len(made) == 3 * len(real)
    factors = engine().factors
    pitches = set()
    for rec in made:
        f = factors(rec["voice"])
        pitches.add(f["pitch"])
        y, sr = sf.read(rec["audio"], dtype="float32")
        x = source_of(rec, real)
        assert sr == SR
        assert median_f0(y) / median_f0(x) == pytest.approx(f["pitch"], rel=0.05), rec["id"]
        assert len(x) / len(y) == pytest.approx(f["tempo"], rel=0.03), rec["id"]  # above 1: faster
    assert len(pitches) >= 3 and max(pitches) / min(pitches) > 1.1  # the voices differ


def test_a_warp_moves_the_spectral_envelope_and_pitch_alone_does_not(tmp_path, env):
    manifest = corpus(tmp_path, speakers=("spk0",), emotions=("neutral",))  # low F0: a dense spectrum
    x = sf.read(lines(manifest)[0]["audio"], dtype="float32")[0]
    shifts = {}
    for warp, pitch in ((1.1, 1.0), (0.9, 1.0), (1.0, 1.2)):
        out = tmp_path / f"w{warp}-p{pitch}.jsonl"
        cli(env, "synthesize", manifest, "-t", "resynth", "-O", f"warp={warp}", "-O", f"pitch={pitch}",
            "-O", "tempo=1", "-d", tmp_path / "a", "-o", out, check=True)
        y = sf.read(lines(out)[0]["audio"], dtype="float32")[0]
        shifts[warp, pitch] = envelope_shift(x, y)
        if pitch != 1.0:
            assert median_f0(y) / median_f0(x) == pytest.approx(pitch, rel=0.05)
    assert shifts[1.1, 1.0] == pytest.approx(1.1, abs=0.03)
    assert shifts[0.9, 1.0] == pytest.approx(0.9, abs=0.03)
    assert shifts[1.0, 1.2] == pytest.approx(1.0, abs=0.02)


def test_emotion_prosody_widens_and_narrows_the_pitch_range(tmp_path):
    import pyworld as pw

    from sercli_resynth.engine import RANGE_RULES, remake

    x = vowel(0.6, 110, 170).astype(np.float64)

    def spread(w):  # the log-F0 range, by an independent tracker run on the output
        f0, t = pw.dio(np.ascontiguousarray(w, dtype=np.float64), SR)
        f0 = f0[f0 > 0]
        return float(np.log(np.percentile(f0, 90) / np.percentile(f0, 10)))

    base = spread(x)
    for emotion in ("angry", "sad"):
        y = remake(pw, x, SR, pitch=1.0, warp=1.0, tempo=1.0, pitch_range=RANGE_RULES[emotion])
        assert spread(y) / base == pytest.approx(RANGE_RULES[emotion], rel=0.15)


# -- seeded, resumable, the records it writes ------------------------------------------------

def test_seeded_resumable_and_the_records_carry_their_source(tmp_path, env):
    manifest = corpus(tmp_path, per=2, seconds=0.3)  # short clips: what is checked is the same
    real = {r["id"]: r for r in lines(manifest)}
    args = ("synthesize", manifest, "-t", "resynth", "--voices-per-text", "2")
    first, second = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    cli(env, *args, "-d", tmp_path / "a", "-o", first, check=True)
    cli(env, *args, "-d", tmp_path / "b", "-o", second, check=True)
    made = lines(first)
    # the same seed and options: byte-identical audio under the same names
    files = sorted(p.name for p in (tmp_path / "a").glob("*.wav"))
    assert files == sorted(p.name for p in (tmp_path / "b").glob("*.wav")) and len(files) == len(made)
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # another voice seed: other voices, other audio
    other = tmp_path / "seed1.jsonl"
    cli(env, *args, "-O", "voice_seed=1", "-d", tmp_path / "a", "-o", other, check=True)
    assert engine(voice_seed=1).factors("v0") != engine().factors("v0")
    assert not {r["audio"] for r in lines(other)} & {r["audio"] for r in made}

    for rec in made:
        src = real[rec["derived_from"]["id"]]
        assert rec["derived_from"] == {"id": src["id"], "speaker": src["speaker"]}
        assert rec["source"] == "synthetic" and rec["emotion"] == src["emotion"]
        assert rec["speaker"] == f"resynth:{rec['voice']}@{src['speaker']}"
        assert "gender" not in rec and "session" not in rec and "features" not in rec
        assert rec["transcript"] == src["transcript"]
    # each source speaker becomes the same two new speakers in all of its utterances
    for spk in {r["speaker"] for r in real.values()}:
        per_utt = {}
        for rec in made:
            if rec["derived_from"]["speaker"] == spk:
                per_utt.setdefault(rec["derived_from"]["id"], set()).add(rec["voice"])
        assert len(per_utt) == 4 and all(len(v) == 2 for v in per_utt.values())
        assert len(set(map(frozenset, per_utt.values()))) == 1

    # resumed: nothing new is written
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "a").glob("*.wav")}
    text = first.read_text()
    proc = cli(env, *args, "-d", tmp_path / "a", "-o", first, check=True)
    assert "Resuming" in proc.stderr and first.read_text() == text
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "a").glob("*.wav")} == before
    # interrupted (records and one file missing): completed, the lost file made again the same
    keep = text.splitlines(keepends=True)[:3]
    first.write_text("".join(keep))
    lost = Path(made[-1]["audio"])
    lost_bytes = lost.read_bytes()
    lost.unlink()
    cli(env, *args, "-d", tmp_path / "a", "-o", first, check=True)
    again = lines(first)
    assert sorted(json.dumps(r, sort_keys=True) for r in again) == sorted(json.dumps(r, sort_keys=True) for r in made)
    assert lost.read_bytes() == lost_bytes


# -- held-out speakers -----------------------------------------------------------------------

def test_resynth_reads_only_the_records_it_is_given(tmp_path, env):
    """Fed the training part, it never opens a held-out speaker's audio: those files are gone
    from disk, and the run succeeds. What it makes of the records it keeps is what it makes
    of them in a run over every speaker (voices are drawn per speaker, not by position)."""
    manifest = corpus(tmp_path, speakers=("spk0", "spk1", "spk2"))
    full = tmp_path / "all.jsonl"
    cli(env, "synthesize", manifest, "-t", "resynth", "-d", tmp_path / "all", "-o", full, check=True)
    train = tmp_path / "train.jsonl"
    recs = lines(manifest)
    train.write_text("".join(json.dumps(r) + "\n" for r in recs if r["speaker"] != "spk1"))
    for r in recs:
        if r["speaker"] == "spk1":
            Path(r["audio"]).unlink()
    out = tmp_path / "train-rs.jsonl"
    dry = cli(env, "synthesize", train, "-t", "resynth", "-d", tmp_path / "part", "-o", out, "--dry-run", check=True)
    assert "4 utterances" in dry.stderr and "4 requests" in dry.stderr and not out.exists()
    cli(env, "synthesize", train, "-t", "resynth", "-d", tmp_path / "part", "-o", out, check=True)
    made = lines(out)
    assert made and {r["derived_from"]["speaker"] for r in made} == {"spk0", "spk2"}
    same = {r["id"]: Path(r["audio"]).name for r in lines(full) if r["derived_from"]["speaker"] != "spk1"}
    assert {r["id"]: Path(r["audio"]).name for r in made} == same


def test_loso_keeps_per_job_only_speech_derived_from_its_training_speakers(tmp_path, env):
    """resynth output of ALL speakers given to `sercli train --cv loso`: each job uses the
    derived speech of its training speakers only, and says how much of the rest it dropped."""
    manifest = corpus(tmp_path, speakers=tuple(SPEAKERS), emotions=("angry", "sad"), per=2, seconds=0.4)
    made = tmp_path / "rs.jsonl"
    cli(env, "synthesize", manifest, "-t", "resynth", "-d", tmp_path / "rs", "-o", made, check=True)
    for name, path in (("real", manifest), ("syn", made)):
        cli(env, "extract", path, "-b", "fbank", "-s", tmp_path / "store", "--workers", "0",
            "-o", tmp_path / f"{name}-f.jsonl", only=False, check=True)
    run = tmp_path / "run"
    cli(env, "train", tmp_path / "real-f.jsonl", "--synthetic", tmp_path / "syn-f.jsonl", "--strategy", "mix",
        "-O", "ratio=1", "--cv", "loso", "--out", run, "--epochs", "2", "--patience", "2", "--batch-size", "16",
        only=False, check=True)
    derived = lines(tmp_path / "syn-f.jsonl")
    assert len(derived) == len(lines(manifest)) and all(r.get("derived_from") for r in derived)
    by_speaker = {}
    for r in derived:
        by_speaker[r["derived_from"]["speaker"]] = by_speaker.get(r["derived_from"]["speaker"], 0) + 1
    jobs = sorted(run.glob("fold-*-seed-*"))
    assert len(jobs) == len(SPEAKERS)
    for job in jobs:
        config = json.loads((job / "config.json").read_text())
        spk, counts = config["speakers"], config["counts"]
        dropped = counts["synthetic_dropped"]
        assert counts["synthetic"] == sum(by_speaker[s] for s in spk["train"])
        assert dropped.get("derived_from_test", 0) == sum(by_speaker[s] for s in spk["test"])
        assert dropped.get("derived_from_validation", 0) == sum(by_speaker[s] for s in spk["val"])
        assert counts["synthetic"] + sum(dropped.values()) == len(derived)


# -- bad input: one line, nothing written ----------------------------------------------------

def test_bad_input_is_one_line_and_writes_nothing(tmp_path, env):
    manifest = corpus(tmp_path, speakers=("spk0",), emotions=("sad",))
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"id": "t1", "emotion": "sad", "text": "Hello there."}) + "\n")
    no_speaker = tmp_path / "nospk.jsonl"
    no_speaker.write_text(json.dumps({"id": "a", "audio": "a.wav", "emotion": "sad"}) + "\n")
    blocker = tmp_path / "nopyworld"
    blocker.mkdir()
    (blocker / "pyworld.py").write_text("raise ImportError('pyworld is not installed')\n")
    without = {**env, "PYTHONPATH": os.pathsep.join(filter(None, (str(blocker), env.get("PYTHONPATH")
                                                                  or os.environ.get("PYTHONPATH"))))}
    cases = [
        (env, (texts, "-t", "resynth"), "is a text record"),
        (env, (manifest, "-t", "espeak"), "is recorded speech"),
        (env, (no_speaker, "-t", "resynth"), "missing 'speaker'"),
        (env, (manifest, "-t", "resynth", "--voices", "v0,v99"), "no voice 'v99'"),
        (env, (manifest, "-t", "resynth", "-O", "pitch=1.3:1.1"), "LOW <= HIGH"),
        (without, (manifest, "-t", "resynth"), "pip install pyworld-prebuilt"),
    ]
    for i, (environment, args, words) in enumerate(cases):
        out, audio = tmp_path / f"out{i}.jsonl", tmp_path / f"audio{i}"
        proc = cli(environment, "synthesize", *args, "-d", audio, "-o", out)
        assert proc.returncode == 1, (args, proc.stderr)
        body = proc.stderr.strip().splitlines()
        assert len(body) == 1 and words in body[0] and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert not out.exists() and not audio.exists(), args


def test_text_engines_keep_their_cache_keys():
    """Audio already made by a text engine stays found: the key of a text utterance is what it was."""
    import hashlib

    from sercli.synthesis.synth import cache_key

    identity = {"plugin": "espeak", "prosody": 1.0}
    blob = json.dumps({"engine": identity, "text": "Hi.", "emotion": "sad", "voice": "en-us"},
                      sort_keys=True, ensure_ascii=False, default=str)
    assert cache_key(identity, "Hi.", "sad", "en-us") == hashlib.sha256(blob.encode()).hexdigest()[:12]
    assert cache_key(identity, None, "sad", "en-us", audio="ab") != cache_key(identity, "Hi.", "sad", "en-us")
