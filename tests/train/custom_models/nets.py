"""Small modules that honour the custom-module contract, and some that break it."""

from __future__ import annotations

import torch
from torch import nn

from spindle.train import InputSpec


class TinyNet(nn.Module):
    """Embeddings per categorical column, mean-pooled words per text column, dense as they are,
    then an MLP to the head's width (1, or K classes)."""

    def __init__(self, spec: InputSpec, hidden: int = 16, dim: int = 4) -> None:
        super().__init__()
        self.spec = spec
        self.cats = nn.ModuleList(nn.Embedding(c, dim) for c in spec.cat_cardinalities)
        self.words = nn.Embedding(spec.text_vocab_size, dim) if spec.n_text else None
        width = dim * (len(spec.cat_cardinalities) + spec.n_text) + spec.n_dense
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, spec.outputs)
        )

    def forward(
        self, cat: torch.Tensor | None, text: torch.Tensor | None, dense: torch.Tensor | None
    ) -> torch.Tensor:
        parts = []
        if cat is not None:
            parts += [table(cat[:, j]) for j, table in enumerate(self.cats)]
        if text is not None and self.words is not None:
            mask = (text != 0).unsqueeze(-1).float()
            pooled = (self.words(text) * mask).sum(2) / mask.sum(2).clamp(min=1.0)
            parts.append(pooled.flatten(1))
        if dense is not None:
            parts.append(dense)
        out = self.mlp(torch.cat(parts, dim=1))
        return out.squeeze(-1) if self.spec.outputs == 1 else out


class WideNet(TinyNet):
    """TinyNet with a wider hidden layer by default (a warm start copies only what fits)."""

    def __init__(self, spec: InputSpec, hidden: int = 24, dim: int = 4) -> None:
        super().__init__(spec, hidden, dim)


class ColumnNet(TinyNet):
    """Returns ``[N, 1]`` instead of ``[N]``: the wrong shape for a binary head."""

    def forward(
        self, cat: torch.Tensor | None, text: torch.Tensor | None, dense: torch.Tensor | None
    ) -> torch.Tensor:
        return super().forward(cat, text, dense).unsqueeze(-1)


class DoubleNet(TinyNet):
    """Returns float64: the wrong dtype."""

    def forward(
        self, cat: torch.Tensor | None, text: torch.Tensor | None, dense: torch.Tensor | None
    ) -> torch.Tensor:
        return super().forward(cat, text, dense).double()


class SparseNet(TinyNet):
    """Sparse-gradient embeddings: Adam cannot train them."""

    def __init__(self, spec: InputSpec) -> None:
        super().__init__(spec)
        self.cats = nn.ModuleList(nn.Embedding(c, 4, sparse=True) for c in spec.cat_cardinalities)


class NeedsOption(TinyNet):
    """A constructor with a required option."""

    def __init__(self, spec: InputSpec, *, depth: int) -> None:
        super().__init__(spec)


class NotAModule:
    """Not a torch module."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec


class BesselNet(TinyNet):
    """Uses an operator torch cannot translate to ONNX (``bessel_j0``)."""

    def forward(
        self, cat: torch.Tensor | None, text: torch.Tensor | None, dense: torch.Tensor | None
    ) -> torch.Tensor:
        return super().forward(
            cat, text, torch.special.bessel_j0(dense) if dense is not None else None
        )
