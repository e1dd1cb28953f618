"""Serving: the model repository (push, routing, rollback), the runtime, the HTTP server, and
prediction with any model (request schemas from the workspace's declarations).

The serving path imports no training code and unpickles nothing: models are ONNX run by
onnxruntime, transforms are JSON (:class:`spindle.features.Transform`), and every file is
checked against its manifest's sha256 when loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from spindle.core import lazy_names as _lazy_names

if _TYPE_CHECKING:
    from spindle.serve._canary import RESULT_FILE, ROWS_FILE, SCORES_FILE
    from spindle.serve._declared import Retrieval
    from spindle.serve._integrity import Registered, RegistryHashes, registered_hash
    from spindle.serve._limits import ServingLimits
    from spindle.serve._predict import NoVersion, Prediction, Predictor
    from spindle.serve._predict_api import PredictRequest
    from spindle.serve._process import ServerThread, serve_forever
    from spindle.serve._rank import ItemRanker, Ranked
    from spindle.serve._rank_api import ModelRankRequest, RankRequest
    from spindle.serve._repository import (
        InstalledVersion,
        PushResult,
        Routing,
        check_model_name,
        check_version,
        install_version,
        leftovers,
        list_versions,
        push,
        push_routing,
        read_routing,
        remove_leftovers,
        repository_id,
        restore_version,
        rollback,
        rollback_routing,
        routing_lock,
        set_routing,
        version_dir,
        weights_routing,
        write_routing,
    )
    from spindle.serve._repository_s3 import RoutingConflict, S3Repository, model_repository
    from spindle.serve._retrieval import RetrievalError, Retriever
    from spindle.serve._runtime import (
        ChecksumMismatch,
        ModelRuntime,
        TensorSpec,
        read_manifest,
        verify_files,
    )
    from spindle.serve._schema import RequestSchema, ServingDeclarations
    from spindle.serve._server import create_app
    from spindle.serve._state import choose_version, traffic_point

# Names resolve lazily (PEP 562): a light command (`spindle models list`) that needs one name
# does not pay for the modules behind the others (torch, onnxruntime, deltalake, scipy).
_LAZY: dict[str, str] = {
    "RESULT_FILE": "spindle.serve._canary",
    "ROWS_FILE": "spindle.serve._canary",
    "SCORES_FILE": "spindle.serve._canary",
    "ChecksumMismatch": "spindle.serve._runtime",
    "InstalledVersion": "spindle.serve._repository",
    "ModelRuntime": "spindle.serve._runtime",
    "NoVersion": "spindle.serve._predict",
    "PredictRequest": "spindle.serve._predict_api",
    "Prediction": "spindle.serve._predict",
    "Predictor": "spindle.serve._predict",
    "PushResult": "spindle.serve._repository",
    "RequestSchema": "spindle.serve._schema",
    "ServingDeclarations": "spindle.serve._schema",
    "ServingLimits": "spindle.serve._limits",
    "ItemRanker": "spindle.serve._rank",
    "ModelRankRequest": "spindle.serve._rank_api",
    "RankRequest": "spindle.serve._rank_api",
    "Ranked": "spindle.serve._rank",
    "Registered": "spindle.serve._integrity",
    "RegistryHashes": "spindle.serve._integrity",
    "Retrieval": "spindle.serve._declared",
    "RetrievalError": "spindle.serve._retrieval",
    "Retriever": "spindle.serve._retrieval",
    "Routing": "spindle.serve._repository",
    "RoutingConflict": "spindle.serve._repository_s3",
    "S3Repository": "spindle.serve._repository_s3",
    "model_repository": "spindle.serve._repository_s3",
    "ServerThread": "spindle.serve._process",
    "TensorSpec": "spindle.serve._runtime",
    "check_model_name": "spindle.serve._repository",
    "check_version": "spindle.serve._repository",
    "choose_version": "spindle.serve._state",
    "create_app": "spindle.serve._server",
    "install_version": "spindle.serve._repository",
    "leftovers": "spindle.serve._repository",
    "list_versions": "spindle.serve._repository",
    "push": "spindle.serve._repository",
    "push_routing": "spindle.serve._repository",
    "read_manifest": "spindle.serve._runtime",
    "read_routing": "spindle.serve._repository",
    "registered_hash": "spindle.serve._integrity",
    "remove_leftovers": "spindle.serve._repository",
    "repository_id": "spindle.serve._repository",
    "restore_version": "spindle.serve._repository",
    "rollback": "spindle.serve._repository",
    "rollback_routing": "spindle.serve._repository",
    "routing_lock": "spindle.serve._repository",
    "serve_forever": "spindle.serve._process",
    "set_routing": "spindle.serve._repository",
    "traffic_point": "spindle.serve._state",
    "verify_files": "spindle.serve._runtime",
    "version_dir": "spindle.serve._repository",
    "weights_routing": "spindle.serve._repository",
    "write_routing": "spindle.serve._repository",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, globals())


__all__ = [
    "RESULT_FILE",
    "ROWS_FILE",
    "SCORES_FILE",
    "ChecksumMismatch",
    "InstalledVersion",
    "ItemRanker",
    "ModelRankRequest",
    "ModelRuntime",
    "NoVersion",
    "PredictRequest",
    "Prediction",
    "Predictor",
    "PushResult",
    "RankRequest",
    "Ranked",
    "Registered",
    "RegistryHashes",
    "RequestSchema",
    "Retrieval",
    "RetrievalError",
    "Retriever",
    "Routing",
    "RoutingConflict",
    "S3Repository",
    "ServerThread",
    "ServingDeclarations",
    "ServingLimits",
    "TensorSpec",
    "check_model_name",
    "check_version",
    "choose_version",
    "create_app",
    "install_version",
    "leftovers",
    "list_versions",
    "model_repository",
    "push",
    "push_routing",
    "read_manifest",
    "read_routing",
    "registered_hash",
    "remove_leftovers",
    "repository_id",
    "restore_version",
    "rollback",
    "rollback_routing",
    "routing_lock",
    "serve_forever",
    "set_routing",
    "traffic_point",
    "verify_files",
    "version_dir",
    "weights_routing",
    "write_routing",
]
