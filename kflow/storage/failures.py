"""Turn whatever a filesystem raised into one StorageError that names the URL and the cause.

Backends raise a zoo of exceptions (OSError subclasses, botocore's ClientError
wrapped by s3fs, aiohttp connection errors…). We recognise them by class name
and error code so that botocore and aiohttp never need to be imported here.
"""

from __future__ import annotations

from kflow.errors import StorageError

EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}

DENIED_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "Forbidden",
    "403",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
}
NO_CREDENTIALS = {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}
CONNECTION = {
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ReadTimeoutError",
    "ClientConnectorError",
    "ServerDisconnectedError",
    "ConnectionError",
    "gaierror",
    "TimeoutError",
}
CREDENTIAL_HINTS = {
    "s3": "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
    "or key/secret in storage_options",
    "gs": "set GOOGLE_APPLICATION_CREDENTIALS or run 'gcloud auth application-default login'",
}


def error_code(exc: BaseException) -> str | None:
    """The service's error code (e.g. 'NoSuchBucket') carried anywhere in the cause chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
        current = current.__cause__ or current.__context__
    return None


def class_names(exc: BaseException) -> set[str]:
    """Names of the classes of ``exc`` and of every exception in its cause chain."""
    names: set[str] = set()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names.update(cls.__name__ for cls in type(current).__mro__)
        current = current.__cause__ or current.__context__
    return names


def is_missing(exc: BaseException) -> bool:
    """True when ``exc`` says only that the object (not the bucket) does not exist."""
    code = error_code(exc)
    if code is not None:
        return code in {"NoSuchKey", "404", "NotFound"}
    return isinstance(exc, FileNotFoundError)


def is_precondition_failed(exc: BaseException) -> bool:
    """True when a conditional write was refused because its condition did not hold.

    409 ConditionalRequestConflict is S3's answer when two conditional writes to
    one key race; either way this writer lost.
    """
    code = error_code(exc)
    return code in {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"} or (
        code is None and isinstance(exc, FileExistsError)
    )


def missing_backend(scheme: str, exc: BaseException, url: str) -> StorageError:
    """The error for a URL scheme whose fsspec implementation is unknown or not installed."""
    extra = EXTRAS.get(scheme)
    if isinstance(exc, ImportError):
        hint = (
            f"pip install 'kflow[{extra}]'" if extra else f"install the fsspec package for {scheme}"
        )
        return StorageError(
            f"cannot use {url}: the storage backend for {scheme}:// is not installed ({exc})",
            hint=hint,
        )
    return StorageError(
        f"cannot use {url}: unknown storage protocol '{scheme}://'",
        hint="use a local path, file://, s3://, gs://, memory:// or another fsspec protocol",
    )


def storage_error(exc: BaseException, url: str, action: str) -> StorageError:
    """A StorageError for ``action`` ('list', 'read'…) on ``url`` that failed with ``exc``."""
    if isinstance(exc, StorageError):
        return exc
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    code = error_code(exc)
    names = class_names(exc)
    detail = str(exc) or type(exc).__name__
    prefix = f"cannot {action} {url}"
    if code == "NoSuchBucket":
        return StorageError(f"{prefix}: the bucket does not exist", hint="create it or fix the URL")
    if names & NO_CREDENTIALS:
        return StorageError(
            f"{prefix}: no credentials found ({detail})", hint=CREDENTIAL_HINTS.get(scheme)
        )
    if code in DENIED_CODES or (code is None and isinstance(exc, PermissionError)):
        return StorageError(
            f"{prefix}: permission denied ({detail})",
            hint="check the credentials and the bucket policy" if code else None,
        )
    if names & CONNECTION:
        return StorageError(
            f"{prefix}: cannot connect to the storage endpoint ({detail})",
            hint="check endpoint_url / AWS_ENDPOINT_URL and that the server is up"
            if scheme in EXTRAS
            else None,
        )
    if isinstance(exc, FileNotFoundError):
        return StorageError(f"{prefix}: it does not exist")
    return StorageError(f"{prefix}: {type(exc).__name__}: {detail}")
