"""Reading and writing records: what a user sees when a records file or an audio file is wrong."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from conftest import run_cli, run_here, write_tone
from sercli.core.audio import load_audio
from sercli.core.errors import RecordError
from sercli.core.records import RecordWriter, read_records

ENV = {"SERCLI_LOAD_PLUGINS": "template,espeak"}


def one_error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    return lines[0]


def test_a_missing_audio_file_says_so(tmp_path):
    with pytest.raises(RecordError, match=r"^audio file not found: .*nowhere\.wav$"):
        load_audio(tmp_path / "nowhere.wav")
    with pytest.raises(RecordError, match="is a folder"):
        load_audio(tmp_path)
    assert load_audio(write_tone(tmp_path / "ok.wav")).shape == (16000,)


def test_non_utf8_records_name_the_file_and_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"id": "a", "emotion": "sad", "text": "fine"}\n'
                     b'{"id": "b", "emotion": "sad", "text": "caf\xe9"}\n')
    err = one_error_line(run_here("synthesize", path, "-d", tmp_path / "w", env=ENV))
    assert f"{path} line 2: not UTF-8 text (byte 0xe9 at column 43)" in err


def _synthesize_refuses(tmp_path, text: str):
    """(path, the one error line) of `synthesize` on records ``text``; nothing is synthesised."""
    path = tmp_path / "r.jsonl"
    path.write_text(text)
    err = one_error_line(run_here("synthesize", path, "-d", tmp_path / "w", env=ENV))
    assert not (tmp_path / "w").exists()
    return path, err


@pytest.mark.parametrize("line, field, message", [
    ('{"id": 12, "emotion": "sad", "text": "Hi."}', "id", "must be a non-empty string"),
    ('{"id": "", "emotion": "sad", "text": "Hi."}', "id", "must be a non-empty string"),
    ('{"id": "a", "emotion": ["sad", "angry"], "text": "Hi."}', "emotion", "must be a string, not a list"),
    ('{"id": "a", "emotion": "sad", "text": "Hi.", "audio": 3}', "audio", "must be a string, not an integer"),
    ('{"id": "a", "emotion": "sad", "text": "Hi.", "duration": "2 s"}', "duration", "must be a finite number"),
    ('{"id": "a", "emotion": "sad", "text": "Hi.", "provenance": [1]}', "provenance", "must be a JSON object"),
])
def test_a_field_of_the_wrong_type_names_file_line_and_field(tmp_path, line, field, message):
    path, err = _synthesize_refuses(tmp_path, '{"id": "ok", "emotion": "sad", "text": "Fine."}\n\n' + line + "\n")
    assert f"{path} line 3: field '{field}' {message}" in err


def test_no_records_is_an_error_not_a_silent_success(tmp_path):
    err = one_error_line(run_here("synthesize", "-", "-d", tmp_path / "w", input="", env=ENV))
    assert "no records on stdin" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert f"{empty}: no records in this file (it is empty)" in one_error_line(
        run_here("synthesize", empty, "-d", tmp_path / "w", env=ENV))
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n  \n")
    assert f"{blank}: no records in this file" in one_error_line(run_here("extract", blank, env=ENV))


def test_records_keep_line_separators_inside_strings(tmp_path):
    buf = io.StringIO()
    RecordWriter(buf).write({"id": "a", "emotion": "sad", "text": "one\u2028two\x85three\x1cfour"})
    (tmp_path / "r.jsonl").write_text(buf.getvalue(), encoding="utf-8")
    assert read_records(tmp_path / "r.jsonl")[0]["text"] == "one\u2028two\x85three\x1cfour"


def test_the_writer_refuses_nan_and_infinity_naming_the_record_and_field():
    buf = io.StringIO()
    writer = RecordWriter(buf)
    with pytest.raises(RecordError, match=r"record 'x1': field duration holds NaN or infinity"):
        writer.write({"id": "x1", "duration": float("nan")})
    with pytest.raises(RecordError, match=r"record 'x2': field features.scores\[1\] holds NaN"):
        writer.write({"id": "x2", "features": {"scores": [0.5, float("-inf")]}})
    writer.write({"id": "x3", "duration": 1.5})
    assert buf.getvalue() == '{"id": "x3", "duration": 1.5}\n' and writer.count == 1


def test_a_whole_but_unterminated_last_record_is_redone_not_lost(tmp_path):
    out = tmp_path / "t.jsonl"
    run_here("gen-text", "-e", "sad", "-n", "3", "-o", out, env=ENV, check=True)
    out.write_bytes(out.read_bytes().rstrip(b"\n"))  # killed before the last newline
    run_here("gen-text", "-e", "sad", "-n", "3", "-o", out, env=ENV, check=True)
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(records) == 3 and len({r["id"] for r in records}) == 3


def test_a_damaged_line_in_the_output_file_is_named_not_skipped(tmp_path):
    out = tmp_path / "t.jsonl"
    run_here("gen-text", "-e", "sad", "-n", "3", "-o", out, env=ENV, check=True)
    lines = out.read_text().splitlines()
    out.write_text("\n".join([lines[0], '{"id": "sad-', lines[2]]) + "\n")
    before = out.read_text()
    err = one_error_line(run_here("gen-text", "-e", "sad", "-n", "3", "-o", out, env=ENV))
    assert f"{out} line 2: not a valid record" in err
    assert out.read_text() == before


# -- records that other tools write, and values Python reads but JSON has not ------------------

def test_a_byte_order_mark_and_crlf_line_ends_are_read(tmp_path):
    path = tmp_path / "windows.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "emotion": "sad", "text": "One."}\r\n'
                     b'{"id": "b", "emotion": "sad", "text": "Two."}\r\n')
    assert [r["id"] for r in read_records(path)] == ["a", "b"]
    assert [r["text"] for r in read_records(path)] == ["One.", "Two."]


@pytest.mark.parametrize("value, message", [
    ('[{"id": "a", "emotion": "sad", "text": "Hi."}]', "expected a JSON object {...}, not a list"),
    ('"a"', "expected a JSON object {...}, not a string"),
    ('{"id": "a", "emotion": "sad", "text": "Hi.", "x": {"y": [1, NaN]}}', "field 'x.y[1]' holds NaN or infinity"),
    ('{"id": "a", "emotion": "sad", "text": "Hi.", "x": -Infinity}', "field 'x' holds NaN or infinity"),
    ('{"id": "a", "emotion": "sad", "text": "Hi.", "x": 1e400}', "field 'x' holds NaN or infinity"),
    ('{"id": "a", "emotion": "sad", "text": "Hi.", "duration": 1' + "0" * 400 + "}", "field 'duration' must be a finite number"),
    ('{"id": "a", "emotion": "sad", "text": "Hi.", "x": 1' + "0" * 5000 + "}", "not valid JSON (Exceeds the limit"),
    ('{"id": "a", "emotion": "sad", "text": "Hi.", "x": ' + "[" * 100000 + "]" * 100000 + "}", "not valid JSON (nested too deeply)"),
    ('{"id": "a", "id": "../../b", "emotion": "sad", "text": "Hi."}', "field 'id' appears twice"),
    ('{"id": "a\\ud800", "emotion": "sad", "text": "Hi."}', "field 'id' holds an unpaired surrogate"),
    ('{"id": "a", "emotion": "sad", "text": "Hi.", "\\udc00": 1}', "field '\\udc00' holds an unpaired surrogate"),
], ids=["list", "string", "nan", "infinity", "1e400", "huge-duration", "5000-digits", "deep", "repeated-key",
        "surrogate", "surrogate-key"])
def test_values_json_has_not_are_refused_before_any_work(tmp_path, value, message):
    """Python's json reads NaN, 1e400, lone surrogates and repeated keys; each would fail (or
    mean two things) only after the utterances were rendered and paid for."""
    path, err = _synthesize_refuses(tmp_path, '{"id": "ok", "emotion": "sad", "text": "Fine."}\n' + value + "\n")
    assert f"{path} line 2: {message}" in err


def test_a_surrogate_pair_is_text_not_an_error(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "smile\\ud83d\\ude00", "emotion": "sad", "text": "Hi."}\n')
    assert read_records(path)[0]["id"] == "smile\U0001F600"


def test_the_output_is_never_one_of_the_inputs(tmp_path):
    """-o IN, a link to IN, stdin being the output file, or `>> IN` would mix (or, killed, lose)
    the input: refused before anything is written."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "emotion": "sad", "text": "One."}\n')
    before = src.read_bytes()
    (tmp_path / "hard.jsonl").hardlink_to(src)
    (tmp_path / "soft.jsonl").symlink_to(src)
    for out in (src, tmp_path / "hard.jsonl", tmp_path / "soft.jsonl"):
        err = one_error_line(run_here("synthesize", src, "-d", tmp_path / "w", "-o", out, env=ENV))
        assert "is also the file the records are read from" in err
    with open(src) as stdin:
        proc = subprocess.run([sys.executable, "-m", "sercli", "synthesize", "-", "-d", tmp_path / "w", "-o", src],
                              stdin=stdin, capture_output=True, text=True, env={**os.environ, **ENV})
    assert "is also the file the records are read from (stdin)" in one_error_line(proc)
    with open(src, "a") as stdout:  # sercli synthesize in.jsonl >> in.jsonl
        proc = subprocess.run([sys.executable, "-m", "sercli", "synthesize", src, "-d", tmp_path / "w"],
                              stdout=stdout, stderr=subprocess.PIPE, text=True, env={**os.environ, **ENV})
    assert proc.returncode == 1 and "stdout is also the file" in proc.stderr, proc.stderr
    csv = tmp_path / "corpus.csv"  # prepare generic: the corpus's own file
    csv.write_text(f"path,label\n{write_tone(tmp_path / 'a.wav')},sad\n")
    csv_before = csv.read_bytes()
    err = one_error_line(run_here("prepare", "generic", csv, "-o", csv, env={"SERCLI_LOAD_PLUGINS": "corpora"}))
    assert "is also the file the records are read from" in err
    assert src.read_bytes() == before and csv.read_bytes() == csv_before
    assert not (tmp_path / "w").exists()


def test_o_dev_stdout_is_stdout(tmp_path):
    """-o /dev/stdout means the records stream (file descriptor 1 points at stderr while sercli
    runs, so that nothing else can write among the records)."""
    proc = run_cli("gen-text", "-e", "sad", "-n", "2", "-o", "/dev/stdout", env={"SERCLI_LOAD_PLUGINS": "template"})
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["emotion"] for line in proc.stdout.splitlines()] == ["sad", "sad"]
    assert '"emotion"' not in proc.stderr
