"""``spindle doctor``'s checks of the model versions kept on the object store.

With ``artifacts_url`` on an object store every ready version is also kept there
(``<artifacts_url>/models/<model>/<version>/``, see ``_version_store``). A ready version whose
local folder is gone (a lost disk) while the store has it is fetched back by ``--fix``
(verified against its manifest and the registry); one whose folder is here but not on the
store (the store was configured after it was trained, or a publish failed) is put there by
``--fix``. A version missing in both places is the model-version check's problem
(``missing_file``): nothing here can bring it back.
"""

from __future__ import annotations

from spindle.core import DataError, ServingError
from spindle.orchestrate._context import Context
from spindle.orchestrate._model_common import model_dir
from spindle.orchestrate._version_store import (
    is_published,
    publish_version,
    version_folder,
    version_location,
)

Found = tuple[str, str, str, bool]
"""kind, subject, message, fixed: one problem for ``Problem``."""


def check_versions(ctx: Context, fix: bool) -> list[Found]:
    """Every ready version missing here or on the store (see the module docstring).

    Returns:
        One ``(kind, subject, message, fixed)`` per problem; only the first when the store
        cannot be reached; none when the artifacts are local.
    """
    where = ctx.workspace.artifacts_location
    if where.is_local:
        return []
    found: list[Found] = []
    try:
        where.check()
        for model in ctx.store.models():
            for record in ctx.store.versions(model):
                if record.status == "ready" and record.artifact_id is not None:
                    found += _check_version(ctx, model, record.version, fix)
    except DataError as exc:
        return [*found, ("version_store", str(where), str(exc), False)]
    return found


def _check_version(ctx: Context, model: str, version: int, fix: bool) -> list[Found]:
    subject = f"{model}@{version}"
    local = model_dir(ctx, model, version)
    stored = version_location(ctx, model, version)
    assert stored is not None  # the artifacts are on a store
    on_store = is_published(stored)
    if not local.is_dir() and on_store:
        lost = f"{local} is missing; the store has the version at {stored}"
        if not fix:
            return [
                ("version_folder", subject, f"{lost}: `spindle doctor --fix` fetches it", False)
            ]
        try:
            version_folder(ctx, model, version)
        except ServingError as exc:
            return [("version_folder", subject, f"{lost} but cannot give it back: {exc}", False)]
        return [("version_folder", subject, f"{lost}: fetched it back", True)]
    if local.is_dir() and not on_store:
        absent = f"{stored} does not hold the version (its folder {local} does)"
        if not fix:
            return [
                (
                    "version_not_stored",
                    subject,
                    f"{absent}: `spindle doctor --fix` puts it there",
                    False,
                )
            ]
        try:
            publish_version(ctx, model, version)
        except ServingError as exc:
            return [("version_not_stored", subject, f"{absent}; not put there: {exc}", False)]
        return [("version_not_stored", subject, f"{absent}: put it there", True)]
    return []
