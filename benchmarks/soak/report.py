"""The soak's figures and report: rate, errors, latency per minute, RSS per process group at
the measured load's start and end (growth and trend), the machine, and the verdict."""

from __future__ import annotations

import itertools
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness.machine import MIB, other_cores
from benchmarks.harness.ours import describe_monitor
from benchmarks.harness.stats import growth, median, minutes, percentiles, slope_per_minute
from benchmarks.harness.tables import table
from benchmarks.soak.load import Answer
from benchmarks.soak.sampler import RAY_ALL, RAY_GROUPS, SERVE_ALL, SERVE_GROUPS, Sample

GROWTH_TARGET = 0.10  # RSS at the end of the load at most 10% above its start
KEYS = ("p50", "p95", "p99", "max")
GROUP_HEADER = ["process group", "processes", "RSS start MiB", "RSS end MiB", "growth"]
GROUP_HEADER.append("trend MiB/min")
MINUTE_HEADER = ["minute", "requests", "req/s", "errors", *(f"{k} ms" for k in KEYS)]
TIMELINE_HEADER = ["t s", "ctrl", "proxy", "replicas", "monitor", "Serve", "Ray tree", "repl"]
TIMELINE_HEADER += ["checks", "spool", "load1"]


def latency(answers: list[Answer], attribute: str = "latency_ms") -> dict[str, float]:
    return percentiles([getattr(a, attribute) for a in answers], KEYS)


def errors_by_kind(answers: list[Answer]) -> dict[str, int]:
    return dict(Counter(a.error for a in answers if a.error).most_common())


def cores_between(a: Sample, b: Sample) -> dict[str, float]:
    """Cores used between two samples: the Ray tree, this process, everything else (a process
    born in between counts from zero; one that died in between is lost, small)."""
    wall, ray = b.t - a.t, sum(cpu - a.cpu.get(pid, 0.0) for pid, cpu in b.cpu.items())
    own = b.own_cpu - a.own_cpu
    if wall <= 0:
        return {"ray": math.nan, "load generator": math.nan, "other": math.nan}
    other = other_cores(b.busy - a.busy, wall, ray, own)
    return {"ray": ray / wall, "load generator": own / wall, "other": other}


def ends(first: Sample, last: Sample) -> dict[str, Any]:
    """What the samples at the measured load's start and end say beside RSS."""
    return {
        "uss_mib": {
            group: ((first.uss or {}).get(group, 0) / MIB, (last.uss or {}).get(group, 0) / MIB)
            for group in (SERVE_ALL, RAY_ALL)
        },
        "redis_mib": (first.redis_rss / MIB, last.redis_rss / MIB),
        "shm_mib": (first.shm_used / MIB, last.shm_used / MIB),
        "cores": cores_between(first, last),
        "loadavg_end": last.loadavg,
        "checks": (first.checks, last.checks),
        "spool_files": (first.spool_files, last.spool_files),
        "predlog_parts": (first.predlog_parts, last.predlog_parts),
    }


@dataclass
class Report:
    args: dict[str, Any]
    answers: list[Answer]
    samples: list[Sample]
    load_seconds: float
    warmup_seconds: float
    monitor_on: bool = True  # the deployment feeds the drift monitor
    monitor: dict[str, Any] | None = None
    top_other: list[tuple[str, float]] = field(default_factory=list)  # name, cores

    @property
    def measured(self) -> list[Sample]:
        return [s for s in self.samples if s.t >= 0]

    def rss(self) -> dict[str, dict[str, Any]]:
        """Per process group: RSS at the start and end, growth, trend, processes."""
        first, last = self.measured[0], self.measured[-1]
        found = {}
        for group in (*SERVE_GROUPS, SERVE_ALL, *RAY_GROUPS, RAY_ALL):
            a, b = first.groups.get(group, 0), last.groups.get(group, 0)
            trend = slope_per_minute([(s.t, s.groups.get(group, 0) / MIB) for s in self.measured])
            found[group] = {
                "start_mib": a / MIB,
                "end_mib": b / MIB,
                "growth": growth(a, b),
                "slope_mib_min": trend,
                "processes_start": first.counts.get(group, 0),
                "processes_end": last.counts.get(group, 0),
            }
        return found

    def same_processes(self) -> dict[str, dict[str, Any]]:
        """Growth of the processes alive at both ends (a replica the autoscaler added or
        removed in between is not in it): where a leak shows."""
        first, last = self.measured[0].processes, self.measured[-1].processes
        lived = {}
        for name, groups in ((SERVE_ALL, SERVE_GROUPS), (RAY_ALL, RAY_GROUPS + SERVE_GROUPS)):
            pids = [p for p in first.keys() & last.keys() if first[p]["group"] in groups]
            a, b = sum(first[p]["rss"] for p in pids), sum(last[p]["rss"] for p in pids)
            lived[name] = {"processes": len(pids), "start_mib": a / MIB, "end_mib": b / MIB}
            lived[name]["growth"] = growth(a, b) if a else 0.0
        return lived

    def per_minute(self, measured: list[Answer]) -> list[dict[str, Any]]:
        rows = []
        for i, (lo, hi, members) in enumerate(
            minutes([a.due for a in measured], self.load_seconds)
        ):
            these = [measured[j] for j in members]
            errors = sum(1 for a in these if a.error)
            rows.append({"minute": i + 1, "from_s": lo, "to_s": hi, "requests": len(these)})
            rows[-1] |= {"rate": len(these) / (hi - lo), "errors": errors, **latency(these)}
        return rows

    def verdict(self, errors: dict[str, int], rss: dict[str, dict]) -> list[str]:
        """Why the soak failed: errors, or RSS growth of a whole group at the target or over."""
        reasons = [f"{sum(errors.values())} errors"] if errors else []
        for name in (SERVE_ALL, RAY_ALL):
            if not rss[name]["growth"] < GROWTH_TARGET:
                reasons.append(f"{name} RSS {rss[name]['growth']:+.1%}")
        return reasons

    def figures(self) -> dict[str, Any]:
        measured = [a for a in self.answers if a.due >= 0]
        warm = [a for a in self.answers if a.due < 0]
        first, last = self.measured[0], self.measured[-1]
        errors, rss, good = errors_by_kind(measured), self.rss(), sum(not a.error for a in measured)
        replicas = [s.counts.get("replicas", 0) for s in self.measured]
        loads = [s.loadavg[0] for s in self.measured]
        reasons = self.verdict(errors, rss)
        return {
            "target_rate": self.args["rate"],
            "sent": len(measured),
            "answered_ok": good,
            "achieved_rate": good / self.load_seconds,
            "sent_rate": len(measured) / self.load_seconds,
            "errors": errors,
            "error_count": sum(errors.values()),
            "latency": latency(measured),
            "service": latency(measured, "service_ms"),
            "send_lag": latency(measured, "lag_ms"),
            "warmup_latency": latency(warm),
            "warmup_errors": errors_by_kind(warm),
            "per_minute": self.per_minute(measured),
            "rss": rss,
            "rss_same_processes": self.same_processes(),
            "processes_changed": first.processes.keys() != last.processes.keys(),
            "replicas": (replicas[0], replicas[-1], min(replicas), max(replicas)),
            "warmup_s": self.warmup_seconds,
            "loadavg_1m": (min(loads), max(loads)),
            "sample_seconds_max": max(s.seconds for s in self.samples),
            **ends(first, last),
            "verdict": "FAIL" if reasons else "PASS",
            "verdict_reasons": reasons,
        }


def fmt_errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in errors.items()) or "none"


def verdict_line(f: dict[str, Any]) -> str:
    serve, tree = f["rss"][SERVE_ALL]["growth"], f["rss"][RAY_ALL]["growth"]
    text = (
        f"{f['verdict']}: errors {f['error_count']} (target 0); RSS growth Serve app "
        f"{serve:+.1%}, Ray tree {tree:+.1%} (target < {GROWTH_TARGET:.0%} each)"
    )
    return text + (f" -- {'; '.join(f['verdict_reasons'])}" if f["verdict_reasons"] else "")


def pair(values: tuple[float, float], unit: str = "") -> str:
    return f"{values[0]:,.0f} -> {values[1]:,.0f}{unit}"


def rss_figure(g: dict[str, Any]) -> str:
    return (
        f"{g['start_mib']:,.0f} / {g['end_mib']:,.0f} MiB (**{g['growth']:+.1%}**, "
        f"trend {g['slope_mib_min']:+.1f} MiB/min)"
    )


def figure_rows(report: Report, f: dict[str, Any]) -> list[tuple[str, str]]:
    lat, lag, c, r, same = (
        f["latency"],
        f["send_lag"],
        f["cores"],
        f["replicas"],
        f["rss_same_processes"],
    )
    warmup = f"{report.load_seconds:g} s after {report.warmup_seconds:.0f} s of warm-up"
    rows = [
        ("target rate", f"{f['target_rate']:g} req/s, open loop, {warmup}"),
        ("requests sent", f"{f['sent']:,} ({f['sent_rate']:.2f}/s)"),
        ("achieved rate (answered OK)", f"{f['achieved_rate']:.2f} req/s"),
        ("errors", f"{f['error_count']} ({fmt_errors(f['errors'])})"),
        ("latency p50 / p95 / p99 / max", " / ".join(f"{lat[k]:.1f}" for k in KEYS) + " ms"),
        ("client send lag p99 / max", f"{lag['p99']:.2f} / {lag['max']:.1f} ms"),
        (
            "warm-up p50 ms, errors",
            f"{f['warmup_latency']['p50']:.1f}, {fmt_errors(f['warmup_errors'])}",
        ),
        (f"RSS {SERVE_ALL}: start / end", rss_figure(f["rss"][SERVE_ALL])),
        (f"RSS {RAY_ALL}: start / end", rss_figure(f["rss"][RAY_ALL])),
    ]
    if f["processes_changed"]:
        growths = f"{same[SERVE_ALL]['growth']:+.1%} / {same[RAY_ALL]['growth']:+.1%}"
        rows.append(("RSS, processes alive at both ends: Serve app / Ray tree", growths))
    return [
        *rows,
        ("replicas (start / end / min-max)", f"{r[0]} / {r[1]} / {r[2]}-{r[3]}"),
        ("drift checks during the load", f"{f['checks'][1] - f['checks'][0]}"),
        ("USS Serve app, Ray tree", ", ".join(pair(v, " MiB") for v in f["uss_mib"].values())),
        (
            "private Redis, /dev/shm",
            f"{pair(f['redis_mib'], ' MiB')}, {pair(f['shm_mib'], ' MiB')}",
        ),
        (
            "spooled batches, prediction-log parts",
            f"{pair(f['spool_files'])}, {pair(f['predlog_parts'])}",
        ),
        (
            "CPU cores: Ray tree / load generator / other",
            " / ".join(f"{x:.2f}" for x in c.values()),
        ),
        ("load average (1 min), min-max", "{:.2f}-{:.2f}".format(*f["loadavg_1m"])),
        ("verdict", verdict_line(f)),
    ]


def minute_rows(f: dict[str, Any]) -> list[list[object]]:
    rows = [
        [m["minute"], f"{m['requests']:,}", f"{m['rate']:.2f}", m["errors"]]
        + [f"{m[k]:.1f}" for k in KEYS]
        for m in f["per_minute"]
    ]
    lat = f["latency"]
    return [
        *rows,
        ["all", f"{f['sent']:,}", f"{f['sent_rate']:.2f}", f["error_count"]]
        + [f"{lat[k]:.1f}" for k in KEYS],
    ]


def group_rows(f: dict[str, Any], markdown: bool) -> list[list[str]]:
    rows = []
    for group, g in f["rss"].items():
        if g["start_mib"] or g["end_mib"]:
            name = f"**{group}**" if markdown and group in (SERVE_ALL, RAY_ALL) else group
            procs = str(g["processes_start"])
            procs += (
                f" -> {g['processes_end']}" if g["processes_end"] != g["processes_start"] else ""
            )
            mib = (f"{g['start_mib']:,.0f}", f"{g['end_mib']:,.0f}")
            rows.append([name, procs, *mib, f"{g['growth']:+.1%}", f"{g['slope_mib_min']:+.2f}"])
    return rows


def print_tables(report: Report, f: dict[str, Any], markdown: bool) -> None:
    """The figures, the minutes and the process groups, as text or Markdown."""
    rows = [
        (name, value if markdown else value.replace("**", ""))
        for name, value in figure_rows(report, f)
    ]
    print("\n" + table(["figure", "value"], rows, markdown, "ll"))
    print("\n" + table(MINUTE_HEADER, minute_rows(f), markdown, "r" * 8))
    print("\n" + table(GROUP_HEADER, group_rows(f, markdown), markdown))


def print_report(report: Report, f: dict[str, Any], markdown: bool) -> None:
    print_tables(report, f, markdown=False)
    if report.monitor is not None:
        print(describe_monitor(report.monitor))
    if report.monitor_on and f["checks"][0] == 0:
        print(
            "WARNING: no drift check had finished when the measured load started: the "
            "monitor's first check (Evidently and MLflow imports, ~300 MiB) is in the growth."
        )
    print_process_changes(report)
    print_timeline(report)
    print_machine(report, f)
    print("\n" + verdict_line(f))
    if markdown:
        print_tables(report, f, markdown=True)


def print_process_changes(report: Report, top: int = 6) -> None:
    """The processes whose RSS changed most over the load, and those that came or went."""
    a, b = report.measured[0].processes, report.measured[-1].processes
    changed = sorted(a.keys() & b.keys(), key=lambda p: -abs(b[p]["rss"] - a[p]["rss"]))[:top]
    print("\nlargest RSS changes over the load (per process):")
    for pid in changed:
        p, mib = b[pid], (a[pid]["rss"] / MIB, b[pid]["rss"] / MIB)
        print(
            f"  {mib[1] - mib[0]:+7.1f} MiB  {mib[0]:6.0f} -> {mib[1]:6.0f}  pid {pid} "
            f"({p['group']}) {p['title'][:70]}"
        )
    for what, pids, procs in (("new", b.keys() - a.keys(), b), ("gone", a.keys() - b.keys(), a)):
        for pid in sorted(pids):
            p = procs[pid]
            print(f"  {what}: pid {pid} ({p['group']}) {p['rss'] / MIB:.0f} MiB {p['title'][:70]}")


def print_timeline(report: Report) -> None:
    """Every sample: RSS per Serve process group and the whole tree, replicas, checks."""
    rows = []
    for s in report.samples:
        mib = [f"{s.groups.get(g, 0) / MIB:.0f}" for g in (*SERVE_GROUPS, SERVE_ALL, RAY_ALL)]
        counts = [s.counts.get("replicas", 0), s.checks, s.spool_files, f"{s.loadavg[0]:.2f}"]
        rows.append([f"{s.t:.0f}", *mib, *counts])
    print("\n" + table(TIMELINE_HEADER, rows, False, "r" * 11))


def print_machine(report: Report, f: dict[str, Any]) -> None:
    c, loads = f["cores"], f["loadavg_1m"]
    print(
        f"\nmachine: {os.cpu_count()} CPUs; during the measured load the Ray tree used "
        f"{c['ray']:.2f} cores, the load generator {c['load generator']:.2f}, other processes "
        f"{c['other']:.2f}; load average (1 min) {loads[0]:.2f}-{loads[1]:.2f}"
    )
    if steps := [cores_between(a, b)["other"] for a, b in itertools.pairwise(report.measured)]:
        print(
            f"  other processes per {report.args['sample_every']:g} s step: min {min(steps):.2f}, "
            f"median {median(steps):.2f}, max {max(steps):.2f} cores"
        )
    if report.top_other:
        top = ", ".join(f"{name} {cores:.2f}" for name, cores in report.top_other)
        print(f"  busiest other processes alive throughout (cores): {top}")


def json_document(report: Report, f: dict[str, Any]) -> dict[str, Any]:
    samples = [s.__dict__ | {"cpu": {str(k): v for k, v in s.cpu.items()}} for s in report.samples]
    answers = [a.__dict__ for a in report.answers]
    document = {"settings": report.args, "figures": f, "monitor": report.monitor}
    return document | {"top_other": report.top_other, "samples": samples, "answers": answers}
