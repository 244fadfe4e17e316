"""ARCHITECTURE.md's rules hold in the code: imports only go down the layers it lists, and the
request flow does no I/O."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stepcache_core", "stepcache_langchain", "stepcache_llamaindex", "stepcache_bench")
PACKAGES += ("stepcache_cli",)
#: The flow's modules; none may import anything that does I/O or runs threads.
PURE = ("engine/flow.py", "engine/templates.py", "engine/effects.py", "engine/request.py")
IO_MODULES = (
    "threading",
    "concurrent",
    "asyncio",
    "socket",
    "httpx",
    "chromadb",
    "stepcache_core.backends",
    "stepcache_core.embed",
    "stepcache_core.engine.drivers",
    "stepcache_core.engine.writer",
)
#: What the pure flow may take from the store module: value types and the key function.
STORE_VALUES = {"Entry", "Neighbour", "entry_key"}


def layers() -> dict[str, int]:
    """Module prefix -> layer number, read from ARCHITECTURE.md's ```layers block."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "ARCHITECTURE.md has no ```layers block"
    out: dict[str, int] = {}
    for line in block.group(1).splitlines():
        number, _name, *modules = line.split()
        out.update((m, int(number)) for m in modules)
    return out


#: Listed names that stand for one module only, not for the modules under them.
ONLY_ITSELF = {"stepcache_core"}


def layer_of(module: str, table: dict[str, int]) -> int | None:
    """The layer of the longest listed prefix of `module` (None: not a project module)."""
    best = max(
        (p for p in table if module == p or (p not in ONLY_ITSELF and module.startswith(p + "."))),
        key=len,
        default="",
    )
    return table[best] if best else None


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every absolute import in a file, type-checking-only ones included."""
    out: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
    return out


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_every_project_module_has_a_layer() -> None:
    table = layers()
    missing = [module_name(p) for p in source_files() if layer_of(module_name(p), table) is None]
    assert not missing, f"modules ARCHITECTURE.md does not place in a layer: {missing}"


def upward(path: Path, name: str, table: dict[str, int]) -> list[str]:
    """The imports of module `name` (file `path`) that reach a higher layer."""
    here = layer_of(name, table)
    found = []
    for module, _ in imports(path):
        there = layer_of(module, table)
        if here is not None and there is not None and there > here:
            found.append(f"{name} (layer {here}) imports {module} (layer {there})")
    return found


def test_imports_never_reach_up_a_layer() -> None:
    table = layers()
    found = [line for p in source_files() for line in upward(p, module_name(p), table)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("relative", PURE)
def test_the_flow_does_no_io(relative: str) -> None:
    path = ROOT / "stepcache_core" / relative
    for module, names in imports(path):
        assert not any(module == m or module.startswith(m + ".") for m in IO_MODULES), module
        if module == "stepcache_core.store":
            assert set(names) <= STORE_VALUES, f"{relative} imports {names} from the store"


def test_the_checker_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from stepcache_core.engine import StepCache\n")
    assert upward(bad, "stepcache_core.tasks.bad", layers())
