"""The serving benchmark's report: one row per service, ratios of ours to each peer, the drift
monitor's cost, the issue's summary (`--json`) and its targets."""

from __future__ import annotations

import os
from typing import Any

from benchmarks.harness.machine import MIB, NOISY_CORES
from benchmarks.harness.ours import describe_monitor
from benchmarks.harness.tables import markdown_table, ratio, settings_of
from benchmarks.harness.variants import MONITOR_LEVER, SHIPPED, OursVariant
from benchmarks.serving.measure import Measured
from benchmarks.serving.transports import print_transport_ratios, transport_ratios

LABELS = {
    "ours": "ours (Ray Serve)",
    "mlserver": "MLServer V2 REST",  # features in the request, as for its gRPC row
    "mlserver:grpc": "MLServer gRPC",
    "peer": "MLServer + Feast (seed stack)",
    "floor": "floor (uvicorn + FastAPI)",
    "feast": "feast serve",
}
PEERS = ("peer", "mlserver", "floor", "feast")
MONITOR_TARGET = 0.05  # the monitor on may cost at most this share of the throughput
SERVICE_HEADER = "service,req/s,p50 ms,p99 ms,seq p50 ms,seq p99 ms,seq req/s,errors,RSS MiB"
RATIO_HEADER = "ours variant,/,req/s,p50,p99,seq p50,seq p99,seq req/s,RSS"
MONITOR_HEADER = "monitor on,monitor off,req/s on,req/s off,on / off,p99 on / off,"
MONITOR_HEADER += "seq p50 on / off,checks (on),target"
SUMMARY_KEYS = (
    *("ours_rps", "ours_p50_ms", "ours_p99_ms", "ours_seq_p50_ms"),
    *(f"{name}_{k}" for name in ("mlserver", "peer", "floor") for k in ("rps", "seq_p50_ms")),
    *("decide_us_single", "decide_us_per_row_batch16", "monitor_on_rps", "monitor_off_rps"),
    "rss_mib",
)
TARGETS = (  # (label, figure, baseline or None, bound, higher is better)
    ("ours req/s >= 1.0x seed stack (c)", "ours_rps", "peer_rps", 1.0, True),
    ("ours seq p50 <= seed stack's (c)", "ours_seq_p50_ms", "peer_seq_p50_ms", 1.0, False),
    ("ours req/s >= 0.8x MLServer (b)", "ours_rps", "mlserver_rps", 0.8, True),
    ("ours req/s >= 0.6x floor (d)", "ours_rps", "floor_rps", 0.6, True),
    ("ours p99 at 16 connections <= 100 ms", "ours_p99_ms", None, 100.0, False),
    ("pure path, one decision <= 1 ms", "decide_us_single", None, 1000.0, False),
    ("pure path, batch of 16 <= 0.2 ms per row", "decide_us_per_row_batch16", None, 200.0, False),
    ("monitor on >= 0.95x monitor off", "monitor_on_rps", "monitor_off_rps", 0.95, True),
)
Results = dict[str, Measured]


def disturbed(*measured: Measured) -> bool:
    return any(c["other"] > NOISY_CORES for m in measured for c in m.cores.values())


def service_rows(results: Results, failures: dict[str, str]) -> list[list[str]]:
    rows = []
    for m in results.values():
        lo, sq = m.load.result, m.sequential.result
        figures = (f"{x:.2f}" for x in (lo["p50_ms"], lo["p99_ms"], sq["p50_ms"], sq["p99_ms"]))
        rows.append([m.name, f"{lo['rps']:,.0f}", *figures, f"{sq['rps']:,.0f}", str(m.errors)])
        rows[-1].append(f"{m.rss_peak[0] / MIB:,.0f}")
    failed = [
        [k.replace(":", " "), f"failed: {v.splitlines()[0][:120]}"] for k, v in failures.items()
    ]
    return rows + failed


def ratio_rows(results: Results, ours: list[OursVariant]) -> list[list[str]]:
    """ours / peer for each ours variant and each peer measured."""
    rows = []
    for variant in ours:
        m = results[variant.key]
        for peer in (p for p in PEERS if p in results):
            o = results[peer]
            pairs = [(m.load, o.load, k) for k in ("rps", "p50_ms", "p99_ms")]
            pairs += [(m.sequential, o.sequential, k) for k in ("p50_ms", "p99_ms", "rps")]
            cells = [ratio(a.result[k], b.result[k]) for a, b, k in pairs]
            rows.append([variant.name, LABELS[peer], *cells, ratio(m.rss_peak[0], o.rss_peak[0])])
    return rows


def print_best(results: Results, ours: list[OursVariant]) -> None:
    def sequential(v: OursVariant) -> tuple[float, float]:
        seq = results[v.key].sequential.result
        return seq["p50_ms"], seq["p99_ms"]

    by_rps, by_seq = (
        max(ours, key=lambda v: results[v.key].load.result["rps"]),
        min(ours, key=sequential),
    )
    print(
        f"\nbest ours variant for throughput: {by_rps.name} "
        f"({results[by_rps.key].load.result['rps']:,.0f} req/s); for sequential latency: "
        f"{by_seq.name} (p50 {sequential(by_seq)[0]:.2f} ms, p99 {sequential(by_seq)[1]:.2f} ms)"
    )


def print_report(results: Results, failures: dict, variants: list[OursVariant], args: Any) -> None:
    ours = [v for v in variants if v.key in results]
    durations = f"{args.duration} s each"
    if ours and args.ours_duration and args.ours_duration != args.duration:
        durations += f" (ours variants {args.ours_duration} s)"
    print(
        f"\nwrk: {args.connections} connections / {args.threads} threads (load) and 1 connection "
        f"(sequential), {durations} after {args.warmup} s warm-up; {args.bodies:,} request "
        f"bodies rotated, {args.applicants:,} applicants; {os.cpu_count()} CPUs shared by wrk "
        "and the service; gRPC rows: grpcload (Python grpc.aio) in wrk's place, the same "
        f"connections as workers over up to {args.grpc_channels} channels\n"
    )
    print(markdown_table(SERVICE_HEADER.split(","), service_rows(results, failures)))
    if ours and any(p in results for p in PEERS):
        print(
            "\nRatios, ours / peer (req/s: above 1: ours faster; latency, RSS: below 1: lower):\n"
        )
        print(markdown_table(RATIO_HEADER.split(","), ratio_rows(results, ours), "ll" + "r" * 7))
    elif not ours:
        print("\n(ours not measured in this run: no ours/MLServer and ours/feast serve ratios)")
    print_transport_ratios(results, ours)
    if len(ours) > 1:
        print_best(results, ours)
    print_monitor_cost(results, ours, variants)
    print_footnotes(results, failures, ours, args)


def print_footnotes(results: Results, failures: dict, ours: list[OursVariant], args: Any) -> None:
    print(
        "\nreq/s, p50, p99: the load run; seq: one connection, one request at a time; errors: "
        "responses other than 200 (gRPC: other than OK) plus socket errors and timeouts over "
        "both runs; RSS: peak under load, summed over the service's processes; CPU 'wrk': the "
        "load generator's (grpcload's for gRPC rows: Python, it costs more per request than wrk)"
    )
    if ours:
        print(f"ours variants (each its own driver and local Ray; base: {args.serve_config}):")
        for variant in ours:
            print(f"  {variant.name}: {variant.what}")
    for key, m in results.items():
        lo, mib = m.load.result, (m.rss_idle[0] / MIB, m.rss_peak[0] / MIB, m.rss_peak[1] / MIB)
        tree = f"; whole Ray tree {mib[2]:,.0f} MiB" if key.startswith("ours") else ""
        pss = f"; PSS idle {m.pss_idle[0] / MIB:,.0f} MiB, whole tree {m.pss_idle[1] / MIB:,.0f}"
        print(
            f"  {m.name}: {m.processes} processes, RSS idle {mib[0]:,.0f} MiB, peak "
            f"{mib[1]:,.0f} MiB{tree}{pss}; load: {lo['requests']:,} requests, mean "
            f"{lo['mean_ms']:.2f} ms, max {lo['max_ms']:.1f} ms"
        )
        errors = f"load {m.load.describe_errors()}; sequential {m.sequential.describe_errors()}"
        print(f"    errors: {errors}")
        if m.monitor is not None:
            print(f"    {describe_monitor(m.monitor)}")
        for run, c in m.cores.items():
            cores = ", ".join(f"{k} {v:.2f}" for k, v in c.items())
            warning = " (WARNING: other processes disturbed it)" if c["other"] > NOISY_CORES else ""
            print(f"    CPU cores used, {run} run: {cores}{warning}")
    for key, message in failures.items():
        print(f"  FAILED {key}: {message}")


def monitor_row(results: Results, on: OursVariant, off: OursVariant) -> list[str]:
    a, b = results[on.key], results[off.key]
    rps = a.load.result["rps"], b.load.result["rps"]
    share = rps[0] / rps[1] if rps[1] else float("nan")
    checks = a.monitor["checks"] if a.monitor else "?"
    verdict = "met" if share >= 1 - MONITOR_TARGET else "MISSED"
    verdict += "" if checks else " (no check ran: the feed's cost only)"
    verdict += " (disturbed runs)" if disturbed(a, b) else ""
    p99 = ratio(a.load.result["p99_ms"], b.load.result["p99_ms"])
    seq = ratio(a.sequential.result["p50_ms"], b.sequential.result["p50_ms"])
    figures = [f"{rps[0]:,.0f}", f"{rps[1]:,.0f}", f"{share:.3f} ({share - 1:+.1%})", p99, seq]
    return [on.name, off.name, *figures, str(checks), verdict]


def print_monitor_cost(results: Results, ours: list[OursVariant], all_: list[OursVariant]) -> None:
    """Each monitor_off variant against the one with the same other levers and the monitor on."""
    rows = []
    for off in (v for v in ours if not v.monitor_on):
        if on := next((v for v in ours if v.monitor_on and v.levers == off.levers), None):
            rows.append(monitor_row(results, on, off))
        else:
            asked = any(v.monitor_on and v.levers == off.levers for v in all_)
            rows.append([f"(its counterpart: {'failed' if asked else 'not asked for'})", off.name])
    if rows:
        print(f"\nDrift monitor on vs off (target: on at most {MONITOR_TARGET:.0%} lower req/s):\n")
        print(markdown_table(MONITOR_HEADER.split(","), rows, "ll" + "r" * 6 + "l"))
        print("(one run each: differences of a few % are run-to-run noise on a shared machine)")


def summary_document(results: Results, micro: dict[str, Any] | None) -> dict[str, float | None]:
    """`--json`: exactly SUMMARY_KEYS, null where not measured; ours_* from the shipped
    variant (monitor on), monitor_off_rps from monitor_off; rps: the load run, seq: sequential."""

    def pick(key: str, run: str, figure: str) -> float | None:
        m = results.get(key)
        return None if m is None else float(getattr(m, run).result[figure])

    ours = f"ours:{SHIPPED}"
    out = {f"ours_{k}": pick(ours, "load", k) for k in ("rps", "p50_ms", "p99_ms")}
    out["ours_seq_p50_ms"] = pick(ours, "sequential", "p50_ms")
    for name in ("mlserver", "peer", "floor"):
        out[f"{name}_rps"] = pick(name, "load", "rps")
        out[f"{name}_seq_p50_ms"] = pick(name, "sequential", "p50_ms")
    for key in ("decide_us_single", "decide_us_per_row_batch16"):
        out[key] = micro[key] if micro else None
    out["monitor_on_rps"] = out["ours_rps"]
    out["monitor_off_rps"] = pick(f"ours:{MONITOR_LEVER}", "load", "rps")
    out["rss_mib"] = results[ours].rss_peak[0] / MIB if ours in results else None
    assert tuple(out) == SUMMARY_KEYS
    return out


def target_rows(summary: dict[str, float | None]) -> list[list[str]]:
    rows = []
    for label, key, base, bound, higher in TARGETS:
        x, y = summary[key], summary[base] if base else 1.0
        if x is None or not y:
            rows.append([label, "n/a", "n/a (not measured)"])
            continue
        unit = "ms" if key.endswith("ms") else "µs"
        shown = f"{x / y:.2f}x ({x:,.2f} / {y:,.2f})" if base else f"{x:,.2f} {unit}"
        met = x / y >= bound if higher else x / y <= bound
        rows.append([label, shown, "PASS" if met else "FAIL"])
    return rows


def print_targets(summary: dict[str, float | None], results: Results) -> None:
    print("\nTargets (this run's figures; ratios ours / peer):\n")
    print(markdown_table(["target", "measured", "verdict"], target_rows(summary), "lrl"))
    seq = summary["ours_seq_p50_ms"]
    theirs = ", ".join(
        f"{n} {ratio(seq, summary[f'{n}_seq_p50_ms'])}" for n in ("mlserver", "floor")
    )
    print(f"(for reference, ours seq p50 / theirs: {theirs})")
    if disturbed(*results.values()):
        print(
            f"WARNING: other processes used > {NOISY_CORES} cores in some runs: disturbed verdicts"
        )


def details_document(
    results: Results, failures: dict, variants: list[OursVariant], args: Any
) -> dict:
    """`--json-details`: every figure of every row."""
    levers = ("what", "options", "env", "access_log", "user_config")
    described = {v.key: {k: getattr(v, k) for k in levers} for v in variants}
    services = {}
    for key, m in results.items():
        services[key] = {"label": m.name, "transport": m.transport, "duration_s": m.duration}
        services[key] |= {"load": m.load.result}
        services[key] |= {"sequential": m.sequential.result, "rss_idle_bytes": m.rss_idle[0]}
        services[key] |= {"rss_peak_bytes": m.rss_peak[0], "rss_peak_tree_bytes": m.rss_peak[1]}
        services[key] |= {"pss_idle_bytes": m.pss_idle[0], "pss_idle_tree_bytes": m.pss_idle[1]}
        services[key] |= {
            "processes": m.processes,
            "cpu_cores": m.cores,
            "drift_monitor": m.monitor,
        }
    settings = {k: v for k, v in settings_of(args).items() if k not in ("ours_variants", "auth")}
    document = {"settings": settings, "ours_variants": described, "cpus": os.cpu_count()}
    same_transport = transport_ratios(results, variants)
    return document | {"services": services, "same_transport": same_transport, "failures": failures}
