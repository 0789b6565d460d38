"""`sercli degrade`: the SNR asked for is the SNR measured; seeded, resumable, with provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import write_tone
from sercli.synthesis import degrade as dg
from sercli.core.errors import SercliError


def records(tmp_path, n=3):
    out = []
    for i in range(n):
        wav = write_tone(tmp_path / "clean" / f"u{i}.wav", seconds=1.0, freq=200 + 60 * i)
        out.append({"id": f"u{i}", "audio": str(wav), "emotion": "sad", "text": f"line {i}", "source": "synthetic"})
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in out))
    return path, out


def measured_snr(clean, noisy):
    """SNR of ``noisy`` against ``clean`` up to a gain (the output keeps the source's peak)."""
    k = float(np.dot(noisy, clean) / np.dot(clean, clean))
    return dg.snr_db(k * clean, noisy)


@pytest.mark.parametrize("snr", [5.0, 20.0])
def test_written_audio_has_the_snr_asked_for(tmp_path, cli, snr):
    src, recs = records(tmp_path)
    out = tmp_path / f"out{snr}.jsonl"
    cli("degrade", src, "--snr", snr, "-d", tmp_path / "audio", "-o", out, check=True)
    made = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in made] == [f"{r['id']}-degraded" for r in recs]
    for rec, new in zip(recs, made):
        clean, _ = sf.read(rec["audio"], dtype="float64")
        noisy, sr = sf.read(new["audio"], dtype="float64")
        assert sr == 16000 and len(noisy) == len(clean)
        assert measured_snr(clean, noisy) == pytest.approx(snr, abs=0.5)
        assert new["provenance"]["degrade"]["settings"]["snr"] == snr and new["provenance"]["degrade"]["from"] == rec["id"]


def test_reverb_and_band_change_the_spectrum_and_are_seeded(tmp_path):
    rng = np.random.default_rng(0)
    wav = rng.standard_normal(16000).astype(np.float32) * 0.1  # white: every band has energy
    phone = dg.Degradation(band=(300, 3400))
    out = dg.apply(wav, phone, dg.rng_for(0, "a"))
    spec = np.abs(np.fft.rfft(out)) ** 2
    freqs = np.fft.rfftfreq(len(out), 1 / 16000)
    inside = spec[(freqs > 800) & (freqs < 2500)].mean()
    assert spec[freqs > 6000].mean() < inside / 100 and spec[freqs < 80].mean() < inside / 10
    room = dg.Degradation(reverb=0.4)
    a, b = dg.apply(wav, room, dg.rng_for(0, "a")), dg.apply(wav, room, dg.rng_for(0, "a"))
    c = dg.apply(wav, room, dg.rng_for(1, "a"))
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.allclose(a, wav * (a.max() / wav.max()))
    rir = dg.room_impulse(0.3, np.random.default_rng(0))
    energy = np.cumsum(rir[1:][::-1] ** 2)[::-1]  # Schroeder decay of the tail
    at = int(0.15 * 16000)  # half the RT60: about -30 dB
    assert 10 * np.log10(energy[at] / energy[1]) == pytest.approx(-30, abs=5)


def test_resumes_without_redoing_and_refuses_other_settings(tmp_path, cli):
    src, recs = records(tmp_path)
    out, audio = tmp_path / "out.jsonl", tmp_path / "audio"
    first = [json.dumps(recs[0])]
    part = tmp_path / "part.jsonl"
    part.write_text(first[0] + "\n")
    cli("degrade", part, "--snr", 10, "--reverb", 0.2, "--band", "300-3400", "-d", audio, "-o", out, check=True)
    before = {p.name: p.stat().st_mtime_ns for p in audio.glob("*.wav")}
    cli("degrade", src, "--snr", 10, "--reverb", 0.2, "--band", "300-3400", "-d", audio, "-o", out, check=True)
    made = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in made] == ["u0-degraded", "u1-degraded", "u2-degraded"]
    after = {p.name: p.stat().st_mtime_ns for p in audio.glob("*.wav")}
    assert len(after) == 3 and all(after[k] == v for k, v in before.items())  # the first file was not made again
    proc = cli("degrade", src, "--snr", 30, "-d", audio, "-o", out)
    assert proc.returncode == 1 and "other settings" in proc.stderr
    with pytest.raises(SercliError, match="--band"):
        dg.Degradation(band=(3400, 300))
    with pytest.raises(SercliError, match="nothing to do"):
        dg.Degradation()


def test_espeak_prosody_jitter_varies_each_utterance_reproducibly():
    from sercli.core import plugins as pl

    plain = pl.create("tts", "espeak")
    varied = pl.create("tts", "espeak", {"prosody_jitter": "0.3"})
    texts = [f"This is sentence {i}." for i in range(6)]
    assert len({plain.prosody("sad", "en-us", t) for t in texts}) == 1
    drawn = [varied.prosody("sad", "en-us", t) for t in texts]
    assert len(set(drawn)) == len(texts) and drawn == [varied.prosody("sad", "en-us", t) for t in texts]
    base = plain.prosody("sad", "en-us")
    assert all(abs(p.rate - base.rate) <= 0.3 * base.rate + 1 for p in drawn)
    assert plain.identity() != varied.identity()  # jittered audio is cached apart
