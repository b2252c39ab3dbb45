"""The lender's sections of a dataset spec: model defaults, fairness groupings and counter-offer
levers. No other system's data declaration has these; their cross-section checks are in
app.dataset.checks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from app.dataset.types import Name, Strict


class Grouping(Strict):
    """A way to split applicants into groups for the fairness report."""

    column: Name = Field(description="The column the groups come from (often a protected one).")
    edges: list[float] | None = Field(
        None,
        min_length=1,
        description="Numeric columns: left-closed band edges, e.g. `[18, 26, 36, 51]` gives "
        "18-25, 26-35, 36-50 and 51+; values below the first edge form no group. Categories "
        "are their own groups and take no edges.",
    )
    labels: list[str] | None = Field(
        None, description="Names of the bands, one per edge (default: from the edges)."
    )
    screen: bool = Field(
        True,
        description="Apply the fair-lending screen (`CREDIT_FAIR_LENDING_SCREEN`) to these "
        "groups. `false` keeps the grouping reported and monitored but never refuses a model "
        "on it: for a characteristic the lender may lawfully score, e.g. age in an empirically "
        "derived system that never scores the elderly down (Reg B, 12 CFR 1002.6(b)(2)).",
    )

    @model_validator(mode="after")
    def _bands(self) -> Grouping:
        if self.edges is not None and sorted(set(self.edges)) != self.edges:
            raise ValueError("`edges` must increase")
        if self.labels is not None and (self.edges is None or len(self.labels) != len(self.edges)):
            raise ValueError("`labels` needs `edges`, one label per edge")
        return self


class Fairness(Strict):
    """Fairness groupings: reported at every training run and over live windows, and screened
    (each unless it says `screen: false`) before registration and promotion."""

    groupings: dict[Name, Grouping] = Field(
        default_factory=dict, description="Grouping name -> how to group (reported and logged)."
    )


class Offers(Strict):
    """Counter-offers: the loan terms a declined applicant could be approved on instead."""

    amount: Name = Field(
        description="Request field holding the amount asked for; offers lower it down to "
        "`CREDIT_COUNTER_OFFER_MIN_AMOUNT_FRACTION` of the request."
    )
    term: Name = Field(
        description="Request field holding the term; offers try `CREDIT_COUNTER_OFFER_DURATIONS`."
    )


class Monitoring(Strict):
    """What the drift checks compare."""

    drift_exclude: list[Name] = Field(
        default_factory=list,
        description="Model columns left out of drift checks (e.g. one that drifts by design, "
        "such as a date-like count); the rest of the model's columns are checked.",
    )


class Model(Strict):
    """Model defaults for this data (each `CREDIT_*` setting named overrides its entry)."""

    monotone: dict[Name, Literal[-1, 1]] = Field(
        default_factory=dict,
        description="Numeric model column -> +1 (risk rises with it) or -1 "
        "(`CREDIT_MONOTONE_CONSTRAINTS`).",
    )
    threshold: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Decline when PD >= this (`CREDIT_DECISION_THRESHOLD`); default: the "
        "cost-optimal cut from `costs`.",
    )
    cost_approve_bad: float = Field(
        5.0, gt=0, description="Cost of approving an applicant who then defaults."
    )
    cost_decline_good: float = Field(
        1.0,
        gt=0,
        description="Cost of declining one who would have repaid: the threshold defaults to "
        "cost_decline_good / (cost_approve_bad + cost_decline_good), the cost-optimal cut.",
    )
    gate_min_auc: float = Field(0.70, description="Gate: minimum test AUC (`CREDIT_GATE_MIN_AUC`).")
    gate_max_brier: float = Field(
        0.25, description="Gate: maximum test Brier score (`CREDIT_GATE_MAX_BRIER`)."
    )

    @property
    def decision_threshold(self) -> float:
        if self.threshold is not None:
            return self.threshold
        return self.cost_decline_good / (self.cost_approve_bad + self.cost_decline_good)
