"""Retrain on fresh data: ingest -> feature store -> train a challenger [-> gated promotion].

What the drift monitor submits through the Ray Jobs API; also runnable by hand or from cron:
`ray job submit -- python -m jobs.retrain --reason "..."`.
"""

from __future__ import annotations

import argparse

from app.config import load_settings
from app.data.ingest import ingest
from app.domain import CHALLENGER
from app.features.store import materialize
from app.runtime import init_ray, run_job, setup_logging
from app.training.promote import PromotionRefused, promote
from app.training.train import train_and_register


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.retrain", description=__doc__)
    parser.add_argument("--reason", default="manual", help="why (logged on the new version)")
    parser.add_argument("--no-ingest", action="store_true", help="train on the current snapshot")
    args = parser.parse_args()
    setup_logging()
    settings = load_settings()
    print(f"retraining: {args.reason}", flush=True)
    init_ray(settings)
    if not args.no_ingest:
        report = ingest(settings)
        print(f"ingested snapshot {report.snapshot_id} ({report.rejected:,} rows rejected)")
        loaded = materialize(settings)
        print(f"materialized {', '.join(loaded.views)} into {loaded.online_store}")
    tags = {"retrain_reason": args.reason[:500]}
    if settings.retrain_challenger_traffic != "none":
        tags["traffic"] = settings.retrain_challenger_traffic
    trained = train_and_register(settings, with_baseline=False, version_tags=tags)
    aliases = ", ".join(trained.aliases) or "none"
    print(
        f"registered {trained.model_name} v{trained.version} ({aliases}), test AUC "
        f"{trained.metrics['test_auc']:.4f}, traffic: {tags.get('traffic', 'none')}"
    )
    if settings.retrain_auto_promote and CHALLENGER in trained.aliases:
        try:
            result = promote(settings)
        except PromotionRefused as exc:  # the gate said no: the challenger stays a challenger
            print(f"not promoted: {exc}")
        else:
            print(f"promoted v{result.champion} to champion (was v{result.previous_champion})")
    return 0


if __name__ == "__main__":
    run_job(main)
