"""The feast CLI on the repo jobs.materialize renders: plan finds nothing to change, serve and ui
answer with what was materialized (SQLite, and Redis behind a password)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.config import Settings
from app.data.ingest import ingest
from app.data.snapshot import load_snapshot
from app.data.warehouse import source_tables, write_local_tables
from app.features.repo import REDIS_PASSWORD_VAR, repo_dir
from app.features.store import get_online_features, get_store, materialize, request_row
from app.localservices import ManagedProcess, free_port
from tests.utils import isolated_settings, run_job
from tests.utils.datasets import german

pytestmark = pytest.mark.integration

FEAST = str(Path(sys.executable).with_name("feast"))
# A feast process spends 5-20 s importing on a busy 2-core machine before it does anything.
START_TIMEOUT = 240
REDIS_PASSWORD = "feast-cli-pa55"


@dataclass
class FeastRepo:
    settings: Settings
    repo: Path
    plan: str
    serve: ManagedProcess
    ui: ManagedProcess | None = None
    job_output: str = ""


def feast_env(runtime_dir: Path, **extra: str) -> dict[str, str]:
    """The user's shell without CREDIT_*; each server's gunicorn control socket in its own
    runtime dir instead of the one ~/.gunicorn/gunicorn.ctl every `feast serve` shares."""
    runtime_dir.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")}
    return {**clean, "XDG_RUNTIME_DIR": str(runtime_dir), **extra}


def start_feast(command: str, repo: Path, logs: Path, env: dict[str, str]) -> ManagedProcess:
    port = free_port()
    argv = [FEAST, "-c", str(repo), command, "-h", "127.0.0.1", "-p", str(port)]
    return ManagedProcess.launch(
        f"feast {command}", argv, port=port, log_path=logs / f"{command}.log", env=env, cwd=repo
    )


def feast_plan(repo: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [FEAST, "-c", str(repo), "plan"],
        env=env,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def sqlite_repo(tmp_path_factory, ray_session) -> Iterator[FeastRepo]:
    """The shipped data ingested, `python -m jobs.materialize` as a user runs it, then the
    CLI on the repo it rendered: serve and ui start first, so their start-up overlaps the plan."""
    root = tmp_path_factory.mktemp("feast_sqlite")
    settings = isolated_settings(data_dir=root / "data")
    tables = source_tables(settings)
    write_local_tables(tables, settings)
    ingest(settings)
    job = run_job("jobs.materialize", env={"CREDIT_DATA_DIR": str(settings.data_dir)})
    assert job.returncode == 0, job.stderr[-3000:]
    repo, env = repo_dir(settings), feast_env(root / "run")
    serve = start_feast("serve", repo, root, env)
    ui = start_feast("ui", repo, root, env)
    try:
        yield FeastRepo(settings, repo, feast_plan(repo, env), serve, ui, job.stdout)
    finally:
        serve.stop()
        ui.stop()


@pytest.fixture(scope="module")
def redis_repo(tmp_path_factory, sqlite_repo) -> Iterator[FeastRepo]:
    """The same snapshot materialized into a Redis that wants a password, which the rendered
    feature_store.yaml takes from the environment."""
    root = tmp_path_factory.mktemp("feast_redis")
    port = free_port()
    argv = [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1"]
    argv += ["--port", str(port), "--save", "", "--appendonly", "no"]
    redis = ManagedProcess.launch(
        "redis-server", [*argv, "--requirepass", REDIS_PASSWORD], port=port
    )
    try:
        redis.wait_listening()
        settings = isolated_settings(
            data_dir=root / "data",
            online_store="redis",
            redis_port=port,
            redis_password=REDIS_PASSWORD,
        )
        # The snapshot's `current` link is relative: the copy is self-contained.
        shutil.copytree(sqlite_repo.settings.offline_dir, settings.offline_dir, symlinks=True)
        materialize(settings)
        repo = repo_dir(settings)
        env = feast_env(root / "run", **{REDIS_PASSWORD_VAR: REDIS_PASSWORD})
        serve = start_feast("serve", repo, root, env)
        try:
            yield FeastRepo(settings, repo, feast_plan(repo, env), serve)
        finally:
            serve.stop()
    finally:
        redis.stop()


@pytest.fixture(params=["sqlite", "redis"])
def feast_repo(request) -> FeastRepo:
    return request.getfixturevalue(f"{request.param}_repo")


def test_materialize_prints_the_repo_and_the_commands(sqlite_repo):
    out, repo = sqlite_repo.job_output, sqlite_repo.repo
    assert f"Feast feature repo: {repo}" in out
    for command in ("plan", "ui", "serve"):
        assert f"-c {repo} {command}" in out
    # The password is read from the environment, never written to the repo.
    assert "password" not in (repo / "feature_store.yaml").read_text()


def test_plan_finds_nothing_to_change_after_materialize(feast_repo):
    assert "No changes to registry" in feast_repo.plan
    assert "No changes to infrastructure" in feast_repo.plan


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def test_feast_serve_returns_the_materialized_features(feast_repo):
    settings, serve = feast_repo.settings, feast_repo.serve
    apps = load_snapshot(settings.offline_dir, "loan_applications")
    rows = [request_row(apps.iloc[i], german()) for i in (0, 41, 999)]
    serve.wait_http("/health", START_TIMEOUT)

    answer = post_json(
        f"{serve.url}/get-online-features",
        {
            "feature_service": settings.feature_service_name,
            "entities": {key: [row[key] for row in rows] for key in rows[0]},
        },
    )

    expected = get_online_features(get_store(settings), settings.feature_service_name, rows)
    names = answer["metadata"]["feature_names"]
    assert {"age_in_years", "credit_history", "monthly_installment"} <= set(names)
    for name, result in zip(names, answer["results"], strict=True):
        assert result["statuses"] == ["PRESENT"] * len(rows), name
        assert result["values"] == pytest.approx(expected[name].tolist()), name


def test_feast_ui_shows_the_project(sqlite_repo):
    ui, project = sqlite_repo.ui, sqlite_repo.settings.feast_project
    ui.wait_http("/health", START_TIMEOUT)
    with urllib.request.urlopen(f"{ui.url}/", timeout=30) as page:
        assert page.status == 200
        assert "<!doctype html>" in page.read().decode().lower()
    with urllib.request.urlopen(f"{ui.url}/projects-list.json", timeout=30) as listing:
        assert [p["id"] for p in json.load(listing)["projects"]] == [project]
    url = f"{ui.url}/api/v1/feature_views?project={project}"
    with urllib.request.urlopen(url, timeout=30) as views:
        names = {v["spec"]["name"] for v in json.load(views)["featureViews"]}
    assert {"applicant_profile", "applicant_financials"} <= names
