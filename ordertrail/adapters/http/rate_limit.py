"""Order placement's rate limit: Litestar's fixed-window limiter, storing a count per
client and window instead of the time of every request in it.

Litestar's ``RateLimitMiddleware`` keeps the list of a client's request times in the
window and decodes, copies and re-encodes it on every request, so a request costs more
the more the client sent before it in the window: staff or an integration placing orders
all minute long pay for each earlier order again on every new one (in the flash-sale
benchmark, up to a quarter of an API worker's CPU). Only ``len`` of that list was ever
used. The window, the limit, the store, the ``RateLimit-*`` headers and the 429 stay
Litestar's; what is stored becomes ``"<count> <reset>"``.
"""

from __future__ import annotations

from time import time
from typing import TYPE_CHECKING, Any

from litestar.exceptions import TooManyRequestsException
from litestar.middleware.rate_limit import DURATION_VALUES, CacheObject, RateLimitMiddleware

if TYPE_CHECKING:
    from litestar.connection import Request
    from litestar.stores.base import Store
    from litestar.types import Receive, Scope, Send


class Window(CacheObject):
    """A client's window: how many requests it made in it (``count``) and when it ends
    (``reset``, epoch seconds). ``history`` is unused (Litestar's base class field)."""

    __slots__ = ("count",)

    def __init__(self, count: int, reset: int) -> None:
        super().__init__(history=[], reset=reset)
        self.count = count


class CountingRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's rate limiter with a constant cost per request (see the module)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["litestar_app"]
        request: Request[Any, Any, Any] = app.request_class(scope)
        if await self.should_check_request(request=request):
            key = self.cache_key_from_request(request)
            store = self.config.get_store_from_app(app)
            async with self._lock:
                window = await self.retrieve_cached_history(key, store)
                if window.count >= self.max_requests:
                    raise TooManyRequestsException(
                        headers=self.create_response_headers(window)
                        if self.config.set_rate_limit_headers
                        else None
                    )
                window.count += 1
                await store.set(
                    key,
                    f"{window.count} {window.reset}".encode(),
                    expires_in=max(window.reset - int(time()), 1),
                )
            if self.config.set_rate_limit_headers:
                send = self.create_send_wrapper(send=send, cache_object=window)
        await self.app(scope, receive, send)

    async def retrieve_cached_history(self, key: str, store: Store) -> Window:
        now = int(time())
        stored = await store.get(key)
        if stored:
            count, _, reset = stored.decode().partition(" ")
            if int(reset) > now:
                return Window(int(count), int(reset))
        return Window(0, now + DURATION_VALUES[self.unit])

    def create_response_headers(self, cache_object: CacheObject) -> dict[str, str]:
        count = cache_object.count if isinstance(cache_object, Window) else 0
        return {
            self.config.rate_limit_policy_header_key: (
                f"{self.max_requests}; w={DURATION_VALUES[self.unit]}"
            ),
            self.config.rate_limit_limit_header_key: str(self.max_requests),
            self.config.rate_limit_remaining_header_key: str(max(self.max_requests - count, 0)),
            self.config.rate_limit_reset_header_key: str(cache_object.reset - int(time())),
        }
