"""Production registry: training against a real `mlflow server` on PostgreSQL with proxied
artifacts, promotion and rollback, a direct PostgreSQL tracking URI, and no credential in MLflow.

Needs PostgreSQL on 127.0.0.1:5432 (trust auth for `postgres`); it creates and drops its own
database. Without one it skips, unless CREDIT_TEST_REQUIRE_POSTGRES=1 (CI), where it fails.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest

from app.config import Settings, load_settings
from app.data.ingest import ingest
from app.data.warehouse import source_tables, write_local_tables
from app.domain import CHALLENGER, CHAMPION
from app.localservices import ManagedProcess, start_mlflow_server
from app.training import registry
from app.training.dataset import load_training_frame
from app.training.promote import PromotionRefused, promote, rollback
from app.training.pyfunc import load_credit_model, model_input
from app.training.train import TrainReport, train_and_register
from tests.utils import isolated_settings
from tests.utils.postgres import database_url, fresh_database, query
from tests.utils.training import QUICK_FIT, register_copy

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]

SERVER_START_SECONDS = 300  # migrations on a fresh database; this machine's 2 cores are shared

SF_PASSWORD = "planted-sf-pw-4b7d"
REDIS_PASSWORD = "planted-redis-pw-e19a"
# Trust auth ignores it; it only has to travel through every URI without being shown.
PG_PASSWORD = "planted-pg-pw-73c5"
SECRETS = (SF_PASSWORD, REDIS_PASSWORD, PG_PASSWORD)


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret} leaked into {where}"


@dataclass
class Server:
    """The `mlflow server` process and the database it keeps its runs and registry in."""

    process: ManagedProcess
    database: str

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def artifacts(self) -> Path:
        return self.process.data_dir / "artifacts"

    @property
    def log(self) -> Path:
        return self.process.log_path


@pytest.fixture(scope="module")
def database():
    with fresh_database() as name:
        yield name


@pytest.fixture(scope="module")
def mlflow_server(database, tmp_path_factory):
    """`mlflow server` on the database, artifacts proxied to a directory of its own; started
    here, waited for by `settings` after ingest, so its migrations overlap with that."""
    backend = database_url(database, PG_PASSWORD)
    root = tmp_path_factory.mktemp("mlflow_server")
    server = start_mlflow_server(root, backend, wait=False)
    try:
        yield Server(server, database)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def settings(mlflow_server, tmp_path_factory) -> Settings:
    """Client settings: the server, one training worker, and planted secrets that must not
    travel anywhere (module-scoped, so not `make_settings`, which is per test)."""
    settings = isolated_settings(
        data_dir=tmp_path_factory.mktemp("production") / "data",
        mlflow_tracking_uri=mlflow_server.url,
        **QUICK_FIT,
        snowflake_password=SF_PASSWORD,
        redis_password=REDIS_PASSWORD,
    )
    write_local_tables(source_tables(settings), settings)
    ingest(settings)
    mlflow_server.process.wait_http("/health", SERVER_START_SECONDS)
    return settings


@dataclass
class Trained:
    report: TrainReport
    output: str


def _train(settings: Settings) -> Trained:
    """Train and register, keeping everything printed or logged on the way."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    loggers = [logging.getLogger(), logging.getLogger("mlflow")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            report = train_and_register(settings, with_baseline=False)
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    return Trained(report, out.getvalue())


@pytest.fixture(scope="module")
def champion(settings) -> Trained:
    return _train(settings)


def _database_text(database: str) -> str:
    """Every row of every MLflow table as text."""
    tables = [
        t
        for (t,) in query(
            database,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
        )
    ]
    assert {"runs", "params", "tags", "model_versions", "registered_model_aliases"} <= set(tables)
    return "\n".join(str(row) for t in tables for row in query(database, f'SELECT * FROM "{t}"'))


def test_champion_is_registered_in_postgres_with_proxied_artifacts(
    settings, champion, mlflow_server
):
    report = champion.report
    assert report.version == "1" and report.aliases == ["champion"]
    name = settings.model_name

    # The registry rows are in PostgreSQL, not in a file next to the client.
    versions = query(
        mlflow_server.database,
        "SELECT version, run_id, source FROM model_versions WHERE name = %s",
        name,
    )
    assert [(v, r) for v, r, _ in versions] == [(1, report.run_id)]
    aliases = query(
        mlflow_server.database,
        "SELECT alias, version FROM registered_model_aliases WHERE name = %s",
        name,
    )
    assert aliases == [("champion", 1)]
    assert not (settings.data_dir / "mlflow.db").exists()

    client = registry.client(settings)
    assert registry.alias_version(client, name, CHAMPION) == "1"
    run = client.get_run(report.run_id)
    # The server chose the location (no artifact root in the settings): proxied, and the files
    # are under its --artifacts-destination, none on the client's side.
    assert settings.mlflow_artifact_root is None
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    logged = {
        p.relative_to(mlflow_server.artifacts).as_posix()
        for p in mlflow_server.artifacts.rglob("*")
    }
    assert any(p.endswith("/MLmodel") for p in logged)
    assert any(p.endswith("evaluation/test/roc.png") for p in logged)
    assert not (settings.data_dir / "mlartifacts").exists()

    # And the model comes back from the registry by alias, and scores.
    uri = f"models:/{name}@champion"
    model = load_credit_model(uri)
    frame = load_training_frame(settings).head(20)
    out = mlflow.pyfunc.load_model(uri).predict(model_input(frame, model.encoder))
    assert len(out) == 20 and out["probability_of_default"].between(0, 1).all()


def test_no_credential_reaches_mlflow_or_the_output(settings, champion, mlflow_server):
    client = registry.client(settings)
    run = client.get_run(champion.report.run_id)
    assert run.data.params and run.data.tags
    assert_no_secret(str(run.data.params), "the run's params")
    assert_no_secret(str(run.data.tags), "the run's tags")
    assert_no_secret(champion.output, "what training printed or logged")
    assert_no_secret(mlflow_server.log.read_text(errors="replace"), "the mlflow server's log")
    assert_no_secret(_database_text(mlflow_server.database), "the MLflow database")
    for path in mlflow_server.artifacts.rglob("*"):
        if path.is_file():
            assert_no_secret(path.read_bytes().decode("utf-8", "replace"), str(path))


def test_challenger_promotion_and_rollback_through_the_server(settings, champion, mlflow_server):
    name = settings.model_name
    # A second version to move aliases between (what is tested is the registry through the
    # server; the fit and its logging through the server are the champion's).
    assert register_copy(settings, "1", "a second version to promote") == "2"
    client = registry.client(settings)
    assert registry.alias_version(client, name, CHALLENGER) == "2"

    # Unforced promotion loads both versions' artifacts through the server to compare them.
    strict = settings.model_copy(update={"promote_min_auc_gain": 0.5})
    with pytest.raises(PromotionRefused, match="does not beat champion v1"):
        promote(strict)
    assert promote(settings, force=True).champion == "2"
    assert registry.alias_version(client, name, CHALLENGER) is None
    assert query(
        mlflow_server.database,
        "SELECT alias, version FROM registered_model_aliases WHERE name = %s",
        name,
    ) == [("champion", 2)]

    assert rollback(settings).champion == "1"
    assert registry.alias_version(client, name, CHAMPION) == "1"
    actions = [(e.action, e.alias, e.version) for e in registry.history(client, name)]
    assert actions[-4:] == [
        ("challenger", "challenger", "2"),
        ("promote", "champion", "2"),
        ("clear", "challenger", None),
        ("rollback", "champion", "1"),
    ]


def test_direct_postgres_tracking_uri_reads_the_same_registry(settings, champion, mlflow_server):
    """No server: MLflow's SQL store on the same database, password in the URI (masked)."""
    uri = database_url(mlflow_server.database, PG_PASSWORD)
    direct = load_settings(data_dir=settings.data_dir, mlflow_tracking_uri=uri, _env_file=None)
    assert PG_PASSWORD not in str(direct) and PG_PASSWORD not in str(direct.describe())
    # A database URI leaves the artifact location to the client (the experiment exists already).
    assert direct.mlflow_artifact_root == settings.data_dir / "mlartifacts"
    try:
        client = registry.client(direct)
        name = settings.model_name
        versions = client.search_model_versions(f"name='{name}'")
        assert {str(v.version) for v in versions} >= {"1"}
        champion_version = registry.alias_version(client, name, CHAMPION)
        assert champion_version == registry.alias_version(registry.client(settings), name, CHAMPION)
        assert registry.version_metrics(client, name, "1")["test_auc"] > 0.7
        assert (
            registry.experiment_id(direct, client)
            == client.get_run(champion.report.run_id).info.experiment_id
        )
        assert registry.history(client, name)[0].action == "register"
    finally:
        registry.client(settings)  # leave MLflow's process-wide URI on the server
    assert_no_secret(_database_text(mlflow_server.database), "the MLflow database")
