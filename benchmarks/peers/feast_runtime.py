"""The seed stack's decision service as an MLServer custom runtime, peer (c) of the serving
benchmark: per request Feast's `get_online_features` on the feature service, then the
project's `CreditModel.score` (PD, decision, reason codes). V2 protocol: one BYTES input
`request` holding our API's request bodies, one BYTES output `decision` with the answers.
Model settings: `uri` = a CreditModel directory, `extra` = {"feature_repo", "feature_service"}.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlserver import MLModel
from mlserver.codecs import StringCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse


class FeastDecisionRuntime(MLModel):
    """Feast online features -> CreditModel.score -> PD, decision and reason codes."""

    async def load(self) -> bool:
        from feast import FeatureStore

        from app.training.model import CreditModel

        parameters = self.settings.parameters
        extra = parameters.extra or {}
        self.store = FeatureStore(repo_path=str(extra["feature_repo"]))
        self.feature_service = self.store.get_feature_service(extra["feature_service"])
        # The materialized views' features: all missing means Feast knows no such applicant.
        materialized = {view.name for view in self.store.list_feature_views()}
        self.stored = [
            feature.name
            for projection in self.feature_service.feature_view_projections
            if projection.name in materialized
            for feature in projection.features
        ]
        self.credit_model = CreditModel.load(Path(parameters.uri))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        texts = StringCodec.decode_input(payload.inputs[0])
        requests = [json.loads(text) for text in texts]
        rows = [{"applicant_id": r["applicant_id"], **r["application"]} for r in requests]
        frame = self.store.get_online_features(
            features=self.feature_service, entity_rows=rows
        ).to_df()
        # The model sees the application's request fields next to the looked-up features.
        frame = frame.assign(
            **{
                column: [row[column] for row in rows]
                for column in rows[0]
                if column != "applicant_id"
            }
        )
        unknown = frame[self.stored].isna().all(axis=1)
        if unknown.any():
            missing = [rows[i]["applicant_id"] for i in unknown[unknown].index.tolist()]
            raise InferenceError(f"unknown applicant_id {missing[0]!r}: no features")
        scored = self.credit_model.score(frame)
        answers = [
            json.dumps(
                {
                    "applicant_id": row["applicant_id"],
                    "probability_of_default": float(pd_score),
                    "decision": str(decision),
                    "reasons": reasons,
                }
            )
            for row, pd_score, decision, reasons in zip(
                rows,
                scored["probability_of_default"].tolist(),
                scored["decision"].tolist(),
                scored["reasons"].tolist(),
                strict=True,
            )
        ]
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[StringCodec.encode_output("decision", answers)],
        )
