"""cluster.yaml and serve_config.yaml stay valid against Ray's own schemas."""

import yaml

from tests.conftest import ROOT


def test_cluster_yaml_passes_the_launcher_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(config))
    assert not any("6379" in cmd for cmd in config["head_start_ray_commands"])


def test_serve_config_passes_the_serve_schema():
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(yaml.safe_load((ROOT / "serve_config.yaml").read_text()))
