"""The S3 client of object-store locations (pyarrow's), one per set of options and process."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from spindle.core._errors import DataError

if TYPE_CHECKING:
    from pyarrow import fs

    from spindle.core._location import Location

_CONNECT_TIMEOUT_S = 5.0
_REQUEST_TIMEOUT_S = 60.0

OBJECT_STORE_SCHEMES = ("s3://",)
"""The URL schemes a table root may have (anything else is a local path)."""

CHECK = "check AWS_ENDPOINT_URL, the bucket and the credentials (storage_options in spindle.yaml)"
"""What a one-line object-store error tells to check."""


def _option(options: Mapping[str, str], *keys: str) -> str | None:
    """The first of ``keys`` in the options (any case), else in the environment."""
    lowered = {k.lower(): v for k, v in options.items()}
    for key in keys:
        if key.lower() in lowered:
            return lowered[key.lower()]
    for key in keys:
        if os.environ.get(key.upper()):
            return os.environ[key.upper()]
    return None


_CLIENTS: dict[tuple[tuple[str, str], ...], fs.FileSystem] = {}


def s3_client(pairs: tuple[tuple[str, str], ...]) -> fs.FileSystem:
    """A pyarrow S3 client for the options (one per set of options and process).

    Raises:
        DataError: the options cannot make a client.
    """
    found = _CLIENTS.get(pairs)
    if found is not None:
        return found
    from pyarrow import fs

    options = dict(pairs)
    endpoint = _option(options, "AWS_ENDPOINT_URL", "AWS_ENDPOINT", "endpoint_url", "endpoint")
    scheme = "https"
    if endpoint and "://" in endpoint:
        scheme, _, endpoint = endpoint.partition("://")
    try:
        client = fs.S3FileSystem(
            access_key=_option(options, "AWS_ACCESS_KEY_ID", "access_key_id"),
            secret_key=_option(options, "AWS_SECRET_ACCESS_KEY", "secret_access_key"),
            session_token=_option(options, "AWS_SESSION_TOKEN", "session_token"),
            region=_option(options, "AWS_REGION", "AWS_DEFAULT_REGION", "region"),
            endpoint_override=endpoint.rstrip("/") if endpoint else None,
            scheme=scheme,
            connect_timeout=_CONNECT_TIMEOUT_S,
            request_timeout=_REQUEST_TIMEOUT_S,
            retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=3),
        )
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"cannot make an S3 client from storage_options ({exc}); {CHECK}") from exc
    _CLIENTS[pairs] = client
    return client


def is_object_store_url(text: str) -> bool:
    """Whether ``text`` names an object-store location (``s3://...``)."""
    return text.startswith(OBJECT_STORE_SCHEMES)


def store_error(where: Location, doing: str, exc: BaseException) -> DataError:
    """One line: what failed at which URL, the store's first words, and what to check."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    cause = " ".join(lines[:3])[:300] if lines else type(exc).__name__
    return DataError(f"{doing} {where.url} failed ({cause}); {CHECK}")
