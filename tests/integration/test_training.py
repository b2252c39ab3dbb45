"""Training and registry against real Ray Train, real MLflow (SQLite) and the shipped data."""

import json
import re

import mlflow
import numpy as np
import pandas as pd
import pytest

from app.data.ingest import ingest
from app.data.warehouse import source_tables, write_local_tables
from app.domain import PREDICTION
from app.training import registry
from app.training.gates import GateFailed
from app.training.promote import PromotionRefused, promote, rollback
from app.training.pyfunc import load_credit_model, model_input
from app.training.train import train_and_register
from tests.utils import free_port, run_job, wait_for
from tests.utils.datasets import german
from tests.utils.fairlending import screened_spec
from tests.utils.training import QUICK_FIT

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


@pytest.fixture(scope="module")
def base_settings(tmp_path_factory):
    from app.config import load_settings

    settings = load_settings(data_dir=tmp_path_factory.mktemp("train"), _env_file=None)
    write_local_tables(source_tables(settings), settings)
    ingest(settings)
    return settings


@pytest.fixture(scope="module")
def first(base_settings):
    """The one full-quality fit (two workers, baseline included): the quality bar."""
    return train_and_register(base_settings)


@pytest.fixture(scope="module")
def quick(base_settings):
    """The same data, quick boosting on one worker: for fits whose subject is not quality."""
    return base_settings.model_copy(update=QUICK_FIT)


def expected_baseline_auc(settings) -> float:
    """The baseline's test AUC, fitted here on the same split the training run used."""
    from sklearn.metrics import roc_auc_score

    LABEL = german().label
    from app.training.dataset import load_training_frame, split_frame
    from app.training.fit import BASELINE_C, baseline_pipeline
    from app.training.preprocess import FeatureEncoder

    splits = split_frame(
        load_training_frame(settings),
        settings.split_method,
        settings.seed,
        settings.validation_fraction,
        settings.test_fraction,
        label=LABEL,
        key="application_id",
    )
    encoder = FeatureEncoder.for_dataset(german())
    pipeline = baseline_pipeline(BASELINE_C)
    pipeline.fit(encoder.transform(splits.train), splits.train[LABEL])
    scores = pipeline.predict_proba(encoder.transform(splits.test))[:, 1]
    return float(roc_auc_score(splits.test[LABEL], scores))


def test_first_model_is_registered_as_champion_with_its_lineage(base_settings, first):
    assert first.version == "1" and first.aliases == ["champion"]
    assert first.metrics["test_auc"] >= 0.75  # the README's quality bar on the shipped seed
    # The Ray Train worker fitted the baseline on the training split and it was scored on the
    # test split: the same figure as fitting it here.
    assert first.baseline_metrics["baseline_test_auc"] == pytest.approx(
        expected_baseline_auc(base_settings), abs=1e-4
    )
    client = registry.client(base_settings)
    run = client.get_run(first.run_id)
    assert run.data.tags["snapshot_id"] and run.data.tags["git_commit"]
    assert run.data.tags["feature_service"] == "credit_risk_v1"
    assert run.data.params["rows_train"] == "600" and run.data.params["rows_test"] == "200"
    for key in (
        "test_auc",
        "test_gini",
        "test_ks",
        "test_brier",
        "test_log_loss",
        "test_approval_rate",
        "test_tp",
        "test_fairness_age_band_min_approval_ratio",
        "baseline_test_auc",
        "validation_auc",
    ):
        assert key in run.data.metrics, key
    artifacts = {a.path for a in client.list_artifacts(first.run_id, "evaluation/test")}
    assert {
        "evaluation/test/calibration.png",
        "evaluation/test/roc.png",
        "evaluation/test/confusion_matrix.png",
    } <= artifacts
    # The shipped model's fair-lending figures: every grouping's table, reported; neither
    # screened in the shipped spec (age under Reg B; a misaligned column).
    screened = mlflow.artifacts.load_dict(f"runs:/{first.run_id}/fair_lending/test.json")
    assert screened["screened"] == [] and screened["passed"] is True
    assert set(screened["groupings"]) == {"age_band", "personal_status_and_sex"}
    young = screened["groupings"]["age_band"][0]
    assert young["group"] == "18-25" and young["n"] > 0 and 0 < young["approval_rate_ratio"] < 1
    assert run.data.metrics["test_fair_lending_breaches"] == 0
    # Cross-validated AUC with its spread, the model's and the baseline's, beside the test AUC.
    cv = run.data.metrics
    assert cv["cv_folds"] == 5 and 0.6 < cv["cv_auc_mean"] < 0.95 and cv["cv_auc_std"] > 0
    assert (
        0.6 < cv["cv_baseline_auc_mean"] < 0.95
        and first.metrics["cv_auc_mean"] == cv["cv_auc_mean"]
    )
    # The model card, logged at registration.
    assert first.card == f"runs:/{first.run_id}/model_card/card.html"
    card = mlflow.artifacts.load_dict(f"runs:/{first.run_id}/model_card/card.json")
    assert (card["version"], card["aliases"], card["gates_tag"]) == ("1", ["champion"], "passed")
    assert card["data"]["spec_hash"] == german().spec_hash and card["data"]["snapshot_id"]
    assert card["metrics"]["test"]["auc"] == run.data.metrics["test_auc"]
    assert card["metrics"]["baseline_test"]["auc"] == run.data.metrics["baseline_test_auc"]
    assert card["monotone_constraints"] == german().spec.model.monotone
    assert sum(r["outcomes"] for r in card["calibration_by_grade"]) == 200  # the test split
    assert set(card["fairness"]["groupings"]) == {"age_band", "personal_status_and_sex"}
    assert len(card["stability_reference"]["score_cuts"]) == 9  # deciles
    assert {r["code"] for r in card["reasons"]} >= {"R01", "R02"} and all(card["gates"].values())
    assert [e["action"] for e in card["alias_history"]] == ["register", "champion"]
    html = mlflow.artifacts.load_text(f"runs:/{first.run_id}/model_card/card.html")
    assert "<h2>Fair lending</h2>" in html and "5-fold cross-validated AUC" in html
    # the artifact location is absolute, under the configured root
    assert run.info.artifact_uri.startswith(base_settings.mlflow_artifact_root.as_uri())
    events = registry.history(client, base_settings.model_name)
    assert [(e.action, e.alias, e.version) for e in events] == [
        ("register", None, "1"),
        ("champion", "champion", "1"),
    ]


def test_the_version_keeps_stability_bins_frozen_from_its_training_rows(base_settings, first):
    from app.training.preprocess import FeatureEncoder
    from app.training.reference import load_reference, reference_bins

    client = registry.client(base_settings)
    logged = {a.path for a in client.list_artifacts(first.run_id, "monitoring")}
    assert {"monitoring/reference.parquet", "monitoring/bins.json"} <= logged
    reference = load_reference(base_settings, first.version)
    # What was logged is what the training rows give: nothing re-binned at check time.
    assert reference.bins == reference_bins(reference.frame, FeatureEncoder.for_dataset(german()))
    score = reference.bins[PREDICTION]
    assert len(score.expected) == 11 and sum(score.expected) == pytest.approx(1.0, abs=1e-12)
    assert all(0.08 <= share <= 0.12 for share in score.expected[:-1])  # deciles of 600 PDs
    assert reference.bins["purpose"].kind == "categorical"


def test_registered_model_scores_raw_features_with_reasons(base_settings, first):
    from app.data.snapshot import load_snapshot
    from app.training.dataset import load_training_frame

    frame = load_training_frame(base_settings).head(20)
    uri = f"models:/{base_settings.model_name}@champion"
    pyfunc = mlflow.pyfunc.load_model(uri)
    model = load_credit_model(uri)
    assert pyfunc.metadata.get_input_schema().input_names() == model.encoder.raw_columns
    out = pyfunc.predict(model_input(frame, model.encoder), params={"explain": True})
    assert out["probability_of_default"].between(0, 1).all()
    assert set(out["decision"]) <= {"approve", "decline"}
    declined = out[out["decision"] == "decline"]
    assert len(declined) and all(1 <= len(json.loads(r)) <= 4 for r in declined["reasons"])
    used = set(model.used_columns)
    assert {r["feature"] for rs in out["reasons"] for r in json.loads(rs)} <= used
    assert load_snapshot(base_settings.offline_dir, "loan_applications") is not None


def test_monotone_features_stay_monotone_and_column_order_does_not_matter(base_settings, first):
    from app.training.dataset import load_training_frame

    model = load_credit_model(f"models:/{base_settings.model_name}@champion")
    rows = load_training_frame(base_settings).head(30)
    durations = np.arange(6, 73, 6)
    for _, row in rows.iterrows():
        grid = pd.DataFrame([row] * len(durations)).assign(duration_in_month=durations)
        assert np.all(np.diff(model.predict_pd(grid)) >= -1e-9)
        ages = np.arange(19, 76, 4)
        grid = pd.DataFrame([row] * len(ages)).assign(age_in_years=ages)
        assert np.all(np.diff(model.predict_pd(grid)) <= 1e-9)
    shuffled = rows[list(reversed(rows.columns))]
    np.testing.assert_array_equal(model.predict_pd(shuffled), model.predict_pd(rows))


def test_challenger_promotion_refusal_force_and_rollback(base_settings, quick, first, tmp_path):
    # The second fit goes through a small Ray Tune search first.
    second = train_and_register(quick, trials=2, with_baseline=False)
    assert second.version == "2" and second.aliases == ["challenger"]
    client = registry.client(base_settings)
    name = base_settings.model_name

    strict = base_settings.model_copy(update={"promote_min_auc_gain": 0.5})
    with pytest.raises(PromotionRefused, match="does not beat champion v1"):
        promote(strict)
    assert registry.alias_version(client, name, "champion") == "1"
    # Every promotion screens the challenger on today's held-out rows and keeps the tables
    # in its run. A screen of 1.0 with alpha 0.999 makes any gap a breach: refused, named.
    severe = base_settings.model_copy(
        update={
            "dataset": screened_spec(tmp_path),
            "fair_lending_screen": 1.0,
            "fair_lending_alpha": 0.999,
        }
    )
    with pytest.raises(PromotionRefused, match=r"fails the fair-lending screen .*adverse impact"):
        promote(severe)
    assert registry.alias_version(client, name, "champion") == "1"
    run_id = client.get_model_version(name, "2").run_id
    kept = [a.path for a in client.list_artifacts(run_id, "fair_lending")]
    assert len([p for p in kept if p.startswith("fair_lending/promotion-")]) == 2, kept

    result = promote(base_settings, force=True)
    assert (result.champion, result.previous_champion) == ("2", "1")
    assert registry.alias_version(client, name, "champion") == "2"
    assert registry.alias_version(client, name, "challenger") is None

    # The new champion's card was logged again: its alias history has the promotion.
    card = mlflow.artifacts.load_dict(f"runs:/{run_id}/model_card/card.json")
    assert card["aliases"] == ["champion"] and card["alias_history"][-2]["action"] == "promote"

    back = rollback(base_settings)
    assert back.champion == "1"
    assert registry.alias_version(client, name, "champion") == "1"
    actions = [
        (e.action, e.alias, e.previous_version, e.version) for e in registry.history(client, name)
    ]
    assert actions[-4:] == [
        ("challenger", "challenger", None, "2"),
        ("promote", "champion", "1", "2"),
        ("clear", "challenger", "2", None),
        ("rollback", "champion", "2", "1"),
    ]


def biased_raw_file(settings, path) -> str:
    """The shipped flat file made biased against women: every woman's application is given a
    rare job value (a proxy the model reads; it never sees the protected column) and five in
    six of them default. -> the group's name."""
    raw = pd.read_csv(settings.raw_data_file())
    women = raw["personal_status_and_sex"].str.startswith("female")
    raw.loc[women, "job"] = "unemployed/ unskilled - non-resident"
    defaults = np.arange(int(women.sum())) % 6 != 0
    raw.loc[women, "creditability"] = np.where(defaults, "bad", "good")
    raw.to_csv(path, index=False)
    return raw.loc[women, "personal_status_and_sex"].iloc[0]


def test_a_model_trained_on_data_biased_against_women_is_not_registered(
    base_settings, quick, first, tmp_path
):
    """It fails the fair-lending screen (and here the AUC gate too), naming the group and its
    ratio: no version, no alias moved, the run and its screen kept in MLflow for review."""
    from app.config import load_settings

    client = registry.client(base_settings)
    name = base_settings.model_name
    before = len(client.search_model_versions(f"name='{name}'"))
    champion = registry.alias_version(client, name, "champion")
    biased = load_settings(
        data_dir=tmp_path,
        dataset=screened_spec(tmp_path),
        raw_data_path=tmp_path / "biased.csv",
        mlflow_tracking_uri=base_settings.mlflow_tracking_uri,
        mlflow_artifact_root=base_settings.mlflow_artifact_root,
        gate_min_auc=0.99,
        _env_file=None,
        **QUICK_FIT,
    )
    women = biased_raw_file(base_settings, biased.raw_data_path)
    write_local_tables(source_tables(biased), biased)
    ingest(biased)
    with pytest.raises(GateFailed) as failed:
        train_and_register(biased, with_baseline=False)
    message = str(failed.value)
    assert "gate failed (test_auc >= 0.99, personal_status_and_sex adverse impact ratio" in message
    assert re.search(
        rf"personal_status_and_sex '{re.escape(women)}' adverse impact ratio 0\.\d\d", message
    )
    assert len(client.search_model_versions(f"name='{name}'")) == before
    assert registry.alias_version(client, name, "champion") == champion
    runs = client.search_runs(
        [registry.experiment_id(base_settings, client)], "tags.gates = 'failed'"
    )
    assert runs and runs[0].data.metrics["test_fair_lending_breaches"] >= 1
    screened = mlflow.artifacts.load_dict(f"runs:/{runs[0].info.run_id}/fair_lending/test.json")
    assert screened["passed"] is False
    (breach,) = [f for f in screened["findings"] if f["breach"]]
    assert breach["group"] == women and breach["ratio"] < 0.8 and breach["p_value"] < 0.05


def test_unreachable_mlflow_fails_fast_before_training(base_settings):
    port = free_port()
    down = base_settings.model_copy(update={"mlflow_tracking_uri": f"http://127.0.0.1:{port}"})
    with pytest.raises(
        registry.RegistryError, match=f"MLflow at http://127.0.0.1:{port} is unreachable"
    ):
        train_and_register(down)


def test_a_killed_train_worker_is_replaced_and_training_finishes(quick, tmp_path):
    """A Ray Train worker process dies mid-fit: FailureConfig restarts the worker group."""
    import os
    import signal
    import threading

    import ray
    from ray.util.state import list_actors

    # A registry of its own, so this fit registers the first version whatever ran before.
    settings = quick.model_copy(
        update={
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "mlflow_artifact_root": tmp_path / "mlartifacts",
            "train_max_failures": 2,
        }
    )
    outcome: dict = {}

    def train() -> None:
        try:
            outcome["report"] = train_and_register(settings, with_baseline=False)
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    def workers(state: str) -> list:
        return list_actors(
            filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", state)],
            raise_on_missing_output=False,
            address=ray.get_runtime_context().gcs_address,  # this session's Ray, not another
        )

    before = {a.actor_id for a in workers("DEAD")}
    thread = threading.Thread(target=train)
    thread.start()
    alive = wait_for(
        lambda: workers("ALIVE") or (not thread.is_alive() and []), "a worker", 300, 0.1
    )
    assert alive, f"training ended before a worker could be killed: {outcome}"
    victim = alive[0]
    os.kill(victim.pid, signal.SIGKILL)
    thread.join(600)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["report"].aliases == ["champion"]  # the fit finished after the restart
    dead = {a.actor_id for a in workers("DEAD")} - before
    assert victim.actor_id in dead
    # The group was restarted: more workers ran than the fit needs at once.
    assert len(dead) > settings.train_workers


def test_the_model_card_job_writes_a_version_and_names_an_unknown_one(
    base_settings, first, tmp_path
):
    env = {"CREDIT_DATA_DIR": str(base_settings.data_dir)}
    done = run_job("jobs.model_card", "1", "--out", str(tmp_path / "card"), env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{tmp_path / 'card' / 'card.html'}" in done.stdout
    assert json.loads((tmp_path / "card" / "card.json").read_text())["version"] == "1"
    # An unknown version is a registry error naming it (a job prints it on one line, exit 2).
    from app.training import model_card

    with pytest.raises(registry.RegistryError, match="99"):
        model_card.card(base_settings, "99")


def test_a_large_development_set_is_cross_validated_in_a_ray_task(base_settings, monkeypatch):
    """Above LOCAL_ROWS the folds run as one Ray task: the same figures as in the driver."""
    from app.training import crossval
    from app.training.dataset import configured_split, load_training_frame
    from app.training.preprocess import FeatureEncoder

    splits = configured_split(load_training_frame(base_settings), base_settings)
    encoder = FeatureEncoder.for_dataset(german())
    params = {"objective": "binary:logistic", "max_depth": 2, "nthread": 1, "seed": 0}
    args = (base_settings, splits, encoder, params, 10, True)
    local = crossval.cross_validation(*args)
    real, seen = crossval.cross_validate_on_ray, []

    def on_ray(*task_args):
        seen.append(task_args)
        return real(*task_args)

    monkeypatch.setattr(crossval, "LOCAL_ROWS", 10)
    monkeypatch.setattr(crossval, "cross_validate_on_ray", on_ray)
    assert crossval.cross_validation(*args) == local and len(seen) == 1
