"""The transform: the one implementation that maps raw feature values to model inputs.

It is fitted on a training set (vocabularies, means and standard deviations), serialised as
JSON inside every model version (no pickle), and used unchanged by training, evaluation and
serving, so the model sees identical inputs offline and online. It also records the model's
request features with their Python source (``request``), which serving computes with the code
training used (see ``_request.py``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spindle.core import FeatureError
from spindle.features._definitions import FeatureDefinition
from spindle.features._request import RequestFeature, request_features

TEXT_VOCAB_SIZE = 1 << 15
_MAX_VOCAB = 20_000
_FORMAT = "spindle.transform/1"


def stable_hash(value: str, buckets: int) -> int:
    """Hash ``value`` into ``[1, buckets)`` the same way in every process (0 is reserved)."""
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "little") % (buckets - 1)


_FEW_ROWS = 64  # a string column this short is encoded in Python (a served request's)


def _as_string_dictionary(column: pa.ChunkedArray) -> tuple[list[str | None], np.ndarray]:
    """Return the distinct values of a column (as strings) and each row's index into them
    (-1 for a null)."""
    if column.type == pa.string() and len(column) <= _FEW_ROWS:
        # the same answer as Arrow's dictionary encoding, without its per-call cost
        values = column.to_pylist()
        position: dict[str, int] = {}
        for value in values:
            if value is not None and value not in position:
                position[value] = len(position)
        codes = [-1 if value is None else position[value] for value in values]
        return list(position), np.array(codes, np.int64)
    as_string = pc.cast(column, pa.string()) if column.type != pa.string() else column
    encoded = pc.dictionary_encode(as_string).combine_chunks()
    uniques: list[str | None] = encoded.dictionary.to_pylist()
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return uniques, indices


def _numeric(column: pa.ChunkedArray, log: bool) -> np.ndarray:
    if column.type != pa.float64():
        # unchecked, as RecordBatch.to_tensor converts (_dense_matrix): an integer beyond
        # 2**53 rounds to the nearest float instead of failing the whole request
        column = pc.cast(column, pa.float64(), safe=False)
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    if log:
        values = np.sign(values) * np.log1p(np.abs(values))
    return np.asarray(values, np.float64)


def _dense_matrix(columns: list[pa.ChunkedArray]) -> np.ndarray:
    """The columns as a writable float64 ``[rows, columns]`` matrix, nulls as NaN; each value
    as :func:`_numeric` reads it (unlogged). Single-chunk integer and float columns (a served
    request's) convert in one Arrow call; others column by column."""
    if all(c.num_chunks == 1 and _tensor_type(c.type) for c in columns):
        batch = pa.RecordBatch.from_arrays(
            [c.chunk(0) for c in columns], names=[str(j) for j in range(len(columns))]
        )
        matrix: np.ndarray = batch.to_tensor(null_to_nan=True).to_numpy().astype(np.float64)
        return matrix
    raw = np.empty((len(columns[0]), len(columns)), np.float64)
    for j, column in enumerate(columns):
        raw[:, j] = _numeric(column, False)
    return raw


def _tensor_type(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_float32(kind) or pa.types.is_float64(kind))


@dataclass(frozen=True)
class ColumnEncoding:
    """The fitted encoding of one input column."""

    column: str
    kind: str
    log: bool = False
    buckets: int = 0
    max_words: int = 0
    vocab: tuple[str, ...] = ()
    mean: float = 0.0
    std: float = 1.0

    @property
    def cardinality(self) -> int:
        return len(self.vocab) + 1 if self.kind == "categorical" else self.buckets


class _ColumnFit:
    """What fitting one feature has seen so far: value counts, or count / mean / M2."""

    def __init__(self, definition: FeatureDefinition) -> None:
        self.spec, self.column = definition.encoding, definition.column
        self.counts: dict[str, int] = {}
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, table: pa.Table) -> None:
        if self.column not in table.column_names:
            raise FeatureError(
                f"cannot fit the transform: column {self.column} is not in the training set"
            )
        data = table.column(self.column)
        if self.spec.kind == "numeric":
            values = _numeric(data, self.spec.log)
            finite = values[np.isfinite(values)]
            if finite.size:
                mean = float(finite.mean())
                m2 = float(np.sum((finite - mean) ** 2))
                self._merge(int(finite.size), mean, m2)
        elif self.spec.kind == "categorical":
            counts = pc.value_counts(pc.cast(data, pa.string()).drop_null())
            values = counts.field("values").to_pylist()
            for value, count in zip(values, counts.field("counts").to_pylist(), strict=True):
                self.counts[value] = self.counts.get(value, 0) + count

    def _merge(self, n: int, mean: float, m2: float) -> None:
        """Combine this batch's (n, mean, M2) with the running ones (exact for one batch)."""
        if self.n == 0:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total

    def encoding(self) -> ColumnEncoding:
        spec, column = self.spec, self.column
        if spec.kind == "numeric":
            mean = self.mean if self.n else 0.0
            std = math.sqrt(self.m2 / self.n) if self.n else 1.0
            return ColumnEncoding(
                column, "numeric", log=spec.log, mean=mean, std=std if std > 1e-12 else 1.0
            )
        if spec.kind == "categorical":
            pairs = sorted(self.counts.items(), key=lambda p: (-p[1], p[0]))
            vocab = tuple(sorted(v for v, _ in pairs[:_MAX_VOCAB]))
            return ColumnEncoding(column, "categorical", vocab=vocab)
        if spec.kind == "hashed":
            return ColumnEncoding(column, "hashed", buckets=spec.buckets)
        return ColumnEncoding(column, "text", max_words=spec.max_words)


class Transform:
    """Fitted mapping from a raw feature table to ``{"cat", "text", "dense"}`` arrays."""

    def __init__(
        self,
        encodings: Sequence[ColumnEncoding],
        text_vocab_size: int = TEXT_VOCAB_SIZE,
        request: Sequence[RequestFeature] = (),
    ):
        self.encodings = tuple(encodings)
        self.text_vocab_size = text_vocab_size
        self.request = tuple(request)
        self.cat = [e for e in self.encodings if e.kind in ("categorical", "hashed")]
        self.text = [e for e in self.encodings if e.kind == "text"]
        self.dense = [e for e in self.encodings if e.kind == "numeric"]
        self.text_len = max((e.max_words for e in self.text), default=0)
        # built once, not per call: a served request encodes one row against every vocabulary
        self._lookups = {
            e.column: {v: i + 1 for i, v in enumerate(e.vocab)}
            for e in self.cat
            if e.kind == "categorical"
        }
        self._means = np.array([e.mean for e in self.dense], np.float64)
        self._stds = np.array([e.std for e in self.dense], np.float64)
        self._logged = np.array([e.log for e in self.dense], bool)

    @classmethod
    def fit(cls, table: pa.Table, definitions: Sequence[FeatureDefinition]) -> Transform:
        """Fit vocabularies and scaling on ``table`` for the given features.

        Raises:
            FeatureError: a feature's column is missing from the table.
        """
        fits = [_ColumnFit(d) for d in definitions]
        for fit in fits:
            fit.add(table)
        return cls([fit.encoding() for fit in fits], request=request_features(definitions))

    @classmethod
    def fit_batches(
        cls,
        batches: Iterable[pa.RecordBatch | pa.Table],
        definitions: Sequence[FeatureDefinition],
    ) -> Transform:
        """Fit as :meth:`fit` does, from a stream of batches (a training set larger than RAM).

        Vocabularies equal those of ``fit`` on the concatenated rows; means and standard
        deviations are merged per batch (Chan et al.), equal to ``fit``'s to float64 rounding.
        Memory holds one batch and the value counts, not the rows.

        Raises:
            FeatureError: a feature's column is missing from a batch.

        Example:
            >>> Transform.fit_batches(pq.ParquetFile(path).iter_batches(), defs)  # doctest: +SKIP
        """
        fits = [_ColumnFit(d) for d in definitions]
        for batch in batches:
            table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
            for fit in fits:
                fit.add(table)
        return cls([fit.encoding() for fit in fits], request=request_features(definitions))

    def input_spec(self) -> dict[str, Any]:
        """Shapes of the model inputs, as ``spindle.train.InputSpec.from_dict`` expects."""
        return {
            "cat_cardinalities": [e.cardinality for e in self.cat],
            "text_vocab_size": self.text_vocab_size,
            "n_text": len(self.text),
            "text_len": self.text_len,
            "n_dense": len(self.dense),
        }

    def transform(self, table: pa.Table) -> dict[str, np.ndarray]:
        """Map raw feature values to model inputs; nulls become 0 (index) or the mean (numeric).

        Raises:
            FeatureError: a needed column is missing (names it and lists what is there).
        """
        present = set(table.column_names)  # column_names builds a new list on every access
        missing = [e.column for e in self.encodings if e.column not in present]
        if missing:
            raise FeatureError(f"input rows lack columns {missing}; they have {table.column_names}")
        n = table.num_rows
        out: dict[str, np.ndarray] = {}
        if self.cat:
            out["cat"] = (
                np.stack([self._encode_cat(e, table.column(e.column)) for e in self.cat], axis=1)
                if n
                else np.zeros((0, len(self.cat)), np.int64)
            )
        if self.text:
            out["text"] = (
                np.stack([self._encode_text(e, table.column(e.column)) for e in self.text], axis=1)
                if n
                else np.zeros((0, len(self.text), self.text_len), np.int64)
            )
        if self.dense:
            out["dense"] = self._encode_dense(table, n)
        return out

    def _encode_dense(self, table: pa.Table, n: int) -> np.ndarray:
        """The numeric columns standardised, ``[n, len(dense)]`` float32: each value as
        :func:`_numeric` reads it, ``(value - mean) / std`` elementwise in float64, and 0 where
        that is not finite (a null, a NaN); the same arithmetic as one column at a time."""
        if not n:
            return np.zeros((0, len(self.dense)), np.float32)
        raw = _dense_matrix([table.column(e.column) for e in self.dense])
        if self._logged.any():
            logged = raw[:, self._logged]
            raw[:, self._logged] = np.sign(logged) * np.log1p(np.abs(logged))
        raw -= self._means  # in place: one [n, dense] matrix, however many rows
        raw /= self._stds
        raw[~np.isfinite(raw)] = 0.0
        return raw.astype(np.float32)

    def _encode_cat(self, encoding: ColumnEncoding, column: pa.ChunkedArray) -> np.ndarray:
        uniques, indices = _as_string_dictionary(column)
        if encoding.kind == "categorical":
            lookup = self._lookups[encoding.column]
            codes = np.array(
                [lookup.get(u, 0) if u is not None else 0 for u in uniques] + [0], np.int64
            )
        else:
            codes = np.array(
                [stable_hash(u, encoding.buckets) if u is not None else 0 for u in uniques] + [0],
                np.int64,
            )
        return np.asarray(codes[indices], np.int64)

    def _encode_text(self, encoding: ColumnEncoding, column: pa.ChunkedArray) -> np.ndarray:
        uniques, indices = _as_string_dictionary(column)
        table = np.zeros((len(uniques) + 1, self.text_len), np.int64)
        for i, text in enumerate(uniques):
            if text:
                words = text.split()[: encoding.max_words]
                table[i, : len(words)] = [stable_hash(w, self.text_vocab_size) for w in words]
        return np.asarray(table[indices], np.int64)

    def to_json(self) -> str:
        """Serialise (JSON, never pickle)."""
        payload = {
            "format": _FORMAT,
            "text_vocab_size": self.text_vocab_size,
            "encodings": [asdict(e) for e in self.encodings],
            "request_features": [f.to_dict() for f in self.request],
        }
        return json.dumps(payload, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Transform:
        """Load a transform written by :meth:`to_json`.

        Raises:
            FeatureError: the text is not a spindle transform.
        """
        try:
            payload = json.loads(text)
            if payload.get("format") != _FORMAT:
                raise ValueError(f"format is {payload.get('format')!r}, expected {_FORMAT!r}")
            encodings = [
                ColumnEncoding(**{**e, "vocab": tuple(e["vocab"])}) for e in payload["encodings"]
            ]
            request = [RequestFeature.from_dict(f) for f in payload.get("request_features", [])]
        except (ValueError, KeyError, TypeError) as exc:
            raise FeatureError(
                f"not a valid transform (the transform file of a model version): {exc}"
            ) from exc
        return cls(encodings, int(payload["text_vocab_size"]), request)

    def columns(self) -> list[str]:
        """The raw columns this transform reads."""
        return [e.column for e in self.encodings]
