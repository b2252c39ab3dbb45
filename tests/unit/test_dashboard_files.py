"""The shipped Grafana dashboard and Prometheus config: the shape Grafana 10/11 imports, a
datasource chosen at import, a scrape job for Ray's metrics endpoint, and queries that read
only metrics the code declares (tests/integration/serving/test_dashboard.py checks them against
a running app)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.utils import ROOT
from tests.utils.dashboards import (
    PROMETHEUS_CONFIG,
    exported,
    expressions,
    family,
    load_dashboard,
    metric_names,
    missing_metrics,
    panels,
    queried_metrics,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_the_dashboard_is_grafana_json_with_a_prometheus_datasource_variable():
    dashboard = load_dashboard()
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    shown = list(panels(dashboard))
    assert len(shown) >= 10
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in shown:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE and target["expr"] and target["refId"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]


def test_the_dashboard_covers_what_operators_watch():
    titles = " | ".join(p["title"].lower() for p in panels(load_dashboard()))
    for topic in ("variant and outcome", "decision latency", "feature fetch", "without a decision"):
        assert topic in titles
    for topic in ("drifted features", "retraining"):
        assert topic in titles


def test_every_queried_app_metric_is_declared_in_the_code():
    source = "".join(
        (ROOT / "app" / part / "metrics.py").read_text() for part in ("serving", "monitoring")
    )
    declared = set(re.findall(r'"(credit_[a-z_]+)"', source))
    ours = {n for n in queried_metrics(load_dashboard()) if n.startswith("ray_credit_")}
    assert ours
    for name in ours:
        bare = name.removeprefix("ray_").removesuffix("_bucket")
        assert bare in declared, f"{name}: no metric {bare!r} in app/*/metrics.py"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (variant, decision) (rate(a_total{shadow="0", x=~"$app"}[$__rate_interval]))',
         {"a_total"}),
        ("histogram_quantile(0.95, sum by (le) (rate(lat_ms_bucket[5m])))", {"lat_ms_bucket"}),
        ("sum without (replica) (a) / on (variant) group_left (b) max(c offset 5m)",
         {"a", "c"}),
        ('max(g{feature="sum by"}) or vector(0)', {"g"}),
    ],
)  # fmt: skip
def test_metric_names_are_read_out_of_promql(expr, names):
    assert metric_names(expr) == names


def test_only_a_histogram_has_bucket_series():
    page = "\n".join(
        [
            "# TYPE ray_lat_ms histogram",
            'ray_lat_ms_bucket{le="1.0"} 3.0',
            "ray_lat_ms_count 3.0",
            "# TYPE ray_n_total counter",
            'ray_n_total{variant="champion"} 2.0',
            "# TYPE ray_odd_bucket gauge",
            "ray_odd_bucket 1.0",
        ]
    )
    samples, types = exported(page)
    assert samples == {"ray_lat_ms_bucket", "ray_lat_ms_count", "ray_n_total", "ray_odd_bucket"}
    assert family("ray_lat_ms_bucket", types) == "ray_lat_ms"
    assert family("ray_odd_bucket", types) == "ray_odd_bucket"
    queried = {"ray_lat_ms_bucket", "ray_n_total", "ray_odd_bucket", "ray_absent"}
    assert missing_metrics(queried, page) == {"ray_odd_bucket", "ray_absent"}


def test_the_prometheus_config_scrapes_ray_metrics_export_port():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "ray"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8080"]
    # The cluster variant is documented beside it: Ray's file-based service discovery.
    assert "/tmp/ray/prom_metrics_service_discovery.json" in PROMETHEUS_CONFIG.read_text()
    assert all(e.count("(") == e.count(")") for e in expressions(load_dashboard()))


def test_the_alert_rules_are_loaded_and_read_only_metrics_the_code_declares():
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (path,) = [PROMETHEUS_CONFIG.parent / f for f in config["rule_files"]]
    rules = [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]
    alerts = {r["alert"]: r for r in rules}
    # The name the settings table promises for the fair-lending screen on live decisions.
    screen = alerts["CreditFairLendingScreen"]
    assert metric_names(screen["expr"]) == {"ray_credit_fair_lending_breach"}
    assert screen["for"] and screen["labels"]["severity"]
    declared = set(
        re.findall(r'"(credit_[a-z_]+)"', (ROOT / "app/monitoring/metrics.py").read_text())
    )
    for rule in rules:
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        for name in metric_names(rule["expr"]):
            assert name.removeprefix("ray_") in declared, f"{rule['alert']}: {name} not declared"
