"""Train, evaluate and register a credit model from the current feature store."""

from __future__ import annotations

import argparse

from app.config import load_settings
from app.runtime import init_ray, run_job, setup_logging
from app.training.train import train_and_register


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.train", description=__doc__)
    parser.add_argument("--workers", type=int, help="Ray Train workers (default: settings)")
    parser.add_argument("--trials", type=int, default=0, help="Ray Tune trials before the fit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the logistic baseline")
    parser.add_argument("--split", choices=["random", "out_of_time"], help="default: settings")
    args = parser.parse_args()
    setup_logging()
    overrides = {"split_method": args.split} if args.split else {}
    settings = load_settings(**overrides)
    init_ray(settings)
    report = train_and_register(
        settings, workers=args.workers, trials=args.trials, with_baseline=not args.no_baseline
    )
    m = report.metrics
    print(f"run {report.run_id}: rows {report.sizes}")
    print(
        f"XGBoost  test AUC {m['test_auc']:.4f}  Gini {m['test_gini']:.4f}  KS {m['test_ks']:.4f}"
        f"  Brier {m['test_brier']:.4f}  approval rate {m['test_approval_rate']:.3f}"
    )
    if report.baseline_metrics:
        print(f"baseline test AUC {report.baseline_metrics['baseline_test_auc']:.4f}")
    if "cv_auc_mean" in m:
        print(f"{int(m['cv_folds'])}-fold CV AUC {m['cv_auc_mean']:.4f} ± {m['cv_auc_std']:.4f}")
    aliases = ", ".join(report.aliases) or "none"
    print(f"registered {report.model_name} v{report.version} (aliases: {aliases})")
    print(f"model card: {report.card}")
    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items()))
    return 0


if __name__ == "__main__":
    run_job(main)
