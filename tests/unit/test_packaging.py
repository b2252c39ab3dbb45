"""The pinned dependency set: fully pinned, and never PyTorch or GPU libraries."""

import re

from tests.utils import ROOT


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_every_dependency_is_pinned_and_the_core_ones_are_there():
    pins = locked()
    for name in (
        "ray",
        "feast",
        "mlflow",
        "evidently",
        "snowflake-connector-python",
        "xgboost-cpu",
        "scikit-learn",
        "redis",
        "pydantic-settings",
        "fakesnow",
    ):
        assert name in pins, name
    lines = [
        line
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line and not line.startswith((" ", "#"))
    ]
    assert all("==" in line for line in lines)


def test_no_pytorch_or_cuda():
    names = locked()
    assert not [n for n in names if n == "torch" or n.startswith(("nvidia-", "torch"))]
    assert "xgboost" not in names  # the GPU-free xgboost-cpu wheel instead
