"""Training helpers for tests whose subject is not the fit itself."""

from __future__ import annotations

# Boosting settings that fit the shipped data on one worker in a fraction of a second (the fit's
# cost is then Ray Train's start-up alone): for tests of registry, serving and job mechanics.
# Model quality is asserted once, on a full-quality fit, in tests/integration/test_training.py.
QUICK_FIT = {"train_workers": 1, "num_boost_round": 200, "early_stopping_rounds": 20}


def register_copy(settings, version: str, reason: str) -> str:
    """Register the model of `version` again, as the challenger, without fitting: for tests
    that need a second version only to route to, promote or roll back."""
    from app.domain import CHALLENGER
    from app.training import registry

    client = registry.client(settings)
    source = client.get_model_version(settings.model_name, version).source
    # register_version digests the files, as training does: serving refuses a version without.
    new = registry.register_version(settings, client, source, {}, reason)
    registry.record(client, settings.model_name, "register", None, new, None, reason)
    registry.move_alias(client, settings.model_name, CHALLENGER, new, "challenger", reason)
    return new
