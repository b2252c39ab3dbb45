"""The rendered Feast repo: Feast's own loader and parser read what our code sets up."""

import sys

import pytest
from feast.repo_config import load_repo_config
from feast.repo_operations import parse_repo

from app.errors import ConfigError
from app.features.definitions import build_definitions
from app.features.repo import (
    REDIS_PASSWORD_VAR,
    REGISTRY_VAR,
    feast_commands,
    repo_config,
    repo_contents,
    write_feature_repo,
)


def load_rendered(settings):
    repo = write_feature_repo(settings)
    return repo, load_repo_config(repo, repo / "feature_store.yaml")


def test_feast_loads_the_sqlite_config_our_code_uses(make_settings):
    settings = make_settings()
    repo, loaded = load_rendered(settings)
    assert loaded.model_dump() == repo_config(settings).model_dump()
    assert loaded.online_store.path == str(settings.feast_dir / "online_store.db")
    assert loaded.registry.path == str(settings.feast_dir / "registry_sqlite.db")
    assert repo == settings.feast_dir / "feature_repo"


def test_redis_password_comes_from_the_environment_never_the_file(make_settings, monkeypatch):
    settings = make_settings(online_store="redis", redis_port=6390, redis_password="pa55word")
    repo, without_env = load_rendered(settings)
    assert "pa55word" not in (repo / "feature_store.yaml").read_text()
    assert "pa55word" not in without_env.online_store.connection_string

    monkeypatch.setenv(REDIS_PASSWORD_VAR, "pa55word")
    _, loaded = load_rendered(settings)
    assert loaded.model_dump() == repo_config(settings).model_dump()
    assert loaded.online_store.connection_string == settings.redis_connection_string
    assert loaded.registry.path == str(settings.feast_dir / "registry_redis.db")


def test_sql_registry_for_several_nodes_keeps_its_password_out_of_the_file(
    make_settings, monkeypatch
):
    url = "postgresql+psycopg://feast:s3cret-pw@db.internal:5432/feast"
    settings = make_settings(feast_registry=url)
    repo, without_env = load_rendered(settings)
    text = (repo / "feature_store.yaml").read_text()
    assert "s3cret-pw" not in text and f"${{{REGISTRY_VAR}}}" in text
    assert "s3cret-pw" not in without_env.registry.path
    assert f"export {REGISTRY_VAR}=..." in feast_commands(settings)[0]
    assert "s3cret-pw" not in settings.redact(f"cannot reach {url}")

    monkeypatch.setenv(REGISTRY_VAR, url)
    _, loaded = load_rendered(settings)
    assert loaded.model_dump() == repo_config(settings).model_dump()
    assert loaded.registry.registry_type == "sql"
    assert loaded.registry.path == url
    # A registry server that stops answering fails the connection instead of hanging it.
    kwargs = loaded.registry.sqlalchemy_config_kwargs
    assert kwargs["connect_args"] == {"connect_timeout": 10} and kwargs["pool_pre_ping"]


def test_sql_registry_without_a_password_is_written_as_is(make_settings):
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/feast"
    repo, loaded = load_rendered(make_settings(feast_registry=url))
    assert loaded.registry.path == url
    assert f"${{{REGISTRY_VAR}}}" not in (repo / "feature_store.yaml").read_text()


def names(contents):
    return {field: sorted(o.name for o in getattr(contents, field)) for field in contents._fields}


def test_feast_parses_the_objects_our_apply_applies(make_settings, monkeypatch):
    # A service name that is no Python identifier still renders an importable module.
    settings = make_settings(feature_service_name="credit-risk v2")
    repo = write_feature_repo(settings)
    # As `feast -c <repo> plan` does: the repo is the working directory and on sys.path.
    monkeypatch.chdir(repo)
    monkeypatch.syspath_prepend(str(repo))
    try:
        parsed = parse_repo(repo)
    finally:
        sys.modules.pop("definitions", None)
    ours = repo_contents(
        build_definitions(
            settings.load_dataset(), settings.offline_dir, settings.feature_service_name
        ),
        settings.feast_project,
    )
    # The CLI adds the project itself when the repo defines none (as ours does).
    assert names(parsed) | {"projects": [settings.feast_project]} == names(ours)
    assert names(ours)["feature_services"] == ["credit-risk v2"]
    for field in ("entities", "feature_views", "on_demand_feature_views", "feature_services"):
        by_name = {o.name: o for o in getattr(ours, field)}
        for obj in getattr(parsed, field):
            assert obj == by_name[obj.name], obj.name
    assert sorted(s.path for s in parsed.data_sources) == sorted(s.path for s in ours.data_sources)


def test_commands_name_the_repo_and_the_password_variable(make_settings):
    settings = make_settings()
    commands = feast_commands(settings)
    repo = str(settings.feast_dir / "feature_repo")
    assert [c.split()[1:4] for c in commands] == [
        ["-c", repo, "plan"],
        ["-c", repo, "ui"],
        ["-c", repo, "serve"],
    ]
    with_password = feast_commands(make_settings(online_store="redis", redis_password="x"))
    assert with_password[0].startswith(f"export {REDIS_PASSWORD_VAR}=")


def test_a_dollar_in_a_path_is_refused(make_settings, tmp_path):
    # Feast would expand `$HOME`-like parts of feature_store.yaml into something else.
    settings = make_settings(data_dir=tmp_path / "$HOME")
    with pytest.raises(ConfigError, match=r"\$"):
        write_feature_repo(settings)
