"""The building blocks of the spec's pydantic models: canonical names, source names, scalars."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

# Canonical names are what Feast, the model and the API use: snake_case, so they are valid
# Python identifiers, Feast field names and unquoted SQL alike. Source names can be anything.
CANONICAL = r"^[a-z][a-z0-9_]{0,62}$"
Name = Annotated[str, StringConstraints(pattern=CANONICAL)]
SourceName = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Scalar = bool | int | float | str


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
