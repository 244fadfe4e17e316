"""The benchmark's memo of model answers: plain and gzip files, appended across runs, first row
wins, and the compaction tool that makes the committed memo."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from stepcache_bench.memo import Memo, MemoTable, compact, main, read_rows, write_rows
from stepcache_core import Completion

MODEL = "test model"


def _memo(text: str, seconds: float = 1.0) -> Memo:
    return Memo(Completion(text, 3, 4, "stop"), seconds)


@pytest.mark.parametrize("name", ["memo.jsonl", "memo.jsonl.gz"])
def test_answers_appended_by_one_run_are_read_by_the_next(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    first = MemoTable(path, model=MODEL)
    first.put(("Solve 2x = 4 for x.", 256, None), _memo("x = 2", 1.5))
    first.put(("Solve 3x = 9 for x.", 256, None), _memo("x = 3", 2.5))
    second = MemoTable(path, model=MODEL)
    second.put(("Solve 4x = 8 for x.", 256, None), _memo("x = 2", 0.5))  # appended to the same file
    third = MemoTable(path, model=MODEL)
    assert third.loaded == 3 and third.computed == 0
    got = third.get(("Solve 3x = 9 for x.", 256, None))
    assert got is not None
    assert got.completion == Completion("x = 3", 3, 4, "stop") and got.seconds == 2.5
    assert third.get(("Solve 3x = 9 for x.", 128, None)) is None  # max_tokens is part of the key
    assert third.used_from_file == 1
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
        assert len(gzip.decompress(path.read_bytes()).splitlines()) == 3  # every member read


def test_rows_of_another_model_are_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "memo.jsonl.gz"
    MemoTable(path, model="other model").put(("Say hi.", 8, None), _memo("hi"))
    table = MemoTable(path, model=MODEL)
    assert table.loaded == 0 and table.get(("Say hi.", 8, None)) is None


def _row(prompt: str, text: str, seconds: float, model: str = MODEL) -> dict[str, object]:
    return {
        "model": model,
        "prompt": prompt,
        "max_tokens": 256,
        "text": text,
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "finish_reason": "stop",
        "seconds": seconds,
    }


def test_the_first_row_of_a_key_wins_in_the_table_and_in_compaction(tmp_path: Path) -> None:
    path = tmp_path / "memo.jsonl"
    write_rows(path, [_row("b", "first", 1.0), _row("a", "x", 2.0), _row("b", "second", 9.0)])
    got = MemoTable(path, model=MODEL).get(("b", 256, None))
    assert got is not None and got.completion.text == "first" and got.seconds == 1.0
    rows = compact([path])
    assert [(r["prompt"], r["text"]) for r in rows] == [("a", "x"), ("b", "first")]


def test_compact_cli_merges_dedupes_and_writes_the_same_bytes_for_the_same_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "run.jsonl"
    write_rows(plain, [_row("b", "b1", 1.0), _row("a", "a1", 1.0), _row("b", "b2", 2.0)])
    gz = tmp_path / "old.jsonl.gz"
    write_rows(gz, [_row("c", "c1", 1.0), _row("a", "a0", 5.0, model="other")])
    out = tmp_path / "bench" / "memo.jsonl.gz"
    assert main(["compact", str(plain), str(gz), "--out", str(out)]) == 0
    assert "4 answers (1 duplicate rows dropped of 5)" in capsys.readouterr().out
    rows = list(read_rows(out))
    assert [(r["model"], r["prompt"], r["text"]) for r in rows] == [
        ("other", "a", "a0"),
        (MODEL, "a", "a1"),
        (MODEL, "b", "b1"),
        (MODEL, "c", "c1"),
    ]
    again = tmp_path / "again.jsonl.gz"
    assert main(["compact", str(gz), str(plain), "--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()  # sorted, no timestamp: same rows, same bytes
    assert json.loads(gzip.decompress(out.read_bytes()).splitlines()[0])["model"] == "other"


def test_compact_refuses_a_missing_input(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["compact", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "m.jsonl.gz")])


def test_a_damaged_row_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "memo.jsonl"
    write_rows(path, [_row("a", "x", 1.0)])
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"model": "test model", "prompt": "b", "max_t\n')  # a run killed mid-write
    with pytest.raises(ValueError, match=r"memo.jsonl:2: not a memo row"):
        MemoTable(path, model=MODEL)
