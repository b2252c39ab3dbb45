"""Serving, training and promotion against the real MLflow registry (no Ray): a registry
that stops answering leaves the loaded champion deciding and /readyz saying so; one that errors
moves no champion (jobs exit 2 with one line); a version whose artifact files were changed
after registration is refused and never loaded."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.domain import CHALLENGER, CHAMPION
from app.predictions.schema import schema_for
from app.training import artifacts, registry
from app.training.model import BOOSTER_FILE
from app.training.pyfunc import ARTIFACT_KEY
from app.training.source import RegistryModelSource
from tests.utils import isolated_settings, run_job
from tests.utils.datasets import german
from tests.utils.netfault import HangingProxy
from tests.utils.registry import register_fitted, start_sqlite_mlflow_server
from tests.utils.serving import body


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` (SQLite, proxied artifacts) this test may stop."""
    server = start_sqlite_mlflow_server(tmp_path / "mlflow")
    yield server
    server.stop()


@pytest.mark.integration
def test_registry_stopped_after_loading_keeps_deciding_and_readyz_says_so(
    api_settings, models, tokens, mlflow_server
):
    from app.serving.api import build_api
    from app.serving.service import DecisionService

    settings = isolated_settings(
        data_dir=api_settings.data_dir, mlflow_tracking_uri=mlflow_server.url
    )
    assert register_fitted(settings, models.by_alias["champion"].model, "champion") == "1"
    service = DecisionService(settings)  # the registry-backed model source, as deployed
    headers = {"Authorization": f"Bearer {tokens['all']}"}
    with TestClient(build_api(service), headers=headers) as http:
        http.portal.call(service.start)
        assert service.models.versions() == {"champion": "1", "challenger": None}
        assert http.get("/v1/status").json()["registry"] == "ok"

        mlflow_server.stop()
        service.upkeep.load_models()  # the replica's next alias check, now failing

        answer = http.post("/v1/decisions", json=body(0, prefix="A"))
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"]["version"] == "1"
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ok"}
        health = http.get("/v1/status").json()  # the details, for monitoring:read callers
        assert (health["status"], health["champion"], health["registry"]) == (
            "ok",
            "1",
            "unavailable",
        )
        assert health["detail"].startswith("model registry unreachable: RegistryError")
        assert health["detail"].endswith("(serving the loaded champion v1)")
    service.close()


def test_a_tampered_version_is_refused_and_the_loaded_champion_kept(api_settings, models, tmp_path):
    from app.predictions.log import PredictionLog
    from app.serving.metrics import ServingMetrics
    from app.serving.monitorfeed import MonitorFeed
    from app.serving.upkeep import Upkeep, open_online_reader

    settings = isolated_settings(
        data_dir=api_settings.data_dir,
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        mlflow_artifact_root=tmp_path / "artifacts",
    )
    champion = models.by_alias["champion"].model
    metrics = ServingMetrics()
    upkeep = Upkeep(
        settings,
        RegistryModelSource(settings),
        open_online_reader,
        PredictionLog(tmp_path / "log", 500, schema=schema_for(german())),
        metrics,
        MonitorFeed(settings, metrics.monitor_dropped),
    )
    assert register_fitted(settings, champion, "champion") == "1"
    upkeep.load_models()
    assert upkeep.models.versions()["champion"] == "1" and upkeep.model_error is None

    # v2 is registered as training does, then one of its files is changed in the store.
    assert register_fitted(settings, champion, None) == "2"
    client = registry.client(settings)
    logged_id = client.get_model_version(settings.model_name, "2").source.rsplit("/", 1)[-1]
    (model_dir,) = [p.parent for p in (tmp_path / "artifacts").rglob(f"{logged_id}/**/MLmodel")]
    relative = f"artifacts/{ARTIFACT_KEY}/{BOOSTER_FILE}"
    booster = model_dir / relative
    booster.write_bytes(booster.read_bytes().replace(b"{", b"{ ", 1))

    with pytest.raises(artifacts.ArtifactRefused, match=f"credit_risk v2: .*changed {relative}"):
        RegistryModelSource(settings).load("2")
    registry.move_alias(client, settings.model_name, "champion", "2", "promote", "test")
    upkeep.load_models()
    assert upkeep.models.versions()["champion"] == "1"
    assert upkeep.model_error.startswith("model refused: credit_risk v2")
    assert upkeep.model_error.endswith("(serving the loaded champion v1)")
    assert upkeep.registry == "ok"


@contextlib.contextmanager
def aliases_unreadable(registry_db: Path):
    """The registry store erroring on every read of a model (its aliases table gone) while
    the server and its tracking store answer, as a failing database behind MLflow does."""
    with sqlite3.connect(registry_db) as db:
        db.execute("ALTER TABLE registered_model_aliases RENAME TO aliases_away")
    try:
        yield
    finally:
        with sqlite3.connect(registry_db) as db:
            db.execute("ALTER TABLE aliases_away RENAME TO registered_model_aliases")


@pytest.mark.integration
def test_registry_erroring_moves_no_champion_in_training_or_promotion(
    api_settings, models, mlflow_server
):
    from app.training.registry import register as register_version

    settings = isolated_settings(
        data_dir=api_settings.data_dir, mlflow_tracking_uri=mlflow_server.url
    )
    name = settings.model_name
    model = models.by_alias["champion"].model
    assert register_fitted(settings, model, CHAMPION) == "1"
    assert register_fitted(settings, model, CHALLENGER) == "2"
    client = registry.client(settings)
    logged = client.get_model_version(name, "2").source
    before = [e.__dict__ for e in registry.history(client, name)]
    env = {
        "CREDIT_DATA_DIR": str(settings.data_dir),
        "CREDIT_MLFLOW_TRACKING_URI": mlflow_server.url,
    }

    with aliases_unreadable(mlflow_server.data_dir / "registry.db"):
        # Training's registration step: the champion lookup fails, so nothing is registered
        # (it used to read "no champion" and make the new version champion, skipping the gate).
        with pytest.raises(registry.RegistryError, match="is unreachable or erroring"):
            register_version(settings, client, logged, "run", {"test_auc": 0.9}, {}, None)
        for args in (["jobs.promote"], ["jobs.promote", "--force"]):
            done = run_job(*args, env=env, timeout=300)
            assert done.returncode == 2, done.stderr
            assert "Traceback" not in done.stderr
            (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
            assert line.startswith(
                f"error: MLflow at {mlflow_server.url} is unreachable or erroring"
            )

    assert registry.aliases(client, name) == {"champion": "1", "challenger": "2"}
    assert len(client.search_model_versions(f"name='{name}'")) == 2
    assert [e.__dict__ for e in registry.history(client, name)] == before


def test_a_traffic_tag_above_the_bound_is_ignored_audited_and_shown(api_settings, models, tmp_path):
    settings = isolated_settings(
        data_dir=api_settings.data_dir,
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        mlflow_artifact_root=tmp_path / "artifacts",
    )
    model = models.by_alias["champion"].model
    register_fitted(settings, model, CHAMPION)
    register_fitted(settings, model, CHALLENGER, tags={"traffic": "weight=0.5"})
    source = RegistryModelSource(settings)
    served = source.load("2")
    assert served.traffic is None
    assert "traffic='weight=0.5' ignored: above serve_max_tag_traffic 0.1" in served.traffic_note
    bounded = RegistryModelSource(settings.model_copy(update={"serve_max_tag_traffic": 0.5}))
    assert bounded.load("2").traffic == "weight=0.5"
    (event,) = [
        e
        for e in registry.history(registry.client(settings), "credit_risk")
        if e.action == "traffic"
    ]
    assert (event.version, event.reason.split(" at ")[0]) == ("2", "traffic=weight=0.5")


def test_loading_a_registered_version_leaves_sys_path_as_it_was(api_settings, models, tmp_path):
    settings = isolated_settings(
        data_dir=api_settings.data_dir,
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        mlflow_artifact_root=tmp_path / "artifacts",
    )
    register_fitted(settings, models.by_alias["champion"].model, CHAMPION)
    source = RegistryModelSource(settings)
    source.aliases()  # the client and MLflow's imports, before sys.path is taken
    before = list(sys.path)
    for _ in range(2):
        served = source.load("1")
        # MLflow puts each load's code/ directory (in a temporary copy, deleted after the
        # load) in front of every import path; none may stay behind.
        assert sys.path == before
    assert served.version == "1" and served.model.kind == "xgboost"


class HangsWhileLoading:
    """The registry-backed source, with MLflow hanging (every connection answered by nobody)
    once `armed`, between the alias read and the version's own calls: a registry that answers
    polls but wedges under a download."""

    def __init__(self, real: RegistryModelSource, proxy) -> None:
        self.real = real
        self.proxy = proxy
        self.armed = False
        self.hung_at: float | None = None

    def aliases(self):
        return self.real.aliases()

    def load(self, version):
        if self.armed:
            self.hung_at = time.monotonic()
            self.proxy.hang()
        return self.real.load(version)


# Small, so the test takes seconds; a replica's default is settings.model_load_timeout_seconds.
DEADLINE = 4.0


@pytest.mark.integration
def test_a_registry_hung_mid_load_costs_that_load_its_deadline_and_nothing_else(
    api_settings, models, mlflow_server
):
    """A real `mlflow server` behind a proxy that hangs: the replica's upkeep keeps
    reconnecting the store and deciding with v1 while the load of v2 hangs, the load ends
    by its deadline with one line on /readyz, and a new replica's start() is bounded too."""
    from app.serving.bodies import api_models
    from app.serving.service import DecisionService
    from app.serving.upkeep import open_online_reader
    from tests.api.test_upkeep import Flaky, until

    proxy = HangingProxy(mlflow_server.port)
    try:
        url = f"http://127.0.0.1:{proxy.port}"
        settings = isolated_settings(
            data_dir=api_settings.data_dir,
            mlflow_tracking_uri=url,
            model_load_timeout_seconds=DEADLINE,
        )
        champion = models.by_alias["champion"].model
        assert register_fitted(settings, champion, CHAMPION) == "1"
        source = HangsWhileLoading(RegistryModelSource(settings), proxy)
        factory = Flaky(open_online_reader)
        service = DecisionService(settings, lambda _: source, factory)
        request = api_models(service.dataset).DecisionRequest.model_validate(body(0, prefix="A"))

        async def scenario() -> None:
            await service.start()
            assert service.models.versions() == {"champion": "1", "challenger": None}
            assert register_fitted(settings, champion, CHALLENGER) == "2"
            source.armed, factory.down = True, True
            service.upkeep.store_failed("the store is down for this test")
            service.upkeep.reader = None
            service.upkeep.recheck_aliases()
            loop = asyncio.create_task(service.maintain())
            try:
                await until(lambda: source.hung_at is not None, "the load of v2 under way", 5)
                before = factory.calls
                await until(lambda: factory.calls >= before + 3, "3 store reconnects", 1.5)
                factory.down = False
                await until(lambda: service.upkeep.store_error is None, "store back", 1.5)
                # Still loading v2 against a hung MLflow, and deciding with v1.
                (outcome,) = await service.run([request])
                assert outcome.status == 200, outcome.detail
                assert outcome.response.model.version == "1"
                await until(
                    lambda: service.upkeep.registry == "unavailable",
                    "the hung load given up",
                    DEADLINE + 3,
                )
                took = time.monotonic() - source.hung_at
                assert took < DEADLINE + 1.5, f"the hung load took {took:.1f} s"
            finally:
                loop.cancel()

        asyncio.run(scenario())
        error = service.upkeep.model_error
        assert error.startswith(f"model registry unreachable: RegistryError: MLflow at {url}")
        assert error.endswith("(serving the loaded champion v1)") and "\n" not in error
        assert service.models.versions() == {"champion": "1", "challenger": None}

        # A replica started now, with MLflow still hung: start() returns by the deadline,
        # without a champion (503), and goes on loading in the background.
        replica = DecisionService(settings)
        started = time.monotonic()
        asyncio.run(replica.start())
        took = time.monotonic() - started
        assert took < DEADLINE + 2, f"start() against a hung MLflow took {took:.1f} s"
        assert replica.models.champion is None
        (outcome,) = asyncio.run(replica.run([request]))
        assert outcome.status == 503
        replica.close()
        service.close()
    finally:
        proxy.close()
