"""Who is calling: bearer tokens (JWT, HS256) carrying a role and a subject.

Customers (``sub`` = their customer id) see and change only their own orders, carts and
cases; staff run the shop; auditors read history. Payment providers and carriers do not
hold tokens: their callbacks are authenticated by signature (see ``routes.callbacks``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.authentication import AuthenticationResult
from litestar.security.jwt import JWTAuth, JWTAuthenticationMiddleware, Token

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


#: Verified tokens kept per configuration (beyond it the cache starts again empty).
MAX_VERIFIED_TOKENS = 10_000
_VERIFIED: dict[tuple[object, ...], dict[str, AuthenticationResult]] = {}


class VerifiedTokenCache(JWTAuthenticationMiddleware):
    """Litestar's JWT middleware, remembering the tokens it has verified until they
    expire: a client sends the same token with every request, and checking its HMAC and
    claims again each time was about a tenth of an API worker's CPU per order. Only a
    token that passed every check is kept, keyed by its exact text, in one cache per
    verifying configuration (secret, algorithm, issuers, audience, claims) shared by the
    app's routes (Litestar makes a middleware per route); expiry is checked on every use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config = (
            self.token_secret,
            self.algorithm,
            tuple(self.token_issuer or ()),
            repr(self.token_audience),
            tuple(self.require_claims or ()),
            self.verify_expiry,
            self.verify_not_before,
            self.strict_audience,
            self.token_cls,
            self.retrieve_user_handler,
        )
        self.verified = _VERIFIED.setdefault(config, {})

    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        verified = self.verified
        known = verified.get(encoded_token)
        if known is not None and known.auth.exp > datetime.now(UTC):
            return known
        result = await super().authenticate_token(encoded_token, connection)
        if len(verified) >= MAX_VERIFIED_TOKENS:
            verified.clear()
        verified[encoded_token] = result
        return result


def jwt_auth(secret: str, token_ttl: timedelta) -> JWTAuth[Principal, Token]:
    return JWTAuth[Principal, Token](
        token_secret=secret,
        retrieve_user_handler=retrieve_principal,
        authentication_middleware_class=VerifiedTokenCache,
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
