"""Feast feature store: definitions, pure feature functions, apply/materialize/retrieve.

Importing this package turns typeguard's `@typechecked` into a no-op before any module of it
imports Feast. Feast decorates its classes with it, and the decorator re-reads and recompiles
the source of every method at import: about 4 s of CPU in every process that imports Feast
here (each job, Ray Data worker and Serve replica; measured 5.7-7.0 s for `import feast`
against 1.9-2.0 s without). typeguard documents the decorator as a development aid that is a
no-op when Python runs optimized (`-O`); this is that no-op without optimizing away asserts.
Feast's own CLI (`feast plan`, `feast ui`) is a process of its own and keeps its checks."""

from __future__ import annotations

import typeguard


def _unchecked(target=None, **_options):
    """`typechecked`, `typechecked(...)` and `typechecked(target)` as `-O` makes them."""
    return _unchecked if target is None else target


typeguard.typechecked = _unchecked
