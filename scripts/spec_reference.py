"""Print the README's dataset-spec reference from the pydantic models (run after changing one).

One row per field of `dataset.yaml`, by its path: `columns.<name>.type` is the `type` of any
column, `features.derived[].expr` the `expr` of each derived feature.
"""

import types
import typing
from datetime import date

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from app.dataset.spec import DatasetSpec


def _models(annotation) -> list[type[BaseModel]]:
    """The spec models an annotation holds (directly, in a list, a dict or a union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _type(annotation) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin in (typing.Union, types.UnionType):
        shown = [_type(a) for a in args if a is not type(None)]
        return " \\| ".join(dict.fromkeys(shown)) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is tuple:
        return f"[{', '.join(_type(a) for a in args)}]"
    if origin is dict:
        return f"map of {_type(args[0])} to {_type(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    names = {str: "text", int: "integer", float: "number", bool: "true/false", date: "date"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "—" if value in ({}, [], ()) or isinstance(value, BaseModel) else f"`{value}`"
    if field.default is PydanticUndefined:
        return "required"
    return "—" if field.default in (None, "") else f"`{field.default}`"


def _path(prefix: str, name: str, annotation) -> str:
    """Where a nested model's fields sit: `<name>.` for a section, `<name>.<key>.` in a map,
    `<name>[].` in a list."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _path(prefix, name, inner[0])
    if origin is dict:
        key = {"columns": "<column>", "tables": "<table>", "codes": "<column>"}.get(name, "<name>")
        return f"{prefix}{name}.{key}."
    if origin is list:
        return f"{prefix}{name}[]."
    return f"{prefix}{name}."


def rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        kind = _type(field.annotation)
        out.append(f"| `{prefix}{name}` | {kind} | {_default(field)} | {description} |")
        for nested in _models(field.annotation):
            out += rows(nested, _path(prefix, name, field.annotation))
    return out


def main() -> None:
    print("| Field | Type | Default | Meaning |")
    print("|---|---|---|---|")
    for row in rows(DatasetSpec):
        print(row)


if __name__ == "__main__":
    main()
