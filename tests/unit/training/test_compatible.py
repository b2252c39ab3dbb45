"""A served version must be fed by the service's dataset spec: a version trained on another
entity, other request fields or columns the service lacks is refused, naming what differs,
and the loaded set stays as it was."""

from __future__ import annotations

import copy

import pytest
import yaml

from app.dataset import parse_dataset
from app.serving.models import IncompatibleModel, ModelSet, check_compatible, refresh_models
from app.training.source import ServedModel
from tests.utils.datasets import german


def edited(edit):
    """The German spec with one edit, as a service after a spec change would run it."""
    data = copy.deepcopy(yaml.safe_load(german().resolved_yaml))
    edit(data)
    return parse_dataset(yaml.safe_dump(data), "edited.yaml", german().directory)


class Source:
    def __init__(self, versions: dict[str, ServedModel], aliases: dict[str, str | None]):
        self.versions, self.wanted = versions, aliases

    def aliases(self) -> dict[str, str | None]:
        return self.wanted

    def load(self, version: str) -> ServedModel:
        return self.versions[version]


def test_a_version_of_the_same_spec_is_served(small_model):
    check_compatible(ServedModel("credit_risk", "1", small_model), german())


def test_another_entity_key_or_other_request_fields_are_refused_by_name(small_model):
    served = ServedModel("credit_risk", "2", small_model)

    def rename_entity(data):
        data["entity"]["key"] = "customer_id"

    with pytest.raises(IncompatibleModel) as refused:
        check_compatible(served, edited(rename_entity))
    message = str(refused.value)
    assert "v2 was trained on dataset 'german_credit'" in message
    assert "its entity key is 'applicant_id', not 'customer_id'" in message
    assert message.endswith("retrain it on the current spec")

    def retype_request_field(data):
        data["columns"]["installment_rate_in_percentage_of_disposable_income"]["type"] = "float"

    with pytest.raises(IncompatibleModel, match="its request fields are"):
        check_compatible(served, edited(retype_request_field))


def test_a_refused_challenger_leaves_the_loaded_set_in_service(small_model):
    champion = ServedModel("credit_risk", "1", small_model)
    current = ModelSet(champion=champion)

    def rename_entity(data):
        data["entity"]["key"] = "customer_id"

    source = Source(
        {"2": ServedModel("credit_risk", "2", small_model)}, {"champion": "1", "challenger": "2"}
    )
    with pytest.raises(IncompatibleModel, match="v2 was trained"):
        refresh_models(current, source, edited(rename_entity))
    assert refresh_models(current, source, german()).challenger.version == "2"
