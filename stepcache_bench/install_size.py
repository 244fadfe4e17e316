"""What `pip install stepcache[...]` brings in: packages and total wheel size, with and without
torch.

``python -m stepcache_bench.install_size [EXTRA ...]`` (default: the base install and the
langchain, llamaindex, bench and dev extras) resolves each install with ``pip install --dry-run
--ignore-installed --report`` against ``constraints.txt`` (nothing is installed), then sizes
every wheel the resolver chose: a local file (a ``--find-links`` directory) by its size on disk,
the others downloaded once with ``pip download --no-deps`` into a temporary directory. "Without
torch" leaves out torch and every package only torch needs (its CUDA libraries, triton...).
Prints a Markdown table; the counts leave out stepcache itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("", "langchain", "llamaindex", "bench", "dev")


@dataclass(frozen=True)
class Package:
    name: str
    url: str
    requires: tuple[str, ...]


def resolve(extra: str, constraints: Path) -> list[Package]:
    """The packages `pip install .[extra]` would install into an empty environment."""
    target = f"{ROOT}[{extra}]" if extra else str(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
             "--no-build-isolation", "--report", str(report), "-c", str(constraints), target],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        items = json.loads(report.read_text(encoding="utf-8"))["install"]
    return [
        Package(
            canonicalize_name(item["metadata"]["name"]),
            item["download_info"]["url"],
            tuple(item["metadata"].get("requires_dist") or ()),
        )
        for item in items
    ]


def dependencies(packages: Sequence[Package]) -> list[Package]:
    """`packages` without stepcache itself (a local directory, not a wheel)."""
    return [p for p in packages if p.name != "stepcache"]


def without(packages: Sequence[Package], root: str, extra: str, dropped: str) -> list[Package]:
    """`packages` less `dropped` and what only it needs: those still reachable from `root`."""
    by_name = {p.name: p for p in packages}
    seen: set[tuple[str, str]] = set()
    todo = [(canonicalize_name(root), extra)]
    while todo:
        name, wanted = todo.pop()
        if name == dropped or name not in by_name or (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        for text in by_name[name].requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": wanted}):
                dep = canonicalize_name(req.name)
                todo += [(dep, ""), *((dep, e) for e in req.extras)]
    kept = {name for name, _ in seen}
    return [p for p in packages if p.name in kept]


def wheel_sizes(packages: Iterable[Package]) -> dict[str, int]:
    """Each package's file size in bytes, by URL (remote files downloaded once, then deleted)."""
    sizes: dict[str, int] = {}
    remote = []
    for p in packages:
        parsed = urlparse(p.url)
        if parsed.scheme == "file":
            sizes[p.url] = Path(unquote(parsed.path)).stat().st_size
        elif p.url not in sizes:
            remote.append(p.url)
    if remote:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
                 *dict.fromkeys(remote)],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            got = {f.name: f.stat().st_size for f in Path(tmp).iterdir()}
        for url in remote:
            sizes[url] = got[unquote(urlparse(url).path.rsplit("/", 1)[-1])]
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("extras", nargs="*", default=list(EXTRAS), help="'' is the base install")
    parser.add_argument("--constraints", type=Path, default=ROOT / "constraints.txt")
    args = parser.parse_args(argv)
    resolved = {extra: resolve(extra, args.constraints) for extra in args.extras}
    sizes = wheel_sizes(p for packages in resolved.values() for p in dependencies(packages))
    print("| install | packages | wheels (MB) | without torch: packages | wheels (MB) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for extra, packages in resolved.items():
        groups = [
            dependencies(g) for g in (packages, without(packages, "stepcache", extra, "torch"))
        ]
        mb = [sum(sizes[p.url] for p in group) / 1e6 for group in groups]
        label = f"`stepcache[{extra}]`" if extra else "`stepcache`"
        print(f"| {label} | {len(groups[0])} | {mb[0]:,.0f} | {len(groups[1])} | {mb[1]:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
