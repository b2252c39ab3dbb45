"""The project's vocabulary, named once: model variants (registry aliases), decisions, the
prediction column. Every layer imports these rather than spelling the strings again."""

from __future__ import annotations

from typing import Literal, get_args

# A registered model answers as the champion or the challenger; the registry's aliases carry the
# same names, so a variant is also the alias that selects it.
Variant = Literal["champion", "challenger"]
VARIANTS: tuple[Variant, ...] = get_args(Variant)
CHAMPION, CHALLENGER = VARIANTS

Decision = Literal["approve", "decline"]
APPROVE, DECLINE = get_args(Decision)

# The model's output: probability of default, in the prediction log, the drift reference and the
# labelled-outcome joins.
PREDICTION = "probability_of_default"
