"""The ranker: embeddings for ids and words, masked-mean text pooling, an MLP, one logit."""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from spindle.core import TrainingConfig, TrainingError
from spindle.train._spec import InputSpec


class Ranker(nn.Module):
    """A pointwise ranker: ``score = MLP([cat embeddings, pooled text, query·name, dense])``.

    Every categorical column has its own embedding table; all text columns share one word
    embedding (id 0 pads) and are pooled as the mean over their non-padding words. With two or
    more text columns the dot product of the first two pooled vectors (query · item name) is an
    extra feature. Embeddings produce sparse gradients (for ``torch.optim.SparseAdam``).

    ``forward`` takes only the inputs that exist (by keyword), so an exported graph has exactly
    the inputs of the spec. It returns the logit, shape ``[N]``.

    Example:
        >>> spec = InputSpec(cat_cardinalities=(10,), n_dense=2)
        >>> model = Ranker(spec, TrainingConfig(embedding_dim=4, hidden_units=[8]))
        >>> model(cat=torch.zeros(3, 1, dtype=torch.long), dense=torch.zeros(3, 2)).shape
        torch.Size([3])
    """

    def __init__(self, spec: InputSpec, config: TrainingConfig) -> None:
        super().__init__()
        self.spec = spec
        dim = config.embedding_dim
        self.cat_embeddings = nn.ModuleList(
            nn.Embedding(cardinality, dim, sparse=True) for cardinality in spec.cat_cardinalities
        )
        self.word_embedding = (
            nn.Embedding(spec.text_vocab_size, dim, padding_idx=0, sparse=True)
            if spec.n_text > 0
            else None
        )
        self.has_relevance = spec.n_text >= 2
        width = (len(spec.cat_cardinalities) + spec.n_text) * dim + spec.n_dense
        width += 1 if self.has_relevance else 0
        layers: list[nn.Module] = []
        for units in config.hidden_units:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        self._init_embeddings(dim)

    def _init_embeddings(self, dim: int) -> None:
        # N(0, 1/dim) keeps pooled vectors and the query·name dot product near unit scale.
        std = 1.0 / math.sqrt(dim)
        for table in self.embedding_tables():
            nn.init.normal_(table.weight, std=std)
        if self.word_embedding is not None:
            with torch.no_grad():
                self.word_embedding.weight[0].zero_()

    def embedding_tables(self) -> list[nn.Embedding]:
        """Every embedding table (the parameters with sparse gradients)."""
        tables = [cast(nn.Embedding, table) for table in self.cat_embeddings]
        if self.word_embedding is not None:
            tables.append(self.word_embedding)
        return tables

    def sparse_parameters(self) -> list[torch.Tensor]:
        """Parameters whose gradients are sparse: give these to ``SparseAdam``."""
        return [table.weight for table in self.embedding_tables()]

    def dense_parameters(self) -> list[torch.Tensor]:
        """Every other parameter: give these to ``Adam``."""
        sparse = {id(p) for p in self.sparse_parameters()}
        return [p for p in self.parameters() if id(p) not in sparse]

    def forward(
        self,
        cat: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        dense: torch.Tensor | None = None,
    ) -> torch.Tensor:
        given = tuple(
            n for n, t in (("cat", cat), ("text", text), ("dense", dense)) if t is not None
        )
        if given != self.spec.present_inputs():
            raise TrainingError(
                f"the model takes inputs {self.spec.present_inputs()}, it was given {given}"
            )
        parts: list[torch.Tensor] = []
        if cat is not None:
            parts += [table(cat[:, j]) for j, table in enumerate(self.cat_embeddings)]
        if text is not None and self.word_embedding is not None:
            pooled = self._pool_text(text, self.word_embedding)
            parts.append(pooled.flatten(1))
            if self.has_relevance:
                parts.append((pooled[:, 0] * pooled[:, 1]).sum(dim=-1, keepdim=True))
        if dense is not None:
            parts.append(dense)
        logit: torch.Tensor = self.mlp(torch.cat(parts, dim=1))
        return logit.squeeze(-1)

    @staticmethod
    def _pool_text(text: torch.Tensor, embedding: nn.Embedding) -> torch.Tensor:
        """Mean of the word vectors of each text column, ignoring padding: ``[N, T, E]``."""
        # The padding row is zero and never trained, but mask anyway: weights loaded from
        # elsewhere must not make padding count.
        mask = (text != 0).unsqueeze(-1)
        vectors: torch.Tensor = embedding(text)
        summed = (vectors * mask.to(vectors.dtype)).sum(dim=2)
        counts = mask.sum(dim=2).clamp(min=1).to(summed.dtype)
        return summed / counts
