"""Loading a dataset spec: the shipped one loads, and every kind of mistake is reported with
the file, the path inside it and what is wrong."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from app.dataset import load_dataset
from app.errors import DatasetSpecError
from tests.utils import ROOT

SHIPPED = sorted((ROOT / "datasets").glob("*/dataset.yaml"))

MINIMAL = {
    "name": "tiny",
    "currency": "USD",
    "entity": {"name": "borrower", "key": "borrower_id"},
    "columns": {
        "income": {
            "type": "float",
            "source": "MonthlyIncome",
            "range": [0, 1e6],
            "nullable": True,
            "missing_codes": [-1],
        },
        "late": {"type": "int", "source": "Times-Late", "range": [0, 30]},
        "region": {"type": "category", "categories": {"n": "Region north", "s": "Region south"}},
        "age": {"type": "int", "range": [18, 110], "protected": True},
        "amount": {"type": "int", "range": [1, 100000]},
    },
    "label": {"name": "bad", "source": "SeriousDlqin2yrs", "positive": 1, "negative": 0},
    "sources": {
        "tables": {
            "bureau": {
                "timestamp": "event_timestamp",
                "ttl_days": 90,
                "columns": ["income", "late", "region", "age"],
            },
            "applications": {
                "role": "spine",
                "key": "application_id",
                "timestamp": "application_timestamp",
                "columns": ["amount", "bad"],
            },
        }
    },
    "features": {
        "request": ["amount"],
        "derived": [{"name": "amount_per_income", "expr": "amount / income"}],
    },
    "reasons": {
        "codes": {
            "amount": {"code": "R01", "subject": "amount", "text": "Amount {value|money}"},
            "income": {"code": "R02", "subject": "income", "text": "Income {value|money}"},
            "late": {"code": "R03", "subject": "delinquency", "text": "{value|count:time} late"},
            "region": {"code": "R04", "subject": "region"},
            "amount_per_income": {"code": "R05", "subject": "burden", "text": "{value|decimal}"},
        }
    },
}


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "dataset.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return path


def broken(tmp_path: Path, edit) -> str:
    data = copy.deepcopy(MINIMAL)
    edit(data)
    with pytest.raises(DatasetSpecError) as raised:
        load_dataset(write(tmp_path, data))
    message = str(raised.value)
    assert str(tmp_path / "dataset.yaml") in message
    return message


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.parent.name)
def test_every_shipped_spec_loads(path):
    dataset = load_dataset(path.parent)
    assert dataset.model_columns
    assert dataset.spine.label is not None
    assert len(dataset.spec_hash) == 16


def test_a_minimal_spec_gives_tables_and_model_columns(tmp_path):
    dataset = load_dataset(write(tmp_path, MINIMAL))
    assert list(dataset.tables) == ["bureau", "applications"]
    bureau = dataset.tables["bureau"]
    assert list(bureau.columns) == [
        "borrower_id",
        "event_timestamp",
        "income",
        "late",
        "region",
        "age",
    ]
    assert bureau.unique_key == ("borrower_id", "event_timestamp")
    assert bureau.source_of("late") == "Times-Late"
    assert str(bureau.columns["income"]) == "double"
    spine = dataset.spine
    assert spine.unique_key == ("application_id",)
    assert spine.source_of("bad") == "SeriousDlqin2yrs"
    assert str(spine.columns["bad"]) == "int64"
    # protected `age` is looked up (fairness) but is no model input
    assert dataset.input_columns == (
        "amount",
        "income",
        "late",
        "region",
        "age",
        "amount_per_income",
    )
    assert dataset.model_columns == ("amount", "income", "late", "region", "amount_per_income")
    assert dataset.raw_columns == (
        "MonthlyIncome",
        "Times-Late",
        "region",
        "age",
        "amount",
        "SeriousDlqin2yrs",
    )


def test_the_hash_follows_content_not_layout(tmp_path):
    first = load_dataset(write(tmp_path, MINIMAL)).spec_hash
    other = tmp_path / "other"
    other.mkdir()
    (other / "dataset.yaml").write_text(
        "# a comment\n" + yaml.safe_dump(MINIMAL, indent=4, sort_keys=False)
    )
    assert load_dataset(other).spec_hash == first
    changed = copy.deepcopy(MINIMAL)
    changed["reasons"]["codes"]["late"]["text"] = "{value|count:time} late in 2 years"
    assert load_dataset(write(tmp_path, changed)).spec_hash != first


def test_a_missing_file_or_bad_yaml_is_named(tmp_path):
    with pytest.raises(DatasetSpecError, match="dataset spec not found"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetSpecError, match=r"line \d: not valid YAML: expected ',' or ']'"):
        load_dataset(write(tmp_path, "name: x\ncolumns: [unclosed\n"))
    with pytest.raises(DatasetSpecError, match="expected a mapping"):
        load_dataset(write(tmp_path, "- a list\n"))


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: d["columns"]["late"].update(kind="int"), "columns.late.kind: not a known"),
        (lambda d: d["columns"]["late"].update(type="decimal"), "columns.late.type: Input should"),
        (lambda d: d["columns"]["region"].pop("categories"), "columns.region: `categories` is"),
        (lambda d: d["columns"]["late"].update(range=[5, 1]), "columns.late: `range` low 5"),
        (lambda d: d["columns"]["late"].update(missing_codes=[96]), "need `nullable: true`"),
        (lambda d: d["columns"]["late"].update(source=""), "columns.late.source"),
        (lambda d: d["columns"].update({"Bad Name": {"type": "int"}}), "columns.Bad Name"),
        (lambda d: d.pop("label"), "label: Field required"),
        (
            lambda d: d["sources"]["tables"]["bureau"]["columns"].append("nope"),
            "sources.tables.bureau.columns.4: 'nope' is not declared",
        ),
        (
            lambda d: d["sources"]["tables"]["bureau"]["columns"].remove("late"),
            "columns.late: is in no table",
        ),
        (
            lambda d: d["sources"]["tables"]["applications"].update(role="features"),
            "a feature table needs `ttl_days`",
        ),
        (
            lambda d: d["features"]["request"].append("income"),
            "features.request.1: 'income' is not a data column of the spine",
        ),
        (
            lambda d: d["features"]["derived"].append({"name": "x", "expr": "amount / debt"}),
            "features.derived: 'amount / debt' names 'debt'",
        ),
        (
            lambda d: d["features"]["derived"].append({"name": "x", "expr": "age * 2"}),
            "reads protected column",
        ),
        (lambda d: d["reasons"]["codes"].pop("late"), "'late' is a model input without a reason"),
        (lambda d: d["reasons"]["codes"]["late"].update(code="R01"), "R01 is also 'amount'"),
        (lambda d: d["reasons"].update(retired=["R03"]), "R03 is retired"),
        (
            lambda d: d["reasons"]["codes"].update(
                age={"code": "R09", "subject": "age", "text": "Age {value}"}
            ),
            "'age' is protected: it may not be given as a reason",
        ),
        (
            lambda d: d["reasons"]["codes"]["late"].update(text="{value|lots}"),
            "reasons.codes.late.text: {value|lots}",
        ),
        (lambda d: d["reasons"]["codes"]["income"].pop("text"), "needs its wording"),
        (
            lambda d: d.update(model={"monotone": {"region": 1}}),
            "model.monotone.region: is not a numeric model column",
        ),
        (lambda d: d.update(model={"monotone": {"late": 2}}), "model.monotone.late: Input should"),
        (
            lambda d: d.update(fairness={"groupings": {"band": {"column": "age"}}}),
            "fairness.groupings.band.edges: numeric 'age' needs band edges",
        ),
        (
            lambda d: d.update(
                fairness={"groupings": {"band": {"column": "age", "edges": [40, 18]}}}
            ),
            "`edges` must increase",
        ),
        (
            # The single gated grouping became a screen flag per grouping.
            lambda d: d.update(fairness={"groupings": {}, "gate": "age_band"}),
            "fairness.gate: not a known field (every grouping is screened now",
        ),
        (
            lambda d: d.update(offers={"amount": "amount", "term": "late"}),
            "offers.term: 'late' is not an int request field",
        ),
    ],
)
def test_a_mistake_is_reported_with_its_path(tmp_path, edit, says):
    assert says in broken(tmp_path, edit)


def test_many_mistakes_are_reported_together(tmp_path):
    def edit(d):
        for column in d["columns"].values():
            column["colour"] = "blue"

    message = broken(tmp_path, edit)
    assert "5 problems" in message
    assert message.count("not a known field") == 5


def test_model_defaults_fairness_and_levers_have_defaults(tmp_path):
    dataset = load_dataset(write(tmp_path, MINIMAL))
    model = dataset.spec.model
    # No threshold: the cost-optimal cut of the default 5:1 costs.
    assert model.decision_threshold == 1 / 6
    assert model.monotone == {} and dataset.spec.fairness.groupings == {}
    assert dataset.spec.offers is None


def test_a_registered_function_is_a_derived_feature_everywhere(tmp_path):
    import numpy as np
    import pandas as pd
    from feast.transformation.udf_rehydrate import rehydrate_udf_from_source

    from app.features.definitions import UDF_NAME, udf_source

    data = copy.deepcopy(MINIMAL)
    data["features"]["derived"].append(
        {
            "name": "income_per_person",
            "function": "tests.utils.derived:income_per_person",
            "inputs": ["income", "late"],
        }
    )
    data["reasons"]["codes"]["income_per_person"] = {
        "code": "R06",
        "subject": "income per person",
        "text": "Income per person of {value|money}",
    }
    dataset = load_dataset(write(tmp_path, data))
    assert "income_per_person" in dataset.model_columns
    assert dataset.derived_inputs == ("amount", "income", "late")
    frame = pd.DataFrame({"amount": [100.0, 50], "income": [3000.0, np.nan], "late": [2, 0]})
    expected = [1000.0, np.nan]
    arrays = {c: frame[c].to_numpy(dtype="float64") for c in ("amount", "income", "late")}
    np.testing.assert_array_equal(dataset.derive(arrays)["income_per_person"], expected)
    np.testing.assert_array_equal(dataset.derive_frame(frame)["income_per_person"], expected)
    # Feast's on-demand view runs the same function from the view's source text.
    udf = rehydrate_udf_from_source(udf_source(dataset), preferred_name=UDF_NAME)
    np.testing.assert_array_equal(udf(frame)["income_per_person"], expected)


@pytest.mark.parametrize(
    ("definition", "says"),
    [
        ({"function": "tests.utils.derived:nope", "inputs": ["income"]}, "cannot import"),
        ({"function": "tests.utils.derived:income_per_person", "inputs": ["debt"]}, "columns"),
        ({"function": "tests.utils.derived:income_per_person"}, "needs its `inputs`"),
        ({"expr": "income", "function": "tests.utils.derived:x", "inputs": ["income"]}, "either"),
    ],
)
def test_a_bad_registered_function_is_named(tmp_path, definition, says):
    def edit(d):
        d["features"]["derived"].append({"name": "extra", **definition})

    assert says in broken(tmp_path, edit)


def test_a_function_returning_the_wrong_shape_is_an_error():
    from app.dataset.expressions import ExpressionError, compile_definition

    wrong = compile_definition("tests.utils.derived:wrong_length(income)", {"income"})
    with pytest.raises(ExpressionError, match="returned shape"):
        wrong({"income": np.zeros(3)})
