"""The decision API in-process: the real FastAPI app and DecisionService, no Ray."""

from __future__ import annotations

from app.config import Settings
from app.training.model import CreditModel
from app.training.source import ServedModel


def fit_in_process(settings: Settings, frame, rounds: int = 60) -> CreditModel:
    """A real CreditModel fitted here with XGBoost alone (the same encoder, parameters and
    monotone constraints as training), for tests that need a model but not Ray Train."""
    import xgboost as xgb

    from app.training.fit import xgb_params
    from app.training.model import used_columns_of
    from app.training.preprocess import FeatureEncoder

    dataset = settings.load_dataset()
    encoder = FeatureEncoder.for_dataset(dataset)
    params = xgb_params(settings.xgb_params, settings.monotone(), encoder, 1, settings.seed)
    matrix = xgb.DMatrix(
        encoder.transform(frame), label=frame[dataset.label], feature_names=encoder.feature_names
    )
    booster = xgb.train(params, matrix, num_boost_round=rounds)
    model = CreditModel("xgboost", encoder, booster, settings.threshold())
    model.used_columns = used_columns_of(model)
    return model


class FixedModels:
    """A ModelSource over models made in the test: the deployment's injection point for
    models (the registry-backed source is tested over HTTP against real MLflow)."""

    def __init__(self, aliases: dict[str, ServedModel]) -> None:
        self.by_alias = dict(aliases)

    def aliases(self) -> dict[str, str | None]:
        return {alias: model.version for alias, model in self.by_alias.items()}

    def load(self, version: str) -> ServedModel:
        for model in self.by_alias.values():
            if model.version == version:
                return model
        raise LookupError(f"no model version {version}")
