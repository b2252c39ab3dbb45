"""The floor of the serving benchmark (d): our decision path with no Ray, one plain uvicorn
process serving `build_api(DecisionService(settings))` with the settings ours runs with, its
upkeep loop beside it, and the drift monitor off (no Ray for its actor).

    python benchmarks/peers/floor.py SPEC.json   (written by benchmarks.serving.peers)
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
