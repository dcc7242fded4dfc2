"""Settings of the HTTP service, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ordertrail.adapters.settings import Settings, SettingsError

DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-in-production"
DEV_PROVIDER_SECRET = "dev-generic-provider-secret"


@dataclass(frozen=True)
class ApiSettings:
    store: Settings = field(default_factory=Settings)
    jwt_secret: str = DEV_JWT_SECRET
    token_ttl_seconds: int = 8 * 3600
    dev_tokens: bool = False  # POST /dev/tokens issues tokens (never in production)
    max_body_bytes: int = 1_048_576
    orders_per_minute: int = 60  # per client, for order placement
    wait_timeout_seconds: float = 2.0  # longest a query waits for read-your-writes
    seed_demo: bool = False
    run_workers: bool = True  # projection workers and process managers in-process
    idempotency_retention_hours: int = 24  # how long a key's response is kept
    alipay_public_key_pem: str = ""  # the provider's key that verifies its notifications
    public_base_url: str = ""  # how providers reach us (notify URLs); default: the request
    generic_provider_secret: str = DEV_PROVIDER_SECRET

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        env = os.environ if environ is None else environ

        def flag(key: str, default: bool) -> bool:
            raw = env.get(key)
            return default if raw is None else raw.lower() in ("1", "y", "yes", "true", "on")

        def number(key: str, default: int) -> int:
            raw = env.get(key)
            try:
                return default if raw is None or raw == "" else int(raw)
            except ValueError:
                raise SettingsError(f"{key} must be a whole number") from None

        pem_path = env.get("ORDERTRAIL_ALIPAY_PUBLIC_KEY_FILE", "")
        pem = ""
        if pem_path:
            with open(pem_path, encoding="ascii") as handle:
                pem = handle.read()
        retention = number("ORDERTRAIL_IDEMPOTENCY_RETENTION_HOURS", 24)
        if retention < 1:
            raise SettingsError("ORDERTRAIL_IDEMPOTENCY_RETENTION_HOURS must be at least 1")
        return cls(
            store=Settings.from_env(env),
            jwt_secret=env.get("ORDERTRAIL_JWT_SECRET", DEV_JWT_SECRET),
            token_ttl_seconds=number("ORDERTRAIL_TOKEN_TTL_SECONDS", 8 * 3600),
            dev_tokens=flag("ORDERTRAIL_DEV_TOKENS", False),
            max_body_bytes=number("ORDERTRAIL_MAX_BODY_BYTES", 1_048_576),
            orders_per_minute=number("ORDERTRAIL_ORDERS_PER_MINUTE", 60),
            seed_demo=flag("ORDERTRAIL_SEED_DEMO", False),
            run_workers=flag("ORDERTRAIL_RUN_WORKERS", True),
            idempotency_retention_hours=retention,
            alipay_public_key_pem=pem,
            public_base_url=env.get("ORDERTRAIL_PUBLIC_BASE_URL", "").rstrip("/"),
            generic_provider_secret=env.get("ORDERTRAIL_PROVIDER_SECRET", DEV_PROVIDER_SECRET),
        )
