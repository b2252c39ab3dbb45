"""The credit-decision Serve deployment: the DecisionService behind FastAPI (/v1 and the Open
Inference Protocol's /v2) and gRPC (the protocol's GRPCInferenceService), with batching.

Both variants live in this one deployment: a handle hop costs ~10-15 ms here, more than a
decision, so the router, feature fetch and models share a replica and a request crosses
exactly one hop (proxy -> replica).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import ray
from ray import serve

from app.config import Settings
from app.serving.api import build_api
from app.serving.auth import Caller
from app.serving.idempotency import Claim
from app.serving.routing import RoutingConfig
from app.serving.schemas import DecisionRequest
from app.serving.service import NOBODY, DecisionService, Outcome
from app.serving.v2grpc import InferenceServicer
from app.training.source import ModelSource, RegistryModelSource


@serve.deployment(
    name="CreditDecisions",
    # Fractional CPU so two replicas, the drift monitor and a retraining worker fit on 2
    # cores; the real limit is max_ongoing_requests and autoscaling (serve_config.yaml).
    ray_actor_options={"num_cpus": 0.25},
    max_ongoing_requests=32,
    health_check_period_s=10,
    health_check_timeout_s=30,
)
@serve.ingress()
class CreditDecisions(DecisionService, InferenceServicer):
    async def __init__(
        self,
        settings: Settings,
        model_source_factory: Callable[[Settings], ModelSource] = RegistryModelSource,
        reader_factory: Callable[[Settings], Any] | None = None,
    ) -> None:
        replica = serve.get_replica_context().replica_id.unique_id
        super().__init__(settings, model_source_factory, reader_factory, replica)
        self.node = ray.get_runtime_context().get_node_id()
        await self.start()
        self._background = asyncio.create_task(self.maintain())

    def __serve_build_asgi_app__(self):
        # Built in the replica around this instance (Serve calls it after __init__).
        return build_api(self)

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply a new `user_config` (serve deploy): weights, shadow, thresholds, batching."""
        config = RoutingConfig.model_validate(user_config or {})
        self.apply_config(config)
        self._decide_batched.set_max_batch_size(config.batch_max_size)
        self._decide_batched.set_batch_wait_timeout_s(config.batch_wait_timeout_s)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def _decide_batched(
        self, requests: list[DecisionRequest], callers: list[Caller], claims: list[Claim | None]
    ) -> list[Outcome]:
        # Concurrent requests share one feature-store round trip and one model call (and one
        # key-store round trip for their Idempotency-Keys).
        return await self.run(requests, callers, claims)

    async def decide_one(
        self, request: DecisionRequest, caller: Caller = NOBODY, claim: Claim | None = None
    ) -> Outcome:
        return await self._decide_batched(request, caller, claim)

    async def check_health(self) -> None:
        # Serve calls this every health_check_period_s; raising has the replica replaced.
        problem = self.health_problem()
        if problem:
            raise RuntimeError(problem)

    def __del__(self) -> None:
        # Serve calls this on graceful shutdown: write what is still buffered.
        self.close()
