"""The floor of benchmarks/serving.py (d): our decision path with no Ray at all, one plain
uvicorn process (one worker) serving `app.serving.api.build_api(DecisionService(settings))`.

The same DecisionService the Serve replica subclasses (app/serving/decisions.py), built the way
the in-process API tests build it, with the same settings as ours (the run's data dir, its
MLflow registry and champion, the private Redis): `start()` loads the champion from the registry
and connects the online store before the first request, and its upkeep loop (alias watch,
prediction-log flushes) runs beside the server as the replica runs it. What it lacks against
ours is only Serve: no proxy hop, no `@serve.batch` (each request is its own
`service.run([request])` on the service's one scoring thread) and no drift monitor (there is no
Ray for its actor: user_config `drift_monitor: false`).

    python benchmarks/peers/floor.py SPEC.json

SPEC.json: {"settings": {CREDIT_* overrides, as ours' build_app args}, "user_config": {...}
(serve_config.yaml's, applied as RoutingConfig with drift_monitor forced off), "host", "port"}.
uvicorn runs with its defaults but for host and port (loop and HTTP parser "auto": uvloop and
httptools when installed, access log on as Serve's is).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path


def build(spec: dict):
    from app.config import load_settings
    from app.serving.api import build_api
    from app.serving.routing import RoutingConfig
    from app.serving.service import DecisionService

    settings = load_settings(**spec["settings"])
    service = DecisionService(settings)
    config = {**spec.get("user_config", {}), "drift_monitor": False}
    service.apply_config(RoutingConfig.model_validate(config))
    app = build_api(service)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        await service.start()
        # The replica's upkeep loop, as CreditDecisions.__init__ starts it.
        task = asyncio.create_task(service.maintain())
        print(f"FLOOR_STARTED models {service.models.versions()}", flush=True)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            service.close()

    app.router.lifespan_context = lifespan
    return app


def main(argv: list[str]) -> int:
    import uvicorn

    spec = json.loads(Path(argv[1]).read_text())
    app = build(spec)
    uvicorn.run(app, host=spec.get("host", "127.0.0.1"), port=int(spec["port"]), workers=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
