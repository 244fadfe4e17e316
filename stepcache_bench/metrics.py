"""Figures from graded records: per arm, per perturbation kind, per seed; the targets, pass/fail."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from stepcache_bench.harness import ARMS, PATHS, Record

#: The latency CDF kept in the results: a percentile every CDF_STEP points, 0 to 100.
CDF_STEP = 2


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), q in [0, 100]; 0.0 for no values."""
    if not values:
        return 0.0
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _dist(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values) if values else 0.0,
        "median": percentile(values, 50),
        "p95": percentile(values, 95),
    }


def _frac(flags: Iterable[bool]) -> float:
    xs = list(flags)
    return sum(xs) / len(xs) if xs else 0.0


def arm_figures(records: Sequence[Record]) -> dict[str, Any]:
    """Every figure of one arm over `records`."""
    lat = [r.latency_s for r in records]
    over = [r.overhead_s for r in records]
    checked = [r.integrity for r in records if r.integrity is not None]
    prompt = sum(r.prompt_tokens for r in records)
    completion = sum(r.completion_tokens for r in records)
    paths = {p: sum(r.path == p for r in records) for p in PATHS}
    reuse = [r.latency_s for r in records if r.path == "reuse"]
    missed = [r for r in records if r.path in ("miss", "skip")]
    generated = [r.overhead_s for r in missed]
    # of those, the ones that embedded and searched (a task detected, or semantic reuse on)
    searched = [r.overhead_s for r in missed if "embed" in r.timings]
    # a lookup: GPTCache's get() where the arm timed it, else the cache overhead of the request
    lookup = [r.timings.get("lookup", r.overhead_s) for r in records]
    return {
        "n": len(records),
        "latency_s": _dist(lat),
        "overhead_s": _dist(over),
        "backend_s": sum(r.backend_s for r in records),
        "tokens": {"prompt": prompt, "completion": completion, "total": prompt + completion},
        "backend_calls": sum(r.calls for r in records),
        "correct_task": _frac(r.correct_task for r in records),
        "correct_integrity": _frac(bool(x) for x in checked),
        "integrity_checked": len(checked),
        "wrong_served": sum(r.wrong_served for r in records),
        "served_from_cache": sum(r.from_cache for r in records),
        "paths": paths,
        "fallback_used": sum(r.fallback_used for r in records),
        "reuse_latency_s": _dist(reuse) | {"n": len(reuse)},
        "miss_overhead_s": _dist(generated) | {"n": len(generated)},
        "miss_overhead_searched_s": _dist(searched) | {"n": len(searched)},
        "lookup_s": _dist(lookup),
        "stage_median_ms": stage_medians(records),
    }


def stage_medians(records: Sequence[Record]) -> dict[str, dict[str, float]]:
    """StepCache's own stage timings (Result.timings), median ms per path: where overhead goes."""
    out: dict[str, dict[str, float]] = {}
    for path in PATHS:
        rs = [r for r in records if r.path == path and r.timings]
        stages = sorted({k for r in rs for k in r.timings if k not in ("backend", "total")})
        if rs:
            out[path] = {
                k: 1e3 * percentile([r.timings.get(k, 0.0) for r in rs], 50) for k in stages
            }
    return out


def kind_figures(records: Sequence[Record]) -> dict[str, Any]:
    """Per perturbation kind (family/kind): paths, correctness, mean latency, tokens."""
    out: dict[str, Any] = {}
    for key in sorted({f"{r.family}/{r.kind}" for r in records}):
        rs = [r for r in records if f"{r.family}/{r.kind}" == key]
        out[key] = {
            "n": len(rs),
            "paths": {p: sum(r.path == p for r in rs) for p in PATHS},
            # served without asking the model (a reuse, or a patch that only drops steps)
            "no_model_call": sum(r.calls == 0 for r in rs),
            "correct_task": _frac(r.correct_task for r in rs),
            "wrong_served": sum(r.wrong_served for r in rs),
            "latency_mean_s": statistics.fmean(r.latency_s for r in rs),
            "tokens": sum(r.prompt_tokens + r.completion_tokens for r in rs),
        }
    return out


def summarize(records: Sequence[Record], arms: Sequence[str] = ARMS) -> dict[str, Any]:
    """`arms`, `by_kind`, `by_seed` and `ratios` (to the no-cache arm) from all records."""
    by_arm = {a: [r for r in records if r.arm == a] for a in arms}
    out: dict[str, Any] = {
        "arms": {a: arm_figures(rs) for a, rs in by_arm.items()},
        "by_kind": {a: kind_figures(rs) for a, rs in by_arm.items()},
        "by_seed": {},
    }
    for seed in sorted({r.seed for r in records}):
        out["by_seed"][str(seed)] = {
            a: arm_figures([r for r in rs if r.seed == seed]) for a, rs in by_arm.items()
        }
    out["ratios"] = {a: ratios(out["arms"][a], out["arms"].get("no_cache")) for a in arms}
    out["latency_cdf_s"] = {
        a: [percentile([r.latency_s for r in rs], q) for q in range(0, 101, CDF_STEP)]
        for a, rs in by_arm.items()
    }
    out["paths_not_core"] = {
        a: {p: sum(r.path == p and not r.core for r in rs) for p in PATHS}
        for a, rs in by_arm.items()
    }
    out["mean_latency_floor"] = mean_latency_floor(by_arm.get("no_cache", []))
    out["mean_latency_ratio_not_core"] = {
        a: _mean_ratio([r for r in rs if not r.core], by_arm.get("no_cache", []))
        for a, rs in by_arm.items()
    }
    return out


def _mean_ratio(records: Sequence[Record], no_cache: Sequence[Record]) -> float | None:
    """Mean latency of `records` over that of the same requests without a cache."""
    ids = {(r.seed, r.request_id) for r in records}
    base = [r.latency_s for r in no_cache if (r.seed, r.request_id) in ids]
    if not records or not base or not sum(base):
        return None
    return statistics.fmean(r.latency_s for r in records) / statistics.fmean(base)


def mean_latency_floor(no_cache: Sequence[Record]) -> float | None:
    """The lowest mean-latency ratio any cache can reach on this workload: core-meaning changes
    answered by the model at no-cache cost, every other request served in zero time."""
    total = sum(r.latency_s for r in no_cache)
    return sum(r.latency_s for r in no_cache if r.core) / total if total else None


def ratios(arm: dict[str, Any], base: dict[str, Any] | None) -> dict[str, float | None]:
    def r(x: float, y: float) -> float | None:
        return x / y if y else None

    if base is None:
        return {}
    return {
        "mean": r(arm["latency_s"]["mean"], base["latency_s"]["mean"]),
        "median": r(arm["latency_s"]["median"], base["latency_s"]["median"]),
        "p95": r(arm["latency_s"]["p95"], base["latency_s"]["p95"]),
        "tokens": r(arm["tokens"]["total"], base["tokens"]["total"]),
    }


def _target(measured: float | int | None, target: str, ok: bool | None) -> dict[str, Any]:
    return {"measured": measured, "target": target, "pass": ok}


def targets_v1(summary: dict[str, Any]) -> dict[str, Any]:
    """The first benchmark's targets (kept for comparison), each measured with pass/fail."""
    arms = summary["arms"]
    if "stepcache" not in arms or "no_cache" not in arms:
        return {}
    sc, nc = arms["stepcache"], arms["no_cache"]
    rt = summary["ratios"]["stepcache"]
    seed_p95 = [ratios(s["stepcache"], s["no_cache"])["p95"] for s in summary["by_seed"].values()]
    worst_p95 = max((x for x in seed_p95 if x is not None), default=None)
    out: dict[str, Any] = {
        "mean_latency_ratio": _target(rt["mean"], "<= 0.20", _le(rt["mean"], 0.20)),
        "tokens_ratio": _target(rt["tokens"], "<= 0.50", _le(rt["tokens"], 0.50)),
        "p95_ratio": _target(rt["p95"], "<= 0.90", _le(rt["p95"], 0.90)),
        "p95_ratio_worst_seed": _target(worst_p95, "<= 1.00 (never above)", _le(worst_p95, 1.0)),
        "reuse_median_latency_ms": _target(
            _ms(sc["reuse_latency_s"]["median"]) if sc["reuse_latency_s"]["n"] else None,
            "<= 5 (incl. embedding)",
            _le(_ms(sc["reuse_latency_s"]["median"]), 5.0) if sc["reuse_latency_s"]["n"] else None,
        ),
        "correct_task": _target(sc["correct_task"], "== 1.0", sc["correct_task"] == 1.0),
        "correct_integrity": _target(
            sc["correct_integrity"], "== 1.0", sc["correct_integrity"] == 1.0
        ),
        "wrong_served": _target(sc["wrong_served"], "== 0", sc["wrong_served"] == 0),
        "miss_overhead_median_ms": _target(
            _ms(sc["miss_overhead_s"]["median"]) if sc["miss_overhead_s"]["n"] else None,
            "<= 15 (median, miss+skip)",
            _le(_ms(sc["miss_overhead_s"]["median"]), 15.0) if sc["miss_overhead_s"]["n"] else None,
        ),
        "miss_overhead_searched_median_ms": _target(
            _ms(sc["miss_overhead_searched_s"]["median"]),
            f"(reported: the {sc['miss_overhead_searched_s']['n']} that embedded and searched)",
            None,
        ),
        "no_cache_correct_task": _target(nc["correct_task"], "(reference)", None),
        "mean_latency_ratio_not_core": _target(
            summary.get("mean_latency_ratio_not_core", {}).get("stepcache"),
            "(reported: the requests that are not core-meaning changes)",
            None,
        ),
        "mean_latency_floor": _target(
            summary.get("mean_latency_floor"),
            "(reference: core-meaning changes at no-cache cost, all else in 0 s)",
            None,
        ),
    }
    if "stepcache_no_fallback" in arms:
        nf = arms["stepcache_no_fallback"]
        out["no_fallback_correct_task"] = _target(nf["correct_task"], "(reported)", None)
        out["no_fallback_correct_integrity"] = _target(nf["correct_integrity"], "(reported)", None)
        out["no_fallback_wrong_served"] = _target(nf["wrong_served"], "(reported)", None)
    if "semantic" in arms:
        out["semantic_wrong_served"] = _target(arms["semantic"]["wrong_served"], "(reported)", None)
    return out


#: The workload the p95 target is set on (the paper's shape); elsewhere p95 is reported.
P95_WORKLOAD = "paper"


def _row(measured: Any, target: str, ok: bool | None, why: str = "") -> dict[str, Any]:
    return {"measured": measured, "target": target, "pass": ok, "why": why if ok is False else ""}


def _kinds_where(summary: dict[str, Any], arm: str, bad: Any) -> str:
    """'family/kind: n, ...' for the kinds of `arm` where `bad(kind figures)` is non-zero."""
    parts = []
    for kind, k in summary["by_kind"].get(arm, {}).items():
        n = bad(k)
        if n:
            parts.append(f"{kind}: {n}")
    return ", ".join(parts)


def targets(summary: dict[str, Any], workload: str | None = None) -> dict[str, Any]:
    """Issue 16's targets for StepCache (fallback on) against no cache in the same run, each
    {measured, target, pass, why}: `why` says in a few words what a failed target is made of.
    `workload`: the workload these figures are of (None: several together); the p95 target is
    set on `paper` only and reported elsewhere."""
    arms = summary["arms"]
    if "stepcache" not in arms or "no_cache" not in arms:
        return {}
    sc = arms["stepcache"]
    rt = summary["ratios"]["stepcache"]
    n = sc["n"]
    model = sc["paths"]["miss"] + sc["paths"]["skip"]
    core = n - sum(summary["paths_not_core"]["stepcache"].values())
    wrong = _kinds_where(summary, "stepcache", lambda k: k["wrong_served"])
    incorrect = _kinds_where(
        summary, "stepcache", lambda k: round(k["n"] * (1 - k["correct_task"]))
    )
    out: dict[str, Any] = {
        "wrong_served": _row(
            sc["wrong_served"], "== 0", sc["wrong_served"] == 0, f"served wrong in {wrong}"
        ),
        "correct_task": _row(
            sc["correct_task"],
            "== 1.0 (independent checker)",
            sc["correct_task"] == 1.0,
            f"wrong answers in {incorrect}",
        ),
        "tokens_ratio": _row(
            rt.get("tokens"),
            "<= 0.40",
            _le(rt.get("tokens"), 0.40),
            f"{model} of {n} requests went to the model ({core} core changes), "
            f"{sc['paths']['patch']} patched",
        ),
    }
    on_paper = workload == P95_WORKLOAD
    out["p95_ratio"] = _row(
        rt.get("p95"),
        "<= 0.60" if on_paper else f"(reported; <= 0.60 on {P95_WORKLOAD})",
        _le(rt.get("p95"), 0.60) if on_paper else None,
        f"the slowest 5 % are model answers: {model} of {n} requests "
        f"({100 * model / max(n, 1):.0f} %) went to the model",
    )
    floor = summary.get("mean_latency_floor")
    gap = None if rt.get("mean") is None or floor is None else rt["mean"] - floor
    not_core = summary.get("mean_latency_ratio_not_core", {}).get("stepcache")
    nc_paths = summary["paths_not_core"]["stepcache"]
    out["mean_latency_over_floor"] = _row(
        gap,
        "<= 0.04 (mean_latency_ratio - mean_latency_floor)",
        _le(gap, 0.04),
        f"mean {rt.get('mean') or 0:.3f}x against a floor of {floor or 0:.3f}x; the requests "
        f"that are not core changes at {not_core or 0:.3f}x",
    )
    out["mean_latency_ratio"] = _row(rt.get("mean"), "(reported)", None)
    out["mean_latency_floor"] = _row(
        floor, "(reference: core-meaning changes at no-cache cost, all else in 0 s)", None
    )
    out["mean_latency_ratio_not_core"] = _row(
        not_core,
        "<= 0.08 (the requests that are not core-meaning changes)",
        _le(not_core, 0.08),
        f"of {sum(nc_paths.values())} not core: {nc_paths['skip'] + nc_paths['miss']} went to "
        f"the model, {nc_paths['patch']} patched",
    )
    reuse = sc["reuse_latency_s"]
    reuse_ms = _ms(reuse["median"]) if reuse["n"] else None
    stages = sc["stage_median_ms"]
    out["reuse_median_ms"] = _row(
        reuse_ms,
        "<= 3",
        _le(reuse_ms, 3.0),
        "stages (median ms): " + _stages(stages.get("reuse", {})),
    )
    searched = sc["miss_overhead_searched_s"]
    searched_ms = _ms(searched["median"]) if searched["n"] else None
    out["searched_miss_median_ms"] = _row(
        searched_ms,
        f"<= 8 (overhead of the {searched['n']} misses and skips that embedded and searched)",
        _le(searched_ms, 8.0),
        "skip stages (median ms): " + _stages(stages.get("skip", {})),
    )
    out["miss_overhead_median_ms"] = _row(
        _ms(sc["miss_overhead_s"]["median"]) if sc["miss_overhead_s"]["n"] else None,
        f"(reported: all {sc['miss_overhead_s']['n']} misses and skips)",
        None,
    )
    out["no_cache_correct_task"] = _row(arms["no_cache"]["correct_task"], "(reference)", None)
    return out


def _stages(stages: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in sorted(stages.items())) or "none recorded"


#: The arms set side by side with StepCache: wrong answers served and the lookup median.
COMPARED = ("stepcache", "gptcache", "gptcache_cos08", "semantic")


def comparison(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Wrong served and lookup median (ms) of StepCache and the GPTCache-style arms present."""
    return {
        a: {
            "wrong_served": summary["arms"][a]["wrong_served"],
            "lookup_median_ms": _ms(summary["arms"][a]["lookup_s"]["median"]),
            "correct_task": summary["arms"][a]["correct_task"],
        }
        for a in COMPARED
        if a in summary["arms"]
    }


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def _le(x: float | None, bound: float) -> bool | None:
    return None if x is None else x <= bound
