"""The model's head per task: its training loss per row and its served output.

``binary`` and ``ranking``: one logit, logistic loss (the served output is the logit).
``regression``: one value; the head learns the standardised label
``(y - label_mean) / label_std`` with squared error, and the served output is
``raw * label_std + label_mean`` (so learning rates that suit unit-scale targets work for
labels in minutes or dollars). ``multiclass``: K logits, softmax cross-entropy; the served output
is the ``[N, K]`` logits (the gate and predict apply the softmax).
"""

from __future__ import annotations

import torch
from torch.nn import functional

from spindle.train._spec import InputSpec


def is_logistic(spec: InputSpec | None) -> bool:
    """Whether the head is one logit with logistic loss (binary, ranking; None: binary)."""
    return spec is None or spec.task in ("binary", "ranking")


def head_losses(
    spec: InputSpec | None, outputs: torch.Tensor, labels: torch.Tensor, reduction: str = "none"
) -> torch.Tensor:
    """The loss of every row (``reduction="none"``), their ``"sum"`` or their ``"mean"``.

    Args:
        spec: the model's spec (its head fields); None is a binary head.
        outputs: the head's raw output, ``[N]`` (``[N, K]`` for multiclass).
        labels: float32 ``[N]``: 0/1, values, or class indices.
        reduction: ``"none"``, ``"sum"`` or ``"mean"``.
    """
    if is_logistic(spec):
        return functional.binary_cross_entropy_with_logits(outputs, labels, reduction=reduction)
    assert spec is not None
    if spec.task == "multiclass":
        return functional.cross_entropy(outputs, labels.long(), reduction=reduction)
    target = (labels - spec.label_mean) / spec.label_std
    return functional.mse_loss(outputs, target, reduction=reduction)


def served_output(spec: InputSpec, outputs: torch.Tensor) -> torch.Tensor:
    """What the exported model answers for the head's raw ``outputs`` (see the module doc)."""
    if spec.task == "regression":
        return outputs * spec.label_std + spec.label_mean
    return outputs
