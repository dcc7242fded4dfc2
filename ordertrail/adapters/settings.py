"""Typed settings, read once from the environment, turned into what each part needs.

One URL chooses the store:

- unset, or ``sqlite:///path/to/dir``: the embedded default, one SQLite file per store
  in a data directory (zero set-up);
- ``postgresql://user:password@host:port/dbname?schema=name``: the production store;
- ``memory:``: in-process only, for experiments.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from psycopg.conninfo import make_conninfo

from ordertrail.adapters.audit import POSTGRES_RECORDER_TOPIC, SQLITE_RECORDER_TOPIC
from ordertrail.application.system import APPLICATION_NAMES, Config
from ordertrail.application.warehouses import Warehouse

DEFAULT_DATA_DIR = Path("var") / "data"
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


@dataclass(frozen=True)
class PostgresTarget:
    dbname: str
    host: str
    port: int
    user: str
    password: str
    schema: str = "public"
    pool_size: int = 5
    max_overflow: int = 10

    def conninfo(self) -> str:
        return make_conninfo(
            dbname=self.dbname,
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
        )


@dataclass(frozen=True)
class Settings:
    database_url: str = ""
    data_dir: Path = DEFAULT_DATA_DIR
    config: Config = field(default_factory=Config)
    lock_timeout_seconds: int = 5
    kuaidi100_salt: str = "dev-kuaidi100-salt"
    parcelhub_secret: str = "dev-parcelhub-secret"
    carrier_rules: Path | None = None  # None: the rules shipped with the package

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        config = Config(
            payment_window=_seconds(env, "ORDERTRAIL_PAYMENT_WINDOW_SECONDS", 30 * 60),
            placement_grace=_seconds(env, "ORDERTRAIL_PLACEMENT_GRACE_SECONDS", 120),
            after_sales_window=_seconds(
                env, "ORDERTRAIL_AFTER_SALES_WINDOW_SECONDS", 7 * 24 * 3600
            ),
            currency=env.get("ORDERTRAIL_CURRENCY", "CNY"),
            auto_release=env.get("ORDERTRAIL_AUTO_RELEASE", "yes").lower()
            in ("1", "y", "yes", "true", "on"),
            warehouses=parse_warehouses(env.get("ORDERTRAIL_WAREHOUSES", "")),
        )
        rules = env.get("ORDERTRAIL_CARRIER_RULES")
        return cls(
            database_url=env.get("ORDERTRAIL_DATABASE_URL", ""),
            data_dir=Path(env.get("ORDERTRAIL_DATA_DIR", str(DEFAULT_DATA_DIR))),
            config=config,
            kuaidi100_salt=env.get("ORDERTRAIL_KUAIDI100_SALT", cls.kuaidi100_salt),
            parcelhub_secret=env.get("ORDERTRAIL_PARCELHUB_SECRET", cls.parcelhub_secret),
            carrier_rules=Path(rules) if rules else None,
        )

    @property
    def backend(self) -> str:
        scheme = urlsplit(self.database_url).scheme if self.database_url else "sqlite"
        if scheme in ("postgres", "postgresql"):
            return "postgres"
        if scheme in ("sqlite", "memory"):
            return scheme
        raise SettingsError(f"unsupported database URL scheme {scheme!r}")

    def sqlite_dir(self) -> Path:
        if self.database_url:
            path = urlsplit(self.database_url).path
            return Path(unquote(path)) if path else self.data_dir
        return self.data_dir

    def postgres(self) -> PostgresTarget:
        parts = urlsplit(self.database_url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        schema = query.get("schema", "public")
        if not _IDENTIFIER.match(schema):
            raise SettingsError(f"schema {schema!r} must be a lower-case identifier")
        return PostgresTarget(
            dbname=unquote(parts.path.lstrip("/")) or "ordertrail",
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or os.environ.get("USER", "postgres")),
            password=unquote(parts.password or ""),
            schema=schema,
            pool_size=int(query.get("pool_size", "5")),
            max_overflow=int(query.get("max_overflow", "10")),
        )

    def eventsourcing_env(self, *, create_tables: bool = True) -> dict[str, str]:
        """The environment the eventsourcing applications are built from.

        On SQLite and PostgreSQL every application's events are chained by hash, in the
        transaction that stores them (``ordertrail.adapters.audit``; ``docs/audit.md``).
        """
        env = {"CREATE_TABLE": "y" if create_tables else "n"}
        backend = self.backend
        if backend == "memory":
            env["PERSISTENCE_MODULE"] = "eventsourcing.popo"
        elif backend == "sqlite":
            directory = self.sqlite_dir()
            directory.mkdir(parents=True, exist_ok=True)
            env["PERSISTENCE_MODULE"] = "eventsourcing.sqlite"
            env["APPLICATION_RECORDER_TOPIC"] = SQLITE_RECORDER_TOPIC
            env["SQLITE_LOCK_TIMEOUT"] = "30"
            for name in APPLICATION_NAMES:
                env[f"{name.upper()}_SQLITE_DBNAME"] = str(directory / f"{name.lower()}.db")
        else:
            target = self.postgres()
            env.update(
                PERSISTENCE_MODULE="eventsourcing.postgres",
                APPLICATION_RECORDER_TOPIC=POSTGRES_RECORDER_TOPIC,
                POSTGRES_DBNAME=target.dbname,
                POSTGRES_HOST=target.host,
                POSTGRES_PORT=str(target.port),
                POSTGRES_USER=target.user,
                POSTGRES_PASSWORD=target.password,
                POSTGRES_SCHEMA=target.schema,
                POSTGRES_POOL_SIZE=str(target.pool_size),
                POSTGRES_MAX_OVERFLOW=str(target.max_overflow),
                POSTGRES_LOCK_TIMEOUT=str(self.lock_timeout_seconds),
                POSTGRES_CONNECT_TIMEOUT="10",
            )
        return env


def parse_warehouses(spec: str) -> tuple[Warehouse, ...]:
    """``code=CN,HK@10;intl=*@90``: a code, the countries it serves (``*`` for any) and
    an optional priority (lower is preferred)."""
    warehouses = []
    for entry in filter(None, (part.strip() for part in spec.split(";"))):
        code, _, rest = entry.partition("=")
        countries, _, priority = rest.partition("@")
        served = frozenset(
            c.strip().upper() for c in countries.split(",") if c.strip() and c.strip() != "*"
        )
        try:
            rank = int(priority) if priority else 100
        except ValueError:
            raise SettingsError(f"warehouse priority must be a number: {entry!r}") from None
        warehouses.append(Warehouse(code.strip(), served, rank))
    return tuple(warehouses)


def _seconds(env: Mapping[str, str], key: str, default: int) -> timedelta:
    raw = env.get(key)
    if raw is None or raw == "":
        return timedelta(seconds=default)
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{key} must be positive")
    return timedelta(seconds=value)
