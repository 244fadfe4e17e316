"""Public API surface and the framework-free core, checked mechanically."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["stepcache_core", "stepcache_langchain", "stepcache_llamaindex"]


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_sorted_complete_and_importable(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(module.__all__)
    assert exported == sorted(exported), f"{package}.__all__ is not sorted"
    for name in exported:
        assert hasattr(module, name), f"{package}.{name} is listed but missing"
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and getattr(v, "__module__", "").startswith(package)
    }
    assert public <= set(exported), f"public but not exported: {public - set(exported)}"


def test_core_never_imports_a_framework() -> None:
    offenders = []
    for path in (ROOT / "stepcache_core").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.split(".")[0] in {"langchain", "langchain_core", "llama_index"}
            ]
    assert offenders == []


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_a_package_does_not_import_torch_or_chromadb(package: str) -> None:
    code = (
        f"import sys, {package}; "
        "heavy = [m for m in ('torch', 'sentence_transformers', 'chromadb') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
