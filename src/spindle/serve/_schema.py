"""The request schema of a model version: entity keys, request columns and their types.

A model version's transform names the pinned features it reads (``<view>__<name>__v<n>``
columns) and records its request features. What a caller must send follows from those and
from the workspace's declarations: the entity keys of every view the model reads (its online
features are looked up by them) and the columns of every request group whose features it
uses. Nothing here knows a particular workspace: views, keys and request columns are data
(:class:`ServingDeclarations`), read from the workspace's ``features/*.yaml`` or, when the
server was given none, from what the online store holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spindle.core import ServingError

if TYPE_CHECKING:
    from spindle.features import FeatureRegistry, OnlineStore, Transform

#: JSON types of the declared dtypes (a request's values arrive as JSON).
_JSON_TYPES: dict[str, str] = {
    "string": "string",
    "int64": "integer",
    "int32": "integer",
    "float64": "number",
    "float32": "number",
    "double": "number",
    "float": "number",
    "bool": "boolean",
}
#: Columns the online store keeps for itself, never an entity key.
_STORE_COLUMNS = frozenset({"feature_ts", "__spindle_key"})


@dataclass(frozen=True)
class ServingDeclarations:
    """What the workspace declares that serving needs: each view's entity keys and each
    request group's columns (name -> dtype).

    Example:
        >>> ServingDeclarations.of(FeatureRegistry.load("features"))  # doctest: +SKIP
    """

    views: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    request_groups: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Each model's config (``models/<model>.yaml`` as a dict): its baselines and
    ``serving.candidates`` when no version of the model records them (none loaded yet)."""

    @classmethod
    def of(
        cls, registry: FeatureRegistry, models: Mapping[str, Any] | None = None
    ) -> ServingDeclarations:
        """The declarations of a workspace's feature registry and, optionally, its models.

        Args:
            registry: the workspace's feature registry.
            models: model name -> its ``ModelConfig`` (or the config as a dict).
        """
        configs = {
            name: config.model_dump(mode="json") if hasattr(config, "model_dump") else config
            for name, config in (models or {}).items()
        }
        return cls(
            {name: tuple(view.keys) for name, view in registry.views().items()},
            registry.request_groups(),
            configs,
        )


@dataclass(frozen=True)
class ViewLookup:
    """One view a model reads: its name and entity keys, with the keys' types."""

    view: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class RequestSchema:
    """What one model version needs per instance: entity keys and request columns, typed.

    ``fields`` maps every required field to its JSON type (``string``, ``integer``,
    ``number``, ``boolean``); ``lookups`` are the views to read online, in the order the
    transform reads them.
    """

    model: str
    version: int
    task: str
    lookups: tuple[ViewLookup, ...]
    fields: Mapping[str, str]
    routing_key: str | None
    complete: bool = True
    """False when a view was not in the online store yet (its keys' types are guesses)."""

    def to_json(self) -> dict[str, Any]:
        """The schema as ``GET /v1/models/{model}/schema`` answers it."""
        keys = [k for lookup in self.lookups for k in lookup.keys]
        return {
            "model": self.model,
            "version": str(self.version),
            "task": self.task,
            "entities": [{"view": lu.view, "keys": list(lu.keys)} for lu in self.lookups],
            "keys": {k: self.fields[k] for k in dict.fromkeys(keys)},
            "request_columns": {k: t for k, t in self.fields.items() if k not in keys},
            "routing_key": self.routing_key,
        }

    def json_schema(self) -> dict[str, Any]:
        """A JSON Schema of one instance (for the OpenAPI document)."""
        return {
            "type": "object",
            "title": f"{self.model} instance",
            "required": sorted(self.fields),
            "properties": {name: {"type": kind} for name, kind in sorted(self.fields.items())},
            "additionalProperties": True,
        }

    def check(self, instances: Sequence[Mapping[str, Any]]) -> None:
        """Check every instance has every field, of its type or null (a null key is an unknown
        entity: its features are null, as a training example's without a match).

        Raises:
            ServingError: one line naming the first bad field, the instance and the model.
        """
        for i, instance in enumerate(instances):
            for name, kind in self.fields.items():
                where = f"instances[{i}].{name}"
                if name not in instance:
                    raise ServingError(
                        f"{where}: missing; model {self.model} needs {kind} {name!r} "
                        f"(see GET /v1/models/{self.model}/schema)"
                    )
                value = instance[name]
                if value is not None and not _is(value, kind):  # null: unknown, as in training
                    raise ServingError(
                        f"{where}: expected {kind}, found {json_name(value)} {value!r:.60} "
                        f"(model {self.model})"
                    )


def check_context(
    context: Mapping[str, Any], names: Sequence[str], fields: Mapping[str, str], model: str
) -> None:
    """Check the ``names`` of ``context`` that ``fields`` types are of their type (or null).

    Raises:
        ServingError: one line naming the first bad field and the model.
    """
    for name in names:
        kind = fields.get(name)
        value = context.get(name)
        if kind is not None and value is not None and not _is(value, kind):
            raise ServingError(
                f"context.{name}: expected {kind}, found {json_name(value)} {value!r:.60} "
                f"(model {model})"
            )


def json_type(dtype: str) -> str:
    """The JSON type of a declared dtype (``string`` for one it does not know)."""
    return _JSON_TYPES.get(dtype, "string")


def _is(value: object, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return value is not None


def json_name(value: object) -> str:
    """The JSON type of a parsed value, as messages name it."""
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def feature_views(transform: Transform) -> list[str]:
    """The views whose features ``transform`` reads, in its column order (request groups left
    out: their features are computed per request)."""
    computed = {feature.column for feature in transform.request}
    views = [
        column.rsplit("__", 2)[0]
        for column in transform.columns()
        if column not in computed and column.count("__") >= 2
    ]
    return list(dict.fromkeys(views))


def store_types(store: OnlineStore, view: str) -> dict[str, str]:
    """The JSON types of the columns ``store`` holds for ``view`` (empty before it holds any)."""
    import pyarrow as pa

    held = store.backend.read(view, [])
    types: dict[str, str] = {}
    for column in held.schema if held is not None else ():
        kind = column.type
        if pa.types.is_boolean(kind):
            types[column.name] = "boolean"
        elif pa.types.is_integer(kind):
            types[column.name] = "integer"
        elif pa.types.is_floating(kind):
            types[column.name] = "number"
        else:
            types[column.name] = "string"
    return types


def _stored_keys(view: str, stored: Sequence[str]) -> tuple[str, ...]:
    """The keys of a view the workspace did not declare to the server: the columns the online
    store keeps before the first feature column (the keys, then kept columns, by layout)."""
    keys = []
    for column in stored:
        if column.startswith(f"{view}__") or column in _STORE_COLUMNS:
            break
        keys.append(column)
    return tuple(keys)


def view_keys(
    view: str, declarations: ServingDeclarations | None, store: OnlineStore
) -> tuple[str, ...]:
    """The entity keys of ``view``: declared, else read from what the online store holds.

    Raises:
        ServingError: the view is neither declared nor held by the online store.
    """
    keys = declarations.views.get(view) if declarations else None
    if keys is None:
        keys = store.key_columns(view) or _stored_keys(view, list(store_types(store, view)))
    if not keys:
        raise ServingError(
            f"view {view!r}: its entity keys are unknown: it is not declared (features/*.yaml) "
            "nor held by the online store"
        )
    return tuple(keys)


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    found = data.get(key)
    return found if isinstance(found, dict) else {}


def request_schema(
    model: str,
    version: int,
    transform: Transform,
    manifest: Mapping[str, Any],
    declarations: ServingDeclarations | None,
    store: OnlineStore,
) -> RequestSchema:
    """The request schema of one model version.

    Args:
        model: the model's name.
        version: the version.
        transform: the version's transform (its columns and request features).
        manifest: the version's manifest (its recorded config gives the task and, when
            declared, ``serving.routing_key``).
        declarations: the workspace's views and request groups; None to read the views' keys
            from the online store (no request columns are then required).
        store: the online store (key types, and keys when not declared).

    Raises:
        ServingError: a view the model reads is neither declared nor in the online store.
    """
    lookups, fields, complete = [], {}, True
    for view in feature_views(transform):
        types = store_types(store, view)
        complete = complete and bool(types)
        keys = declarations.views.get(view) if declarations else None
        if keys is None:
            keys = store.key_columns(view) or _stored_keys(view, list(types))
        if not keys:
            raise ServingError(
                f"model {model}@{version} reads view {view!r}, whose entity keys are unknown: "
                "it is not declared (features/*.yaml) nor held by the online store"
            )
        lookups.append(ViewLookup(view, tuple(keys)))
        fields.update({k: types.get(k, "string") for k in keys})
    groups = dict.fromkeys(f.ref.split(".", 1)[0] for f in transform.request)
    for group in groups:
        declared = declarations.request_groups.get(group, {}) if declarations else {}
        fields.update({c: _JSON_TYPES.get(t, "string") for c, t in declared.items()})
    config = _section(manifest, "config")
    routing_key = _section(config, "serving").get("routing_key")
    first_key = lookups[0].keys[0] if lookups else None
    return RequestSchema(
        model,
        version,
        str(config.get("task", "unknown")),  # an old manifest: its score alone
        tuple(lookups),
        fields,
        routing_key if isinstance(routing_key, str) else first_key,
        complete,
    )
