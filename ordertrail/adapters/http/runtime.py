"""What the HTTP service runs on: the applications, the read side, the process managers,
and the response cache for idempotency keys. Built and started by the app's lifespan."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from litestar.security.jwt import JWTAuth, Token

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.demo import seed_catalog
from ordertrail.adapters.http.auth import Principal, jwt_auth
from ordertrail.adapters.http.config import ApiSettings
from ordertrail.adapters.http.idempotency import IdempotencyStore
from ordertrail.adapters.read_models import ReadSide, read_store
from ordertrail.application.context import Clock, system_clock
from ordertrail.application.followers import FollowerThread
from ordertrail.application.system import Ordertrail

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: ApiSettings
    ot: Ordertrail
    read: ReadSide
    idempotency: IdempotencyStore
    auth: JWTAuth[Principal, Token]
    followers: FollowerThread | None = field(default=None)

    @classmethod
    def open(
        cls, settings: ApiSettings, auth: JWTAuth[Principal, Token], clock: Clock = system_clock
    ) -> Runtime:
        ot = open_ordertrail(settings.store, clock=clock)
        store = read_store(settings.store)
        read = ReadSide.open(ot, store)
        runtime = cls(settings, ot, read, IdempotencyStore(store), auth)
        if settings.seed_demo:
            added = seed_catalog(ot)
            log.info("demo catalog: %s products added", added)
        return runtime

    def start(self) -> None:
        if not self.settings.run_workers:
            return
        self.read.start(idle_wait=0.2)
        self.followers = FollowerThread(self.ot.followers, interval=0.2)
        self.followers.start()

    def close(self) -> None:
        if self.followers is not None:
            self.followers.stop()
        self.read.close()
        self.ot.close()


def new_auth(settings: ApiSettings) -> JWTAuth[Principal, Token]:
    return jwt_auth(settings.jwt_secret, timedelta(seconds=settings.token_ttl_seconds))
