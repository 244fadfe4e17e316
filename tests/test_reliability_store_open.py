"""An embedded store that cannot be opened fails with a clear `StoreError` (the path and the
remedy), never with a raw chromadb error; two processes creating one new directory at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stepcache_core import ChromaStore, Entry, StepCache, StoreError
from stepcache_core import Path as CachePath
from stepcache_core.store import UnavailableStore, entry_key

from conftest import HashEmbedder, ScriptedBackend

ROOT = Path(__file__).resolve().parents[1]


def _filled(path: Path) -> Path:
    store = ChromaStore(path, embedder_name="e")
    for i in range(20):
        prompt = f"request {i}"
        entry = Entry(entry_key("ns", "", "", prompt), "ns", "", prompt, "answer", ("answer",))
        store.put(entry, None)
    return path / "chroma.sqlite3"


def _damage(db: Path, how: str) -> None:
    if how == "truncated":
        with db.open("r+b") as f:
            f.truncate(db.stat().st_size // 3)
    else:  # byte-flipped: every 997th byte after the header inverted
        data = bytearray(db.read_bytes())
        for i in range(100, len(data), 997):
            data[i] ^= 0xFF
        db.write_bytes(data)


def _open_in_child(path: Path) -> str:
    """Open `path` in a fresh process (chromadb caches clients per path in a process): 'ok' or
    the exception's class and message."""
    code = (
        "import sys\n"
        "from stepcache_core import ChromaStore\n"
        "try:\n"
        "    print('ok', ChromaStore(sys.argv[1], embedder_name='e').count())\n"
        "except Exception as exc:\n"
        "    print(f'{type(exc).__module__}.{type(exc).__name__}: {exc}')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANONYMIZED_TELEMETRY="False")
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    return out.stdout.strip()


@pytest.mark.parametrize("how", ["truncated", "byte-flipped"])
def test_a_damaged_embedded_store_raises_store_error_with_path_and_remedy(
    tmp_path: Path, how: str
) -> None:
    path = tmp_path / "cache"
    _damage(_filled(path), how)
    got = _open_in_child(path)
    assert got.startswith("stepcache_core.errors.StoreError: "), got
    assert str(path) in got and "move it away" in got and "Chroma server" in got


def test_after_a_damaged_store_is_moved_away_the_same_process_opens_a_new_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache"
    _damage(_filled(path), "truncated")
    code = (
        "import shutil, sys\n"
        "from stepcache_core import ChromaStore, StoreError\n"
        "try:\n"
        "    ChromaStore(sys.argv[1], embedder_name='e')\n"
        "except StoreError:\n"
        "    shutil.move(sys.argv[1], sys.argv[1] + '.damaged')\n"
        "print('ok', ChromaStore(sys.argv[1], embedder_name='e').count())\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANONYMIZED_TELEMETRY="False")
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.stdout.strip() == "ok 0", out.stdout + out.stderr[-2000:]


_RACER = """
import sys, time
from stepcache_core import ChromaStore, Entry, StoreError
from stepcache_core.store import entry_key
path, start, me = sys.argv[1], float(sys.argv[2]), sys.argv[3]
while time.time() < start:
    pass
try:
    store = ChromaStore(path, embedder_name="e")
    store.put(Entry(entry_key("ns", "", "", me), "ns", "", me, "a", ("a",)), None)
    print("ok")
except StoreError as exc:
    print("StoreError:", exc)
except Exception as exc:
    print(f"RAW {type(exc).__module__}.{type(exc).__name__}: {exc}")
"""


@pytest.mark.slow
def test_two_processes_creating_one_new_embedded_directory(tmp_path: Path) -> None:
    """Both open it, or one gets a StoreError naming the Chroma server mode; never a raw error."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANONYMIZED_TELEMETRY="False")
    outcomes: list[str] = []
    for round_ in range(4):
        path = tmp_path / f"new-{round_}"
        start = time.time() + 5  # both interpreters are up and importing by then
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _RACER, str(path), str(start), f"p{i}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for i in range(2)
        ]
        try:
            got = [
                out.strip() or f"no output: {err[-1000:]}"
                for out, err in (p.communicate(timeout=120) for p in procs)
            ]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        outcomes += got
        assert "ok" in got, got  # at least one process has its cache
        for line in got:
            assert line == "ok" or (
                line.startswith("StoreError:") and str(path) in line and "Chroma server" in line
            ), line
        assert _open_in_child(path).startswith("ok "), "the new directory is left unusable"
        shutil.rmtree(path)
    print(outcomes)


def test_an_unavailable_store_answers_every_call_uncached(tmp_path: Path) -> None:
    """What a default store that cannot be opened can be replaced with: calls go to the backend."""
    store = UnavailableStore("cannot open the embedded Chroma store at '/x': damaged")
    with pytest.raises(StoreError, match="damaged"):
        store.get("k")
    cache = StepCache(store, embedder=HashEmbedder(), tasks=[])
    backend = ScriptedBackend(lambda prompt: f"answer to {prompt}")
    for _ in range(2):
        result = cache.generate("What is the capital of France?", backend)
        assert result.text == "answer to What is the capital of France?"
        assert result.path is CachePath.MISS
        cache.flush()
    assert backend.calls == 2
