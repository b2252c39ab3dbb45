"""The decision service for this package: 2,000 synthetic applicants in a private Redis, two
registered versions (one quick fit, its model registered twice), the app deployed once;
package-scoped so serving and monitoring tests share one (building it takes minutes) and its
replica frees the CPUs when the package ends."""

from __future__ import annotations

import pytest

from app.data.ingest import ingest
from app.data.warehouse import source_tables, write_local_tables
from app.features.store import materialize
from app.localservices import start_redis
from app.training.train import train_and_register
from tests.utils import quiet_port
from tests.utils.serving import (
    APPLICANTS,
    MONITOR,
    ServedApp,
    kill_monitor,
    service_grpc_options,
)
from tests.utils.training import register_copy


@pytest.fixture(scope="package")
def redis(tmp_path_factory):
    """Persistent, so a test can stop it and start it again with the features still there."""
    service = start_redis(data_dir=tmp_path_factory.mktemp("redis"))
    yield service
    service.stop()  # a restart swaps in the new process, so this stops whichever runs


@pytest.fixture(scope="package")
def served(tmp_path_factory, redis, ray_session):
    """2,000 synthetic applicants in a real Redis online store; v1 champion, v2 challenger."""
    from ray import serve

    port = quiet_port()  # Serve binds it later, after Ray has opened many sockets
    service = ServedApp(
        {
            "data_dir": tmp_path_factory.mktemp("serving"),
            "online_store": "redis",
            "redis_port": redis.port,
            **MONITOR,
        },
        f"http://127.0.0.1:{port}/credit",
        "credit",
    )
    settings = service.settings
    write_local_tables(
        source_tables(settings, rows=APPLICANTS),
        settings,
    )
    ingest(settings)
    materialize(settings)
    assert train_and_register(settings, with_baseline=False).version == "1"
    assert register_copy(settings, "1", "a second version to route to") == "2"

    # gRPC as serve_config.yaml has it (the Open Inference Protocol's service), on a free port.
    grpc = {**service_grpc_options(), "port": quiet_port()}
    serve.start(http_options={"host": "127.0.0.1", "port": port}, grpc_options=grpc)
    service.grpc = f"127.0.0.1:{grpc['port']}"
    service.deploy()
    yield service
    kill_monitor(settings)
    serve.shutdown()
