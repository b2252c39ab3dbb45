"""The Serve levers the serving benchmark compares (`--ours-variants`): a variant is a lever,
or several joined by "+", each run in a fresh driver on its own local Ray."""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.localservices import free_port

HA, DIRECT = "RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_ENABLE_DIRECT_INGRESS"
OPTIMIZED, NBTHREAD = "RAY_SERVE_THROUGHPUT_OPTIMIZED", "RAY_SERVE_HAPROXY_NBTHREAD"
INGRESS_VARIABLES = (HA, DIRECT, OPTIMIZED)
# Direct ingress keeps a stopping replica draining for 30 s (for external load balancers):
# only the benchmark's teardown gets shorter, not what is measured.
DRAINING = {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1"}
# Serve's direct-ingress replicas listen on a port of this range (Ray 2.60's defaults).
DIRECT_PORTS = range(30000, 31001)
SHIPPED, MONITOR_LEVER = "default", "monitor_off"

# lever -> (what it changes, what it sets: env, options, user_config, access_log)
LEVERS: dict[str, tuple[str, dict[str, Any]]] = {
    SHIPPED: ("serve_config.yaml's deployment, min_replicas replicas, the shipped ingress", {}),
    "direct_ingress": (
        "wrk on the replica's own HTTP port (the proxy idle)",
        {"env": {DIRECT: "1"}},
    ),
    "throughput_optimized": ("RAY_SERVE_THROUGHPUT_OPTIMIZED=1 alone", {"env": {OPTIMIZED: "1"}}),
    "no_access_log": ("no access log (app, proxy, controller)", {"access_log": False}),
    MONITOR_LEVER: ("the drift monitor off", {"user_config": {"drift_monitor": False}}),
    "haproxy": ("Serve's HAProxy ingress", {"env": {HA: "1", OPTIMIZED: "1"}}),
    "proxy": ("Serve's Python proxy, no direct ingress", {"env": {HA: "0", DIRECT: "0"}}),
    "inline": ("scoring on the replica's event loop", {"user_config": {"score_inline": True}}),
}
# prefix of a lever with a number <N> -> (what it changes, what it sets for N)
NUMBERED: dict[str, tuple[str, Any]] = {
    "replicas": ("num_replicas=<N>", lambda n: {"options": {"num_replicas": n}}),
    "max_ongoing_": (
        "max_ongoing_requests=<N>",
        lambda n: {"options": {"max_ongoing_requests": n}},
    ),
    "haproxy_threads_": (
        "haproxy with RAY_SERVE_HAPROXY_NBTHREAD=<N>",
        lambda n: {"env": {HA: "1", OPTIMIZED: "1", NBTHREAD: str(n)}},
    ),
    "batch": ("@serve.batch max_batch_size <N>", lambda n: {"user_config": {"batch_max_size": n}}),
}
KNOWN = "; ".join(
    [f"{k}: {v[0]}" for k, v in LEVERS.items()] + [f"{k}<N>: {v[0]}" for k, v in NUMBERED.items()]
)


@dataclass(frozen=True)
class OursVariant:
    """One way of running ours: Deployment.options over serve_config.yaml's, the driver's
    environment (Serve's actors inherit it), the access log and user_config keys."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    access_log: bool = True
    what: str = ""
    user_config: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"ours:{self.name}"

    @property
    def label(self) -> str:
        return f"ours {self.name}"

    @property
    def monitor_on(self) -> bool:
        return self.user_config.get("drift_monitor", True) is not False

    @property
    def levers(self) -> frozenset[str]:
        """Its levers but the monitor's: a monitor_off variant is compared with the variant
        of the same other levers."""
        return frozenset(self.name.split("+")) - {SHIPPED, MONITOR_LEVER}

    @property
    def sets_ingress(self) -> bool:
        return any(name in self.env for name in INGRESS_VARIABLES)

    def deployment(self, base: dict[str, Any]) -> dict[str, Any]:
        options = base | self.options
        if self.user_config:
            options["user_config"] = options.get("user_config", {}) | self.user_config
        return options

    def describe(self, options: dict[str, Any], extra: dict[str, str], ingress: str) -> str:
        shown = {k: v for k, v in options.items() if k != "user_config"}
        env = self.env | {k: extra[k] for k in (HA, OPTIMIZED, NBTHREAD) if k in extra}
        text = f"{self.label}: {shown}; ingress {ingress}"
        text += "" if self.sets_ingress else " (shipped)"
        text += "; " + " ".join(f"{k}={v}" for k, v in env.items()) if env else ""
        text += "" if self.access_log else "; access log off"
        return text + "; drift monitor " + ("on" if self.monitor_on else "off (user_config)")


def lever(part: str) -> tuple[str, dict[str, Any]]:
    if part in LEVERS:
        return LEVERS[part]
    for prefix, (what, sets) in NUMBERED.items():
        number = part.removeprefix(prefix)
        if part.startswith(prefix) and number.isdigit():
            return what.replace("<N>", number), sets(int(number))
    raise argparse.ArgumentTypeError(f"unknown ours variant {part!r} (known: {KNOWN})")


def parse_variant(name: str) -> OursVariant:
    merged: dict[str, Any] = {"options": {}, "env": {}, "user_config": {}, "access_log": True}
    whats = []
    for part in name.split("+"):
        what, sets = lever(part)
        whats.append(what)
        for key, value in sets.items():
            merged[key] = merged[key] | value if isinstance(value, dict) else value
    if merged["env"]:
        merged["env"] |= DRAINING
    return OursVariant(name, what="; ".join(whats), **merged)


def parse_variants(text: str) -> list[OursVariant]:
    variants = [parse_variant(name.strip()) for name in text.split(",") if name.strip()]
    names = [v.name for v in variants]
    if not variants or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"no ours variant, or one repeated: {text!r}")
    return variants


def ingress_of(env: dict[str, str]) -> str:
    """haproxy: HAProxy on the proxy's port; direct: the (one) replica's own port; proxy:
    Serve's Python proxy."""
    if env.get(HA) == "1":
        return "haproxy"
    if DIRECT in env:
        return "direct" if env[DIRECT] == "1" else "proxy"
    return "direct" if env.get(OPTIMIZED) == "1" else "proxy"


def ingress_env(settings: Any, variant: OursVariant, nbthread: int) -> tuple[dict, list[Path]]:
    """(the driver's environment beyond the variant's, directories to remove after): the
    shipped ingress (`app.runtime.serve_environment` of ours' settings) unless the variant
    chooses one; for HAProxy every file and port it would share machine-wide made the run's."""
    if variant.env.get(HA) == "1":
        # Serve puts HAProxy's files under base/<56-character node id>/ and HAProxy takes unix
        # socket paths of at most 97 characters: a short base.
        base = Path(tempfile.mkdtemp(prefix="hap", dir="/tmp"))
        return haproxy_env(base, variant.env.get(NBTHREAD, str(nbthread))), [base]
    if variant.sets_ingress:
        return {}, []
    from app.runtime import serve_environment

    env = dict(serve_environment(settings))
    base = env.get("RAY_SERVE_HAPROXY_SERVER_STATE_BASE")
    if env.get(HA) == "1" and base:
        # Serve's default for the metrics socket is machine-wide (/tmp/haproxy-serve).
        env.setdefault("RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH", str(Path(base) / "m.sock"))
    return (env | DRAINING if env else env), [Path(base)] if base else []


def haproxy_env(base: Path, nbthread: str) -> dict[str, str]:
    return {
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(base / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(base / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(base),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(base / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(base / "metrics.sock"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
        NBTHREAD: nbthread,
    }
