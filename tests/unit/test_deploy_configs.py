"""cluster.yaml, serve_config.yaml and the KubeRay manifests pass Ray's own schemas."""

import re

import yaml

from tests.utils import ROOT


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


# --- cluster.yaml: what `ray up` runs --------------------------------------------------------


def _cluster() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def _prepared_cluster() -> dict:
    from ray.autoscaler._private.util import prepare_config

    return prepare_config(_cluster())


def _flag(command: str, name: str) -> str | None:
    """The value of `--name=V` or `--name V` in a shell command."""
    match = re.search(rf"--{name}[= ](\S+)", command)
    return match.group(1) if match else None


def _ray_start(commands: list[str]) -> str:
    (start,) = [c for c in commands if "ray start" in c]
    return start


def test_cluster_yaml_never_uses_redis_port():
    # Anywhere in the config (the comments may say why), after Ray filled in its defaults,
    # whose own start commands use 6379.
    assert "6379" not in yaml.safe_dump(_prepared_cluster())


def test_cluster_setup_installs_the_project_on_every_node():
    config = _prepared_cluster()
    for commands in (config["head_setup_commands"], config["worker_setup_commands"]):
        assert any("bash scripts/setup.sh" in c for c in commands)
    # The project reaches the nodes by file mount, without the laptop's virtualenv and data.
    mounts = _cluster()["file_mounts"]
    (project,) = [remote for remote, local in mounts.items() if local == "."]
    assert all(f"cd {project}" in c for c in _cluster()["setup_commands"])
    excluded = set(_cluster()["rsync_exclude"])
    assert {".venv", "var"} <= excluded
    assert any("__pycache__" in pattern for pattern in excluded)


def test_head_and_workers_meet_on_one_port_with_one_auth_mode():
    config = _cluster()
    head = _ray_start(config["head_start_ray_commands"])
    worker = _ray_start(config["worker_start_ray_commands"])
    port = _flag(head, "port")
    assert port is not None and port != "6379"
    assert _flag(worker, "address") == f"$RAY_HEAD_IP:{port}"
    assert "--head" in head and "--head" not in worker
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    # The Jobs API runs code: loopback only, reached over `ray dashboard`'s SSH tunnel.
    assert _flag(head, "dashboard-host") == "127.0.0.1"
    assert _flag(head, "dashboard-port") == "8265"
    # Ray refuses mixed auth modes; the token every node uses is the one mounted for it.
    modes = {re.search(r"RAY_AUTH_MODE=(\w+)", c).group(1) for c in (head, worker)}
    assert modes == {"token"}
    assert any(remote.endswith(".ray/auth_token") for remote in config["file_mounts"])
    # `ray job submit -- python ...` runs the python on the daemons' PATH: the project's.
    project = next(remote for remote, local in config["file_mounts"].items() if local == ".")
    for command in (head, worker):
        assert f"PATH={project}/.venv/bin:" in command


def test_cluster_worker_limits_are_sane():
    config = _cluster()
    workers = len(config["provider"]["worker_ips"])
    assert 0 <= config["min_workers"] <= config["max_workers"] == workers
    assert config["upscaling_speed"] > 0 and config["idle_timeout_minutes"] >= 1
    (node_type,) = _prepared_cluster()["available_node_types"].values()
    assert node_type["min_workers"] == config["min_workers"]
    assert node_type["max_workers"] == config["max_workers"]


# --- KubeRay: the Kubernetes path -------------------------------------------------------------


def _kuberay(name: str) -> dict:
    return yaml.safe_load((ROOT / "deploy" / "kuberay" / name).read_text())


def _containers(cluster_spec: dict) -> list[dict]:
    groups = [cluster_spec["headGroupSpec"], *cluster_spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


SHARED_SETTINGS = (
    "CREDIT_OFFLINE_DIR",
    "CREDIT_TRAIN_STORAGE",
    "CREDIT_PREDICTION_LOG_DIR",
    "CREDIT_MONITOR_DIR",
    "CREDIT_API_KEYS_FILE",
)


def _volumes(spec: dict) -> list[dict]:
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [v for g in groups for v in g["template"]["spec"].get("volumes", [])]


def _check_cluster_spec(spec: dict) -> None:
    lock = (ROOT / "requirements.lock").read_text()
    assert re.search(rf"^ray(\[.*\])?=={re.escape(spec['rayVersion'])}\b", lock, re.M)
    assert spec["authOptions"]["mode"] == "token"
    # The pod's address, for the KubeRay operator; token auth guards it (docs/cluster.md).
    assert spec["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    for group in spec["workerGroupSpecs"]:
        assert 1 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    images = {c["image"] for c in _containers(spec)}
    assert len(images) == 1, "head and workers must run the same image"
    for container in _containers(spec):
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["limits"]["memory"]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in _volumes(spec)}
        # What docs/cluster.md says and tests/integration/test_cluster.py runs: the data dir
        # on the pod's own disk, everything another pod may need on the shared volume.
        assert "emptyDir" in volumes[mounts[env["CREDIT_DATA_DIR"]]]
        assert "persistentVolumeClaim" in volumes[mounts["/data"]]
        for name in SHARED_SETTINGS:
            assert env[name].startswith("/data/"), name


def test_rayjob_runs_the_pipeline_on_a_well_formed_cluster():
    job = _kuberay("rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert spec["entrypoint"] == "python -m jobs.pipeline"
    assert spec["shutdownAfterJobFinishes"] is True
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert all(k.startswith("CREDIT_") for k in runtime_env["env_vars"])
    assert all(isinstance(v, str) for v in runtime_env["env_vars"].values())
    _check_cluster_spec(spec["rayClusterSpec"])


def test_rayservice_serves_the_same_application_as_serve_config():
    from ray.serve.schema import ServeDeploySchema

    service = _kuberay("rayservice.yaml")
    assert (service["apiVersion"], service["kind"]) == ("ray.io/v1", "RayService")
    embedded = yaml.safe_load(service["spec"]["serveConfigV2"])
    ServeDeploySchema.model_validate(embedded)
    shipped = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    assert embedded["applications"] == shipped["applications"]
    # In a pod the proxies must listen beyond localhost, on the port the head exposes.
    assert embedded["http_options"]["host"] == "0.0.0.0"
    cluster_spec = service["spec"]["rayClusterConfig"]
    _check_cluster_spec(cluster_spec)
    head = cluster_spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {"name": "serve", "containerPort": embedded["http_options"]["port"]} in head["ports"]
