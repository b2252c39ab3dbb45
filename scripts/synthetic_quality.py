"""Print how faithful the synthetic generator is (real vs synthetic AUC) and how fast it runs."""

from __future__ import annotations

import time

from app.config import SHIPPED_DATA_PATH, SHIPPED_DATASET
from app.data.fidelity import AUC_BAR, real_vs_synthetic_auc
from app.data.synthetic import generate_raw
from app.data.warehouse import load_raw
from app.dataset import load_dataset

SEEDS = range(5)
N_SYNTHETIC = 50_000
N_TIMED = 1_000_000


def main() -> None:
    dataset = load_dataset(SHIPPED_DATASET)
    real = load_raw(SHIPPED_DATA_PATH, dataset)
    print(f"real vs synthetic AUC on held-out real rows ({N_SYNTHETIC:,} synthetic rows)")
    print("seed  auc_real  auc_synthetic  difference  within_bar")
    for seed in SEEDS:
        r = real_vs_synthetic_auc(real, N_SYNTHETIC, seed, dataset)
        ok = abs(r["auc_difference"]) <= AUC_BAR
        print(
            f"{seed:>4}  {r['auc_real']:.4f}    {r['auc_synthetic']:.4f}         "
            f"{r['auc_difference']:+.4f}     {ok}"
        )
    start = time.perf_counter()
    frame = generate_raw(real, N_TIMED, seed=0, dataset=dataset)
    elapsed = time.perf_counter() - start
    coding = dataset.spec.label
    rate = frame[coding.source or coding.name].eq(coding.positive).mean()
    print(f"generate_raw({N_TIMED:,} rows): {elapsed:.2f} s, positive rate {rate:.4f}")


if __name__ == "__main__":
    main()
