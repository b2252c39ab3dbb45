"""A second dataset through the same main job, with no code change: the GMSC-shaped spec
(numeric only, missing incomes, 96/98 sentinels, CamelCase and hyphenated source names, no request
fields, no levers) is ingested, put in Feast, trained on, served, answered with reasons on its
own columns, and checked for drift; the prediction log holds its records. It runs on synthetic
borrowers from the spec's generator (`--rows`), as a user sees the loop at another size."""

import re

import pytest

from app.dataset import load_dataset
from app.predictions.log import read_prediction_log
from app.predictions.schema import schema_for
from tests.utils import ROOT, quiet_port, run_job
from tests.utils.raycluster import auth_mode

pytestmark = pytest.mark.integration

GMSC = ROOT / "datasets" / "gmsc"
DECISIONS = 60
ROWS = 2_500


@pytest.mark.own_ray
def test_the_main_job_runs_the_gmsc_shaped_dataset_end_to_end(tmp_path):
    dataset = load_dataset(GMSC)
    env = {
        "CREDIT_DATA_DIR": str(tmp_path),
        "CREDIT_DATASET": str(GMSC),
        "RAY_AUTH_MODE": auth_mode(),
    }
    # Ports outside the kernel's ephemeral range: the job's own Ray opens many sockets before
    # it serves, and one of them can take an ephemeral port picked now.
    port = str(quiet_port())
    done = run_job(
        "jobs.pipeline",
        "--port",
        port,
        "--grpc-port",
        str(quiet_port()),
        "--decisions",
        str(DECISIONS),
        "--rows",
        str(ROWS),
        env=env,
        timeout=900,
    )
    out = done.stdout
    assert done.returncode == 0, (out + done.stderr)[-4000:]
    assert "Traceback" not in done.stderr
    # Synthetic borrowers in a folder of their own, the shipped tables left alone.
    assert f"wrote {ROWS:,} synthetic applicants as" in out
    assert (tmp_path / f"source-synthetic-{ROWS}").is_dir() and not (tmp_path / "source").exists()
    # The warehouse's CamelCase and hyphenated columns were read and validated.
    assert re.search(rf"credit_bureau\s+read\s+{ROWS:,}\s+valid\s+{ROWS:,}", out), out
    # Synthetic ids are S-prefixed: never mistaken for a real borrower's.
    assert "features for S0000001 from the online store" in out
    assert "credit_risk v1 (champion), test AUC" in out
    assert f"{DECISIONS}/{DECISIONS} answered" in out
    assert f"over {DECISIONS} decisions vs champion v1's training data" in out
    # A decline's reasons are the dataset's own codes and wording.
    sample = re.search(r"e\.g\. (S\d+): decline.*\n((?:\s+R\d\d .*\n)+)", out)
    assert sample, out
    codes = {r.code for r in dataset.spec.reasons.codes.values()}
    assert {line.split()[0] for line in sample.group(2).splitlines()} <= codes

    log = read_prediction_log(tmp_path / "predictions", schema_for(dataset)).to_pandas()
    assert len(log) == DECISIONS
    assert set(log["spec_hash"]) == {dataset.spec_hash}
    assert log["borrower_id"].str.startswith("S").all()
    # Every model column was logged (drift reads them), no offer column (no levers).
    assert set(dataset.model_columns) <= set(log.columns)
    assert not [c for c in log.columns if c.startswith("counter_offer_")]
