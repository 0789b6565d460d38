"""`sercli prepare` on miniature copies of each corpus: real layouts, names and label files,
a few generated tones each."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import write_tone


def prepare(cli, *args, tmp: Path, check: bool = True):
    """Run `sercli prepare ARGS -o manifest`; returns (records by id, stderr, returncode)."""
    out = tmp / "manifest.jsonl"
    if out.exists():
        out.unlink()
    proc = cli("prepare", *args, "-o", out, cwd=tmp, check=check)
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return {r["id"]: r for r in records}, proc.stderr, proc.returncode


def labels(records: dict) -> Counter:
    return Counter(r["emotion"] for r in records.values())


# --- IEMOCAP ------------------------------------------------------------------------------

# dialog -> turns (name, consensus label); Ses02M_script01_1_M000's wav is missing on disk.
IEMOCAP = {
    "Session1": {
        "Ses01F_impro01": [("F000", "neu"), ("M000", "exc"), ("F001", "fru"), ("M001", "xxx")],
        "Ses01F_script01_1": [("F000", "ang"), ("M000", "hap"), ("F001", "sad")],
    },
    "Session2": {
        "Ses02M_impro02": [("F000", "sad"), ("M000", "exc"), ("M001", "sur")],
        "Ses02M_script01_1": [("M000", "ang"), ("F000", "neu")],
    },
}
IEMOCAP_MISSING = "Ses02M_script01_1_M000"
CATEGORY_NAMES = {"neu": "Neutral state", "exc": "Excited", "fru": "Frustration", "ang": "Anger",
                  "hap": "Happiness", "sad": "Sadness", "sur": "Surprise", "xxx": "Other"}


def make_iemocap(root: Path) -> Path:
    for session, dialogs in IEMOCAP.items():
        dialog_dir = root / session / "dialog"
        (dialog_dir / "EmoEvaluation" / "Categorical").mkdir(parents=True)
        (dialog_dir / "transcriptions").mkdir(parents=True)
        for dialog, turns in dialogs.items():
            evaluation = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            transcript = []
            for i, (suffix, label) in enumerate(turns):
                turn = f"{dialog}_{suffix}"
                start, end = 6.2901 + 3 * i, 8.2357 + 3 * i
                evaluation += [
                    f"[{start:.4f} - {end:.4f}]\t{turn}\t{label}\t[2.5000, 3.0000, 3.5000]",
                    f"C-E1:\t{CATEGORY_NAMES[label]};\t()",
                    f"C-E3:\t{CATEGORY_NAMES[label]}; Neutral state;\t(a note)",
                    "A-E3:\tval 3; act 2; dom  2;\t()",
                    "A-F1:\tval 2; act 4; dom  3;\t()",
                    "",
                ]
                transcript.append(f"{turn} [{start:08.4f}-{end:08.4f}]: Words of turn {turn}.")
                if turn != IEMOCAP_MISSING:
                    write_tone(root / session / "sentences" / "wav" / dialog / f"{turn}.wav", 0.2 + 0.05 * i)
            (dialog_dir / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(evaluation) + "\n")
            # Per-evaluator files and macOS leftovers must not be read as evaluations.
            (dialog_dir / "EmoEvaluation" / "Categorical" / f"{dialog}_e1_cat.txt").write_text(
                f"{dialog}_F000 :Anger; ()\n"
            )
            (dialog_dir / "EmoEvaluation" / f"._{dialog}.txt").write_bytes(b"\x00\x05\x16\x07")
            (dialog_dir / "transcriptions" / f"{dialog}.txt").write_text("\n".join(transcript) + "\n")
    return root


@pytest.fixture
def iemocap(tmp_path) -> Path:
    return make_iemocap(tmp_path / "IEMOCAP_full_release")


def test_iemocap_default_is_four_classes_with_excited_as_happy(cli, iemocap, tmp_path):
    records, err, _ = prepare(cli, "iemocap", iemocap, tmp=tmp_path)
    assert labels(records) == {"neutral": 2, "happy": 3, "angry": 1, "sad": 2}
    assert Counter(r["session"] for r in records.values()) == {"Ses01": 5, "Ses02": 3}
    exc = records["Ses01F_impro01_M000"]
    assert exc["emotion"] == "happy" and exc["raw_label"] == "exc"
    # frustrated, surprise and the no-agreement xxx are left out of the 4-class setting
    assert not {"Ses01F_impro01_F001", "Ses01F_impro01_M001", "Ses02M_impro02_M001"} & set(records)
    assert "frustrated 1" in err and "surprise 1" in err and "other 1" in err


def test_iemocap_record_fields(cli, iemocap, tmp_path):
    records, _, _ = prepare(cli, "iemocap", iemocap, tmp=tmp_path)
    rec = records["Ses01F_script01_1_M000"]
    assert rec["speaker"] == "Ses01_M" and rec["gender"] == "M" and rec["session"] == "Ses01"
    assert rec["transcript"] == "Words of turn Ses01F_script01_1_M000."
    assert rec["improvised"] is False and records["Ses01F_impro01_F000"]["improvised"] is True
    assert (rec["valence"], rec["arousal"], rec["dominance"]) == (2.5, 3.0, 3.5)
    assert Path(rec["audio"]).is_absolute() and Path(rec["audio"]).is_file()
    assert rec["audio"].endswith("Session1/sentences/wav/Ses01F_script01_1/Ses01F_script01_1_M000.wav")
    assert rec["duration"] == pytest.approx(0.25, abs=1e-3) and rec["source"] == "real"
    assert rec["provenance"]["plugin"] == "iemocap"
    assert records["Ses02M_impro02_F000"]["speaker"] == "Ses02_F"


def test_iemocap_reports_files_missing_on_disk(cli, iemocap, tmp_path):
    records, err, code = prepare(cli, "iemocap", iemocap, tmp=tmp_path)
    assert code == 0 and IEMOCAP_MISSING not in records
    assert "1 files listed in the corpus metadata are missing on disk" in err
    assert f"{IEMOCAP_MISSING}.wav" in err


def test_iemocap_improvised_only(cli, iemocap, tmp_path):
    records, _, _ = prepare(cli, "iemocap", iemocap, "-O", "improvised_only=true", tmp=tmp_path)
    assert set(records) == {"Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses02M_impro02_F000",
                            "Ses02M_impro02_M000"}
    assert all(r["improvised"] for r in records.values())


def test_iemocap_all_labels_and_custom_merge(cli, iemocap, tmp_path):
    records, _, _ = prepare(cli, "iemocap", iemocap, "--classes", "all", "--map", "none", tmp=tmp_path)
    assert len(records) == 11  # 12 turns, one missing on disk
    assert labels(records) == {"neutral": 2, "excited": 2, "frustrated": 1, "other": 1, "angry": 1,
                               "happy": 1, "sad": 2, "surprise": 1}
    records, _, _ = prepare(cli, "iemocap", iemocap, "--map", "excited=happy,frustrated=angry",
                            "--classes", "angry,happy,neutral,sad", tmp=tmp_path)
    assert records["Ses01F_impro01_F001"]["emotion"] == "angry"
    assert labels(records) == {"neutral": 2, "happy": 3, "angry": 2, "sad": 2}
    # --map also takes the corpus's raw codes
    records, _, _ = prepare(cli, "iemocap", iemocap, "--map", "exc=happy", "--map", "fru=angry", tmp=tmp_path)
    assert labels(records) == {"neutral": 2, "happy": 3, "angry": 2, "sad": 2}


# --- MSP-Podcast ---------------------------------------------------------------------------

def make_msp_podcast(root: Path) -> Path:
    rows = [  # FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set
        ("MSP-PODCAST_0001_0008.wav", "A", "5.8", "2.2", "5.4", "127", "Female", "Train"),
        ("MSP-PODCAST_0001_0019.wav", "N", "4.0", "4.0", "4.2", "127", "Female", "Train"),
        ("MSP-PODCAST_0002_0033.wav", "H", "4.4", "5.8", "4.6", "1092", "Male", "Development"),
        ("MSP-PODCAST_0003_0001.wav", "C", "3.6", "3.0", "4.4", "Unknown", "Unknown", "Test1"),
        ("MSP-PODCAST_0004_0012.wav", "X", "3.8", "4.2", "4.0", "2081", "Male", "Test2"),
        ("MSP-PODCAST_0005_0101.wav", "S", "2.2", "2.4", "3.0", "2090", "Female", "Test2"),  # not on disk
    ]
    (root / "Labels").mkdir(parents=True)
    lines = ["FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"]
    lines += [",".join(r) for r in rows]
    (root / "Labels" / "labels_consensus.csv").write_text("\n".join(lines) + "\n")
    for r in rows[:-1]:
        write_tone(root / "Audios" / r[0], 0.3)
    (root / "Transcripts").mkdir()
    (root / "Transcripts" / "MSP-PODCAST_0002_0033.txt").write_text("and that was the best day\n")
    return root


def test_msp_podcast_partitions_and_codes(cli, tmp_path):
    root = make_msp_podcast(tmp_path / "MSP-PODCAST")
    records, err, code = prepare(cli, "msp-podcast", root, tmp=tmp_path)
    assert code == 0 and len(records) == 5 and "1 files listed" in err
    assert {k: r["emotion"] for k, r in records.items()} == {
        "MSP-PODCAST_0001_0008": "angry", "MSP-PODCAST_0001_0019": "neutral",
        "MSP-PODCAST_0002_0033": "happy", "MSP-PODCAST_0003_0001": "contempt",
        "MSP-PODCAST_0004_0012": "other",
    }
    dev = records["MSP-PODCAST_0002_0033"]
    assert (dev["split"], dev["speaker"], dev["gender"]) == ("Development", "1092", "M")
    assert "session" not in dev  # the partitions are not sessions: loso-session must not test on Train
    assert dev["transcript"] == "and that was the best day" and dev["arousal"] == 4.4
    unknown = records["MSP-PODCAST_0003_0001"]
    assert "speaker" not in unknown and "gender" not in unknown and "transcript" not in unknown
    records, _, _ = prepare(cli, "msp-podcast", root, "-O", "partitions=Train,Test1", tmp=tmp_path)
    assert {r["split"] for r in records.values()} == {"Train", "Test1"} and len(records) == 3
    _, err, code = prepare(cli, "msp-podcast", root, "-O", "partitions=Test3", tmp=tmp_path, check=False)
    assert code == 1 and "no partition test3" in err and "Development, Test1, Test2, Train" in err


# --- RAVDESS -------------------------------------------------------------------------------

def test_ravdess_file_name_codes(cli, tmp_path):
    root = tmp_path / "RAVDESS"
    write_tone(root / "Actor_01" / "03-01-05-02-01-01-01.wav", 0.3)  # angry, strong, statement 1
    write_tone(root / "Actor_02" / "03-01-02-01-02-02-02.flac", 0.3)  # calm, FLAC copy
    write_tone(root / "Actor_02" / "03-01-06-01-01-01-02.wav", 0.3)  # fearful
    write_tone(root / "Actor_01" / "03-02-03-01-01-01-01.wav", 0.3)  # song: not in the default
    write_tone(root / "Actor_01" / "notes.wav", 0.3)
    records, err, _ = prepare(cli, "ravdess", root, tmp=tmp_path)
    assert set(records) == {"03-01-05-02-01-01-01", "03-01-02-01-02-02-02", "03-01-06-01-01-01-02"}
    angry = records["03-01-05-02-01-01-01"]
    assert (angry["emotion"], angry["raw_label"], angry["intensity"]) == ("angry", "05", "strong")
    assert (angry["speaker"], angry["gender"]) == ("01", "M")
    assert angry["transcript"] == "Kids are talking by the door."
    calm = records["03-01-02-01-02-02-02"]
    assert (calm["emotion"], calm["gender"], calm["transcript"]) == ("calm", "F", "Dogs are sitting by the door.")
    assert records["03-01-06-01-01-01-02"]["emotion"] == "fear"
    assert "ignored 1 audio files" in err and "notes.wav" in err
    records, _, _ = prepare(cli, "ravdess", root, "-O", "channel=all", tmp=tmp_path)
    assert records["03-02-03-01-01-01-01"]["channel"] == "song" and len(records) == 4


# --- CREMA-D -------------------------------------------------------------------------------

def make_crema_d(root: Path) -> Path:
    write_tone(root / "AudioWAV" / "1001_DFA_ANG_XX.wav", 0.3)
    write_tone(root / "AudioWAV" / "1002_IEO_HAP_HI.wav", 0.3)
    write_tone(root / "AudioWAV" / "1001_TSI_NEU_XX.flac", 0.3)
    write_tone(root / "AudioWAV" / "1091_WSI_FEA_LO.wav", 0.3)
    (root / "VideoDemographics.csv").write_text(
        "ActorID,Age,Sex,Race,Ethnicity\n"
        "1001,51,Male,Caucasian,Not Hispanic\n"
        "1002,21,Female,Caucasian,Not Hispanic\n"
        "1091,29,Female,Asian,Not Hispanic\n"
    )
    return root


def test_crema_d_names_and_demographics(cli, tmp_path):
    root = make_crema_d(tmp_path / "CREMA-D")
    records, _, _ = prepare(cli, "crema-d", root, tmp=tmp_path)
    assert {k: (r["emotion"], r["speaker"], r["gender"]) for k, r in records.items()} == {
        "1001_DFA_ANG_XX": ("angry", "1001", "M"),
        "1002_IEO_HAP_HI": ("happy", "1002", "F"),
        "1001_TSI_NEU_XX": ("neutral", "1001", "M"),
        "1091_WSI_FEA_LO": ("fear", "1091", "F"),
    }
    assert records["1001_DFA_ANG_XX"]["transcript"] == "Don't forget a jacket."
    assert records["1002_IEO_HAP_HI"]["intensity"] == "high"
    # the audio folder itself works too: demographics are found one level up
    again, _, _ = prepare(cli, "crema-d", root / "AudioWAV", tmp=tmp_path)
    assert again.keys() == records.keys() and again["1002_IEO_HAP_HI"]["gender"] == "F"


# --- EmoDB ---------------------------------------------------------------------------------

def test_emodb_file_name_codes(cli, tmp_path):
    root = tmp_path / "emodb"
    for name in ("03a01Wa.wav", "08b02Lb.wav", "16a07Tc.flac", "11b10Fd.wav", "13a05Ea.wav"):
        write_tone(root / "wav" / name, 0.3)
    records, _, _ = prepare(cli, "emodb", root, tmp=tmp_path)
    assert {k: (r["emotion"], r["raw_label"], r["speaker"], r["gender"]) for k, r in records.items()} == {
        "03a01Wa": ("angry", "W", "03", "M"),
        "08b02Lb": ("boredom", "L", "08", "F"),
        "16a07Tc": ("sad", "T", "16", "F"),
        "11b10Fd": ("happy", "F", "11", "M"),
        "13a05Ea": ("disgust", "E", "13", "F"),
    }
    assert records["03a01Wa"]["transcript"] == "Der Lappen liegt auf dem Eisschrank."
    assert records["16a07Tc"]["session"] == "16"


def test_unreadable_audio_is_reported_and_fails_the_run(cli, tmp_path):
    root = tmp_path / "emodb"
    write_tone(root / "wav" / "03a01Wa.wav", 0.3)
    (root / "wav" / "03a01Nc.wav").write_bytes(b"RIFF not really audio")
    records, err, code = prepare(cli, "emodb", root, tmp=tmp_path, check=False)
    assert code == 1 and set(records) == {"03a01Wa"}
    assert "03a01Nc" in err and "1 audio files could not be read" in err


# --- TESS ----------------------------------------------------------------------------------

def test_tess_folders_and_pleasant_surprise(cli, tmp_path):
    root = tmp_path / "TESS Toronto emotional speech set data"
    write_tone(root / "OAF_angry" / "OAF_bar_angry.wav", 0.3)
    write_tone(root / "OAF_Pleasant_surprise" / "OAF_back_ps.wav", 0.3)
    write_tone(root / "YAF_pleasant_surprised" / "YAF_youth_ps.flac", 0.3)
    write_tone(root / "YAF_sad" / "YAF_chair_sad.wav", 0.3)
    write_tone(root / "OAF_neutral" / "OA_bite_neutral.wav", 0.3)  # a typo the real corpus has
    records, _, _ = prepare(cli, "tess", root, tmp=tmp_path)
    assert {k: (r["emotion"], r["speaker"]) for k, r in records.items()} == {
        "OAF_bar_angry": ("angry", "OAF"),
        "OAF_back_ps": ("surprise", "OAF"),
        "YAF_youth_ps": ("surprise", "YAF"),
        "YAF_chair_sad": ("sad", "YAF"),
        "OA_bite_neutral": ("neutral", "OAF"),
    }
    assert records["OAF_back_ps"]["raw_label"] == "ps"
    assert records["YAF_chair_sad"]["transcript"] == "Say the word chair."
    assert {r["gender"] for r in records.values()} == {"F"}


# --- generic -------------------------------------------------------------------------------

def test_generic_csv(cli, tmp_path):
    root = tmp_path / "mycorpus"
    write_tone(root / "clips" / "a.wav", 0.3)
    write_tone(root / "clips" / "b.flac", 0.3)
    write_tone(root / "clips" / "c.wav", 0.3)
    (root / "labels.csv").write_text(
        "path,label,speaker,session,gender,age\n"
        "clips/a.wav,Anger,s1,day1,F,30\n"
        "clips/b.flac,amused,s2,day1,M,41\n"
        "clips/c.wav,pleasant_surprise,s1,day2,F,30\n"
        "clips/gone.wav,sadness,s2,day2,M,41\n"
    )
    _, err, code = prepare(cli, "generic", root / "labels.csv", tmp=tmp_path, check=False)
    assert code == 1 and "amused (1)" in err and "--map amused=" in err
    assert not (tmp_path / "manifest.jsonl").exists()  # a bad label fails before anything is written
    records, err, _ = prepare(cli, "generic", root / "labels.csv", "--map", "amused=happy", tmp=tmp_path)
    assert {k: (r["emotion"], r["raw_label"], r["speaker"], r["session"]) for k, r in records.items()} == {
        "clips/a": ("angry", "Anger", "s1", "day1"),
        "clips/b": ("happy", "amused", "s2", "day1"),
        "clips/c": ("surprise", "pleasant_surprise", "s1", "day2"),
    }
    assert "gone.wav" in err and "1 files listed" in err
    assert "age" not in records["clips/a"]


def test_generic_folder_per_label(cli, tmp_path):
    root = tmp_path / "byfolder"
    write_tone(root / "happy" / "001.wav", 0.3)
    write_tone(root / "Sad" / "001.wav", 0.3)
    write_tone(root / "Sad" / "take2" / "002.flac", 0.3)
    records, _, _ = prepare(cli, "generic", root, tmp=tmp_path)
    assert {k: r["emotion"] for k, r in records.items()} == {
        "happy/001": "happy", "Sad/001": "sad", "Sad/take2/002": "sad"
    }


# --- shared behaviour ----------------------------------------------------------------------

@pytest.mark.parametrize("corpus", ["iemocap", "msp-podcast", "ravdess", "crema-d", "emodb", "tess"])
def test_wrong_folder_is_one_clear_line(cli, tmp_path, corpus):
    wrong = tmp_path / "not-a-corpus"
    write_tone(wrong / "some" / "clip.wav", 0.1)
    _, err, code = prepare(cli, corpus, wrong, tmp=tmp_path, check=False)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("Error: ") and "expected" in lines[0] and "found some/" in lines[0]
    assert not (tmp_path / "manifest.jsonl").exists()


def test_bad_label_flags(cli, iemocap, tmp_path):
    _, err, code = prepare(cli, "iemocap", iemocap, "--classes", "angry,joyful", tmp=tmp_path, check=False)
    assert code == 1 and "'joyful' is not an emotion" in err
    _, err, code = prepare(cli, "iemocap", iemocap, "--map", "excited", tmp=tmp_path, check=False)
    assert code == 1 and "expected FROM=TO" in err
    _, err, code = prepare(cli, "iemocap", iemocap, "--classes", "calm", tmp=tmp_path, check=False)
    assert code == 1 and "no records left" in err and not (tmp_path / "manifest.jsonl").exists()


def test_summary_table_and_stdout(cli, iemocap, tmp_path):
    proc = cli("prepare", "iemocap", iemocap, cwd=tmp_path, check=True)
    records = [json.loads(line) for line in proc.stdout.splitlines()]  # stdout is only records
    assert len(records) == 8
    for header in ("label (4)", "speaker (4)", "session (2)"):
        assert header in proc.stderr
    assert "Wrote 8 records" in proc.stderr


def test_plugins_lists_the_corpora(cli):
    rows = json.loads(cli("plugins", "--json", check=True).stdout)
    corpora = {c["name"] for row in rows for c in row["registered"].get("corpus", [])}
    assert corpora >= {"iemocap", "msp-podcast", "ravdess", "crema-d", "emodb", "tess", "generic"}
