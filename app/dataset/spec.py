"""The dataset spec file (`dataset.yaml`) as pydantic models: the shape of a user's data.

Only the file's shape is checked here; references between sections (a table naming a column,
a reason for every citable column) are checked by app.dataset.checks, which sees the whole file.
Every field is documented: the README's spec reference is generated from these descriptions.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import Field, model_validator

from app.dataset.policy import Fairness, Model, Monitoring, Offers
from app.dataset.synthetic_spec import Synthetic
from app.dataset.types import Name, Scalar, SourceName, Strict

ColumnType = Literal["int", "float", "bool", "category", "string", "timestamp"]


class Column(Strict):
    """One column of the data, under its canonical name."""

    type: ColumnType = Field(
        description="`int`, `float`, `bool`, `category` (one of `categories`), `string` (ids) "
        "or `timestamp`."
    )
    source: SourceName | None = Field(
        None, description="Its name in the warehouse and the flat file (default: the same)."
    )
    description: str = Field("", description="What it means (shown in Feast and the API).")
    nullable: bool = Field(
        False, description="Missing values are kept (as missing) rather than rejected."
    )
    range: tuple[int | float, int | float] | None = Field(
        None, description="Inclusive `[low, high]` of a plausible value (`int`, `float`)."
    )
    out_of_range: Literal["reject", "missing", "clip"] = Field(
        "reject",
        description="A value outside `range`: reject the row, keep it as missing (needs "
        "`nullable`), or clip it to the range.",
    )
    missing_codes: list[Scalar] = Field(
        default_factory=list,
        description='Values that mean "unknown" (e.g. `[96, 98]`): read as missing (needs '
        "`nullable`).",
    )
    categories: list[str] | dict[str, str] | None = Field(
        None,
        description="The allowed codes of a `category`; as a mapping, code -> the reason text "
        "an applicant reads.",
    )
    protected: bool = Field(
        False,
        description="A protected attribute: never a model input nor a reason; used only to "
        "measure fairness.",
    )
    personal: bool = Field(False, description="Personal data (the log and API treat it so).")
    unit: str | None = Field(None, description="`money` (the spec's currency), `month`, ...")

    @model_validator(mode="after")
    def _consistent(self) -> Column:
        numeric = self.type in ("int", "float")
        if (self.type == "category") != (self.categories is not None):
            raise ValueError("`categories` is required for a category column and only there")
        if self.categories is not None and not self.categories:
            raise ValueError("`categories` is empty")
        if self.range is not None and not numeric:
            raise ValueError(f"`range` applies to int and float columns, not {self.type}")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"`range` low {self.range[0]:g} is above high {self.range[1]:g}")
        if self.out_of_range != "reject" and self.range is None:
            raise ValueError("`out_of_range` needs a `range`")
        if (self.missing_codes or self.out_of_range == "missing") and not self.nullable:
            raise ValueError("`missing_codes` and `out_of_range: missing` need `nullable: true`")
        return self

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(self.categories or ())


class Entity(Strict):
    """Whom a decision is about: the key every feature table is joined on."""

    name: Name = Field(description="Feast entity name (e.g. `applicant`).")
    key: Name = Field(description="Its join key, and the request body's id field.")
    description: str = Field("", description="What one entity is.")
    id_pattern: str = Field(
        r"^[A-Za-z0-9_.:-]{1,64}$", description="Regular expression an id in a request matches."
    )

    @model_validator(mode="after")
    def _pattern_compiles(self) -> Entity:
        try:
            re.compile(self.id_pattern)
        except re.error as exc:
            raise ValueError(f"`id_pattern` is not a regular expression: {exc}") from None
        return self


class Label(Strict):
    """The outcome the model predicts, stored as 1 (positive: default) or 0."""

    name: Name = Field(description="Canonical name of the 0/1 label.")
    source: SourceName | None = Field(None, description="Its name in the data (default: same).")
    positive: Scalar = Field(description="The source value meaning default (becomes 1).")
    negative: Scalar = Field(description="The source value meaning repaid (becomes 0).")
    description: str = Field("", description="What a positive means.")


class Table(Strict):
    """One warehouse table."""

    source: SourceName | None = Field(
        None, description="Its name in the warehouse (any case; quoted in Snowflake)."
    )
    role: Literal["features", "spine"] = Field(
        "features",
        description="`features`: entity attributes with history, served from Feast; `spine`: "
        "one row per application (its key, the entity key, request fields and the label).",
    )
    key: Name | None = Field(None, description="A spine's own row key (e.g. `loan_id`).")
    timestamp: Name = Field(description="Event-time column.")
    ttl_days: int | None = Field(
        None, ge=1, description="A feature row older than this is treated as missing."
    )
    description: str = Field("", description="What the table holds (shown in Feast).")
    columns: list[Name] = Field(description="Its columns besides keys and timestamp.")

    @model_validator(mode="after")
    def _role_fields(self) -> Table:
        if self.role == "spine" and (self.key is None or self.ttl_days is not None):
            raise ValueError("a spine table needs `key` and has no `ttl_days`")
        if self.role == "features" and (self.ttl_days is None or self.key is not None):
            raise ValueError("a feature table needs `ttl_days` and has no `key`")
        return self


class FlatFile(Strict):
    """One flat file (CSV or Parquet) split into the tables, with ids and event times made up
    where it has none: the embedded default and `jobs.seed`."""

    path: str = Field(description="The file, relative to the spec's directory.")
    entity_source: SourceName | None = Field(
        None, description="Column holding the entity id; absent: ids are assigned by row."
    )
    timestamp_source: SourceName | None = Field(
        None, description="Column holding the application time; absent: stamped in `window`."
    )
    id_prefix: str = Field("A", pattern=r"^[A-Z]{1,4}$", description="Prefix of assigned ids.")
    window_start: date = Field(date(2024, 1, 1), description="First assigned application day.")
    window_days: int = Field(730, ge=1, description="Length of the assigned application window.")
    lag_days: dict[Name, int] = Field(
        default_factory=dict,
        description="Per feature table: its rows are stamped up to this many days before the "
        "application.",
    )


class Sources(Strict):
    tables: dict[Name, Table] = Field(description="Warehouse tables by canonical name.")
    flat_file: FlatFile | None = Field(None, description="The data as one file.")


class Derived(Strict):
    """A feature computed from others, identically in Feast, training and serving."""

    name: Name
    expr: str | None = Field(
        None,
        description="Arithmetic over earlier columns: `+ - * / **`, comparisons, `min`, `max`, "
        "`where`, `clip`, `abs`, `log`, `log1p`, `exp`, `sqrt`, `isnan`; x/0 is missing.",
    )
    function: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="Instead of `expr`: `package.module:function`, called with a dict of "
        "float arrays (its `inputs`, NaN for missing) and returning one array; it must be "
        "importable wherever features are computed (Feast, Serve replicas, Ray workers).",
    )
    inputs: list[Name] = Field(
        default_factory=list, description="The columns `function` reads (with `function` only)."
    )
    description: str = Field("", description="What it measures.")
    unit: str | None = Field(None, description="As for columns.")

    @model_validator(mode="after")
    def _one_definition(self) -> Derived:
        if (self.expr is None) == (self.function is None):
            raise ValueError("give either `expr` or `function`")
        if self.function is not None and not self.inputs:
            raise ValueError("a `function` needs its `inputs`")
        if self.expr is not None and self.inputs:
            raise ValueError("`inputs` go with `function`; an `expr` names its own")
        return self

    @property
    def text(self) -> str:
        """The definition as one line: the expression, or `module:function(a, b)`."""
        if self.expr is not None:
            return self.expr
        return f"{self.function}({', '.join(self.inputs)})"


class Features(Strict):
    request: list[Name] = Field(
        default_factory=list,
        description="Spine columns the caller sends with each decision (the request body's "
        "`application`); none: the body is the entity id alone.",
    )
    derived: list[Derived] = Field(default_factory=list, description="Derived features.")
    exclude: list[Name] = Field(
        default_factory=list, description="Columns kept out of the model (protected always are)."
    )


class ReasonText(Strict):
    """The adverse-action reason of one model column."""

    code: str = Field(pattern=r"^[A-Z][A-Z0-9_-]{0,15}$", description="Stable code, e.g. `R05`.")
    subject: str = Field(description='Used in "No information on <subject>".')
    text: str | None = Field(
        None, description="Numeric columns: the wording, e.g. `Credit amount of {value|money}`."
    )
    text_from: dict[float, str] = Field(
        default_factory=dict,
        description="Wording by value: the entry with the largest threshold <= the value "
        "replaces `text`.",
    )


class Reasons(Strict):
    codes: dict[Name, ReasonText] = Field(
        description="One per column a reason may name: every model column but protected ones."
    )
    retired: list[str] = Field(
        default_factory=list, description="Codes once used: never to be given to a new column."
    )


class DatasetSpec(Strict):
    """A whole `dataset.yaml`."""

    spec_version: Literal[1] = Field(1, description="Format of the file.")
    name: Name = Field(description="Dataset name (Feast project suffix, model tags).")
    version: int = Field(1, ge=1, description="Bump on any change of columns, features, reasons.")
    description: str = Field("", description="What the data is.")
    currency: str = Field("", description="Shown after money amounts in reasons.")
    entity: Entity = Field(description="What a decision is about: its name and key.")
    columns: dict[Name, Column] = Field(description="Every column of the data, by canonical name.")
    label: Label = Field(description="The outcome the model predicts, and its coding.")
    sources: Sources = Field(description="Where the data lives: tables, or one flat file.")
    features: Features = Field(
        default_factory=Features, description="Request fields and derived features."
    )
    reasons: Reasons = Field(description="Adverse-action reason codes and their wording.")
    synthetic: Synthetic = Field(
        default_factory=Synthetic, description="How synthetic rows and named drifts are made."
    )
    model: Model = Field(default_factory=Model, description="Model defaults.")
    fairness: Fairness = Field(default_factory=Fairness, description="Fairness groupings.")
    offers: Offers | None = Field(None, description="Counter-offer levers (none: no offers).")
    monitoring: Monitoring = Field(default_factory=Monitoring, description="Drift checks.")

    @classmethod
    def parse(cls, data: Any) -> DatasetSpec:
        return cls.model_validate(data)
