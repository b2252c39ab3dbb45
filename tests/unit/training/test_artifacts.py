"""Artifact digests: a changed, added or missing file is named, and a version without a digest
or with a forged listing is refused."""

from __future__ import annotations

import json

import pytest

from app.training import artifacts


def test_digest_names_a_changed_an_added_and_a_missing_file(tmp_path):
    model = tmp_path / "model"
    (model / "artifacts").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "artifacts" / "booster.json").write_text('{"trees": []}')
    (model / "python_model.pkl").write_bytes(b"\x80\x04N.")
    tags = artifacts.digest_tags(model)
    artifacts.verify(model, tags, "credit_risk v1")  # untouched: accepted

    (model / "artifacts" / "booster.json").write_text('{"trees": [1]}')
    with pytest.raises(artifacts.ArtifactRefused, match=r"changed artifacts/booster\.json"):
        artifacts.verify(model, tags, "credit_risk v1")
    (model / "artifacts" / "booster.json").write_text('{"trees": []}')
    (model / "python_model.pkl").unlink()
    (model / "evil.py").write_text("import os\n")
    with pytest.raises(artifacts.ArtifactRefused) as caught:
        artifacts.verify(model, tags, "credit_risk v1")
    assert "credit_risk v1" in str(caught.value)
    assert "unexpected evil.py" in str(caught.value)
    assert "missing python_model.pkl" in str(caught.value)


def test_a_version_without_a_digest_or_with_a_forged_listing_is_refused(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(artifacts.ArtifactRefused, match="v3 has no artifact_sha256 tag"):
        artifacts.verify(model, {}, "credit_risk v3")
    tags = artifacts.digest_tags(model)
    (model / "MLmodel").write_text("flavors: {python_function: {}}\n")
    # A listing edited to match the new file does not match the recorded digest: still refused.
    forged = {**tags, artifacts.FILES_TAG: json.dumps(artifacts.file_digests(model))}
    with pytest.raises(artifacts.ArtifactRefused, match="files differ"):
        artifacts.verify(model, forged, "credit_risk v3")
