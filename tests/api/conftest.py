"""The decision API in-process (no Ray): the real FastAPI app and DecisionService over the
shipped applicants in a real Feast SQLite online store, with a champion and a challenger
fitted here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.serving.models import ServedModel
from tests.utils import isolated_settings
from tests.utils.api import FixedModels, fit_in_process


@pytest.fixture(scope="session")
def api_settings(tmp_path_factory):
    """The shipped data as a snapshot and materialized into the SQLite online store."""
    from app.data.snapshot import write_snapshot
    from app.data.warehouse import source_tables
    from app.features.store import materialize

    settings = isolated_settings(data_dir=tmp_path_factory.mktemp("api") / "data")
    tables = source_tables(settings.raw_data_path, settings.seed)
    write_snapshot(settings.offline_dir, tables, {}, {"type": "test"})
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
def client(service) -> Iterator[TestClient]:
    """HTTP requests to the app in this process (Starlette's TestClient, no server)."""
    from app.serving.api import build_api

    with TestClient(build_api(service)) as http:
        http.portal.call(service.start)
        yield http
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
