"""Typed configuration of a model's ``training:`` block: ``TrainingConfig`` and its
per-family blocks (``lightgbm``, ``custom``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from spindle.core._config import _Strict


class LightGBMConfig(_Strict):
    """``training.lightgbm``: the gradient-boosted trees of ``framework: lightgbm``.

    ``seed`` and ``threads`` come from ``training``; ``params`` passes any other LightGBM
    parameter through as written (https://lightgbm.readthedocs.io/en/stable/Parameters.html).
    """

    num_boost_round: int = Field(default=200, ge=1)
    # rounds added to the production model's trees when warm starting (boosting continues)
    warm_start_rounds: int = Field(default=50, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    num_leaves: int = Field(default=31, ge=2)
    min_data_in_leaf: int = Field(default=20, ge=1)
    feature_fraction: float = Field(default=1.0, gt=0, le=1)
    bagging_fraction: float = Field(default=1.0, gt=0, le=1)
    bagging_freq: int = Field(default=0, ge=0)
    lambda_l2: float = Field(default=0.0, ge=0)
    max_bin: int = Field(default=255, ge=2)
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)


class CustomModelConfig(_Strict):
    """``training.custom``: a user's torch module (``framework: custom``, docs/your-model.md).

    ``module`` is ``"package.module:ClassName"``, imported with the workspace directory on
    the import path; ``options`` are passed to its constructor as keyword arguments.
    """

    module: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    options: dict[str, Any] = Field(default_factory=dict)


class TrainingConfig(_Strict):
    window_days: int = Field(default=7, ge=1)
    # Train on a window with a missing or FAIL-validated day (skipping it) instead of refusing.
    allow_gaps: bool = False
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=512, ge=1)
    learning_rate: float = Field(default=0.005, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    embedding_dim: int = Field(default=16, ge=1)
    hidden_units: list[int] = Field(default_factory=lambda: [64, 32])
    checkpoint_every_steps: int = Field(default=200, ge=1)
    checkpoint_every_s: float | None = Field(default=None, gt=0)
    workers: int = Field(default=1, ge=1)
    # How workers > 1 start: "spawn" (local processes) or "torchrun" (torch.distributed.run;
    # with nnodes > 1 the workers span machines that meet at rdzv_endpoint, see docs/training.md).
    launcher: Literal["spawn", "torchrun"] = "spawn"
    nnodes: int = Field(default=1, ge=1)
    rdzv_endpoint: str | None = None
    max_staleness_steps: int = Field(default=0, ge=0)
    # The model family (docs/your-model.md): torch (= tabular_nn, the default), lightgbm,
    # sklearn, or custom (a user's torch module, training.custom)
    framework: Literal["torch", "tabular_nn", "lightgbm", "sklearn", "custom"] = "torch"
    lightgbm: LightGBMConfig = LightGBMConfig()
    custom: CustomModelConfig | None = None
    warm_start: bool = True
    warm_start_epochs: int = Field(default=1, ge=1)
    warm_start_window_days: int = Field(default=3, ge=1)
    full_retrain_every_days: int = Field(default=7, ge=1)
    # CPU threads of one training process: one prepares batches (reads, gathers, plans the
    # embedding lookups: spindle.train._plan), the others (at least one) run the step's
    # operators, so the default 2 = one step thread + the batch thread (docs/training.md).
    threads: int = Field(default=2, ge=1)
    seed: int = 42
    # Training sets with more rows are streamed from their Parquet file (bounded memory, see
    # docs/training.md) instead of loaded whole; the buffer is the rows shuffled together.
    in_memory_max_rows: int = Field(default=1_000_000, ge=0)
    stream_buffer_rows: int = Field(default=262_144, ge=1)

    @model_validator(mode="after")
    def _custom_module(self) -> TrainingConfig:
        if self.framework == "custom" and self.custom is None:
            raise ValueError(
                'framework: custom needs training.custom.module ("package.module:ClassName")'
            )
        return self

    @property
    def one_process(self) -> bool:
        """Whether the family trains in one process (lightgbm, sklearn): no workers, no
        staleness, and a training step is a pass over every row."""
        return self.framework in ("lightgbm", "sklearn")

    @model_validator(mode="after")
    def _one_process_families(self) -> TrainingConfig:
        if self.one_process and (self.workers > 1 or self.max_staleness_steps > 0):
            raise ValueError(
                f"framework: {self.framework} trains in one process (use training.threads for "
                "its cores): workers and max_staleness_steps are the torch families' "
                "data-parallel training; leave them at 1 and 0"
            )
        return self

    @model_validator(mode="after")
    def _several_machines(self) -> TrainingConfig:
        if self.nnodes > 1:
            if self.launcher != "torchrun":
                raise ValueError("nnodes > 1 needs launcher: torchrun")
            if not self.rdzv_endpoint:
                raise ValueError("nnodes > 1 needs rdzv_endpoint (HOST:PORT every machine reaches)")
            if self.workers % self.nnodes:
                raise ValueError(
                    f"workers ({self.workers}) is the total over all machines: it must be a "
                    f"multiple of nnodes ({self.nnodes})"
                )
        return self
