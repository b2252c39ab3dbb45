"""Monitoring over the prediction log, for cron or `ray job submit`.

python -m jobs.monitor drift [--since T] [--until T | --last-hours H] [--fail-on-drift]
python -m jobs.monitor performance [--labels FILE] [--period D|W|M] [--fail-on-miscalibration]
    (+ an HTML report; with labels, observed against predicted default rates per PD grade)
python -m jobs.monitor status      (the live drift monitor actor on the cluster)
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from app.config import Settings, load_settings
from app.domain import CHAMPION
from app.errors import CreditRiskError
from app.runtime import run_job, setup_logging
from app.times import parse_utc

EXIT_DRIFT = 3


class MonitorInputError(CreditRiskError):
    """Nothing to monitor in the requested window, or a bad window."""


def answered_decisions(
    settings: Settings,
    since: pd.Timestamp | None,
    until: pd.Timestamp | None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Decisions returned to callers (shadow scores left out) logged in [since, until); only
    `columns` of each (they must include logged_at and shadow), when given."""
    from app.predictions.log import read_prediction_log
    from app.predictions.schema import answered, schema_for

    schema = schema_for(settings.load_dataset())
    frame = read_prediction_log(settings.prediction_log_dir, schema, columns).to_pandas()
    if frame.empty:
        raise MonitorInputError(
            f"the prediction log in {settings.prediction_log_dir} is empty: serve decisions first"
        )
    frame = answered(frame)
    logged = pd.to_datetime(frame["logged_at"], utc=True)
    if since is not None:
        frame = frame[logged >= since]
    if until is not None:
        frame = frame[logged.loc[frame.index] < until]
    if frame.empty:
        raise MonitorInputError(
            f"no decisions logged between {since or 'the start'} and {until or 'now'}"
        )
    return frame.reset_index(drop=True)


def run_drift(settings: Settings, args: argparse.Namespace) -> int:
    from app.monitoring.drift import compute_drift, drift_config
    from app.monitoring.stability_view import append_section, check_section
    from app.monitoring.window import window_fairness, window_stability
    from app.training.reference import load_reference

    until = pd.Timestamp(parse_utc(args.until, "--until")) if args.until else None
    since = pd.Timestamp(parse_utc(args.since, "--since")) if args.since else None
    if args.last_hours is not None:
        until = until or pd.Timestamp(datetime.now(UTC))
        since = until - timedelta(hours=args.last_hours)
    if since is not None and until is not None and since >= until:
        raise MonitorInputError(f"--since {since} is not before --until {until}")
    window = answered_decisions(settings, since, until)
    reference = load_reference(settings, args.version)
    result, snapshot = compute_drift(
        reference.frame,
        window,
        reference.numeric,
        reference.categorical,
        drift_config(settings),
        with_report=True,
    )
    result.model_version = reference.model_version
    result.stability = window_stability(window, reference)
    result.fairness = window_fairness(window, drift_config(settings))
    logged = pd.to_datetime(window["logged_at"], utc=True)
    result.window_start, result.window_end = logged.min().isoformat(), logged.max().isoformat()
    out = Path(args.output or settings.monitor_dir / "batch")
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = out / f"drift-{stamp}.html"
    snapshot.save_html(str(report))
    append_section(report, check_section(result.to_dict()))
    result.extra["report"] = str(report)
    (out / f"drift-{stamp}.json").write_text(json.dumps(result.to_dict(), indent=1))

    print(
        f"window {result.window_start} .. {result.window_end}: {result.rows:,} decisions vs "
        f"{result.reference_rows:,} training rows of champion v{result.model_version}"
    )
    print(f"{'feature':<58} {'method':<14} {'score':>8} {'threshold':>9}  drift")
    rows = [*result.features, *([result.prediction] if result.prediction else [])]
    for f in sorted(rows, key=lambda f: -(f.score / f.threshold if f.threshold else 0)):
        flag = "YES" if f.drifted else "-"
        print(f"{f.column:<58} {f.method:<14} {f.score:>8.4f} {f.threshold:>9.3f}  {flag}")
    verdict = "DRIFT" if result.dataset_drift else "no drift"
    print(f"{verdict}: {len(result.drifted_features)} of {len(result.features)} features drifted")
    print(f"report: {report}")
    return EXIT_DRIFT if (args.fail_on_drift and result.dataset_drift) else 0


def _baseline(settings: Settings) -> tuple[str | None, dict[str, float]]:
    """The champion's version and its logged test metrics (empty without a champion)."""
    from app.training import registry

    client = registry.client(settings)
    champion = registry.alias_version(client, settings.model_name, CHAMPION)
    baseline = registry.version_metrics(client, settings.model_name, champion) if champion else {}
    return champion, baseline


def run_performance(settings: Settings, args: argparse.Namespace) -> int:
    from app.monitoring.labels import load_labels
    from app.monitoring.outcomes import join_outcomes, prediction_columns
    from app.monitoring.performance import format_table, performance_by_period
    from app.monitoring.report import NO_OUTCOMES, write_report

    key = settings.load_dataset().entity_key
    labels = load_labels(Path(args.labels), key) if args.labels else None
    # What the join and the report read: a million records' features would not fit a driver.
    decisions = answered_decisions(settings, None, None, prediction_columns(key))
    # Without outcomes every decision joins unlabelled: approval rates are known at once.
    no_labels = pd.DataFrame(columns=[key, "defaulted"])
    joined = join_outcomes(decisions, no_labels if labels is None else labels, key)
    labelled = int(joined["defaulted"].notna().sum())
    if labels is not None and labelled == 0:
        raise MonitorInputError(
            f"none of the {len(labels):,} labels in {args.labels} matches a logged decision"
        )
    champion, baseline = _baseline(settings)
    table = performance_by_period(joined, args.period, baseline or None)
    nan = float("nan")
    outcomes = f"{labelled:,} with outcomes" if labels is not None else NO_OUTCOMES
    reference = (
        f"champion v{champion} test AUC {baseline.get('test_auc', nan):.4f}, "
        f"KS {baseline.get('test_ks', nan):.4f}, "
        f"approval rate {baseline.get('test_approval_rate', nan):.3f}"
        if champion
        else "none (no champion)"
    )
    print(f"{len(joined):,} decisions, {outcomes}; baseline: {reference}")
    print(format_table(table))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.output, index=False)
        print(f"written to {args.output}")
    calibration, miscalibrated = (
        _calibration(settings, joined, args.output) if labelled else (None, [])
    )
    if miscalibrated and args.retrain_on_miscalibration:
        _retrain(settings, "calibration: " + "; ".join(miscalibrated))
    report = write_report(
        settings,
        labels,
        period=args.period,
        baseline=baseline or None,
        decisions=decisions,
        table=table,
        calibration=calibration,
    )
    print(f"report: {report}")
    if miscalibrated and args.fail_on_miscalibration:
        return EXIT_DRIFT
    return 0


def _calibration(
    settings: Settings, joined: pd.DataFrame, output: str | None
) -> tuple[pd.DataFrame, list[str]]:
    """Print observed against predicted default rates per PD grade (and write them beside
    `output`); the table and its flagged grades."""
    from app.monitoring.performance import format_table
    from app.training.calibration import (
        brier_by_variant,
        calibration_by_grade,
        flagged,
        scale_of,
    )

    confidence = settings.calibration_confidence
    table = calibration_by_grade(joined, scale_of(settings.calibration_grades), confidence)
    brier = ", ".join(f"{v} {b:.4f}" for v, b in brier_by_variant(joined).items())
    print(f"calibration by PD grade ({confidence:.0%} Jeffreys intervals; Brier: {brier}):")
    print(format_table(table))
    if output:
        path = Path(output)
        table.to_csv(path.with_name(f"{path.stem}_calibration.csv"), index=False)
    lines = flagged(table)
    print("\n".join(f"flagged: {line}" for line in lines) or "no grade outside its interval")
    return table, lines


def _retrain(settings: Settings, reason: str) -> None:
    """Ask the cluster's drift monitor for retraining: it submits the job, or records the
    request as suppressed while an earlier retraining job runs (as for drift)."""
    import ray

    monitor = _live_monitor(settings, "to retrain through")
    event = ray.get(monitor.request_retraining.remote(reason), timeout=60)
    job = f" (job {event['job']})" if event.get("job") else ""
    print(f"retraining {event['action']}{job}: {reason}")


def _live_monitor(settings: Settings, purpose: str):
    """The cluster's drift monitor actor (Ray joined first); a clear error when none runs."""
    from app.monitoring.monitor import find_monitor
    from app.runtime import init_ray

    init_ray(settings)
    monitor = find_monitor(settings)
    if monitor is None:
        raise MonitorInputError(
            f"no drift monitor actor {settings.monitor_actor_name!r} in namespace "
            f"{settings.monitor_namespace!r} {purpose}: serving starts it with the first decision"
        )
    return monitor


def run_status(settings: Settings) -> int:
    import ray

    monitor = _live_monitor(settings, "to ask")
    status, latest = ray.get([monitor.status.remote(), monitor.latest.remote()], timeout=30)
    print(json.dumps({"status": status, "latest": latest}, indent=1, default=str))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.monitor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    drift = sub.add_parser("drift", help="drift of a window of the log vs the champion's data")
    drift.add_argument("--since", help="start of the window (ISO 8601, UTC if no zone)")
    drift.add_argument("--until", help="end of the window (exclusive)")
    drift.add_argument("--last-hours", type=float, help="window = the last H hours")
    drift.add_argument("--version", help="compare with this version's data (default: champion)")
    drift.add_argument("--output", help="folder for the JSON and HTML (default: monitor_dir)")
    drift.add_argument(
        "--fail-on-drift", action="store_true", help=f"exit {EXIT_DRIFT} when drift is found"
    )
    perf = sub.add_parser(
        "performance", help="approval per period, AUC/KS once outcomes arrive; an HTML report"
    )
    perf.add_argument(
        "--labels",
        help="outcomes, Parquet/CSV: the dataset's entity key (e.g. customer_id) "
        "and defaulted, optionally request_id and observed_at (none: no AUC yet)",
    )
    perf.add_argument("--period", default="W", help="pandas period: D, W or M (default W)")
    perf.add_argument(
        "--output", help="also write the table as CSV here (and the calibration beside it)"
    )
    perf.add_argument(
        "--fail-on-miscalibration",
        action="store_true",
        help=f"exit {EXIT_DRIFT} when a PD grade's default rate is outside its interval",
    )
    perf.add_argument(
        "--retrain-on-miscalibration",
        action="store_true",
        help="when a grade is flagged, retrain through the cluster's drift monitor (with "
        "reason `calibration`; suppressed while an earlier retraining job runs)",
    )
    sub.add_parser("status", help="the live drift monitor's counters and latest check")
    args = parser.parse_args()
    setup_logging()
    settings = load_settings()
    if args.command == "drift":
        return run_drift(settings, args)
    if args.command == "performance":
        return run_performance(settings, args)
    return run_status(settings)


if __name__ == "__main__":
    run_job(main)
