"""The MLP's matrix products on oneDNN in training: same maths, twice the speed on AVX-512 CPUs.

torch sends a float32 ``nn.Linear`` on CPU to MKL's SGEMM, which takes its AVX2 code path on
AMD processors; oneDNN, shipped inside the same torch wheel, uses AVX-512 there. Measured on the
2-core AMD EPYC CI machine, one thread, the ranker's first layer at batch 1024 (137 -> 64):
forward 190 -> 92 us, input gradient 208 -> 108 us, weight gradient 217 -> 140 us; the results
agree with MKL's to float rounding and are bit-identical with 1 and 2 threads. A oneDNN call
costs ~20 us more before any arithmetic (primitive lookup), so ``linear`` keeps products under
``MIN_MACS`` multiply-adds on MKL, and everything on MKL where oneDNN is missing (another
platform or torch build) or the tensors are not float32 on the CPU. Export and evaluation run
the plain ``nn.Linear`` layers; only training takes this route.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional


def _probe() -> bool:
    """Whether this torch has oneDNN's dense linear op, and it computes a product correctly."""
    try:
        if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
            return False
        x = torch.arange(6, dtype=torch.float32).reshape(2, 3)
        w = torch.ones(2, 3)
        got = torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return bool(torch.equal(got, x @ w.t()))


AVAILABLE = _probe()
# Below ~2M multiply-adds (MKL: ~45 us) oneDNN's fixed cost eats its faster arithmetic.
MIN_MACS = 1 << 21


def linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, relu: bool = False
) -> torch.Tensor:
    """``x @ weight.T (+ bias)``, then ReLU if asked, on the faster kernel for its size.

    Args:
        x: ``[N, K]`` (a transposed view is fine).
        weight: ``[M, K]`` (likewise).
        bias: ``[M]`` or None.
        relu: apply ReLU to the result.

    Returns:
        ``[N, M]``, contiguous.
    """
    macs = x.shape[0] * x.shape[1] * weight.shape[0]
    if AVAILABLE and macs >= MIN_MACS and x.dtype == torch.float32 and x.device.type == "cpu":
        attr = "relu" if relu else "none"
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(x, weight, bias, attr, [], "")
        return out
    out = functional.linear(x, weight, bias)
    return torch.relu_(out) if relu else out


class _Linear(torch.autograd.Function):
    """``linear`` with its backward on the same kernels."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, relu: bool
    ) -> torch.Tensor:
        out = linear(x, weight, bias, relu)
        ctx.save_for_backward(x, weight, out if relu else None)  # the ReLU mask, if any
        return out

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, None]:
        x, weight, relu_out = ctx.saved_tensors
        grad_x, grad_weight, grad_bias = linear_backward(
            grad, x, weight, relu_out, ctx.needs_input_grad[0]
        )
        return grad_x, grad_weight, grad_bias, None


def linear_backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    relu_out: torch.Tensor | None,
    input_grad: bool,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Gradients of ``linear(x, weight, bias, relu)`` for the output gradient ``grad``.

    ``relu_out`` is the layer's output when it applied ReLU (the mask), else None. Returns
    the gradients of ``x`` (None unless ``input_grad``), ``weight`` and ``bias``.
    """
    if relu_out is not None:
        grad = torch.ops.aten.threshold_backward(grad, relu_out, 0)
    grad_x = linear(grad, weight.t().contiguous(), None) if input_grad else None
    return grad_x, linear(grad.t(), x.t(), None), grad.sum(dim=0)


def mlp_forward(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``mlp(x)`` with its ``Linear`` (+ following ``ReLU``) layers on ``linear``'s kernels.

    Args:
        mlp: ``Linear`` and ``ReLU`` layers (anything else runs as itself).
        x: ``[N, in_features]``.

    Returns:
        The output, as ``mlp(x)`` up to float rounding.
    """
    layers = list(mlp)
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, nn.Linear) and layer.bias is not None and x.dim() == 2:
            relu = i + 1 < len(layers) and isinstance(layers[i + 1], nn.ReLU)
            x = _Linear.apply(x, layer.weight, layer.bias, relu)  # type: ignore[no-untyped-call]
            i += 2 if relu else 1
        else:
            x = layer(x)
            i += 1
    return x
