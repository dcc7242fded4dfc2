"""Who is calling: bearer tokens (JWT, HS256) carrying a role and a subject.

Customers (``sub`` = their customer id) see and change only their own orders, carts and
cases; staff run the shop; auditors read history. Payment providers and carriers do not
hold tokens: their callbacks are authenticated by signature (see ``routes.callbacks``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import JWTAuth, Token

from ordertrail.domain.meta import Actor, ActorKind

_SUBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}")
ISSUER = "ordertrail"


class Role(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    AUDITOR = "auditor"


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str

    @property
    def actor(self) -> Actor:
        kind = {
            Role.CUSTOMER: ActorKind.CUSTOMER,
            Role.STAFF: ActorKind.STAFF,
            Role.AUDITOR: ActorKind.AUDITOR,
        }[self.role]
        return Actor(kind, self.subject)

    @property
    def key(self) -> str:
        return f"{self.role.value}:{self.subject}"

    def may_see_customer(self, customer_id: str) -> bool:
        return self.role is not Role.CUSTOMER or customer_id == self.subject


def retrieve_principal(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    role = token.extras.get("role")
    if role not in {r.value for r in Role} or not _SUBJECT.fullmatch(token.sub or ""):
        return None
    return Principal(Role(role), token.sub)


def jwt_auth(secret: str, token_ttl: timedelta) -> JWTAuth[Principal, Token]:
    return JWTAuth[Principal, Token](
        token_secret=secret,
        retrieve_user_handler=retrieve_principal,
        exclude=["/schema", "/health"],
        exclude_opt_key="public",
        default_token_expiration=token_ttl,
        accepted_issuers=[ISSUER],
        require_claims=["exp", "sub"],
    )


def issue_token(auth: JWTAuth[Principal, Token], role: Role, subject: str) -> str:
    if not _SUBJECT.fullmatch(subject):
        raise ValueError("a subject is 1-128 safe characters")
    return auth.create_token(
        identifier=subject, token_issuer=ISSUER, token_extras={"role": role.value}
    )


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise NotAuthorizedException("a bearer token is needed")
    return user


def requires(*roles: Role) -> Any:
    """A guard: the caller must hold one of ``roles``."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if principal_of(connection).role not in roles:
            raise PermissionDeniedException(
                f"this needs the {' or '.join(r.value for r in roles)} role"
            )

    return guard


staff_only = requires(Role.STAFF)
customers_and_staff = requires(Role.CUSTOMER, Role.STAFF)
auditors_and_staff = requires(Role.AUDITOR, Role.STAFF)
