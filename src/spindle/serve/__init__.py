"""Serving: the model repository (push, routing, rollback), the runtime, and the HTTP server.

The serving path imports no training code and unpickles nothing: models are ONNX run by
onnxruntime, transforms are JSON (:class:`spindle.features.Transform`), and every file is
checked against its manifest's sha256 when loaded.
"""

from __future__ import annotations

from spindle.serve._process import ServerThread, serve_forever
from spindle.serve._ranking import RankResult, popularity_scores
from spindle.serve._repository import (
    PushResult,
    Routing,
    check_model_name,
    check_version,
    list_versions,
    push,
    read_routing,
    rollback,
    set_routing,
    version_dir,
)
from spindle.serve._runtime import (
    ChecksumMismatch,
    ModelRuntime,
    TensorSpec,
    read_manifest,
    verify_files,
)
from spindle.serve._server import RankRequest, create_app
from spindle.serve._state import choose_version, traffic_point

__all__ = [
    "ChecksumMismatch",
    "ModelRuntime",
    "PushResult",
    "RankRequest",
    "RankResult",
    "Routing",
    "ServerThread",
    "TensorSpec",
    "check_model_name",
    "check_version",
    "choose_version",
    "create_app",
    "list_versions",
    "popularity_scores",
    "push",
    "read_manifest",
    "read_routing",
    "rollback",
    "serve_forever",
    "set_routing",
    "traffic_point",
    "verify_files",
    "version_dir",
]
