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


def test_serve_config_builds_the_app_and_its_user_config_is_valid():
    from ray.serve.schema import ServeDeploySchema

    from app.serving.app import AppArgs, build_app
    from app.serving.routing import RoutingConfig

    config = ServeDeploySchema.model_validate(
        yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    )
    (application,) = config.applications
    assert application.import_path == "app.serving.app:build_app"
    (deployment,) = application.deployments
    RoutingConfig.model_validate(deployment.user_config)
    assert (
        deployment.autoscaling_config["max_replicas"]
        >= deployment.autoscaling_config["min_replicas"]
    )
    app = build_app(AppArgs.model_validate({**application.args, "settings": {"data_dir": "x"}}))
    assert type(app).__name__ == "Application"
