"""The Litestar app factory: the composition root of the HTTP service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar, Request, Router
from litestar.config.app import AppConfig
from litestar.middleware import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from ordertrail.adapters.http import problems
from ordertrail.adapters.http.auth import Principal
from ordertrail.adapters.http.config import ApiSettings
from ordertrail.adapters.http.idempotency import IdempotencyMiddleware
from ordertrail.adapters.http.rate_limit import CountingRateLimitMiddleware
from ordertrail.adapters.http.routes import (
    aftersales,
    audit,
    browse,
    carts,
    catalog,
    inventory,
    knowledge,
    logistics,
    orders,
    payments,
    queries,
    system,
)
from ordertrail.adapters.http.runtime import Runtime, new_auth
from ordertrail.adapters.http.strict_query import refuse_unknown_query_parameters
from ordertrail.application.context import Clock, system_clock

ROUTE_MODULES = (
    system,
    catalog,
    browse,
    inventory,
    orders,
    payments,
    carts,
    logistics,
    aftersales,
    knowledge,
    queries,
    audit,
)
THROTTLED = {("POST", "/orders")}


def create_app(settings: ApiSettings | None = None, *, clock: Clock = system_clock) -> Litestar:
    chosen = settings or ApiSettings.from_env()
    auth = new_auth(chosen)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = Runtime.open(chosen, auth, clock)
        app.state.runtime = runtime
        runtime.start()
        try:
            yield
        finally:
            runtime.close()

    def idempotency_keys() -> Any:
        return app.state.runtime.keys

    def problem_body(status: int, code: str, detail: str) -> bytes:
        return msgspec.json.encode(
            {
                "type": problems.TYPE_BASE + code.replace(".", "/"),
                "status": status,
                "title": problems._phrase(status),
                "detail": detail,
                "code": code,
                "details": {},
            }
        )

    async def throttle_only_order_placement(request: Request[Any, Any, Any]) -> bool:
        method, path = request.scope["method"], request.scope["path"]
        return (method, path) in THROTTLED or (method == "POST" and path.endswith("/checkout"))

    def client_of(request: Request[Any, Any, Any]) -> str:
        user = request.scope.get("user")
        if isinstance(user, Principal):
            return user.key
        return request.client.host if request.client else "unknown"

    rate_limit = RateLimitConfig(
        rate_limit=("minute", chosen.orders_per_minute),
        check_throttle_handler=throttle_only_order_placement,
        identifier_for_request=client_of,
        middleware_class=CountingRateLimitMiddleware,
    )
    route_handlers = [handler for module in ROUTE_MODULES for handler in module.ROUTES]
    errors = problems.problem_responses()
    for handler in route_handlers:
        handler.responses = {**errors, **(handler.responses or {})}
        if handler.opt.get("public"):
            # No bearer token needed (signed callbacks, health, dev tokens): say so in the
            # schema, which otherwise inherits the app-wide JWT requirement.
            handler.security = [{}]
    app = Litestar(
        # One router holding every handler: registering handlers that share a path one by
        # one wraps the earlier ones again (Litestar 2.25), and a sync handler wrapped twice
        # fails when it returns a Response.
        route_handlers=[Router(path="/", route_handlers=route_handlers)],
        lifespan=[lifespan],
        before_request=refuse_unknown_query_parameters,
        on_app_init=[
            auth.on_app_init,
            _append(rate_limit.middleware),
            _append(
                DefineMiddleware(
                    IdempotencyMiddleware,
                    keys=idempotency_keys,
                    problem=problem_body,
                    max_body=chosen.max_body_bytes,
                )
            ),
        ],
        plugins=[problems.problem_details_plugin()],
        exception_handlers={Exception: problems.internal_error},
        request_max_body_size=chosen.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="ordertrail",
            version="0.1.0",
            description="Event-sourced order management: commands and queries. Errors are "
            "RFC 9457 problem details with a stable `code`.",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
        debug=False,
    )
    return app


def _append(middleware: Any) -> Any:
    """An on_app_init hook that adds middleware after what is there (after auth)."""

    def hook(config: AppConfig) -> AppConfig:
        config.middleware.append(middleware)
        return config

    return hook
