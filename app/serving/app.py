"""The Serve application builder that `serve_config.yaml` and `serve run` import."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from ray.serve import Application

from app.config import load_settings
from app.serving.decisions import CreditDecisions


class AppArgs(BaseModel):
    """`args:` of the application in serve_config.yaml (or `serve run ... key=value`)."""

    model_config = ConfigDict(extra="forbid")

    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the CREDIT_* settings (e.g. data_dir, online_store); the "
        "rest comes from the environment of the process that builds the app.",
    )


def build_app(args: AppArgs) -> Application:
    """Settings are read once here and shipped to every replica, so all replicas agree."""
    if isinstance(args, dict):  # `serve.run(build_app({...}))` from Python
        args = AppArgs.model_validate(args)
    settings = load_settings(**args.settings)
    return CreditDecisions.bind(settings)
