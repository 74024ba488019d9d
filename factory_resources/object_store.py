"""An S3-compatible bucket for the factory's media, through boto3.

Environment (read by `MediaStore`, which builds this adapter):
    FACTORY_MEDIA_BUCKET       the bucket (unset or empty: media stay on local disk only)
    FACTORY_S3_ENDPOINT_URL    an S3-compatible server (MinIO, Ceph, moto); unset: AWS itself
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (or a profile, an instance role ...):
                               boto3's own credential chain; they never pass through the
                               factory's config, metadata, logs or error messages.

Transient faults (throttling, 5xx, dropped connections) are retried by botocore's "standard"
retry mode; what is left is raised as ObjectStoreError naming the bucket, the key and what to do.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from factory_core.media_manifest import media_key

# boto3 is imported when a bucket is first used: a factory without one never pays for it.
_MISSING = {"404", "NoSuchKey", "NotFound"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}


class ObjectStoreError(RuntimeError):
    """A bucket operation failed after botocore's retries; the message names the bucket and
    key and never secrets. `retryable`: a later attempt may succeed (server or network
    trouble), unlike a missing bucket, denied access or missing credentials."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str | None = None
    last_modified: datetime | None = None
    uploaded: bool = False  # False: the bucket already had these bytes


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


class ObjectStore:
    """One bucket. Thread-safe (the boto3 client is); build it with `object_store()`."""

    def __init__(self, bucket: str, endpoint_url: str | None = None) -> None:
        if not bucket:
            raise ValueError("no bucket given; set FACTORY_MEDIA_BUCKET to the media bucket")
        self.bucket = bucket
        self.endpoint_url = endpoint_url or None
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        retries = Config(
            retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=120
        )
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, config=retries
        )
        # Multipart only above 64 MB: a short's files are smaller, and one PUT is one request.
        self._transfer = TransferConfig(multipart_threshold=64 * 1024 * 1024, use_threads=False)

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    # --- content-addressed files ----------------------------------------------------------

    def put_file(self, path: Path, sha256: str | None = None) -> StoredObject:
        """Stores a file under its content's key, uploading only if the bucket lacks it."""
        sha256 = sha256 or file_sha256(path)
        key = media_key(sha256, path.suffix)
        size = path.stat().st_size
        if self.exists(key):
            return StoredObject(key=key, size=size, sha256=sha256)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with self._errors(key, "upload"):
            self._client.upload_file(
                str(path),
                self.bucket,
                key,
                ExtraArgs={"ContentType": content_type, "Metadata": {"sha256": sha256}},
                Config=self._transfer,
            )
        return StoredObject(key=key, size=size, sha256=sha256, uploaded=True)

    def get_file(self, key: str, target: Path, sha256: str | None = None) -> Path:
        """Downloads `key` to `target` through a temporary sibling, so `target` is whole or
        absent; with `sha256` the bytes are checked before the rename."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            try:
                with self._errors(key, "download"):
                    self._client.download_file(self.bucket, key, str(tmp), Config=self._transfer)
            except _Missing:
                raise ObjectStoreError(
                    f"{self.where}/{key} does not exist, though a manifest lists it (pruned or "
                    "deleted by hand?); run the stage that makes the file again"
                ) from None
            if sha256 is not None and (got := file_sha256(tmp)) != sha256:
                raise ObjectStoreError(
                    f"{self.where}/{key} holds bytes with SHA-256 {got[:12]}..., not the "
                    f"{sha256[:12]}... its manifest records; the object was overwritten or "
                    "damaged: run the topic's stage again to upload it anew"
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    # --- plain objects (manifests) ---------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        with self._errors(key, "upload"):
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
            )

    def get_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such key."""
        try:
            with self._errors(key, "download"):
                return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except _Missing:
            return None

    def exists(self, key: str) -> bool:
        try:
            with self._errors(key, "look up"):
                self._client.head_object(Bucket=self.bucket, Key=key)
        except _Missing:
            return False
        return True

    def delete(self, keys: Iterable[str]) -> int:
        """Deletes keys (absent ones are no error), 1,000 per request; returns how many."""
        batch: list[str] = []
        count = 0
        for key in keys:
            batch.append(key)
            if len(batch) == 1000:
                count += self._delete_batch(batch)
                batch = []
        return count + (self._delete_batch(batch) if batch else 0)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors(prefix or "(all keys)", "list"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield StoredObject(
                        key=item["Key"], size=int(item["Size"]), last_modified=item["LastModified"]
                    )

    def check(self) -> None:
        """Raises ObjectStoreError if the bucket cannot be reached (missing, denied, offline)."""
        with self._errors("", "open"):
            self._client.head_bucket(Bucket=self.bucket)

    def _delete_batch(self, keys: list[str]) -> int:
        with self._errors(keys[0], "delete"):
            answer = self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
        errors = answer.get("Errors", [])
        if errors:
            first = errors[0]
            raise ObjectStoreError(
                f"could not delete {len(errors)} of {len(keys)} objects from {self.where} "
                f"(first: {first.get('Key')}: {first.get('Code')}); check the credentials' "
                "s3:DeleteObject permission, then run the command again"
            )
        return len(keys)

    def _errors(self, key: str, action: str) -> _ErrorTranslator:
        return _ErrorTranslator(self, key, action)


class _Missing(Exception):
    """Internal: the key does not exist (callers turn this into None/False)."""


class _ErrorTranslator:
    """Turns botocore's exceptions into ObjectStoreError with advice. Only error codes and
    our own words go into the message: botocore's text can carry request details."""

    def __init__(self, store: ObjectStore, key: str, action: str) -> None:
        self.store, self.key, self.action = store, key, action

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, ObjectStoreError | _Missing):
            return False
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
            exc = exc.__context__  # boto3's transfer manager wraps the server's answer
        where, key = self.store.where, self.key
        target = f"{where}/{key}" if key else where
        if isinstance(exc, NoCredentialsError):
            raise ObjectStoreError(
                f"cannot {self.action} {target}: no S3 credentials found; set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile or role) in "
                "the environment of every factory process"
            ) from None
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in {"NoSuchBucket"} or (code in _MISSING and not key):
                raise ObjectStoreError(
                    f"bucket {self.store.bucket!r} does not exist ({where}); create it "
                    f"(e.g. `aws s3 mb s3://{self.store.bucket}`) or set FACTORY_MEDIA_BUCKET "
                    "to an existing bucket"
                ) from None
            if code in _MISSING:
                raise _Missing() from None
            if code in _DENIED:
                raise ObjectStoreError(
                    f"cannot {self.action} {target}: access denied ({code}); check the "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment and the "
                    "bucket's policy"
                ) from None
            raise ObjectStoreError(
                f"cannot {self.action} {target}: the server answered {code or 'an error'} "
                "after retries; try again later or check the S3 service",
                retryable=True,
            ) from None
        if isinstance(exc, BotoCoreError):
            raise ObjectStoreError(
                f"cannot {self.action} {target}: {type(exc).__name__} after retries; check "
                "that FACTORY_S3_ENDPOINT_URL points at a running S3 server and the network",
                retryable=True,
            ) from None
        return False


@lru_cache(maxsize=8)
def object_store(bucket: str, endpoint_url: str | None = None) -> ObjectStore:
    """One adapter (and one connection pool) per bucket and endpoint in a process."""
    return ObjectStore(bucket, endpoint_url)
