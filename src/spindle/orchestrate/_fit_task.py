"""The train step's fit as a task on a node that may not have the workspace's folder.

On a cluster's node the training set is read from a local copy of its file (one on an
object store is copied into the node's scratch folder first; the train package always reads a
local file). When the workspace's artifacts folder is not on the node, the fit's scratch and
checkpoints go to the node's temp folder (``<tmp>/spindle/fit/...``). With the workspace's
artifacts on an object store the checkpoints are kept there too (``mirror``, see
``spindle.train.mirror_checkpoints``), so a fit retried on another node resumes from the last
checkpoint the lost node kept; without one, a retried fit resumes only on the same node. A
warm start reads its base version's folder: on a node without it, the base is fetched from the
object store (``<artifacts_url>/models/...``, see ``_version_store``) into the node's temp
folder (``<tmp>/spindle/fit/base/...``), verified; with local artifacts a warm start needs the
workspace's folder. The trained files then come back to the driver as one tar archive, which
:func:`unpacked` writes into the driver's scratch folder.
"""

from __future__ import annotations

import dataclasses
import io
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from spindle.core import Location, is_object_store_url

if TYPE_CHECKING:
    from spindle.orchestrate._version_store import StoredVersion
    from spindle.train import FittedVersion, VersionPlan


def fit_on_node(
    plan: VersionPlan,
    scratch: Path,
    checkpoints: Path,
    artifacts: Path,
    options: tuple[tuple[str, str], ...] = (),
    mirror: Location | None = None,
    base: StoredVersion | None = None,
) -> tuple[FittedVersion, bytes | None]:
    """Fit ``plan`` here (the body of the train task).

    Args:
        plan: the version's plan; its training set may be on an object store.
        scratch, checkpoints: the driver's folders for the trainer's output and checkpoints.
        artifacts: the workspace's artifacts folder (absent: the node's temp folder is used).
        options: the storage options of a training set on an object store.
        mirror: where the checkpoints are also kept (None: only on this node).
        base: the warm-start base version on the object store, fetched when its folder
            (``plan.base_dir``) is not on this node (None: it must be).

    Returns:
        The fitted version, and the trainer's output as a tar archive when it was written in
        the node's temp folder (None: it is in ``scratch``).
    """
    from spindle.train import fit_version, mirror_checkpoints

    uri = plan.trainset.uri
    if is_object_store_url(uri):
        local = Location(uri, options).local_copy()
        plan = dataclasses.replace(
            plan, trainset=dataclasses.replace(plan.trainset, uri=str(local))
        )
    if artifacts.is_dir():
        mirror_checkpoints(checkpoints, mirror)
        return fit_version(plan, scratch, checkpoints), None
    node = Path(tempfile.gettempdir()) / "spindle" / "fit"
    if base is not None and plan.base_dir is not None and not plan.base_dir.is_dir():
        plan = dataclasses.replace(plan, base_dir=base.fetched(node / "base"))
    here = node / "scratch" / scratch.parent.name / scratch.name
    shutil.rmtree(here, ignore_errors=True)
    here.parent.mkdir(parents=True, exist_ok=True)
    kept = node / "checkpoints" / checkpoints.parent.name / checkpoints.name
    mirror_checkpoints(kept, mirror)
    fitted = fit_version(plan, here, kept)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(here, arcname=".")
    shutil.rmtree(here, ignore_errors=True)
    shutil.rmtree(kept, ignore_errors=True)
    return fitted, archive.getvalue()


def unpacked(fitted: FittedVersion, archive: bytes | None, scratch: Path) -> FittedVersion:
    """The fitted version with its files in ``scratch`` (``archive`` written there, if any)."""
    if archive is None:
        return fitted
    scratch.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        tar.extractall(scratch, filter="data")
    result = fitted.result
    moved = {
        name: scratch / getattr(result, name).relative_to(fitted.scratch)
        for name in ("onnx_path", "weights_path")
        if getattr(result, name).is_relative_to(fitted.scratch)
    }
    result = dataclasses.replace(result, out_dir=scratch, **moved)
    return dataclasses.replace(fitted, scratch=scratch, result=result)
