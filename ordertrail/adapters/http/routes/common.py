"""What every route needs: the runtime, the caller, the command's context, ETags and
positions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from litestar import Request, Response
from litestar.datastructures import State
from litestar.exceptions import ClientException, NotFoundException
from litestar.openapi.spec import Example
from litestar.params import Body as BodyParam

from ordertrail.adapters.http.auth import Principal, principal_of
from ordertrail.adapters.http.idempotency import command_id
from ordertrail.adapters.http.runtime import Runtime
from ordertrail.application.context import CommandContext
from ordertrail.application.receipts import Accepted

T = TypeVar("T")

POSITION_HEADER = "X-Ordertrail-Position"
WAIT_HEADER = "X-Ordertrail-Wait-For"
CONSISTENCY_HEADER = "X-Ordertrail-Consistency"
_ETAG = re.compile(r'^(?:W/)?"(\d{1,18})"$')
_POSITION = re.compile(r"^[A-Za-z]{1,40}=\d{1,18}$")


def runtime_of(state: State) -> Runtime:
    found = state.get("runtime")
    if not isinstance(found, Runtime):
        raise RuntimeError("the service is not started")
    return found


def context(request: Request[Any, Any, Any], *, versioned: bool = False) -> CommandContext:
    """The command context of a request: who, which command id (from the
    Idempotency-Key), and with ``versioned`` the ``If-Match`` version."""
    principal = principal_of(request)
    return CommandContext(
        actor=principal.actor,
        command_id=command_id(request.scope),
        expected_version=if_match(request) if versioned else None,
    )


def if_match(request: Request[Any, Any, Any]) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None or raw.strip() == "*":
        return None
    found = _ETAG.match(raw.strip())
    if not found:
        raise ClientException('If-Match must be an ETag this API gave, such as "3"')
    return int(found.group(1))


def etag(version: int) -> str:
    return f'"{version}"'


def encode_positions(positions: Mapping[str, int]) -> str:
    return ",".join(f"{name}={position}" for name, position in sorted(positions.items()))


def decode_positions(raw: str) -> dict[str, int]:
    positions: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        if not _POSITION.match(part):
            raise ClientException(f"{WAIT_HEADER} is name=position pairs, such as Orders=12")
        name, _, value = part.partition("=")
        positions[name] = int(value)
    return positions


def accepted(
    result: Accepted[Any],
    body: Any,
    *,
    status: int = 200,
    version: int | None = None,
    location: str | None = None,
) -> Response[Any]:
    """A command's response: its body, the positions it wrote (for read-your-writes),
    its resource's ETag, and, when it created something, where that is."""
    headers = {POSITION_HEADER: encode_positions(result.positions)}
    if version is not None:
        headers["ETag"] = etag(version)
    if location:
        headers["Location"] = location
    return Response(body, status_code=status, headers=headers)


def wait_for_read_model(
    request: Request[Any, Any, Any], runtime: Runtime, model: str
) -> dict[str, str]:
    """Honour ``X-Ordertrail-Wait-For`` (bounded); returns the headers to add."""
    raw = request.headers.get(WAIT_HEADER)
    if not raw:
        return {}
    reached = runtime.read.wait(model, decode_positions(raw), runtime.settings.wait_timeout_seconds)
    return {CONSISTENCY_HEADER: "current" if reached else "stale"}


def not_found(what: str) -> NotFoundException:
    return NotFoundException(f"no such {what}")


def visible_to(principal: Principal, customer_id: str, what: str) -> None:
    """Customers see only their own things; anything else answers 404 (not 403), so
    ids of other customers' orders cannot be probed."""
    if not principal.may_see_customer(customer_id):
        raise not_found(what)


def example(value: Any, summary: str = "example") -> Any:
    """A request body parameter with an example for the OpenAPI schema."""
    return BodyParam(examples=[Example(summary=summary, value=value)])
