"""The transports each service is measured over, one row each: ours' own JSON (/v1), V2 REST
and gRPC (the first ours variant; the others /v1 alone), MLServer's V2 REST and gRPC, the other
services their one API; and ours against MLServer (and the seed stack) on the same transport."""

from __future__ import annotations

import argparse
import functools
from typing import Any

from benchmarks.harness.procs import ServiceProcess
from benchmarks.harness.tables import markdown_table, ratio
from benchmarks.harness.variants import SHIPPED, OursVariant
from benchmarks.serving.measure import Measured, Target

EXTRA = ("v2", "grpc")  # --transports: beyond ours' /v1 and MLServer's V2 REST
NAMES = {"v1": "/v1", "v2": "V2 REST", "grpc": "gRPC"}
PEER_TRANSPORT = {"mlserver": "v2", "peer": "v2", "floor": "v1", "feast": "rest"}
RATIO_HEADER = "transport,ours,against,ours req/s,their req/s,req/s ours / theirs,"
RATIO_HEADER += "ours seq p50 ms,their seq p50 ms,seq p50 ours / theirs"


def parse_transports(text: str) -> tuple[str, ...]:
    """ "v2,grpc", "grpc" or "none"."""
    names = tuple(p.strip() for p in text.split(",") if p.strip() not in ("", "none"))
    if unknown := [n for n in names if n not in EXTRA]:
        raise argparse.ArgumentTypeError(f"unknown transport {unknown[0]!r} (known: v2, grpc)")
    return names


def key_of(base: str, transport: str) -> str:
    """An ours row's key: its variant's for /v1, else with the transport."""
    return base if transport == "v1" else f"{base}:{transport}"


def ours_label(variant: OursVariant, transport: str = "v1") -> str:
    who = "ours" if variant.name == SHIPPED else variant.label
    return f"{who} {NAMES[transport]}"


def targets(service: str, key: str, label: str, running: ServiceProcess, workload: Any, args: Any):
    """The rows of one started service, in the order they are measured."""
    if service == "ours":
        return ours_targets(key, running, workload, args)
    transport = PEER_TRANSPORT[service]
    rows = [Target(key, label, transport, running.url, workload.bodies[service])]
    if service == "mlserver" and "grpc" in args.transports and running.grpc:
        from benchmarks.harness.openinference import INFER_METHOD, check_mlserver_grpc
        from benchmarks.serving.report import LABELS

        grpc_label = LABELS["mlserver:grpc"]
        check = functools.partial(check_mlserver_grpc, grpc_label, running.grpc, workload)
        messages = workload.bodies["mlserver_grpc"]
        target = Target("mlserver:grpc", grpc_label, "grpc", running.grpc, messages)
        target.method, target.check = INFER_METHOD, check
        rows.append(target)
    return rows


def ours_targets(key: str, running: ServiceProcess, workload: Any, args: Any) -> list[Target]:
    """/v1 for every variant; V2 REST and gRPC (--transports) for the first."""
    from benchmarks.harness import openinference as oi
    from benchmarks.harness.ours import APP_NAME, ROUTE

    variant = next(v for v in args.ours_variants if v.key == key)
    rows = [Target(key, ours_label(variant), "v1", running.url, workload.bodies["ours"])]
    if variant != args.ours_variants[0]:
        return rows
    if "v2" in args.transports:
        url = f"{running.url.removesuffix(ROUTE)}/v2/models/{workload.settings.model_name}/infer"
        label, bodies = ours_label(variant, "v2"), workload.bodies["ours_v2"]
        check = functools.partial(oi.check_ours_v2_rest, label, url, workload, bodies)
        rows.append(Target(key_of(key, "v2"), label, "v2", url, bodies, check=check))
    if "grpc" in args.transports and not running.grpc:
        print(f"  no gRPC row for ours: {args.serve_config} has no grpc_options")
    elif "grpc" in args.transports:
        label, bodies = ours_label(variant, "grpc"), workload.bodies["ours_grpc"]
        # Serve's gRPC ingress picks the application by this metadata (HAProxy routes by it).
        metadata = {"authorization": f"Bearer {workload.token}", "application": APP_NAME}
        check = functools.partial(oi.check_ours_grpc, label, running.grpc, metadata, workload)
        target = Target(key_of(key, "grpc"), label, "grpc", running.grpc, bodies, metadata)
        target.method, target.check = oi.INFER_METHOD, check
        rows.append(target)
    return rows


def pairs(variants: list[OursVariant]) -> list[tuple[str, str, str]]:
    """(transport, ours' key, the key it is compared with): ours against MLServer and the seed
    stack on their transport, and ours' V2 REST and gRPC against ours' /v1."""
    if not variants:
        return []
    base = variants[0].key
    v2, grpc = key_of(base, "v2"), key_of(base, "grpc")
    return [
        ("V2 REST", v2, "mlserver"),
        ("V2 REST", v2, "peer"),
        ("gRPC", grpc, "mlserver:grpc"),
        ("V2 REST / own JSON", v2, base),
        ("gRPC / own JSON", grpc, base),
    ]


def transport_ratios(results: dict[str, Measured], variants: list[OursVariant]) -> list[dict]:
    """Ours over the other on the same transport: load req/s and sequential p50."""
    out = []
    for transport, mine, theirs in pairs(variants):
        if mine not in results or theirs not in results:
            continue
        a, b = results[mine], results[theirs]
        rps = a.load.result["rps"], b.load.result["rps"]
        seq = a.sequential.result["p50_ms"], b.sequential.result["p50_ms"]
        out.append(
            {
                "transport": transport,
                "ours": a.name,
                "against": b.name,
                "ours_rps": rps[0],
                "their_rps": rps[1],
                "rps_ratio": rps[0] / rps[1] if rps[1] else None,
                "ours_seq_p50_ms": seq[0],
                "their_seq_p50_ms": seq[1],
                "seq_p50_ratio": seq[0] / seq[1] if seq[1] else None,
            }
        )
    return out


def print_transport_ratios(results: dict[str, Measured], variants: list[OursVariant]) -> None:
    rows = []
    for r in transport_ratios(results, variants):
        rps, seq = (r["ours_rps"], r["their_rps"]), (r["ours_seq_p50_ms"], r["their_seq_p50_ms"])
        cells = [f"{rps[0]:,.0f}", f"{rps[1]:,.0f}", ratio(*rps)]
        cells += [f"{seq[0]:.2f}", f"{seq[1]:.2f}", ratio(*seq)]
        rows.append([r["transport"], r["ours"], r["against"], *cells])
    if not rows:
        return
    print(
        "\nThe same transport, ours / theirs (req/s: above 1: ours faster; seq p50: below 1: "
        "ours quicker); the last rows: what V2 costs ours against its own JSON:\n"
    )
    print(markdown_table(RATIO_HEADER.split(","), rows, "lll" + "r" * 6))
