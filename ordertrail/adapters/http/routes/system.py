"""Health, and development tokens."""

from __future__ import annotations

from typing import Annotated

from litestar import get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from msgspec import Meta

from ordertrail.adapters.http.auth import Role, issue_token
from ordertrail.adapters.http.routes.common import example, runtime_of
from ordertrail.adapters.http.schemas import Body, Reply


class Health(Reply):
    status: str
    stores: dict[str, int]


class TokenRequest(Body):
    role: Role
    subject: Annotated[
        str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$", examples=["li-lei"])
    ]


class TokenReply(Reply):
    token: str
    token_type: str = "Bearer"


@get(
    "/health",
    summary="Is the service up, and how far is each store",
    opt={"public": True},
    sync_to_thread=True,
    tags=["system"],
)
def health(state: State) -> Health:
    runtime = runtime_of(state)
    return Health(status="ok", stores={app.name: app.head() for app in runtime.ot.applications})


@post(
    "/dev/tokens",
    summary="Issue a token for a role (development only)",
    description="Only when ORDERTRAIL_DEV_TOKENS is on; production uses a real identity "
    "provider that signs tokens with the same secret.",
    opt={"public": True},
    tags=["system"],
    status_code=201,
)
async def dev_token(
    state: State,
    data: Annotated[TokenRequest, example({"role": "customer", "subject": "li-lei"})],
) -> TokenReply:
    runtime = runtime_of(state)
    if not runtime.settings.dev_tokens:
        raise NotFoundException("development tokens are off")
    return TokenReply(token=issue_token(runtime.auth, data.role, data.subject))


ROUTES = [health, dev_token]
