"""The install-size measure leaves out exactly what only torch needs (no pip, no network)."""

from __future__ import annotations

from stepcache_bench.install_size import Package, dependencies, without


def package(name: str, *requires: str) -> Package:
    return Package(name, f"file:///wheels/{name}.whl", requires)


PACKAGES = [
    package("stepcache", "st", "numpy", "langchain-core; extra == 'langchain'"),
    package("st", "torch", "numpy"),
    package("torch", "nvidia-cublas; platform_system == 'Linux'", "sympy", "filelock"),
    package("nvidia-cublas"),
    package("sympy"),
    package("filelock"),
    package("numpy"),
    package("langchain-core", "sympy"),
]


def names(packages: list[Package]) -> list[str]:
    return sorted(p.name for p in packages)


def test_without_torch_keeps_what_something_else_needs() -> None:
    assert names(without(PACKAGES, "stepcache", "", "torch")) == ["numpy", "st", "stepcache"]
    # sympy stays when an extra needs it too; torch's own libraries go.
    lean = without(PACKAGES, "stepcache", "langchain", "torch")
    assert names(lean) == ["langchain-core", "numpy", "st", "stepcache", "sympy"]


def test_stepcache_itself_is_not_counted() -> None:
    assert "stepcache" not in names(dependencies(PACKAGES))
