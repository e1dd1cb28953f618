"""Warm start: begin a new run from the weights of a base model version.

With the same InputSpec and hidden units every tensor is copied. A head of another width (a
multiclass model with more classes, a binary base for a multiclass model) is not copied: the
last layer keeps its fresh initialisation, and the notes say so. When the spec grew (a larger
vocabulary or cardinality) the tensors that still match are copied, and of each embedding table
the rows that exist in both; what could not be copied keeps its fresh initialisation, and the
notes say which. Row copying assumes ids are stable: id ``i`` means the same value in the base
and in the new transform (true of hashed ids and of vocabularies that only append).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch

from spindle.core import TrainingError
from spindle.train._model import Model
from spindle.train._spec import InputSpec

WEIGHTS_FILE = "weights.pt"
SPEC_FILE = "input_spec.json"


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Load a state_dict saved by ``train_model`` (``weights.pt``, or its version directory).

    Raises:
        TrainingError: the file is missing or is not a state_dict of tensors.
    """
    file = Path(path) / WEIGHTS_FILE if Path(path).is_dir() else Path(path)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise TrainingError(
            f"base weights {file} do not exist; train from scratch or give "
            "the directory of an existing model version"
        ) from None
    except (RuntimeError, ValueError, pickle.UnpicklingError, OSError) as error:
        raise TrainingError(f"base weights {file} cannot be loaded: {error}") from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TrainingError(f"base weights {file} are not a state_dict of tensors")
    return state


def warm_start(model: Model, base: Path) -> tuple[bool, list[str]]:
    """Copy what fits of the base weights into ``model``; return (anything copied, notes)."""
    source = load_weights(base)
    target = model.state_dict()
    full, partial, skipped = [], [], []
    with torch.no_grad():
        for name, tensor in target.items():
            old = source.get(name)
            if old is None:
                skipped.append(f"{name} (not in the base)")
            elif old.shape == tensor.shape:
                tensor.copy_(old)
                full.append(name)
            elif _is_embedding(name) and old.ndim == 2 and old.shape[1] == tensor.shape[1]:
                rows = min(old.shape[0], tensor.shape[0])
                tensor[:rows].copy_(old[:rows])
                partial.append(f"{name} ({rows} of {tensor.shape[0]} rows)")
            else:
                skipped.append(f"{name} (shape {tuple(old.shape)} -> {tuple(tensor.shape)})")
    model.load_state_dict(target)
    if not partial and not skipped:
        return True, [f"warm started from {base}: every tensor copied (same InputSpec)"]
    notes = [
        f"warm started from {base} with a different InputSpec or architecture: "
        f"{len(full)} tensor(s) copied whole, {len(partial)} in part, {len(skipped)} not"
    ]
    notes += _spec_changes(base, model.spec)
    notes += [f"warm start copied in part: {item}" for item in partial]
    notes += [f"warm start kept fresh: {item}" for item in skipped]
    unused = sorted(set(source) - set(target))
    if unused:
        notes.append(f"warm start ignored base tensors: {', '.join(unused)}")
    return bool(full or partial), notes


def _spec_changes(base: Path, spec: InputSpec) -> list[str]:
    """Name the InputSpec fields that changed since the base, if its spec file is beside it."""
    spec_file = (base if base.is_dir() else base.parent) / SPEC_FILE
    try:
        old = InputSpec.from_dict(json.loads(spec_file.read_text()))
    except (OSError, ValueError, TrainingError):
        return []
    new_fields, old_fields = spec.to_dict(), old.to_dict()
    keys = [*new_fields, *(k for k in old_fields if k not in new_fields)]  # head keys may differ
    changed = [
        f"{k} {old_fields.get(k)} -> {new_fields.get(k)}"
        for k in keys
        if old_fields.get(k) != new_fields.get(k)
    ]
    return [f"InputSpec changed since the base: {'; '.join(changed)}"] if changed else []


def _is_embedding(name: str) -> bool:
    return name.startswith(("cat_embeddings.", "word_embedding."))
