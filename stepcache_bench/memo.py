"""The memo of model answers: (prompt, max_tokens, schema) -> the completion and its measured
seconds (schema: the JSON Schema of a schema-constrained call, else none; a row has a "schema"
only for such a call, so older files load unchanged), kept as JSONL, plain (`.jsonl`) or gzip
(`.jsonl.gz`, appended one gzip member per write).

    python -m stepcache_bench.memo compact memo.jsonl [more.jsonl ...] --out bench/memo.jsonl.gz

`compact` merges memo files into one: one row per (model, prompt, max_tokens, schema), the first
row read winning (the one a run loading the same files in the same order uses), rows sorted,
gzip written with a zero timestamp so the same rows give the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from stepcache_core import Completion

#: The committed memo of the real model's answers that `make bench-full` replays.
COMMITTED_MEMO = Path("bench/memo.jsonl.gz")

#: (prompt, max_tokens, canonical JSON of the schema a constrained call decodes to, or None)
MemoKey = tuple[str, int | None, str | None]


def schema_key(schema: Mapping[str, Any] | None) -> str | None:
    """The memo key's form of a constrained call's schema (None: an unconstrained call)."""
    return None if schema is None else json.dumps(schema, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Memo:
    completion: Completion
    seconds: float


def _is_gzip(path: Path) -> bool:
    return path.name.endswith(".gz")


def _open_text(path: Path, append: bool = False) -> IO[str]:
    """The file for reading, or for appending (a `.gz` gets one more gzip member)."""
    if _is_gzip(path):
        return gzip.open(path, "at" if append else "rt", encoding="utf-8")
    return path.open("a" if append else "r", encoding="utf-8")


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Every row of a memo file, in file order (every gzip member of a `.gz`)."""
    with _open_text(path) as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: not a memo row ({e})") from e


RowKey = tuple[str, str, int | None, str | None]


def row_key(row: dict[str, Any]) -> RowKey:
    return (row.get("model", ""), row["prompt"], row["max_tokens"], row.get("schema"))


def write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write `rows` as one file (replacing it); a `.gz` is one member with a zero timestamp."""
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if _is_gzip(path):
        with path.open("wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as gz:
            gz.write(text.encode("utf-8"))
    else:
        path.write_text(text, encoding="utf-8")


def compact(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per (model, prompt, max_tokens, schema), the first read winning; sorted by that
    key."""
    rows: dict[RowKey, dict[str, Any]] = {}
    for path in paths:
        for row in read_rows(path):
            rows.setdefault(row_key(row), row)

    def order(key: RowKey) -> tuple[str, int, str, str]:
        model, prompt, max_tokens, schema = key
        return (model, -1 if max_tokens is None else max_tokens, prompt, schema or "")

    return [rows[k] for k in sorted(rows, key=order)]


class MemoTable:
    """(prompt, max_tokens, schema) -> Memo, shared by every arm of a seed; optionally kept in a
    memo file (`.jsonl` or `.jsonl.gz`): rows of `model` are loaded (the first of a key wins) and
    every answer computed is appended.

    `loaded`: answers read from the file; `used_from_file`: distinct ones this run asked for;
    `computed`: answers the model computed in this run."""

    def __init__(self, path: Path | None = None, model: str = "") -> None:
        self._table: dict[MemoKey, Memo] = {}
        self._from_file: set[MemoKey] = set()
        self._used: set[MemoKey] = set()
        self._computed: set[MemoKey] = set()
        self._lock = threading.Lock()
        self._path = path
        self._model = model
        self.computed = 0
        if path is not None and path.exists():
            for row in read_rows(path):
                key = (row["prompt"], row["max_tokens"], row.get("schema"))
                if row.get("model") != model or key in self._table:
                    continue
                c = Completion(
                    row["text"],
                    row["prompt_tokens"],
                    row["completion_tokens"],
                    row.get("finish_reason"),
                )
                self._table[key] = Memo(c, row["seconds"])
                self._from_file.add(key)

    @property
    def loaded(self) -> int:
        return len(self._from_file)

    @property
    def used_from_file(self) -> int:
        with self._lock:
            return len(self._used)

    def get(self, key: MemoKey) -> Memo | None:
        with self._lock:
            memo = self._table.get(key)
            if memo is not None and key in self._from_file:
                self._used.add(key)
            return memo

    def put(self, key: MemoKey, memo: Memo) -> None:
        with self._lock:
            self._table[key] = memo
            self._computed.add(key)
            self.computed += 1
            if self._path is not None:
                self._append(key, memo)

    def _append(self, key: MemoKey, memo: Memo) -> None:
        c = memo.completion
        row = {
            "model": self._model,
            "prompt": key[0],
            "max_tokens": key[1],
            **({"schema": key[2]} if key[2] is not None else {}),
            "text": c.text,
            "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens,
            "finish_reason": c.finish_reason,
            "seconds": memo.seconds,
        }
        assert self._path is not None
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with _open_text(self._path, append=True) as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")

    def __len__(self) -> int:
        return len(self._table)

    def seconds(self) -> float:
        """Model seconds of the answers this run asked for (computed or read from the file)."""
        with self._lock:
            return sum(self._table[k].seconds for k in self._used | self._computed)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m stepcache_bench.memo compact IN [IN ...] --out OUT`."""
    p = argparse.ArgumentParser(
        prog="python -m stepcache_bench.memo",
        description="Merge and compact memo files of model answers (JSONL or JSONL.gz)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compact", help="dedupe (first row wins), sort, write one file")
    c.add_argument("inputs", type=Path, nargs="+", help="memo files, read in this order")
    c.add_argument(
        "--out", type=Path, default=COMMITTED_MEMO, help=f"output file (default {COMMITTED_MEMO})"
    )
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    read = sum(sum(1 for _ in read_rows(path)) for path in args.inputs if path.exists())
    missing = [str(path) for path in args.inputs if not path.exists()]
    if missing:
        p.error(f"no such memo file: {', '.join(missing)}")
    rows = compact(args.inputs)
    write_rows(args.out, rows)
    print(f"{args.out}: {len(rows)} answers ({read - len(rows)} duplicate rows dropped of {read})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
