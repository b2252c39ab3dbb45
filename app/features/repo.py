"""The Feast feature repo of the settings: feature_store.yaml, definitions, CLI-equal apply."""

from __future__ import annotations

import contextlib
import copy
import io
import keyword
import logging
import re
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView, RepoConfig
from feast.data_source import DataSource
from feast.feature_view import DUMMY_ENTITY
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.project import Project
from feast.repo_contents import RepoContents
from feast.repo_operations import apply_total_with_repo_instance

from app.config import ENV_PREFIX, Settings
from app.dataset import spec_path
from app.errors import ConfigError
from app.features.definitions import build_definitions
from app.fs import atomic_write

log = logging.getLogger(__name__)

REPO_DIRNAME = "feature_repo"
DEFINITIONS_FILE = "definitions.py"
# feature_store.yaml names the password as a variable Feast expands when it loads the file
# (os.path.expandvars), so the secret never lands on disk.
REDIS_PASSWORD_VAR = f"{ENV_PREFIX}REDIS_PASSWORD"
REGISTRY_VAR = f"{ENV_PREFIX}FEAST_REGISTRY"
# Seconds a registry read is reused: a replica sees a new apply this long after it.
SQL_REGISTRY_CACHE_SECONDS = 60


def repo_dir(settings: Settings) -> Path:
    """The directory to point the CLI at: `feast -c <repo_dir> plan|apply|serve|ui`."""
    return settings.feast_dir / REPO_DIRNAME


def config_values(settings: Settings, *, secrets: bool = True) -> dict[str, Any]:
    """feature_store.yaml's content; without `secrets`, a Redis password is `${VAR}` instead."""
    if settings.online_store == "redis":
        connection = settings.redis_connection_string
        if settings.redis_password is not None and not secrets:
            secret = settings.redis_password.get_secret_value()
            connection = connection.replace(
                f"password={secret}", f"password=${{{REDIS_PASSWORD_VAR}}}"
            )
        online = {"type": "redis", "connection_string": connection}
    else:
        online = {"type": "sqlite", "path": str(settings.feast_dir / "online_store.db")}
    return {
        "project": settings.feast_project,
        "provider": "local",
        "registry": registry_values(settings, secrets=secrets),
        "online_store": online,
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }


def registry_values(settings: Settings, *, secrets: bool = True) -> str | dict[str, Any]:
    """The registry: a file beside the online store (one machine), or Feast's SQL registry
    that every node reaches (`feast_registry`); without `secrets`, a URL holding a password
    is `${VAR}` instead."""
    url = settings.feast_registry
    if url is None:
        # One registry per online store: it records what was materialized where, so switching
        # stores must not make Feast think the new one is already loaded.
        return str(settings.feast_dir / f"registry_{settings.online_store}.db")
    engine: dict[str, Any] = {"echo": False, "pool_pre_ping": True}
    if url.startswith("postgresql"):
        # libpq otherwise waits for an unreachable server as long as the OS does.
        engine["connect_args"] = {"connect_timeout": 10}
    if not secrets and urlsplit(url).password:
        url = f"${{{REGISTRY_VAR}}}"
    return {
        "registry_type": "sql",
        "path": url,
        "cache_ttl_seconds": SQL_REGISTRY_CACHE_SECONDS,
        "sqlalchemy_config_kwargs": engine,
    }


def repo_config(settings: Settings) -> RepoConfig:
    """Feast's configuration, the same values as the rendered feature_store.yaml."""
    return RepoConfig(**config_values(settings), repo_path=repo_dir(settings))


def _identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    ident = f"_{ident}" if ident[:1].isdigit() else ident
    return f"{ident}_" if keyword.iskeyword(ident) else ident


def definitions_source(settings: Settings) -> str:
    """The repo's definitions module: the project's objects, bound to these settings' values."""
    names = [_identifier(obj.name) for obj in _objects(settings)]
    targets = "".join(f"    {name},\n" for name in names)
    return (
        f'"""Feast definitions of project {settings.feast_project}, for '
        "`feast -c <this directory> plan|apply|serve|ui`.\n\n"
        "Rendered by `python -m jobs.materialize` from the app's settings (CREDIT_*): the objects\n"
        "are built from the dataset spec (DATASET) by app/features/definitions.py; change the\n"
        'spec, not this file.\n"""\n\n'
        "from pathlib import Path\n\n"
        "from app.dataset import load_dataset\n"
        "from app.features.definitions import build_definitions\n\n"
        f"DATASET = Path({str(spec_path(settings.dataset))!r})\n"
        f"OFFLINE_DIR = Path({str(settings.offline_dir)!r})\n"
        f"FEATURE_SERVICE_NAME = {settings.feature_service_name!r}\n\n"
        f"(\n{targets}) = build_definitions(load_dataset(DATASET), OFFLINE_DIR, "
        "FEATURE_SERVICE_NAME)\n"
    )


def write_feature_repo(settings: Settings) -> Path:
    """Render feature_store.yaml and the definitions module from the settings; the repo dir."""
    path = repo_dir(settings)
    path.mkdir(parents=True, exist_ok=True)
    header = (
        "# Rendered by `python -m jobs.materialize` from the app's settings (CREDIT_*): change\n"
        "# those, not this file. Use: feast -c <this directory> plan | apply | serve | ui\n"
    )
    body = yaml.safe_dump(config_values(settings, secrets=False), sort_keys=False)
    if "$" in re.sub(rf"\$\{{({REDIS_PASSWORD_VAR}|{REGISTRY_VAR})\}}", "", body):
        # Feast expands every $NAME in the file: a path holding one would silently change.
        raise ConfigError("a Feast setting contains '$', which feature_store.yaml cannot hold")
    # Atomic: a `feast serve` or `feast plan` reading meanwhile sees the old repo or the new one.
    atomic_write(path / "feature_store.yaml", header + body)
    atomic_write(path / DEFINITIONS_FILE, definitions_source(settings))
    return path


def feast_executable() -> str:
    """`feast` when the shell finds this environment's, else its full path."""
    ours = Path(sys.executable).with_name("feast")
    found = shutil.which("feast")
    return "feast" if found and Path(found).resolve() == ours.resolve() else str(ours)


def feast_commands(settings: Settings) -> list[str]:
    """What a Feast user runs on the repo, ready to paste (comments aligned)."""
    feast, repo = feast_executable(), repo_dir(settings)
    commands = [
        (f"{feast} -c {repo} plan", "after materialize: no changes"),
        (f"{feast} -c {repo} ui -h 127.0.0.1", "http://127.0.0.1:8888"),
        (f"{feast} -c {repo} serve", "http://127.0.0.1:6566/get-online-features"),
    ]
    if settings.online_store == "redis" and settings.redis_password is not None:
        commands.insert(0, (f"export {REDIS_PASSWORD_VAR}=...", "feature_store.yaml reads it"))
    if urlsplit(settings.feast_registry or "").password:
        commands.insert(0, (f"export {REGISTRY_VAR}=...", "feature_store.yaml reads it"))
    width = max(len(command) for command, _ in commands)
    return [f"{command:<{width}}  # {why}" for command, why in commands]


def _objects(settings: Settings) -> list:
    return build_definitions(
        settings.load_dataset(), settings.offline_dir, settings.feature_service_name
    )


def repo_contents(objects: list, project: str) -> RepoContents:
    """What `feast plan/apply` collects from the definitions module (parse_repo and
    _get_repo_contents in feast.repo_operations): views bring their batch sources, the dummy
    entity is always there, and a repo without a Project gets one named after the project."""
    views = [o for o in objects if type(o) is FeatureView]
    # Copies: registering a source stamps it with the time, and a view sharing it would be
    # stored with that stamp instead of the fixed one the definitions give (see _source there).
    sources = [_unstamped(v.batch_source) for v in views if v.batch_source is not None]
    return RepoContents(
        projects=[Project(name=project, description="")],
        data_sources=sources,
        feature_views=views,
        on_demand_feature_views=[o for o in objects if isinstance(o, OnDemandFeatureView)],
        stream_feature_views=[],
        label_views=[],
        entities=[o for o in objects if isinstance(o, Entity)] + [DUMMY_ENTITY],
        feature_services=[o for o in objects if isinstance(o, FeatureService)],
        permissions=[],
    )


def _unstamped(source: DataSource) -> DataSource:
    source = copy.copy(source)
    # The registry's own entry for the source records when it was registered.
    source.created_timestamp = None
    return source


def apply_repo(store: FeatureStore, settings: Settings) -> list:
    """Apply the definitions as `feast apply` on the rendered repo does (the same function), so
    `feast plan` then finds nothing to change; what the repo no longer defines is deleted."""
    objects = _objects(settings)
    repo = repo_contents(objects, store.project)
    # Feast's apply reports its diff on stdout (click.echo): keep it for the log instead.
    diff = io.StringIO()
    with contextlib.redirect_stdout(diff):
        apply_total_with_repo_instance(
            store, store.project, store.registry, repo, skip_source_validation=False
        )
    if diff.getvalue().strip():
        log.info("feast apply: %s", diff.getvalue().strip())
    return objects
