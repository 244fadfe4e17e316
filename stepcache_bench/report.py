"""Terminal table (rich), PNG plots (matplotlib, Agg) and the markdown page of a benchmark run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stepcache_bench.harness import PATHS, Record
from stepcache_bench.metrics import percentile

ARM_LABELS = {
    "no_cache": "no cache",
    "exact": "exact-match cache",
    "langchain_exact": "LangChain InMemoryCache",
    "semantic": "semantic cache",
    "gptcache": "GPTCache 0.1.44 (default 0.8 = cos 0.6)",
    "gptcache_cos08": "GPTCache 0.1.44 (0.9 = cos 0.8)",
    "stepcache": "StepCache",
    "stepcache_no_fallback": "StepCache, no fallback",
}


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _ms(x: float) -> str:
    return f"{1000 * x:.1f} ms" if x < 1 else f"{x:.2f} s"


def arm_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per arm: the figures with their ratios to the no-cache arm."""
    rows = []
    for name, a in results["arms"].items():
        r = results["ratios"].get(name, {})
        lat = a["latency_s"]
        paths = " / ".join(str(a["paths"][p]) for p in PATHS)
        rows.append(
            [
                ARM_LABELS.get(name, name),
                f"{_ms(lat['mean'])} ({_ratio(r.get('mean'))})",
                f"{_ms(lat['median'])} ({_ratio(r.get('median'))})",
                f"{_ms(lat['p95'])} ({_ratio(r.get('p95'))})",
                f"{a['tokens']['total']:,} ({_ratio(r.get('tokens'))})",
                _pct(a["correct_task"]),
                _pct(a["correct_integrity"]),
                str(a["wrong_served"]),
                paths,
                _ms(a["overhead_s"]["mean"]),
                _ms(a["lookup_s"]["median"]) if "lookup_s" in a else "-",
            ]
        )
    return rows


ARM_HEADER = [
    "arm",
    "mean latency",
    "median",
    "p95",
    "backend tokens",
    "correct (task)",
    "correct (integrity)",
    "wrong served",
    "exact/reuse/patch/skip/miss",
    "cache overhead (mean)",
    "lookup (median)",
]


SHORT_LABELS = {
    "no_cache": "no cache",
    "exact": "exact",
    "langchain_exact": "LC InMemory",
    "semantic": "semantic",
    "gptcache": "GPTCache 0.8",
    "gptcache_cos08": "GPTCache 0.9",
    "stepcache": "StepCache",
    "stepcache_no_fallback": "SC no fallbk",
}


def print_table(results: dict[str, Any]) -> None:
    """Two narrow tables (they fit 80 columns): speed and cost, then quality and paths."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"StepCache benchmark: {results['requests']['total']} requests x "
        f"{len(results['arms'])} arms, seeds {results['seeds']}, {results['model']}"
    )
    speed = Table(title="Latency and backend tokens (ratio to no cache)")
    for i, h in enumerate(("arm", "mean", "median", "p95", "tokens", "overhead", "lookup p50")):
        speed.add_column(h, justify="left" if i == 0 else "right")
    quality = Table(title="Correctness and paths")
    for i, h in enumerate(("arm", "correct", "integrity", "wrong", *PATHS)):
        quality.add_column(h, justify="left" if i == 0 else "right")
    for name, a in results["arms"].items():
        r = results["ratios"].get(name, {})
        lat = a["latency_s"]
        label = SHORT_LABELS.get(name, name)
        speed.add_row(
            label,
            f"{_ms(lat['mean'])} {_ratio(r.get('mean'))}",
            f"{_ms(lat['median'])} {_ratio(r.get('median'))}",
            f"{_ms(lat['p95'])} {_ratio(r.get('p95'))}",
            f"{a['tokens']['total']:,} {_ratio(r.get('tokens'))}",
            _ms(a["overhead_s"]["mean"]),
            _ms(a["lookup_s"]["median"]),
        )
        quality.add_row(
            label,
            _pct(a["correct_task"]),
            _pct(a["correct_integrity"]),
            str(a["wrong_served"]),
            *(str(a["paths"][p]) for p in PATHS),
        )
    console.print(speed)
    console.print(quality)
    t = Table(title="Targets (StepCache, fallback on, vs no cache)")
    for h in ("target", "measured", "goal", "pass"):
        t.add_column(h)
    for name, v in results.get("targets", {}).items():
        ok = v["pass"]
        mark = "-" if ok is None else ("[green]yes[/green]" if ok else "[red]NO[/red]")
        t.add_row(name, _fmt_measured(v["measured"]), str(v["target"]), mark)
    console.print(t)
    console.print(results["notes"]["memo"])


def _fmt_measured(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.3f}"
    return str(x)


def plots(records: Sequence[Record], results: dict[str, Any], out: Path) -> list[Path]:
    """latency_cdf.png, paths.png, tokens.png (and kinds.png) under `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    arms = list(results["arms"])
    labels = [ARM_LABELS.get(a, a) for a in arms]
    files: list[Path] = []

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for a, label in zip(arms, labels, strict=True):
        xs = sorted(max(r.latency_s, 1e-4) for r in records if r.arm == a)
        if not xs:
            continue
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        ax.step(xs, ys, where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("latency per request (s, log scale)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("Latency CDF per arm")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    files.append(_save(fig, out / "latency_cdf.png"))

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    bottom = [0.0] * len(arms)
    for p in PATHS:
        vals = [float(results["arms"][a]["paths"][p]) for a in arms]
        ax.bar(labels, vals, bottom=bottom, label=p)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("requests")
    ax.set_title("Path breakdown per arm")
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    files.append(_save(fig, out / "paths.png"))

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    pt = [float(results["arms"][a]["tokens"]["prompt"]) for a in arms]
    ct = [float(results["arms"][a]["tokens"]["completion"]) for a in arms]
    ax.bar(labels, pt, label="prompt tokens")
    ax.bar(labels, ct, bottom=pt, label="completion tokens")
    ax.set_ylabel("backend tokens")
    ax.set_title("Backend tokens per arm")
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    files.append(_save(fig, out / "tokens.png"))

    if "stepcache" in results["by_kind"]:
        kinds = list(results["by_kind"]["stepcache"])
        fig, ax = plt.subplots(figsize=(8.5, 4.5))
        width = 0.8 / max(len(arms), 1)
        for i, a in enumerate(arms):
            vals = [results["by_kind"][a].get(k, {}).get("latency_mean_s", 0.0) for k in kinds]
            xs = [j + i * width for j in range(len(kinds))]
            ax.bar(xs, vals, width=width, label=ARM_LABELS.get(a, a))
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(kinds))])
        ax.set_xticklabels(kinds, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel("mean latency (s)")
        ax.set_title("Mean latency per perturbation kind")
        ax.legend(fontsize=7)
        files.append(_save(fig, out / "kinds.png"))
    return files


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown(results: dict[str, Any], img_prefix: str = "img/") -> str:
    """The results page: command, date, machine, the table, targets, per-kind figures, method."""
    m = results["machine"]
    lines = [
        "# Benchmark: StepCache against no cache, exact-match and semantic caches",
        "",
        f"- Command: `{results['command']}`",
        f"- Date: {results['date']}; duration {results['duration_s'] / 60:.1f} min "
        f"(model time {results['model_time_s'] / 60:.1f} min)",
        f"- Machine: {m['cpu']} ({m['cores']} cores), {m['memory_gb']:.0f} GB RAM, "
        f"{m['platform']}, Python {m['python']}",
        f"- Model: {results['model']}; backend tokens capped at {results['config']['max_tokens']}",
        f"- Seeds {results['seeds']}: {results['requests']['per_seed']} evaluation requests per "
        f"seed after {results['requests']['bases_per_seed']} base prompts are cached "
        f"({results['requests']['derivation']}); {results['requests']['total']} in all.",
        f"- Semantic cache: nearest cached prompt at cosine similarity >= "
        f"{results['config']['semantic_min_similarity']} serves its answer (same MiniLM embedder "
        "and Chroma store as StepCache).",
        "",
        "The machine is shared and noisy: compare the arms as ratios within this run.",
        "",
        "## Per arm (ratio to no cache)",
        "",
        "| " + " | ".join(ARM_HEADER) + " |",
        "|" + "---|" * len(ARM_HEADER),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in arm_rows(results)]
    workloads = results.get("workloads", {})
    if len(workloads) > 1:
        for name, part in workloads.items():
            lines += [
                "",
                f"### Workload `{name}` ({part['requests']} requests)",
                "",
                "| " + " | ".join(ARM_HEADER) + " |",
                "|" + "---|" * len(ARM_HEADER),
            ]
            lines += ["| " + " | ".join(row) + " |" for row in arm_rows(part)]
    lines += [
        "",
        "## Targets (StepCache, fallback on, vs no cache)",
        "",
        "| target | measured | goal | pass |",
        "|---|---|---|---|",
    ]
    for name, v in results.get("targets", {}).items():
        ok = "-" if v["pass"] is None else ("yes" if v["pass"] else "**no**")
        lines.append(f"| {name} | {_fmt_measured(v['measured'])} | {v['target']} | {ok} |")
    if "stepcache" in results["by_kind"]:
        lines += [
            "",
            "## Per perturbation kind",
            "",
            "Mean latency (s), correctness by the task checker, and StepCache's paths "
            "(exact/reuse/patch/skip/miss).",
            "",
        ]
        arms = list(results["arms"])
        head = ["kind", "n"] + [f"{ARM_LABELS.get(a, a)}: latency / correct" for a in arms]
        head.append("StepCache paths")
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for kind, sc in results["by_kind"]["stepcache"].items():
            cells = [kind, str(sc["n"])]
            for a in arms:
                k = results["by_kind"][a].get(kind)
                cells.append(
                    "-"
                    if k is None
                    else f"{k['latency_mean_s']:.2f} / {100 * k['correct_task']:.0f} %"
                )
            cells.append(" / ".join(str(sc["paths"][p]) for p in PATHS))
            lines.append("| " + " | ".join(cells) + " |")
    stages = results["arms"].get("stepcache", {}).get("stage_median_ms", {})
    if stages:
        names = sorted({k for v in stages.values() for k in v})
        lines += [
            "",
            "## Where StepCache's overhead goes (median ms per stage, by path)",
            "",
            "| path | " + " | ".join(names) + " |",
            "|" + "---|" * (len(names) + 1),
        ]
        for path, v in stages.items():
            cells = [f"{v[k]:.1f}" if k in v else "-" for k in names]
            lines.append(f"| {path} | " + " | ".join(cells) + " |")
    lines += ["", "## Plots", ""]
    for name, title in (
        ("latency_cdf", "Latency CDF"),
        ("paths", "Paths"),
        ("tokens", "Backend tokens"),
        ("kinds", "Latency per kind"),
    ):
        lines.append(f"![{title}]({img_prefix}{name}.png)")
    lines += ["", "## Method", ""]
    lines += [f"- {v}" for v in results["notes"].values()]
    lines.append("")
    return "\n".join(lines)


def latency_summary(records: Sequence[Record], arm: str) -> str:
    xs = [r.latency_s for r in records if r.arm == arm]
    return f"{arm}: p50 {percentile(xs, 50):.3f}s p95 {percentile(xs, 95):.3f}s"


def load_records(path: Path) -> list[Record]:
    """Records back from a run's records.jsonl."""
    import json

    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        row.setdefault("timings", {})
        out.append(Record(**row))
    return out


def render(results_dir: Path, docs: Path | None, scale: Path | None) -> None:
    """Re-draw the plots and the page of a finished run (optionally with a scale section)."""
    import json
    import shutil

    results = json.loads((results_dir / "results.json").read_text())
    records = load_records(results_dir / "records.jsonl")
    plots(records, results, results_dir / "img")
    page = markdown(results)
    if scale is not None:
        from stepcache_bench.scale import markdown as scale_markdown

        page += "\n" + scale_markdown(json.loads(scale.read_text()))
    (results_dir / "benchmark.md").write_text(page)
    if docs is not None:
        (docs / "img").mkdir(parents=True, exist_ok=True)
        for png in (results_dir / "img").glob("*.png"):
            shutil.copy2(png, docs / "img" / png.name)
        (docs / "benchmark.md").write_text(page)
    print_table(results)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m stepcache_bench.report RESULTS_DIR [--docs docs] [--scale scale.json]`."""
    import argparse
    import sys

    p = argparse.ArgumentParser(
        prog="python -m stepcache_bench.report",
        description="Re-render a benchmark run's page and plots",
    )
    p.add_argument("results_dir", type=Path)
    p.add_argument("--docs", type=Path, default=None, help="also write DIR/benchmark.md, DIR/img")
    p.add_argument("--scale", type=Path, default=None, help="a scale.json to append")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    render(args.results_dir, args.docs, args.scale)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
