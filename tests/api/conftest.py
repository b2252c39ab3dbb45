"""The decision API in-process (no Ray): the real FastAPI app and DecisionService over the
shipped applicants in a real Feast SQLite online store, with a champion and a challenger
fitted here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.training.source import ServedModel
from tests.utils import isolated_settings
from tests.utils.api import FixedModels, fit_in_process
from tests.utils.datasets import german, validated


@pytest.fixture(scope="session")
def api_settings(tmp_path_factory):
    """The shipped data as a snapshot and materialized into the SQLite online store."""
    from app.data.snapshot import write_snapshot
    from app.data.warehouse import source_tables
    from app.features.store import materialize

    settings = isolated_settings(data_dir=tmp_path_factory.mktemp("api") / "data")
    tables = source_tables(settings)
    write_snapshot(settings.offline_dir, validated(tables), {}, {"type": "test"}, german().tables)
    materialize(settings)
    return settings


@pytest.fixture(scope="session")
def models(api_settings) -> FixedModels:
    from app.training.dataset import load_training_frame

    frame = load_training_frame(api_settings)
    shallow = api_settings.model_copy(
        update={"xgb_params": {**api_settings.xgb_params, "max_depth": 2}}
    )
    name = api_settings.model_name
    return FixedModels(
        {
            "champion": ServedModel(name, "1", fit_in_process(api_settings, frame)),
            "challenger": ServedModel(name, "2", fit_in_process(shallow, frame)),
        }
    )


@pytest.fixture(scope="session")
def service(api_settings, models):
    from app.serving.service import DecisionService

    return DecisionService(api_settings, model_source_factory=lambda _: models)


@pytest.fixture(scope="session")
def tokens(api_settings) -> dict[str, str]:
    """Bearer tokens by key id, written to the service's keys file as `jobs.api_keys` does:
    `all` (every scope, no rate limit) is what the client fixture sends."""
    from app.serving.keys import KeyFile

    keys = KeyFile.read(api_settings.api_keys_file)
    made = {
        "all": keys.add("all", ["decisions", "decisions:batch", "monitoring:read"], rate=0),
        "decide": keys.add("decide", ["decisions"], rate=0),
        "batch": keys.add("batch", ["decisions:batch"], rate=0),
        "monitor": keys.add("monitor", ["monitoring:read"], rate=0),
        # No rate of their own: the settings' rate applies.
        "limited": keys.add("limited", ["decisions"]),
        "limited-2": keys.add("limited-2", ["decisions"]),
    }
    keys.write()
    return made


@pytest.fixture(scope="session")
def client(service, tokens) -> Iterator[TestClient]:
    """HTTP requests to the app in this process (Starlette's TestClient, no server), sent
    with the `all` key."""
    from app.serving.api import build_api

    headers = {"Authorization": f"Bearer {tokens['all']}"}
    with TestClient(build_api(service), headers=headers) as http:
        http.portal.call(service.start)
        yield http
    service.close()


@pytest.fixture
def make_client(api_settings, models, tokens):
    """Another service over the same store and models, with these settings changed (limits,
    JWT); no default token."""
    from app.serving.api import build_api
    from app.serving.service import DecisionService

    opened = []

    def make(**overrides) -> TestClient:
        settings = api_settings.model_copy(update=overrides)
        service = DecisionService(settings, model_source_factory=lambda _: models)
        http = TestClient(build_api(service))
        http.__enter__()
        http.portal.call(service.start)
        opened.append((http, service))
        return http

    yield make
    for http, service in opened:
        http.__exit__(None, None, None)
        service.close()


@pytest.fixture
def routing(service):
    """Set the service's user_config for one test, as a redeploy would; restored after."""
    from app.serving.routing import RoutingConfig

    before = service.config

    def apply(**config) -> None:
        service.apply_config(RoutingConfig.model_validate(config))

    yield apply
    service.apply_config(before)
