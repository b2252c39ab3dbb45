"""The decision API's bodies for one dataset spec: the request fields typed from their columns,
the entity key named as the spec names it, the counter-offer made of the spec's levers.

The service works on the shapes of app.serving.schemas (`entity_id`, an application with the
request fields as attributes); these subclasses only rename and type them at the HTTP edge, so
the OpenAPI schema at /docs is the dataset's own (for the shipped German credit spec, exactly
the body it had before there were specs).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from app.dataset import Dataset
from app.dataset.spec import Column
from app.serving import schemas

_PYTHON = {"int": int, "float": float, "bool": bool, "string": str}
# Responses are built by the service under the field names and sent under the spec's names.
_OUT = ConfigDict(serialize_by_alias=True, validate_by_name=True, validate_by_alias=True)


_OFFER = schemas.DecisionResponse.model_fields["counter_offer"].description


class _Response(schemas.DecisionResponse):
    model_config = _OUT


class _BatchError(schemas.BatchError):
    model_config = _OUT


class _Offer(schemas.CounterOffer):
    # A spec's offer has exactly its levers.
    model_config = ConfigDict(extra="forbid")


class _BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ApiModels:
    """The body classes of one dataset spec (built once per spec by `api_models`)."""

    dataset: Dataset
    DecisionRequest: type[schemas.DecisionRequest]
    DecisionResponse: type[schemas.DecisionResponse]
    BatchRequest: type[BaseModel]
    BatchResponse: type[BaseModel]

    def body(self, answer: schemas.DecisionResponse) -> dict[str, Any]:
        """The answer as JSON-ready data under the spec's names (for a hand-built response;
        a route's response model does the same for what it returns)."""
        response = self.DecisionResponse.model_validate(answer.model_dump())
        return response.model_dump(mode="json", by_alias=True)


def _description(column: Column, currency: str) -> str:
    # Money in the spec's currency; other units are in the wording already.
    text = column.description.rstrip(".") or "Request field"
    return f"{text} ({currency})." if column.unit == "money" and currency else f"{text}."


def _field(column: Column, currency: str) -> tuple[Any, Any]:
    """One request field: its type, bounds and description from the spec's column."""
    kind: Any = (
        Literal[tuple(column.codes)]  # type: ignore[misc]
        if column.type == "category"
        else _PYTHON[column.type]
    )
    bounds: dict[str, Any] = {}
    if column.range is not None and column.type in ("int", "float"):
        bounds = {"ge": column.range[0], "le": column.range[1]}
    described = Field(description=_description(column, currency), **bounds)
    if column.nullable:
        return kind | None, Field(None, description=described.description, **bounds)
    return kind, described


@lru_cache(maxsize=16)
def api_models(dataset: Dataset) -> ApiModels:
    """Request, response and batch bodies of `dataset`'s decision API."""
    spec = dataset.spec
    key = dataset.entity_key
    fields = {c: _field(spec.columns[c], spec.currency) for c in dataset.request_columns}
    application = create_model(
        "Application",
        __base__=schemas.Application,
        __doc__=f"What the applicant asks for: the request fields of the dataset {dataset.name!r}.",
        **fields,
    )
    # The spec's own id pattern (default: the same as the base body's).
    ids = {**schemas.ENTITY_ID, "pattern": spec.entity.id_pattern}
    entity = (str, Field(alias=key, description=spec.entity.description, **ids))
    # Without request fields the body is the entity key alone; `application` may be left out.
    body = (application, ...) if fields else (application | None, None)
    request = create_model(
        "DecisionRequest", __base__=schemas.DecisionRequest, entity_id=entity, application=body
    )
    offer: Any = None
    if spec.offers is not None:
        levers = {
            c: (int, Field(ge=1, description=_description(spec.columns[c], spec.currency)))
            for c in (spec.offers.amount, spec.offers.term)
        }
        offer = create_model(
            "CounterOffer", __base__=_Offer, __doc__=schemas.CounterOffer.__doc__, **levers
        )
    response = create_model(
        "DecisionResponse",
        __base__=_Response,
        entity_id=(str, Field(alias=key)),
        # No levers: no offer is ever made, and the schema says so (always null).
        counter_offer=(offer | None if offer else None, Field(None, description=_OFFER)),
    )
    batch_request = create_model(
        "BatchRequest", __base__=_BatchRequest, requests=(list[request], Field(min_length=1))
    )
    error = create_model("BatchError", __base__=_BatchError, entity_id=(str, Field(alias=key)))
    batch_response = create_model(
        "BatchResponse", decisions=(list[response], ...), errors=(list[error], ...)
    )
    return ApiModels(dataset, request, response, batch_request, batch_response)
