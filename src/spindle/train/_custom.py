"""The ``custom`` model family: a user's torch module, trained by spindle's torch recipes.

``training.custom.module`` names a class ``"package.module:ClassName"`` (imported with the
workspace directory on the import path, so a workspace file ``models_py/net.py`` is
``models_py.net``); it is built as ``ClassName(spec, **training.custom.options)`` and called
as ``forward(cat, text, dense)`` with the inputs of ``spec`` (``cat`` int64 ``[N, C]``,
``text`` int64 ``[N, T, L]``, ``dense`` float32 ``[N, D]``; None for what the spec lacks). It
returns the head's raw output, float32: ``[N]`` (a logit for binary and ranking, the
standardised value for regression) or ``[N, K]`` logits (multiclass, ``spec.classes``).

Everything else is spindle's, as for the ranker: the loss per task (``head_losses``), the
label standardisation and its undoing in the served graph (``served_output``), the sync and
bounded-staleness recipes with checkpoints and resume, example weights, progress, DDP
(``workers > 1``, spawned or torchrun's ranks: a job records the module's import root, see
``import_roots``), streaming from Parquet, warm start (tensors of the same name and shape
copied) and the verified ONNX export. The optimiser is Adam over every parameter; the ranker's
fused planned step and ``RowAdam`` are its own.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spindle.core import ConfigError, TrainingConfig, TrainingError, sha256_bytes, sha256_file
from spindle.train._batches import ParquetBatches
from spindle.train._head import served_output
from spindle.train._protocol import ParquetData, TorchTrainer
from spindle.train._spec import InputSpec, check_inputs
from spindle.train._train import TrainResult, train_model

_PREFIX = "net."
_CHECK_ROWS = 8


class CustomModel(nn.Module):
    """The user's module behind the interface the recipes and the export use.

    ``state_dict`` and ``load_state_dict`` speak the user's own names (no prefix), so
    ``weights.pt`` loads into ``ClassName(spec, **options)`` directly.

    Args:
        spec: the input spec (the user's module gets it as its first argument).
        config: the training config; ``config.custom`` names the module and its options.

    Raises:
        ConfigError: the module cannot be imported or built (see ``load_custom_module``).
    """

    def __init__(self, spec: InputSpec, config: TrainingConfig) -> None:
        super().__init__()
        self.spec = spec
        cls = load_custom_module(config)
        options = config.custom.options if config.custom is not None else {}
        try:
            self.net = cls(spec, **options)
        except Exception as error:  # the user's constructor: any error means "not built"
            raise _config_error(
                f"training.custom: {_path(config)}(spec, **{options!r}) failed: "
                f"{type(error).__name__}: {_first_line(error)}; fix the class or "
                "training.custom.options"
            ) from None
        sparse = [n for n, m in self.net.named_modules() if getattr(m, "sparse", False) is True]
        if sparse:
            raise _config_error(
                f"training.custom: {_path(config)} has sparse-gradient embeddings "
                f"({', '.join(sparse)}); framework custom trains with dense Adam: use "
                "nn.Embedding(..., sparse=False)"
            )
        self.register_state_dict_post_hook(_drop_prefix)  # type: ignore[no-untyped-call]
        self.register_load_state_dict_pre_hook(_add_prefix)  # type: ignore[no-untyped-call]

    def sparse_parameters(self) -> list[torch.Tensor]:
        """None: every parameter of a custom module is dense."""
        return []

    def dense_parameters(self) -> list[torch.Tensor]:
        """Every parameter that trains (Adam's)."""
        return [p for p in self.parameters() if p.requires_grad]

    def plan(self, cat: np.ndarray | None, text: np.ndarray | None) -> None:
        """No embedding plan: the module looks up its own embeddings."""
        return None

    def forward(
        self,
        cat: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        dense: torch.Tensor | None = None,
        plan: object = None,
    ) -> torch.Tensor:
        out: torch.Tensor = self.net(cat, text, dense)
        return out

    def served(self, **inputs: torch.Tensor | None) -> torch.Tensor:
        """What the exported model answers: ``forward`` mapped by the head."""
        return served_output(self.spec, self(**inputs))


def load_custom_module(config: TrainingConfig) -> type[nn.Module]:
    """Import the class ``training.custom.module`` names (``"package.module:ClassName"``).

    Args:
        config: a training config with ``framework: custom``.

    Returns:
        the class, a subclass of ``torch.nn.Module``.

    Raises:
        ConfigError: ``training.custom`` is missing, the module cannot be imported, it has no
            such class, or the class is not an ``nn.Module`` (one line, naming the path).
    """
    if config.custom is None:
        raise _config_error(
            "training.custom is missing: framework custom needs training.custom.module "
            '("package.module:ClassName")'
        )
    module_name, class_name = config.custom.module.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # an import runs the user's code: any error means "not loaded"
        raise _config_error(
            f"training.custom.module {config.custom.module!r}: cannot import {module_name!r} "
            f"({type(error).__name__}: {_first_line(error)}); the workspace directory is on the "
            "import path, so models_py/net.py in the workspace is 'models_py.net'"
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise _config_error(
            f"training.custom.module {config.custom.module!r}: {module_name} has no "
            f"{class_name!r} (file {getattr(module, '__file__', '?')}); name a class it defines"
        )
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise _config_error(
            f"training.custom.module {config.custom.module!r}: {class_name} is not a "
            "torch.nn.Module subclass; the custom family trains torch modules"
        )
    return cls


def module_sha256(config: TrainingConfig) -> str:
    """The sha256 of the source file of the module ``training.custom.module`` names (part of
    a run's fingerprint: checkpoints of other code are not resumed).

    Raises:
        ConfigError: as ``load_custom_module``.
    """
    cls = load_custom_module(config)
    try:
        source = inspect.getsourcefile(cls)
    except TypeError:  # defined outside any file (e.g. interactively)
        source = None
    return sha256_file(Path(source)) if source else sha256_bytes(cls.__qualname__.encode())


def import_roots(config: TrainingConfig) -> tuple[str, ...]:
    """The directory that makes ``training.custom.module`` importable, absolute: what a fresh
    process (a torchrun rank) puts on ``sys.path`` before it builds the module.

    Computed from the module's file and dotted name: ``/ws/models_py/net.py`` imported as
    ``models_py.net`` gives ``/ws``. Empty for a module with no file, or whose file does not
    sit where its name says (a zip import, a custom importer): nothing known to add.

    Raises:
        ConfigError: as ``load_custom_module``.

    Example:
        >>> import_roots(config)  # doctest: +SKIP
        ('/home/me/workspace',)
    """
    load_custom_module(config)  # refuses a config without training.custom
    name = _path(config).split(":")[0]
    file = getattr(importlib.import_module(name), "__file__", None)
    if not file:
        return ()
    path = Path(os.path.abspath(file))
    parts = name.split(".")
    stem = path.name.split(".")[0]  # every suffix dropped: .py, .cpython-312-x86_64-linux-gnu.so
    named = path.parent if stem == "__init__" else path.parent / stem  # a package is its folder
    if named.parts[-len(parts) :] != tuple(parts):
        return ()
    return (str(named.parents[len(parts) - 1]),)


class CustomTrainer:
    """A user's torch module (``training.custom``), trained by the sync, bounded-staleness or
    DDP recipe, from arrays in memory or streamed from Parquet."""

    framework = "custom"

    def __init__(self, config: TrainingConfig | None = None) -> None:
        self.config = config  # to rebuild the module for predict (else the version's manifest)

    def train(
        self,
        inputs: dict[str, np.ndarray],
        labels: np.ndarray,
        spec: InputSpec,
        config: TrainingConfig,
        out_dir: Path,
        *,
        checkpoint_dir: Path,
        base_dir: Path | None = None,
        progress: Callable[[int, int], None] | None = None,
        weights: np.ndarray | None = None,
    ) -> TrainResult:
        """Check the module on a few rows, then train and export as ``train_model`` does
        (see ``Trainer.train``).

        Raises:
            ConfigError: the module cannot be imported or built.
            TrainingError: the module's output has the wrong shape or dtype for the task,
                the ONNX export fails (naming the operator when torch does), or any error of
                ``train_model``.
        """
        rows = check_inputs(inputs, spec)
        if rows > 0:  # an empty set is train_model's error to name
            check_output(CustomModel(spec, config), spec, inputs, rows)
        result = train_model(
            inputs,
            labels,
            spec,
            config,
            out_dir,
            checkpoint_dir=checkpoint_dir,
            base_weights=base_dir,
            progress=progress,
            weights=weights,
        )
        return _with_note(result, config)

    def can_stream(self, config: TrainingConfig) -> bool:
        """As torch: one process, or DDP ranks that each stream their shard."""
        return True

    def train_stream(
        self,
        data: ParquetData,
        spec: InputSpec,
        config: TrainingConfig,
        out_dir: Path,
        *,
        checkpoint_dir: Path,
        base_dir: Path | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> TrainResult:
        """Check the module on the file's first rows, then train as ``train_from_parquet``
        does (see ``StreamingTrainer.train_stream``).

        Raises:
            ConfigError: the module cannot be imported or built.
            TrainingError: the first rows do not fit ``spec``, the module's output has the
                wrong shape or dtype for the task (the same message as in memory), or any
                error of ``train_from_parquet``.
        """
        source = ParquetBatches(data.path, data.encode, config.seed, columns=data.columns)
        inputs = source.sample(_CHECK_ROWS)  # an empty file is train_from_parquet's to name
        if inputs:
            rows = check_inputs(inputs, spec)  # the stream checks every chunk the same way
            check_output(CustomModel(spec, config), spec, inputs, rows)
        result = TorchTrainer(config).train_stream(  # the same streamed recipe
            data, spec, config, out_dir, checkpoint_dir=checkpoint_dir, base_dir=base_dir,
            progress=progress,
        )  # fmt: skip
        return _with_note(result, config)

    def predict(self, out_dir: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The module's own answer in torch (``weights.pt`` loaded into the user's class), not
        ``model.onnx``'s: infra validation compares the two, so a bad export is caught.

        Raises:
            TrainingError: no training config to rebuild the module from (neither given nor in
                a manifest of ``out_dir``), or the weights do not fit it.
        """
        return TorchTrainer(self.config).predict(out_dir, inputs)  # the same torch scoring


def check_output(
    model: CustomModel, spec: InputSpec, inputs: dict[str, np.ndarray], rows: int
) -> None:
    """Run ``model`` on the first rows and check its output fits the task's head.

    Raises:
        TrainingError: forward raised, or returned other than float32 ``[N]`` (``[N, K]``
            for multiclass).
    """
    n = min(rows, _CHECK_ROWS)
    batch = {name: torch.from_numpy(np.ascontiguousarray(a[:n])) for name, a in inputs.items()}
    name = type(model.net).__name__
    try:
        with torch.no_grad():
            out = model(**batch)
    except Exception as error:  # the user's forward: report it on one line
        raise TrainingError(
            f"custom module {name}.forward(cat, text, dense) failed on {n} rows: "
            f"{type(error).__name__}: {_first_line(error)}"
        ) from None
    want = (n,) if spec.outputs == 1 else (n, spec.outputs)
    if not isinstance(out, torch.Tensor) or out.dtype != torch.float32 or out.shape != want:
        got = f"{out.dtype} {list(out.shape)}" if isinstance(out, torch.Tensor) else type(out)
        shape = "[N]" if spec.outputs == 1 else f"[N, {spec.outputs}]"
        raise TrainingError(
            f"custom module {name}.forward must return float32 {shape} for a {spec.task} "
            f"model (here {list(want)}), it returned {got}"
        )


def _config_error(message: str) -> ConfigError:
    """A one-line ``ConfigError``; ``message`` begins with the ``training.`` key it names."""
    return ConfigError("training", [message])


def _with_note(result: TrainResult, config: TrainingConfig) -> TrainResult:
    note = (
        f"custom module {_path(config)}: Adam over all its parameters (the fused planned "
        "step and RowAdam are the tabular_nn ranker's)"
    )
    return replace(result, notes=(note, *result.notes))


def _path(config: TrainingConfig) -> str:
    return config.custom.module if config.custom is not None else "?"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def _drop_prefix(module: nn.Module, state: dict[str, Any], prefix: str, metadata: Any) -> None:
    """State-dict post-hook: the user's own names (``net.fc.weight`` -> ``fc.weight``)."""
    inner = prefix + _PREFIX
    for key in [k for k in state if k.startswith(inner)]:
        state[prefix + key[len(inner) :]] = state.pop(key)


def _add_prefix(
    module: nn.Module,
    state: dict[str, Any],
    prefix: str,
    metadata: Any,
    strict: bool,
    missing: list[str],
    unexpected: list[str],
    errors: list[str],
) -> None:
    """Load pre-hook: the user's names back under ``net.`` (every key of this module is the
    user's: the wrapper has no tensors of its own)."""
    for key in [k for k in state if k.startswith(prefix)]:
        state[prefix + _PREFIX + key[len(prefix) :]] = state.pop(key)
