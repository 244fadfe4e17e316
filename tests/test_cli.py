"""The `stepcache` command: one-line errors and exit codes, stores never created by `stats` or
`clear`, `clear` asks first, and the one-time progress notes reach stderr."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from stepcache_cli.main import configure_logging, main
from stepcache_core import StepCache
from stepcache_core.store import ChromaStore

from conftest import HashEmbedder

ROOT = Path(__file__).resolve().parents[1]


class MiniLMNamed(HashEmbedder):
    """Fills the collection the CLI opens (named after MiniLM) without loading MiniLM."""

    name = "all-MiniLM-L6-v2"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An embedded store holding two entries."""
    path = tmp_path / "store"
    cache = StepCache(ChromaStore(path), embedder=MiniLMNamed())
    cache.put("Say hello.", "hello")
    cache.put("Say goodbye.", "goodbye")
    cache.flush()
    assert cache.store.count() == 2
    return path


def entries(path: Path) -> int:
    return ChromaStore(path).count()


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`python -m stepcache_cli ARGS` in a fresh process, with its own STEPCACHE_HOME."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "STEPCACHE_HOME": str(home)}
    env |= {"HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    return subprocess.run(
        [sys.executable, "-m", "stepcache_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve-model", "--port", "99999"], "port must be between 1 and 65535, not 99999"),
        (["serve-model", "--port", "http"], "not a port number: 'http'"),
        (["serve-model", "--model", "/no/such.gguf"], "no such model file: /no/such.gguf"),
        (["--log-level", "bogus", "stats"], "unknown log level 'bogus'"),
        (["stats", "--store", "{file}"], "is a file, not a store directory"),
        (["stats", "--store", "{missing}"], "no such directory"),
        (["clear", "--yes", "--store", "{missing}"], "no such directory"),
        (["stats", "--store", "{empty}"], "the directory has no chroma.sqlite3"),
    ],
)
def test_a_bad_argument_is_one_usage_error_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("not a store")
    (tmp_path / "empty").mkdir()
    places = {
        "file": tmp_path / "a-file",
        "missing": tmp_path / "typo",
        "empty": tmp_path / "empty",
    }
    argv = [a.format(**places) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "typo").exists()  # a typo never becomes a new store
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_bad_argument_in_a_fresh_process_prints_no_traceback(tmp_path: Path) -> None:
    got = cli("serve-model", "--port", "99999", home=tmp_path)
    assert got.returncode == 2
    assert got.stderr.splitlines()[-1] == (
        "stepcache serve-model: error: argument --port: port must be between 1 and 65535, not 99999"
    )


def test_stats_and_clear_fail_on_a_missing_default_store_without_creating_it(
    tmp_path: Path,
) -> None:
    for command in (["stats"], ["clear", "--yes"]):
        got = cli(*command, home=tmp_path / "home")
        assert got.returncode == 1, got.stderr
        assert got.stderr.strip() == (
            f"stepcache: error: no store at {tmp_path / 'home' / 'chroma'} (no such directory); "
            "pass --store DIR (the directory holding chroma.sqlite3)"
        )
        assert not (tmp_path / "home").exists()


def test_a_model_file_that_is_not_gguf_is_one_error_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a model")
    assert main(["serve-model", "--model", str(fake), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("stepcache: error: not a GGUF file") and err.count("\n") == 1


def test_stats_reads_an_existing_store(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--store", str(store)]) == 0
    assert "entries: 2" in capsys.readouterr().out.splitlines()


def test_clear_refuses_without_a_terminal_unless_yes(
    store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # piped input: not a confirmation
    assert main(["clear", "--store", str(store)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        f"stepcache: error: refusing to delete every entry in {store} without --yes (no terminal)"
    )
    assert entries(store) == 2
    assert main(["clear", "--yes", "--store", str(store)]) == 0
    assert capsys.readouterr().out.strip() == "deleted 2 entries and reset the traffic counters"
    assert entries(store) == 0


def test_clear_resets_the_traffic_counters(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ChromaStore(store).add_counters("default", "", {"requests": 4, "path.exact": 3})
    ChromaStore(store).add_counters("other", "", {"requests": 2})
    assert main(["clear", "--yes", "--namespace", "default", "--store", str(store)]) == 0
    capsys.readouterr()
    assert main(["stats", "--json", "--store", str(store)]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["requests"] == 2 and counts["paths"]["exact"] == 0


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "status", "left"), [("\n", 1, 2), ("n\n", 1, 2), ("y\n", 0, 0)])
def test_clear_asks_on_a_terminal(
    answer: str,
    status: int,
    left: int,
    store: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal(answer))
    assert main(["clear", "--namespace", "default", "--store", str(store)]) == status
    assert f"delete the entries of namespace 'default' in {store}? [y/N]" in capsys.readouterr().err
    assert entries(store) == left


def test_progress_notes_reach_stderr_at_the_default_log_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    progress = logging.getLogger("stepcache.progress")
    saved = (progress.handlers, progress.propagate, progress.level)
    try:
        configure_logging("WARNING")
        progress.info("assembling a model (one time)...")
        logging.getLogger("stepcache").info("a per-request detail")
    finally:
        progress.handlers, progress.propagate, progress.level = saved
    assert capsys.readouterr().err == "stepcache: assembling a model (one time)...\n"


def test_model_assembly_announces_itself(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from stepcache_core.backends.model_assets import ModelSpec, assemble_model

    part = tmp_path / "part1.bin"
    part.write_bytes(b"GGUF")
    spec = ModelSpec(
        file_name="tiny.gguf",
        sha256=hashlib.sha256(b"GGUF").hexdigest(),
        package_prefix="tiny-part",
        part_count=1,
        version="1",
    )
    with caplog.at_level(logging.INFO, logger="stepcache.progress"):
        assemble_model(spec, tmp_path / "cache", locate=lambda s, i: part)
        assemble_model(spec, tmp_path / "cache", locate=lambda s, i: part)  # cached: no note
    notes = [r.getMessage() for r in caplog.records if r.name == "stepcache.progress"]
    assert notes == [
        f"assembling tiny.gguf from 1 packages into {tmp_path / 'cache'} (one time, ~5 s)..."
    ]


def test_first_use_onnx_export_announces_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stepcache_core.embed as embed
    from stepcache_core.embed import MiniLMEmbedder

    def no_export(model_dir: Path) -> bytes:
        raise RuntimeError("export skipped by the test")

    monkeypatch.setattr(embed, "build_graph", no_export)
    fresh = MiniLMEmbedder(model_dir=tmp_path, backend="onnx")
    with (
        caplog.at_level(logging.INFO, logger="stepcache.progress"),
        pytest.raises(RuntimeError, match="export skipped"),
    ):
        fresh.embed("hello")
    notes = [r.getMessage() for r in caplog.records if r.name == "stepcache.progress"]
    assert notes == ["writing MiniLM as an ONNX graph (one time, ~2 s)..."]
