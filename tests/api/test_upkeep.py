"""The replica's upkeep without Ray: a registry or store failure keeps what is loaded in
service and is reported; the next round recovers by itself."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

from app.predictions.log import PredictionLog
from app.predictions.schema import schema_for
from app.serving.monitorfeed import MonitorFeed
from app.serving.routing import RoutingConfig
from app.serving.upkeep import Upkeep, open_online_reader
from tests.utils.api import FixedModels
from tests.utils.datasets import german


class Flaky:
    """Wraps a real ModelSource or reader factory; fails while `down` is set."""

    def __init__(self, real) -> None:
        self.real = real
        self.down = False
        self.calls = 0

    def aliases(self):
        if self.down:
            raise ConnectionError("registry at http://127.0.0.1:9 refused the connection")
        return self.real.aliases()

    def load(self, version):
        return self.real.load(version)

    def __call__(self, settings):
        self.calls += 1
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
        PredictionLog(tmp_path, 500, schema=schema_for(german())),
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


def test_a_challenger_alias_on_the_champion_version_is_no_challenger(
    api_settings, models, tmp_path
):
    # Promotion's first write done, its second not yet: both aliases name v2.
    both = FixedModels({**models.by_alias, "champion": models.by_alias["challenger"]})
    upkeep = _upkeep(api_settings, both, open_online_reader, tmp_path)
    upkeep.load_models()
    assert upkeep.models.versions() == {"champion": "2", "challenger": None}


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


# --- a hung registry ------------------------------------------------------------------------
# Small, so these tests take seconds; a replica's default is settings.model_load_timeout_seconds.
DEADLINE = 2.0


@contextlib.contextmanager
def hung_registry():
    """An MLflow URL whose server accepts connections and never answers, as a wedged server or
    a black-holed path does: the kernel completes each handshake, nobody ever reads."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


class Timed:
    """A real ModelSource, noting when each alias read (a load's first MLflow call) started
    and ended."""

    def __init__(self, real) -> None:
        self.real = real
        self.reading: float | None = None
        self.reads: list[tuple[float, float]] = []

    def aliases(self):
        self.reading = time.monotonic()
        try:
            return self.real.aliases()
        finally:
            self.reads.append((self.reading, time.monotonic()))
            self.reading = None

    def load(self, version):
        return self.real.load(version)


async def until(check, what: str, timeout: float) -> None:
    """Poll `check` with a deadline without blocking the event loop the upkeep runs on."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s: {what}"
        await asyncio.sleep(0.02)


def _hung_settings(api_settings, url: str, deadline: float = DEADLINE):
    return api_settings.model_copy(
        update={"mlflow_tracking_uri": url, "model_load_timeout_seconds": deadline}
    )


def test_a_load_from_a_hung_registry_ends_at_its_deadline_in_one_line(api_settings, tmp_path):
    from app.training.source import RegistryModelSource

    with hung_registry() as url:
        settings = _hung_settings(api_settings, url)
        upkeep = _upkeep(settings, RegistryModelSource(settings), open_online_reader, tmp_path)
        started = time.monotonic()
        upkeep.load_models()
        took = time.monotonic() - started
    assert took < DEADLINE + 1.5, f"a load against a hung MLflow took {took:.1f} s"
    assert upkeep.model_error.startswith(
        f"model registry unreachable: RegistryError: MLflow at {url} is unreachable"
    )
    assert "timed out" in upkeep.model_error and "\n" not in upkeep.model_error
    assert upkeep.registry == "unavailable" and upkeep.models.champion is None


def test_the_store_is_reconnected_on_schedule_while_a_load_hangs(api_settings, tmp_path):
    from app.training.source import RegistryModelSource

    config = RoutingConfig(drift_monitor=False)
    factory = Flaky(open_online_reader)
    factory.down = True
    with hung_registry() as url:
        settings = _hung_settings(api_settings, url, deadline=4.0)
        source = Timed(RegistryModelSource(settings))
        upkeep = _upkeep(settings, source, factory, tmp_path)

        async def scenario() -> None:
            loop = asyncio.create_task(upkeep.run(lambda: config))
            try:
                # No champion: the first round starts a load, which MLflow never answers.
                await until(lambda: source.reading is not None, "a load under way", 5)
                before = factory.calls
                await until(lambda: factory.calls >= before + 3, "3 store reconnects", 1.5)
                factory.down = False
                await until(lambda: upkeep.store_error is None, "the store reconnected", 1.5)
                assert upkeep.reader is not None
                assert source.reading is not None and not source.reads, "the load is still hung"
                await until(lambda: upkeep.registry, "the hung load given up", 4 + 2)
            finally:
                loop.cancel()

        asyncio.run(scenario())
    assert upkeep.registry == "unavailable"
    assert upkeep.model_error.startswith("model registry unreachable: RegistryError")


def test_start_waits_for_a_hung_registry_only_until_the_deadline(api_settings, tmp_path):
    from app.training.source import RegistryModelSource

    with hung_registry() as url:
        settings = _hung_settings(api_settings, url)
        source = Timed(RegistryModelSource(settings))
        upkeep = _upkeep(settings, source, open_online_reader, tmp_path)
        started = time.monotonic()
        asyncio.run(upkeep.start())
        took = time.monotonic() - started
        assert took < DEADLINE + 2, f"start() against a hung MLflow took {took:.1f} s"
        # Started without a champion (requests get 503), the store connected, and the next
        # round loads again in the background.
        assert upkeep.models.champion is None and upkeep.model_error
        assert upkeep.reader is not None and upkeep.store_error is None

        async def next_round() -> None:
            await upkeep.step(RoutingConfig(drift_monitor=False))
            await until(lambda: source.reading is not None, "a load under way again", 2)

        asyncio.run(next_round())
