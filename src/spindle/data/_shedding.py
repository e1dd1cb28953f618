"""Load shedding that an attacker cannot steer: keep a uniform sample chosen by a keyed hash.

When a burst (a bot repeating a request, a replayed log) forces the pipeline to drop rows,
which rows go must not be predictable from the outside, or a sender could choose what is
kept (e.g. make its own events survive while others are dropped). Each row's id is hashed
with BLAKE2b under a secret key; a row is kept when the hash falls below ``keep_fraction``
of the range. Without the key the choice looks random; with it, it is reproducible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from spindle.core import DataError


def shed_mask(ids: Sequence[str], keep_fraction: float, key: bytes) -> np.ndarray:
    """A boolean mask keeping about ``keep_fraction`` of ``ids``, uniformly, by keyed hash.

    Args:
        ids: row identifiers (e.g. a primary key); equal ids get the same decision.
        keep_fraction: share to keep, in ``[0, 1]``.
        key: the secret key (16 to 64 bytes), kept out of the logs.

    Raises:
        DataError: ``keep_fraction`` outside ``[0, 1]`` or a key of the wrong length.

    Example:
        >>> shed_mask(["a", "b"], 1.0, b"0123456789abcdef").tolist()
        [True, True]
    """
    if not 0.0 <= keep_fraction <= 1.0:
        raise DataError(f"keep_fraction must be in [0, 1], got {keep_fraction}")
    if not 16 <= len(key) <= 64:
        raise DataError(f"the shedding key must be 16 to 64 bytes long, got {len(key)}")
    threshold = int(keep_fraction * (1 << 64))
    hashes = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(i.encode(), key=key, digest_size=8).digest(), "little")
            for i in ids
        ),
        dtype=np.uint64,
        count=len(ids),
    )
    if threshold >= 1 << 64:
        return np.ones(len(ids), dtype=bool)
    return np.asarray(hashes < np.uint64(threshold), dtype=bool)
