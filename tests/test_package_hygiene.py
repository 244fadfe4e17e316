"""Public API surface and the framework-free core, checked mechanically."""

from __future__ import annotations

import ast
import importlib
import io
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["stepcache_cli", "stepcache_core", "stepcache_langchain", "stepcache_llamaindex"]


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


def imported_modules(path: Path) -> list[str]:
    """Every module an `import` or `from ... import` statement of `path` names (absolute ones)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


#: Top-level packages the core must never import: the layers above it and the frameworks.
ABOVE_THE_CORE = {"stepcache_bench", "stepcache_cli", "stepcache_langchain", "stepcache_llamaindex"}


def forbidden_for_the_core(module: str) -> bool:
    top = module.split(".")[0]
    return top in ABOVE_THE_CORE or top.startswith(("langchain", "llama_index"))


def test_core_never_imports_a_framework_the_benchmark_or_the_cli() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "stepcache_core").rglob("*.py"))
        for name in imported_modules(path)
        if forbidden_for_the_core(name)
    ]
    assert offenders == []


def test_the_import_scan_sees_what_the_core_must_not_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import os\nimport langchain_openai.chat\nfrom llama_index.core import Settings\n"
        "def f():\n    from stepcache_bench.run import main\n    import stepcache_cli\n"
        "from . import sibling\n"
    )
    names = imported_modules(module)
    assert [n for n in names if forbidden_for_the_core(n)] == [
        "langchain_openai.chat",
        "llama_index.core",
        "stepcache_bench.run",
        "stepcache_cli",
    ]


def test_importing_the_cli_loads_no_subcommand() -> None:
    """`stepcache --help` stays quick: importing the CLI loads no store, model, bench, framework."""
    code = (
        "import sys, stepcache_cli, stepcache_cli.main; "
        "heavy = ('torch', 'sentence_transformers', 'chromadb', 'onnxruntime', 'stepcache_bench', "
        "'langchain_core', 'llama_index', 'stepcache_core', 'xllamacpp'); "
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_a_package_does_not_import_torch_or_chromadb(package: str) -> None:
    code = (
        f"import sys, {package}; "
        "heavy = [m for m in ('torch', 'sentence_transformers', 'chromadb') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    source = path.read_text(encoding="utf-8")
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                assert first is not None and first.end_lineno is not None
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    layout = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in layout and tok.type != tokenize.ENDMARKER:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines - docstrings)


@pytest.mark.parametrize("package", ["stepcache_langchain", "stepcache_llamaindex"])
def test_adapters_stay_thin(package: str) -> None:
    """The adapters are framework glue, under 500 lines of code each; the logic is the core's.

    About 300 lines serve text through the engine; the rest (a module of its own in each
    adapter, `exact.py`, plus the routing) makes tools, structured output and function-calling
    models work through the cache exactly as without it.
    """
    total = sum(code_lines(path) for path in (ROOT / package).glob("*.py"))
    assert total <= 500, f"{package} has {total} lines of code"


def test_code_lines_skip_docstrings_and_comments(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        '"""Doc\nstring."""\n\n# note\ndef f() -> int:\n    """Doc."""\n    return 1\n'
    )
    assert code_lines(module) == 2
