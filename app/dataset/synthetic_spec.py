"""The `synthetic` section of a dataset spec: how app.data.synthetic makes rows shaped like the
real file, and the named drifts (`jobs.seed --shift NAME`, the drift tests and benchmarks)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from app.dataset.types import Name, Scalar, Strict


class SyntheticJitter(Strict):
    """Noise on one continuous column of a synthetic row (the rest of the row is copied)."""

    sigma: float | None = Field(
        None, gt=0, description="Multiply by lognormal noise of this sigma (0.1: about 10%)."
    )
    offset: int | None = Field(
        None, ge=1, description="Add a whole number drawn evenly from `[-offset, offset]`."
    )
    snap: bool = Field(
        False,
        description="Then move to the nearest value the real data holds (terms stay on 12, "
        "24, 36 months rather than 23).",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> SyntheticJitter:
        if (self.sigma is None) == (self.offset is None):
            raise ValueError("give exactly one of `sigma` and `offset`")
        return self


class ShiftScale(Strict):
    """Multiply a numeric column by lognormal noise around `factor`."""

    factor: float = Field(gt=0, description="Typical (median) multiplier: 1.6 is 60% larger.")
    sigma: float = Field(0.0, ge=0, description="Lognormal spread around `factor`.")
    snap: bool = Field(
        False, description="Then move to the nearest value the real data holds (and `grid`)."
    )
    grid: float | None = Field(
        None,
        gt=0,
        description="With `snap`: every multiple of this up to the column's range is a value "
        "too (terms stay on whole half-years beyond the real ones).",
    )

    @model_validator(mode="after")
    def _grid_snaps(self) -> ShiftScale:
        if self.grid is not None and not self.snap:
            raise ValueError("`grid` needs `snap: true`")
        return self


class ShiftReplace(Strict):
    """Overwrite a random share of a column's values with draws from given values."""

    probability: float = Field(gt=0, le=1, description="Share of rows overwritten.")
    values: dict[Scalar, Annotated[float, Field(gt=0)]] = Field(
        min_length=1, description="Value -> weight of drawing it (weights need not add to 1)."
    )


class ShiftCompress(Strict):
    """Pull a numeric column toward one value (ages toward 18) without piling values on it."""

    value: float = Field(description="The value pulled toward.")
    factor: float = Field(gt=0, lt=1, description="Share of the distance kept (0.5: halved).")
    offset: int = Field(
        0, ge=0, description="Then add a whole number drawn evenly from `[-offset, offset]`."
    )


class ShiftChange(Strict):
    """How one column moves: exactly one of `scale`, `replace`, `compress_toward`,
    `label_rate`. Missing values and missing codes are never moved."""

    column: Name = Field(description="Canonical column name (the label's for `label_rate`).")
    scale: ShiftScale | None = Field(None, description="Numeric columns: multiply.")
    replace: ShiftReplace | None = Field(None, description="Overwrite a share of the values.")
    compress_toward: ShiftCompress | None = Field(
        None, description="Numeric columns: pull toward a value."
    )
    label_rate: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="The label: raise the positive share to this by relabelling negatives, "
        "riskiest-looking first (naive Bayes over the category columns); features untouched.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ShiftChange:
        kinds = [self.scale, self.replace, self.compress_toward, self.label_rate]
        if sum(k is not None for k in kinds) != 1:
            raise ValueError(
                "give exactly one of `scale`, `replace`, `compress_toward`, `label_rate`"
            )
        return self


class SyntheticShift(Strict):
    """A named drift for `jobs.seed --shift NAME` and the drift tests."""

    description: str = Field("", description="What changes, in a line.")
    changes: list[ShiftChange] = Field(
        min_length=1,
        description="Applied in order, after the rows are drawn and from a random stream of "
        "their own: the other columns stay exactly as without the shift.",
    )


class Synthetic(Strict):
    """Synthetic rows (`jobs.seed --rows N`): a class-conditional smoothed bootstrap of the
    flat file. Each row copies a real row of its class, then is perturbed."""

    jitter: dict[Name, SyntheticJitter] = Field(
        default_factory=dict,
        description="Continuous numeric columns -> their noise, applied in this order (the "
        "order fixes the random draws). Missing values and missing codes are copied as-is.",
    )
    swap_probability: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Every other column: the chance a value is replaced by that of another "
        "real row of the same class.",
    )
    shifts: dict[Name, SyntheticShift] = Field(
        default_factory=dict, description="Named drifts, by name (`--shift NAME`)."
    )
