"""The replica's upkeep without Ray: a registry or store failure keeps what is loaded in
service and is reported; the next round recovers by itself."""

from __future__ import annotations

import asyncio

from app.predictions.log import PredictionLog
from app.serving.monitorfeed import MonitorFeed
from app.serving.routing import RoutingConfig
from app.serving.upkeep import Upkeep, open_online_reader


class Flaky:
    """Wraps a real ModelSource or reader factory; fails while `down` is set."""

    def __init__(self, real) -> None:
        self.real = real
        self.down = False

    def aliases(self):
        if self.down:
            raise ConnectionError("registry at http://127.0.0.1:9 refused the connection")
        return self.real.aliases()

    def load(self, version):
        return self.real.load(version)

    def __call__(self, settings):
        if self.down:
            raise ConnectionError("online store refused the connection")
        return self.real(settings)


def _upkeep(settings, source, reader_factory, tmp_path) -> Upkeep:
    from app.serving.metrics import ServingMetrics

    metrics = ServingMetrics()
    return Upkeep(
        settings,
        source,
        reader_factory,
        PredictionLog(tmp_path, 500),
        metrics,
        MonitorFeed(settings, metrics.monitor_dropped),
    )


def test_registry_down_keeps_the_loaded_models_and_says_so(api_settings, models, tmp_path):
    source = Flaky(models)
    upkeep = _upkeep(api_settings, source, open_online_reader, tmp_path)
    upkeep.load_models()
    loaded = upkeep.models
    assert loaded.versions() == {"champion": "1", "challenger": "2"} and upkeep.model_error is None

    source.down = True
    upkeep.load_models()
    assert upkeep.models is loaded
    assert upkeep.model_error.startswith("model registry unreachable: ConnectionError")
    assert upkeep.model_error.endswith("(serving the loaded champion v1)")
    assert upkeep.registry == "unavailable"

    source.down = False
    upkeep.load_models()
    assert upkeep.models.versions() == loaded.versions() and upkeep.model_error is None


def test_store_unreachable_at_start_is_reported_then_reconnected(api_settings, models, tmp_path):
    factory = Flaky(open_online_reader)
    factory.down = True
    upkeep = _upkeep(api_settings, models, factory, tmp_path)
    asyncio.run(upkeep.start())
    assert upkeep.reader is None
    assert (
        upkeep.store_error == "feature store: ConnectionError: online store refused the connection"
    )

    factory.down = False
    asyncio.run(upkeep.step(RoutingConfig(drift_monitor=False)))
    assert upkeep.store_error is None
    rows = upkeep.reader.read(["A0000001", "nobody"])
    assert rows.known.tolist() == [True, False]
