"""Artifact digests: a registered version's files as they were at registration, checked before
every load, so a file changed in the artifact store is refused instead of unpickled."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.training.tracking import DOWNLOAD, RegistryError, failures_named

# Model-version tags written at registration (set with the version, in one call).
DIGEST_TAG = "artifact_sha256"
FILES_TAG = "artifact_files"
CHUNK = 1 << 20
# Written by MLflow on our side at every download of a model (its name and version, over any
# stored copy), never read from the store: not part of what was registered.
GENERATED = frozenset({"registered_model_meta"})


class ArtifactRefused(RegistryError):
    """A registered version's files do not match the digest recorded at registration."""


def file_digests(directory: Path) -> dict[str, str]:
    """Every file under `directory` (relative POSIX path -> SHA-256), in a stable order."""
    out: dict[str, str] = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if path.relative_to(directory).as_posix() in GENERATED:
            continue
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                sha.update(chunk)
        out[path.relative_to(directory).as_posix()] = sha.hexdigest()
    return out


def manifest_digest(files: dict[str, str]) -> str:
    """One digest over the listing: any file added, removed, renamed or changed changes it."""
    listing = "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))
    return hashlib.sha256(listing.encode()).hexdigest()


def digest_tags(directory: Path) -> dict[str, str]:
    files = file_digests(directory)
    # The per-file listing lets a refusal name the file (well under MLflow's 100,000-character
    # tag limit: ~70 files here).
    return {DIGEST_TAG: manifest_digest(files), FILES_TAG: json.dumps(files, sort_keys=True)}


def verify(directory: Path, tags: dict[str, str], label: str) -> None:
    """Raise ArtifactRefused unless the files under `directory` are those recorded in `tags`."""
    recorded = tags.get(DIGEST_TAG)
    if not recorded:
        raise ArtifactRefused(
            f"{label} has no {DIGEST_TAG} tag (registered before digests were recorded, or "
            "not by this project): refused; register it again with `python -m jobs.train`"
        )
    files = file_digests(directory)
    if manifest_digest(files) == recorded:
        return
    try:
        expected = json.loads(tags.get(FILES_TAG) or "{}")
    except ValueError:
        expected = {}
    if manifest_digest(expected) != recorded:
        expected = {}  # the listing tag does not match the digest: name no file from it
    changed = sorted(n for n in files.keys() & expected.keys() if files[n] != expected[n])
    added = sorted(files.keys() - expected.keys()) if expected else []
    missing = sorted(expected.keys() - files.keys())
    problems = [f"changed {n}" for n in changed] + [f"unexpected {n}" for n in added]
    problems += [f"missing {n}" for n in missing]
    detail = ", ".join(problems[:5]) or "the files differ from the recorded listing"
    raise ArtifactRefused(
        f"{label}: artifact files do not match the digest recorded at registration "
        f"({detail}): refused, not loaded"
    )


@contextmanager
def downloaded(artifact_uri: str) -> Iterator[Path]:
    """The files under `artifact_uri` in a local directory removed afterwards."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        yield Path(mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=tmp))


@contextmanager
def fetched(artifact_uri: str, tracking_uri: str, label: str) -> Iterator[Path]:
    """The files under `artifact_uri` in a local directory removed afterwards, listed and
    downloaded one request at a time under the DOWNLOAD timeout and retries, each failure one
    RegistryError line naming `label`.

    One at a time so that a model load's deadline (tracking.load_deadline) is checked before
    every request: MLflow's own directory download hands every file to its thread pool and
    waits for all of them, each with its own retries, which no deadline can cut short.
    """
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    def named(doing: str):
        return failures_named(tracking_uri, f"{doing} of {label}", policy=DOWNLOAD)

    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        root = Path(tmp).resolve()
        with named("opening the artifact store"):
            repo = get_artifact_repository(artifact_uri, tracking_uri=tracking_uri)
        directories: list[str | None] = [None]
        while directories:
            directory = directories.pop()
            with named(f"listing {directory or 'the artifacts'}"):
                listing = repo.list_artifacts(directory)
            for info in listing:
                if info.is_dir:
                    directories.append(info.path)
                    continue
                local = (root / info.path).resolve()
                if not local.is_relative_to(root):  # a listing naming `..` or an absolute path
                    raise ArtifactRefused(f"{label}: artifact path {info.path!r} leaves the model")
                local.parent.mkdir(parents=True, exist_ok=True)
                with named(f"downloading {info.path}"):
                    # The one download hook every artifact repository implements; the public
                    # download_artifacts first lists each file again (twice the requests).
                    repo._download_file(info.path, str(local))
        yield root
