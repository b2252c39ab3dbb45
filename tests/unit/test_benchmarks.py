"""The benchmarks package: every benchmark answers --help without importing Ray, Feast or
MLflow, and the harness's pure functions (statistics, tables) give exact figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from benchmarks.harness.cli import int_list
from benchmarks.harness.stats import growth, median, medians, minutes, percentiles, slope_per_minute
from benchmarks.harness.tables import markdown_table, ratio, table, text_table, write_json
from benchmarks.harness.variants import parse_variant
from tests.utils import ROOT

SCRIPTS = (
    "gate",
    "ingest_snowflake",
    "feast_online",
    "train_xgboost",
    "drift",
    "serving",
    "soak",
    "counter_offer",
    "scale",
)
HEAVY = ("ray", "feast", "mlflow", "evidently", "xgboost")


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_benchmark_answers_help(name):
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def test_importing_the_benchmarks_imports_nothing_heavy():
    packages = ("serving", "soak", "scale")
    modules = [f"benchmarks.{name}" for name in SCRIPTS if name not in packages]
    modules += [f"benchmarks.{name}.__main__" for name in packages]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_percentiles_interpolate_linearly():
    assert percentiles(range(100, -1, -1)) == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentiles(values, ("p50", "p75", "mean", "max", "p0")) == {
        "p50": 2.5,
        "p75": 3.25,
        "mean": 2.5,
        "max": 4.0,
        "p0": 1.0,
    }


def test_percentiles_of_nothing_are_nan():
    assert all(math.isnan(v) for v in percentiles([], ("p50", "mean", "max")).values())


def test_median_and_medians():
    assert median([3, 1, 2]) == 2.0
    assert median([4, 1, 3, 2]) == 2.5
    assert math.isnan(median([]))
    assert medians([{"a": 1.0, "b": 10.0}, {"a": 3.0, "b": 30.0}, {"a": 2.0, "b": 0.0}]) == {
        "a": 2.0,
        "b": 10.0,
    }


def test_growth_and_slope():
    assert growth(100, 110) == pytest.approx(0.10)
    assert growth(0, 0) == 0.0
    assert growth(0, 5) == math.inf
    assert slope_per_minute([(0, 100.0), (60, 102.0), (120, 104.0)]) == pytest.approx(2.0)
    assert math.isnan(slope_per_minute([(0, 1.0), (60, 2.0)]))


def test_minutes_bucket_times_and_end_short():
    assert minutes([0.0, 59.9, 60.0, 130.0, 150.0], 150) == [
        (0, 60, [0, 1]),
        (60, 120, [2]),
        (120, 150, [3]),
    ]


def test_text_table_aligns_columns():
    rendered = text_table(["name", "value"], [["a", "1.50"], ["longer", "10.00"]])
    assert rendered.splitlines() == [
        "name    value",
        "------  -----",
        "a        1.50",
        "longer  10.00",
    ]


def test_text_table_pads_a_short_row():
    rendered = text_table(["service", "req/s", "p50"], [["floor", "853", "1.1"], ["peer"]])
    assert rendered.splitlines()[-1] == "peer"


def test_markdown_table_aligns_per_column():
    rendered = markdown_table(
        ["target", "measured", "verdict"], [["p99", "26.8 ms", "PASS"]], "lrl"
    )
    assert rendered == ("| target | measured | verdict |\n|---|---:|---|\n| p99 | 26.8 ms | PASS |")
    assert table(["a", "b"], [[1, 2]], markdown=True) == "| a | b |\n|---|---:|\n| 1 | 2 |"


def test_ratio_text():
    assert ratio(3.0, 2.0) == "1.50x"
    assert ratio(None, 2.0) == "n/a"
    assert ratio(3.0, 0.0) == "n/a"


def test_write_json_replaces_the_file(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"ours_rps": 1.5, "peer_rps": None})
    assert json.loads(path.read_text()) == {"ours_rps": 1.5, "peer_rps": None}


def test_int_list():
    assert int_list("1,2,4") == [1, 2, 4]
    assert int_list("1_000, 10_000") == [1000, 10000]


def test_serve_levers_combine():
    variant = parse_variant("haproxy_threads_2+replicas2+monitor_off")
    assert variant.options == {"num_replicas": 2}
    assert variant.env["RAY_SERVE_HAPROXY_NBTHREAD"] == "2"
    assert variant.user_config == {"drift_monitor": False}
    assert not variant.monitor_on
    assert variant.levers == frozenset({"haproxy_threads_2", "replicas2"})


def test_scale_growth_exponent_of_linear_and_quadratic_stages():
    from benchmarks.scale.growth import exponent, exponents

    assert exponent(100_000, 2.0, 1_000_000, 20.0) == pytest.approx(1.0)
    assert exponent(100_000, 1.0, 1_000_000, 100.0) == pytest.approx(2.0)
    assert math.isnan(exponent(100, 0.0, 1000, 1.0))
    assert exponents([(1000, 4.0), (10, 1.0), (100, 2.0)]) == pytest.approx([0.30103, 0.30103])


def test_scale_table_pairs_each_stage_with_its_peer_and_growth():
    from benchmarks.scale.growth import Measured, rows_of, total_seconds

    mib = 1024 * 1024
    ours = [
        Measured("ingest", 1000, 1.0, 100 * mib, 0),
        Measured("ingest", 10_000, 10.0, 200 * mib, 0),
        Measured("train", 10_000, 5.0, 300 * mib, 0),
    ]
    peers = [Measured("ingest", 10_000, 25.0, 900 * mib, 0, peer="feast")]
    rows = rows_of(ours, peers)
    assert [r[:3] for r in rows] == [
        ["ingest", "1,000", "1.00"],
        ["ingest", "10,000", "10.00"],
        ["train", "10,000", "5.00"],
    ]
    assert rows[0][6] == "-" and rows[1][6] == "1.00"  # k from the previous size
    assert rows[1][7:] == ["feast", "25.00", "900", "2.50x"]
    assert rows[2][7:] == ["", "", "", ""]
    assert total_seconds(ours, 10_000) == 15.0
