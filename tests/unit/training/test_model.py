"""The model artifact without Ray: contributions reproduce the margin, reasons come from used
features, and a saved model scores identically."""

from __future__ import annotations

import numpy as np


def test_contributions_plus_bias_reproduce_the_margin(small_model, frame):
    rows = frame.head(50)
    contributions = small_model.contributions(rows)
    np.testing.assert_allclose(contributions.sum(axis=1), small_model.margin(rows), atol=1e-4)


def test_explanations_come_from_used_features_and_point_to_default(small_model, frame):
    reasons = small_model.explain(frame.head(200))
    assert all(len(r) <= 4 for r in reasons)
    cited = {reason["feature"] for row in reasons for reason in row}
    assert cited and cited <= set(small_model.used_columns)
    assert all(reason["contribution"] > 0 for row in reasons for reason in row)


def test_model_roundtrip_scores_identically(small_model, frame, tmp_path):
    from app.training.model import CreditModel as Loaded

    loaded = Loaded.load(small_model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict_pd(frame), small_model.predict_pd(frame))
    assert loaded.used_columns == small_model.used_columns


def test_a_saved_model_keeps_its_own_spec_after_the_spec_changes(small_model, frame, tmp_path):
    import pytest

    from app.dataset import SPEC_FILE
    from app.training.model import CreditModel

    directory = small_model.save(tmp_path / "m")
    loaded = CreditModel.load(directory)
    assert loaded.dataset.spec_hash == small_model.dataset.spec_hash
    assert loaded.encoder.categories == small_model.encoder.categories
    declines = frame.head(200)
    assert loaded.explain(declines) == small_model.explain(declines)

    # The spec a version was trained on is its own: an edited copy is refused, not trusted.
    spec = directory / SPEC_FILE
    spec.write_text(spec.read_text().replace("Loan purpose: business", "Business loan"))
    with pytest.raises(ValueError, match="not the spec the model was trained on"):
        CreditModel.load(directory)
    spec.unlink()
    with pytest.raises(ValueError, match="retrain it"):
        CreditModel.load(directory)
