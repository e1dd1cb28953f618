"""The ranker's training forward as one autograd node, its backward written out.

``Ranker.forward`` with a plan (training) calls ``planned_logits``: the planned lookups
(``spindle.train._plan``), the feature row (categorical vectors, pooled text, query·name, dense),
and the MLP on ``spindle.train._onednn.linear``, then a backward that walks the same path in
reverse by hand: per layer the ReLU mask, the weight, bias and input gradients; the input
gradient split back into its parts (the query·name product's share added to both pooled
columns); one ``embedding_bag`` that sums every touched row's gradient into a coalesced sparse
gradient for the stacked table. Why by hand: at batch 1024 the step is ~2 ms, and autograd's
per-node cost (a Python ``Function`` per layer, ~15 nodes for the feature row) was ~0.3 ms of it.
The plain ``Ranker`` forward is the reference: a test requires equal logits and gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional

from spindle.train._onednn import linear, linear_backward
from spindle.train._plan import EmbeddingPlan


@dataclass(frozen=True)
class FeatureLayout:
    """How the MLP's input row is laid out: ``[cat C*E | text T*E | query·name 1 | dense D]``."""

    n_cat: int
    n_text: int
    dim: int
    relevance: bool


class _PlannedRanker(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        layout: FeatureLayout,
        plan: EmbeddingPlan,
        dense: torch.Tensor | None,
        table: torch.Tensor,
        *layers: torch.Tensor,
    ) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        pooled = table.new_empty(0)
        if plan.cat_ids is not None:
            parts.append(table.index_select(0, plan.cat_ids.view(-1)).view(plan.rows, -1))
        if plan.text_ids is not None:
            pooled = functional.embedding_bag(
                plan.text_ids,
                table,
                plan.text_offsets,
                mode="sum",
                per_sample_weights=plan.text_weights,
            ).view(plan.rows, layout.n_text, layout.dim)
            parts.append(pooled.view(plan.rows, -1))
            if layout.relevance:
                parts.append((pooled[:, 0] * pooled[:, 1]).sum(dim=1, keepdim=True))
        if dense is not None:
            parts.append(dense)
        h = torch.cat(parts, dim=1)
        weights, biases = layers[0::2], layers[1::2]
        activations = [h]
        for i, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
            h = linear(h, weight, bias, relu=i < len(weights) - 1)
            activations.append(h)
        ctx.layout, ctx.plan, ctx.table_shape = layout, plan, table.shape
        ctx.save_for_backward(pooled, *weights, *activations)
        return h.view(-1) if h.shape[1] == 1 else h  # one logit [N]; K logits [N, K]

    @staticmethod
    def backward(ctx: Any, grad_logits: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        layout: FeatureLayout = ctx.layout
        plan: EmbeddingPlan = ctx.plan
        pooled, *saved = ctx.saved_tensors
        count = (len(saved) - 1) // 2
        weights, activations = saved[:count], saved[count:]
        grad = grad_logits.reshape(plan.rows, -1)
        layer_grads: list[torch.Tensor] = []
        for i in reversed(range(count)):
            relu_out = activations[i + 1] if i < count - 1 else None
            grad_in, grad_weight, grad_bias = linear_backward(
                grad, activations[i], weights[i], relu_out, input_grad=True
            )
            layer_grads[:0] = [grad_weight, grad_bias]
            assert grad_in is not None
            grad = grad_in
        table_grad = _table_grad(grad, pooled, layout, plan, ctx.table_shape)
        return (None, None, None, table_grad, *layer_grads)


def _table_grad(
    grad_features: torch.Tensor,
    pooled: torch.Tensor,
    layout: FeatureLayout,
    plan: EmbeddingPlan,
    table_shape: torch.Size,
) -> torch.Tensor:
    """The stacked table's sparse gradient from the feature row's gradient ``[N, width]``."""
    rows, dim = plan.rows, layout.dim
    per_bag: list[torch.Tensor] = []  # one row per bag: categorical ids, then text columns
    start = 0
    if plan.cat_ids is not None:
        width = layout.n_cat * dim
        per_bag.append(grad_features[:, :width].reshape(rows * layout.n_cat, dim))
        start = width
    if plan.text_ids is not None:
        width = layout.n_text * dim
        grad_pooled = grad_features[:, start : start + width].reshape(rows, layout.n_text, dim)
        grad_pooled = grad_pooled.contiguous()  # reshape may have kept a strided view
        if layout.relevance:
            grad_relevance = grad_features[:, start + width : start + width + 1]
            grad_pooled[:, 0].addcmul_(grad_relevance, pooled[:, 1])
            grad_pooled[:, 1].addcmul_(grad_relevance, pooled[:, 0])
        per_bag.append(grad_pooled.view(rows * layout.n_text, dim))
    sums = functional.embedding_bag(
        plan.bags,
        per_bag[0] if len(per_bag) == 1 else torch.cat(per_bag),
        plan.starts,
        mode="sum",
        per_sample_weights=plan.bag_weights,
    )
    return torch.sparse_coo_tensor(
        plan.touched.unsqueeze(0), sums, table_shape, is_coalesced=True, check_invariants=False
    )


def planned_logits(
    layout: FeatureLayout,
    plan: EmbeddingPlan,
    dense: torch.Tensor | None,
    table: torch.Tensor,
    layers: list[torch.Tensor],
) -> torch.Tensor:
    """The ranker's logits ``[N]`` (``[N, K]`` for a K-wide head) for a planned batch (see the
    module docstring).

    Args:
        layout: the feature row's layout.
        plan: the batch's lookups.
        dense: ``[N, D]`` dense inputs, or None.
        table: the stacked embedding table (gets a coalesced sparse gradient).
        layers: the MLP's ``Linear`` weights and biases in order (``w0, b0, w1, b1, ...``);
            ReLU follows every layer but the last.
    """
    logits: torch.Tensor = _PlannedRanker.apply(  # type: ignore[no-untyped-call]
        layout, plan, dense, table, *layers
    )
    return logits
