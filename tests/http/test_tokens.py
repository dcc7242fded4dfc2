"""Bearer tokens through the real app: the middleware remembers tokens it has verified
(``VerifiedTokenCache``), which must never let in a token it would have refused."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

from litestar.testing import TestClient

from ordertrail.adapters.http.app import create_app
from ordertrail.adapters.http.auth import ISSUER, Role, issue_token, jwt_auth
from ordertrail.adapters.settings import Settings
from tests.http.conftest import Api, api_settings
from tests.support.clock import FakeClock

MINE = "/customers/me/orders"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_verified_token_is_refused_once_it_expires(api: Api) -> None:
    token = api.runtime.auth.create_token(
        identifier="li-lei",
        token_expiration=timedelta(seconds=1),
        token_issuer=ISSUER,
        token_extras={"role": Role.CUSTOMER.value},
    )
    assert api.client.get(MINE, headers=bearer(token)).status_code == 200
    assert api.client.get(MINE, headers=bearer(token)).status_code == 200  # remembered
    time.sleep(2.1)  # JWT expiry has whole seconds
    assert api.client.get(MINE, headers=bearer(token)).status_code == 401


def test_a_token_verified_by_one_shop_is_not_taken_by_another(
    api: Api, store_settings: Settings, clock: FakeClock
) -> None:
    token = issue_token(api.runtime.auth, Role.CUSTOMER, "li-lei")
    assert api.client.get(MINE, headers=bearer(token)).status_code == 200
    other = create_app(api_settings(store_settings, jwt_secret="x" * 48), clock=clock)
    with TestClient(app=other, raise_server_exceptions=False) as client:
        assert client.get(MINE, headers=bearer(token)).status_code == 401
        theirs = issue_token(jwt_auth("x" * 48, timedelta(hours=1)), Role.CUSTOMER, "li-lei")
        assert client.get(MINE, headers=bearer(theirs)).status_code == 200
    assert api.client.get(MINE, headers=bearer(theirs)).status_code == 401


def test_a_changed_token_is_refused_after_its_original_was_verified(api: Api) -> None:
    token = issue_token(api.runtime.auth, Role.CUSTOMER, "li-lei")
    assert api.client.get(MINE, headers=bearer(token)).status_code == 200
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = Role.STAFF.value
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"{header}.{forged_payload}.{signature}"
    assert api.client.get("/customers/li-lei/orders", headers=bearer(forged)).status_code == 401
