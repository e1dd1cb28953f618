"""The ranker: embeddings for ids and words, masked-mean text pooling, an MLP, a task's head."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import torch
from torch import nn

from spindle.core import TrainingConfig, TrainingError
from spindle.train._fused import FeatureLayout, planned_logits
from spindle.train._head import served_output
from spindle.train._onednn import mlp_forward
from spindle.train._plan import EmbeddingPlan, plan_embeddings
from spindle.train._spec import InputSpec

if TYPE_CHECKING:
    from spindle.train._custom import CustomModel

# What the recipes train and the export writes: the ranker or a user's module (custom).
Model: TypeAlias = "Ranker | CustomModel"


class Ranker(nn.Module):
    """A pointwise ranker: ``score = MLP([cat embeddings, pooled text, query·name, dense])``.

    Every categorical column has its own embedding table; all text columns share one word
    embedding (id 0 pads) and are pooled as the mean over their non-padding words. With two or
    more text columns the dot product of the first two pooled vectors (query · item name) is an
    extra feature.

    The tables are stored as one ``nn.Embedding``, ``tables`` (the categorical tables, then the
    word table, stacked; ``table_offsets`` says where each starts), looked up with one gather
    per batch and given one sparse gradient: one optimiser update per step instead of one per
    table (see ``spindle.train.RowAdam``). ``state_dict`` still names the tables one by one
    (``cat_embeddings.<j>.weight``, ``word_embedding.weight``), so weights saved by earlier
    versions load and warm start unchanged.

    ``forward`` takes only the inputs that exist (by keyword), so an exported graph has exactly
    the inputs of the spec. It returns the head's raw output: the logit ``[N]`` (binary,
    ranking), the standardised value ``[N]`` (regression) or K logits ``[N, K]`` (multiclass,
    ``spec.classes``); ``served`` maps it to what the exported model answers (``_head``). Training passes ``plan`` too
    (``Ranker.plan``, computed by the prefetch thread): the same result, up to float rounding,
    by a faster route (``spindle.train._plan``, ``spindle.train._fused``); in training mode
    the MLP's products run on oneDNN where it pays (``spindle.train._onednn``).

    Example:
        >>> spec = InputSpec(cat_cardinalities=(10,), n_dense=2)
        >>> model = Ranker(spec, TrainingConfig(embedding_dim=4, hidden_units=[8]))
        >>> model(cat=torch.zeros(3, 1, dtype=torch.long), dense=torch.zeros(3, 2)).shape
        torch.Size([3])
    """

    cat_offsets: torch.Tensor

    def __init__(self, spec: InputSpec, config: TrainingConfig) -> None:
        super().__init__()
        self.spec = spec
        dim = config.embedding_dim
        sizes = list(spec.cat_cardinalities)
        self.table_names = [f"cat_embeddings.{j}.weight" for j in range(len(sizes))]
        if spec.n_text > 0:
            sizes.append(spec.text_vocab_size)
            self.table_names.append("word_embedding.weight")
        self.table_sizes = tuple(sizes)
        offsets = [0]
        for size in sizes:
            offsets.append(offsets[-1] + size)
        self.table_offsets = tuple(offsets[:-1])
        n_cat = len(spec.cat_cardinalities)
        # Row of the word table's padding id 0: zero, and it stays zero: pooling masks padding,
        # so its gradient is zero. (No padding_idx: dropping its entries from the sparse
        # gradient cost a boolean gather as large as the gradient, 13% of the step.)
        self.padding_row = offsets[n_cat] if spec.n_text > 0 else None
        # An nn.Embedding (not a bare Parameter) so that DDP knows its gradient is sparse.
        self.tables = nn.Embedding(offsets[-1], dim, sparse=True) if offsets[-1] > 0 else None
        self.register_buffer(
            "cat_offsets",
            torch.tensor(self.table_offsets[:n_cat], dtype=torch.long),
            persistent=False,
        )
        self.has_relevance = spec.n_text >= 2
        width = (n_cat + spec.n_text) * dim + spec.n_dense
        width += 1 if self.has_relevance else 0
        layers: list[nn.Module] = []
        for units in config.hidden_units:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        layers.append(nn.Linear(width, spec.outputs))  # 1, or K logits for multiclass
        self.mlp = nn.Sequential(*layers)
        self.layout = FeatureLayout(n_cat, spec.n_text, dim, self.has_relevance)
        self._init_embeddings(dim)
        self.register_state_dict_post_hook(_split_tables)  # type: ignore[no-untyped-call]
        self.register_load_state_dict_pre_hook(_join_tables)  # type: ignore[no-untyped-call]

    def _init_embeddings(self, dim: int) -> None:
        # N(0, 1/dim) keeps pooled vectors and the query·name dot product near unit scale.
        if self.tables is None:
            return
        with torch.no_grad():
            nn.init.normal_(self.tables.weight, std=1.0 / math.sqrt(dim))
            if self.padding_row is not None:
                self.tables.weight[self.padding_row].zero_()

    def sparse_parameters(self) -> list[torch.Tensor]:
        """Parameters whose gradients are sparse (the stacked tables): give these to ``RowAdam``."""
        return [self.tables.weight] if self.tables is not None else []

    def dense_parameters(self) -> list[torch.Tensor]:
        """Every other parameter: give these to ``Adam``."""
        sparse = {id(p) for p in self.sparse_parameters()}
        return [p for p in self.parameters() if id(p) not in sparse]

    @property
    def layers(self) -> list[torch.Tensor]:
        """The MLP's weights and biases in order (``w0, b0, w1, b1, ...``)."""
        return [
            p
            for layer in self.mlp
            if isinstance(layer, nn.Linear)
            for p in (layer.weight, layer.bias)
        ]

    def plan(self, cat: np.ndarray | None, text: np.ndarray | None) -> EmbeddingPlan | None:
        """The ``EmbeddingPlan`` of a batch's ids (None when the model has no tables)."""
        if self.tables is None:
            return None
        n_cat = len(self.spec.cat_cardinalities)
        offsets = np.asarray(self.table_offsets[:n_cat], dtype=np.int64)
        word_offset = self.padding_row if self.padding_row is not None else 0
        return plan_embeddings(cat, text, offsets, word_offset)

    def forward(
        self,
        cat: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        dense: torch.Tensor | None = None,
        plan: EmbeddingPlan | None = None,
    ) -> torch.Tensor:
        given = tuple(
            n for n, t in (("cat", cat), ("text", text), ("dense", dense)) if t is not None
        )
        if given != self.spec.present_inputs():
            raise TrainingError(
                f"the model takes inputs {self.spec.present_inputs()}, it was given {given}"
            )
        if self.tables is not None and plan is not None:
            return planned_logits(self.layout, plan, dense, self.tables.weight, self.layers)
        parts: list[torch.Tensor] = []
        if self.tables is not None:
            vectors = self._lookup(cat, text, self.tables)
            # split, not two slices: the backward of split is one cat, that of two slices
            # zero-fills and adds two full-size gradients (measured: 9% of the step).
            widths = [] if cat is None else [cat.shape[1]]
            widths += [] if text is None else [text.shape[1] * text.shape[2]]
            pieces = list(vectors.split_with_sizes(widths, dim=1))
            if cat is not None:
                parts.append(pieces.pop(0).flatten(1))
            if text is not None:
                pooled = self._pool_text(text, pieces.pop(0).reshape(*text.shape, -1))
                parts.append(pooled.flatten(1))
                if self.has_relevance:
                    parts.append((pooled[:, 0] * pooled[:, 1]).sum(dim=-1, keepdim=True))
        if dense is not None:
            parts.append(dense)
        features = torch.cat(parts, dim=1)
        # Training runs the MLP's products on oneDNN (2x MKL's on AVX-512; see _onednn).
        logit = mlp_forward(self.mlp, features) if self.training else self.mlp(features)
        return logit.squeeze(-1) if self.spec.outputs == 1 else logit

    def served(self, **inputs: torch.Tensor | None) -> torch.Tensor:
        """What the exported model answers: ``forward`` mapped by the head (a regression's
        value un-standardised; logits as they are)."""
        return served_output(self.spec, self(**inputs))

    def _lookup(
        self, cat: torch.Tensor | None, text: torch.Tensor | None, tables: nn.Embedding
    ) -> torch.Tensor:
        """One gather for every id of the batch: ``[N, C + T * L, E]`` (cat first, then words)."""
        ids: list[torch.Tensor] = []
        if cat is not None:
            ids.append(cat + self.cat_offsets)
        if text is not None and self.padding_row is not None:
            ids.append(text.flatten(1) + self.padding_row)
        rows = ids[0] if len(ids) == 1 else torch.cat(ids, dim=1)
        vectors: torch.Tensor = tables(rows)
        return vectors

    @staticmethod
    def _pool_text(text: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """Mean of the word vectors of each text column, ignoring padding: ``[N, T, E]``."""
        # The padding row is zero and never trained, but mask anyway: weights loaded from
        # elsewhere must not make padding count.
        mask = (text != 0).unsqueeze(-1)
        summed = (vectors * mask.to(vectors.dtype)).sum(dim=2)
        counts = mask.sum(dim=2).clamp(min=1).to(summed.dtype)
        return summed / counts


def build_model(spec: InputSpec, config: TrainingConfig) -> Model:
    """The model ``config`` trains: the ranker, or the user's module (``framework: custom``).

    Raises:
        ConfigError: a custom module that cannot be imported or built.
    """
    if config.framework == "custom":
        from spindle.train._custom import CustomModel  # imports the user's code: only when used

        return CustomModel(spec, config)
    return Ranker(spec, config)


def _split_tables(module: nn.Module, state: dict[str, Any], prefix: str, metadata: Any) -> None:
    """State-dict post-hook: the stacked ``tables`` as one tensor per table (saved names)."""
    assert isinstance(module, Ranker)
    stacked = state.pop(prefix + "tables.weight", None)
    if stacked is None:
        return
    for name, offset, size in zip(
        module.table_names, module.table_offsets, module.table_sizes, strict=True
    ):
        state[prefix + name] = stacked[offset : offset + size].clone()


def _join_tables(
    module: nn.Module,
    state: dict[str, Any],
    prefix: str,
    metadata: Any,
    strict: bool,
    missing: list[str],
    unexpected: list[str],
    errors: list[str],
) -> None:
    """Load pre-hook: stack per-table tensors back into ``tables`` (if all are given)."""
    assert isinstance(module, Ranker)
    keys = [prefix + name for name in module.table_names]
    if keys and all(key in state for key in keys):
        state[prefix + "tables.weight"] = torch.cat([state.pop(key) for key in keys])
