"""RFC 9457 problem details for every error a client can cause, through Litestar's
problem-details plugin.

Domain errors map by their stable code (never their message) to a status code; the
problem carries ``code`` and ``details``. Anything unexpected becomes a bare 500 (and is
logged) without internals.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import eventsourcing.persistence
import msgspec
import psycopg
import psycopg_pool
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from ordertrail.domain.errors import DomainError, ErrorKind

log = logging.getLogger(__name__)

#: Errors that mean the database is unreachable or restarting (answered 503, not 500).
OUTAGES: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
    eventsourcing.persistence.OperationalError,
    eventsourcing.persistence.InterfaceError,
)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://ordertrail.dev/problems/"

#: Status per domain error code; codes not listed fall back on their kind.
STATUS_BY_CODE: dict[str, int] = {
    "command.version_mismatch": 412,
    "command.id_reused": 422,
    "command.conflict": 409,
    "store.unavailable": 503,
    "logistics.bad_signature": 401,
    "payment.bad_signature": 401,
    "http.idempotency_key_reused": 422,
    "http.rate_limited": 429,
    "http.forbidden": 403,
}
STATUS_BY_KIND: dict[ErrorKind, int] = {
    ErrorKind.INVALID: 422,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.REJECTED: 409,
}
HTTP_CODES = {
    400: "http.invalid_request",
    401: "http.unauthorized",
    403: "http.forbidden",
    404: "http.not_found",
    405: "http.method_not_allowed",
    409: "http.conflict",
    412: "http.precondition_failed",
    413: "http.body_too_large",
    415: "http.unsupported_media_type",
    422: "http.unprocessable",
    429: "http.rate_limited",
}


class ProblemDetails(msgspec.Struct, kw_only=True):
    """The body of every error response (RFC 9457, ``application/problem+json``)."""

    type: str
    status: int
    title: str
    detail: str
    code: str
    details: dict[str, Any] = {}


#: What any operation may answer besides its success: documented once for all of them.
DOCUMENTED_ERRORS = (400, 401, 403, 404, 409, 412, 413, 415, 422, 429, 503)


def problem_responses() -> dict[int, Any]:
    return {
        status: ResponseSpec(
            data_container=ProblemDetails,
            media_type=PROBLEM_JSON,
            description=f"{_phrase(status)}: a problem with a stable `code`",
            generate_examples=False,
        )
        for status in DOCUMENTED_ERRORS
    }


def status_for(error: DomainError) -> int:
    return STATUS_BY_CODE.get(error.code) or STATUS_BY_KIND.get(error.kind, 422)


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=status,
        title=title,
        detail=detail,
        type_=TYPE_BASE + code.replace(".", "/"),
        headers=headers,
        extra={"code": code, "details": details or {}},
    )


def from_domain_error(error: DomainError) -> ProblemDetailsException:
    status = status_for(error)
    details = {key: _jsonable(value) for key, value in error.details.items()}
    headers = {"Retry-After": str(details.get("retry_after", 1))} if status in (429, 503) else None
    return problem(
        status,
        error.code,
        _title(type(error).__name__),
        error.message,
        details=details,
        headers=headers,
    )


def from_http_exception(error: HTTPException) -> ProblemDetailsException:
    status = error.status_code
    details: dict[str, Any] = {}
    if isinstance(error, ValidationException):
        status = 400
        if isinstance(error.extra, list):
            details["errors"] = [_jsonable(item) for item in error.extra]
    headers = dict(error.headers or {})
    if status == 429 and "Retry-After" not in headers:
        # The rate limiter says when its window resets (RateLimit-Reset, in seconds).
        reset = headers.get("RateLimit-Reset", "1")
        headers["Retry-After"] = str(max(1, int(reset))) if reset.isdigit() else "1"
    return problem(
        status,
        HTTP_CODES.get(status, f"http.{status}"),
        _phrase(status),
        str(error.detail),
        details=details,
        headers=headers or None,
    )


def store_outage(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is the database being unreachable or
    restarting, rather than a fault of ours: the request may simply be sent again."""
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, OUTAGES):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def internal_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    if store_outage(error):
        log.warning("store unavailable on %s %s: %s", request.method, request.url.path, error)
        return problem(
            503,
            "store.unavailable",
            "Service unavailable",
            "The store cannot be reached just now; send the request again "
            "(with the same Idempotency-Key).",
            headers={"Retry-After": "1"},
        ).to_response(request)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return problem(
        500,
        "http.internal_error",
        "Internal Server Error",
        "The server could not complete the request.",
    ).to_response(request)


def problem_details_plugin() -> ProblemDetailsPlugin:
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            exception_to_problem_detail_map={
                DomainError: from_domain_error,
                HTTPException: from_http_exception,
            },
        )
    )


def _title(name: str) -> str:
    return "".join(f" {c.lower()}" if c.isupper() else c for c in name).strip().capitalize()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _jsonable(value: Any) -> Any:
    try:
        msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError):
        return str(value)
    return value
