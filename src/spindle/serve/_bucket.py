"""Objects of one ``s3://bucket/prefix`` through boto3: get with its ETag, conditional put.

pyarrow's S3 client (what :class:`spindle.core.Location` uses) cannot send ``If-Match`` or
``If-None-Match``; the model repository needs both to change routing.json atomically across
machines and to create a version once. Every failure of the store becomes one line naming the
URL (unreachable endpoint, missing bucket, refused credentials).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from spindle.core import DataError, Location

_CHECK = "check AWS_ENDPOINT_URL, the bucket and the credentials (storage_options in spindle.yaml)"
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


def _option(options: Mapping[str, str], *keys: str) -> str | None:
    """The first of ``keys`` in the options (any case), else in the environment."""
    lowered = {k.lower(): v for k, v in options.items()}
    for key in keys:
        if key.lower() in lowered:
            return lowered[key.lower()]
    return next((os.environ[k] for k in keys if os.environ.get(k)), None)


@dataclass(frozen=True)
class StoredObject:
    """An object's bytes and the ETag a conditional put compares against."""

    data: bytes
    etag: str
    modified: float = 0.0  # its last-modified time (s since the epoch)


@dataclass
class Bucket:
    """The objects below ``location`` (an ``s3://bucket/prefix``), keys relative to it.

    Args:
        location: an object-store location with its ``storage_options``.
    """

    location: Location
    _client: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return self.location.url

    @property
    def name(self) -> str:
        return self.url.removeprefix("s3://").partition("/")[0]

    def key(self, relative: str) -> str:
        prefix = self.url.removeprefix("s3://").partition("/")[2].strip("/")
        return f"{prefix}/{relative}" if prefix else relative

    def client(self) -> Any:
        """The boto3 S3 client (made once; bounded timeouts and retries).

        Raises:
            DataError: the options cannot make a client.
        """
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError as exc:
                raise DataError(
                    f"{self.url}: a model repository on an object store needs boto3: "
                    "pip install 'spindle[s3]'"
                ) from exc

            options = dict(self.location.options)
            try:
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=_option(options, "AWS_ENDPOINT_URL", "AWS_ENDPOINT"),
                    region_name=_option(options, "AWS_REGION", "AWS_DEFAULT_REGION"),
                    aws_access_key_id=_option(options, "AWS_ACCESS_KEY_ID"),
                    aws_secret_access_key=_option(options, "AWS_SECRET_ACCESS_KEY"),
                    aws_session_token=_option(options, "AWS_SESSION_TOKEN"),
                    config=Config(
                        connect_timeout=5,
                        read_timeout=60,
                        retries={"max_attempts": 3, "mode": "standard"},
                    ),
                )
            except Exception as exc:  # botocore raises many kinds for a bad option
                raise DataError(
                    f"cannot make an S3 client for {self.url} ({exc}); {_CHECK}"
                ) from exc
        return self._client

    @contextmanager
    def translated(self, doing: str, relative: str = "") -> Iterator[None]:
        """Turn a failure of the store into one ``DataError`` line naming the URL."""
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"{self.url}/{relative}" if relative else self.url
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            why = {
                "NoSuchBucket": f"the bucket {self.name} does not exist",
                "InvalidAccessKeyId": "the access key is not known to the store",
                "SignatureDoesNotMatch": "the secret key is wrong",
                "AccessDenied": "access denied",
                "403": "access denied (credentials refused)",
            }.get(code, f"{code}: {error.get('Message', exc)}".strip(": "))
            raise DataError(f"{doing} {where} failed ({why}); {_CHECK}") from exc
        except BotoCoreError as exc:
            cause = " ".join(str(exc).split())[:300]
            raise DataError(f"{doing} {where} failed ({cause}); {_CHECK}") from exc

    def get(self, relative: str) -> StoredObject | None:
        """The object at ``relative`` with its ETag, None when there is none.

        Raises:
            DataError: the store cannot be read.
        """
        from botocore.exceptions import ClientError

        with self.translated("reading", relative):
            try:
                found = self.client().get_object(Bucket=self.name, Key=self.key(relative))
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING:
                    return None
                raise
            modified = found.get("LastModified")
            stamp = modified.timestamp() if modified is not None else 0.0
            return StoredObject(found["Body"].read(), str(found["ETag"]), stamp)

    def put(
        self, relative: str, data: bytes, *, if_match: str | None = None, create: bool = False
    ) -> str | None:
        """Write the object whole; return its new ETag, or None when the condition failed.

        Args:
            if_match: write only if the object's ETag is still this one (compare-and-swap).
            create: write only if there is no object at ``relative`` (``If-None-Match: *``).

        Raises:
            DataError: the store cannot be written.
        """
        from botocore.exceptions import ClientError

        extra: dict[str, str] = {}
        if if_match is not None:
            extra["IfMatch"] = if_match
        if create:
            extra["IfNoneMatch"] = "*"
        with self.translated("writing", relative):
            try:
                done = self.client().put_object(
                    Bucket=self.name, Key=self.key(relative), Body=data, **extra
                )
            except ClientError as exc:
                error = exc.response.get("Error", {})
                status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
                if str(error.get("Code", "")) in _CONFLICT or status in _CONFLICT:
                    return None
                raise
            return str(done["ETag"])

    def listing(self, relative: str = "") -> dict[str, float]:
        """Every object key below ``relative`` (relative keys) and its last-modified time (s).

        Raises:
            DataError: the store cannot be listed.
        """
        base = self.key("")
        prefix = self.key(relative.strip("/") + "/") if relative else base
        found: dict[str, float] = {}
        with self.translated("listing", relative):
            pages = self.client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.name, Prefix=prefix):
                for item in page.get("Contents", []):
                    found[str(item["Key"])[len(base) :]] = item["LastModified"].timestamp()
        return found

    def delete(self, relatives: list[str]) -> None:
        """Delete the objects (absent ones are fine).

        Raises:
            DataError: the store refuses.
        """
        for start in range(0, len(relatives), 1000):
            chunk = [{"Key": self.key(r)} for r in relatives[start : start + 1000]]
            with self.translated("deleting below"):
                self.client().delete_objects(Bucket=self.name, Delete={"Objects": chunk})

    def check(self) -> None:
        """Raise unless the store answers and the bucket exists.

        Raises:
            DataError: unreachable endpoint, missing bucket or refused credentials.
        """
        from botocore.exceptions import ClientError

        with self.translated("reaching"):
            try:
                self.client().head_bucket(Bucket=self.name)
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING:
                    exc.response["Error"]["Code"] = "NoSuchBucket"
                raise
