"""Settings from the environment (or `.env`), validated once at start-up.

A bad value is reported as one line naming the variable; the CLI turns it into exit status 2.
The endpoint overrides are the only way to point the bot at the sandbox or another stand-in.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from cryptography.fernet import Fernet
from dotenv import dotenv_values
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.logs import LEVELS
from services.marketplaces import SPAPI_ENDPOINTS, Region, marketplace

DATA_DIR = Path("data")
DEFAULT_DATABASE_URL = f"sqlite:///{DATA_DIR / 'amazon-xero-bot.sqlite3'}"

T = TypeVar("T")


class ConfigError(Exception):
    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str | None
    slack_signing_secret: str | None
    slack_app_token: str | None
    slack_api_url: str
    errors_channel: str | None
    summary_channel: str | None
    admin_user_ids: tuple[str, ...]
    database_url: str
    token_encryption_key: str | None
    public_base_url: str
    port: int
    bind_address: str
    health_token: str | None
    log_level: str
    amazon_lwa_client_id: str | None
    amazon_lwa_client_secret: str | None
    amazon_spapi_application_id: str | None
    amazon_app_is_draft: bool
    amazon_lwa_url: str
    amazon_spapi_url: str | None
    amazon_seller_central_url: str | None
    xero_client_id: str | None
    xero_client_secret: str | None
    xero_api_url: str
    xero_identity_url: str
    xero_login_url: str
    sync_day_of_month: int
    sync_hour_utc: int
    xero_daily_call_limit: int

    def spapi_endpoint(self, region: Region) -> str:
        return self.amazon_spapi_url or SPAPI_ENDPOINTS[region]

    def seller_central_url(self, marketplace_id: str) -> str:
        return self.amazon_seller_central_url or marketplace(marketplace_id).seller_central_url

    def require(self, *variables: str) -> None:
        """Fail with the first missing variable; commands call this for what they need."""
        for variable in variables:
            if getattr(self, variable.lower()) in (None, ""):
                raise ConfigError(variable, "is required for this command; see .env.example")


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _url(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    value = _optional(env, name) or default
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(name, f"must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = _optional(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(
            name, f"must be a whole number from {low} to {high}, got {raw!r}"
        ) from None
    if not low <= value <= high:
        raise ConfigError(name, f"must be from {low} to {high}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = (_optional(env, name) or "false").lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"must be true or false, got {raw!r}")


def _checked(
    env: Mapping[str, str], name: str, check: Callable[[str], bool], expectation: str
) -> str | None:
    value = _optional(env, name)
    if value is not None and not check(value):
        # The value itself may be a secret, so it is never echoed.
        raise ConfigError(name, expectation)
    return value


def _fernet_key(value: str) -> bool:
    try:
        Fernet(value.encode())
    except ValueError:
        return False
    return True


def _database_url(env: Mapping[str, str]) -> str:
    value = _optional(env, "DATABASE_URL") or DEFAULT_DATABASE_URL
    try:
        url = make_url(value)
    except ArgumentError:
        raise ConfigError("DATABASE_URL", "is not a SQLAlchemy database URL") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError("DATABASE_URL", "must be a sqlite:// or postgresql+psycopg:// URL")
    return value


def _ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _log_level(env: Mapping[str, str]) -> str:
    value = (_optional(env, "LOG_LEVEL") or "INFO").upper()
    if value not in LEVELS:
        raise ConfigError("LOG_LEVEL", f"must be one of {', '.join(LEVELS)}, got {value!r}")
    return value


_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def _admin_ids(env: Mapping[str, str]) -> tuple[str, ...]:
    ids = tuple(part.strip() for part in env.get("ADMIN_USER_IDS", "").split(",") if part.strip())
    for user_id in ids:
        if not _SLACK_USER_ID.match(user_id):
            raise ConfigError(
                "ADMIN_USER_IDS", f"{user_id!r} is not a Slack user id (like U012AB3CD)"
            )
    return ids


def load_settings(
    environ: Mapping[str, str] | None = None, *, dotenv: Path | None = None
) -> Settings:
    """Read settings; the process environment wins over `.env`."""
    env: dict[str, str] = {}
    dotenv_file = dotenv if dotenv is not None else Path(".env")
    if dotenv_file.is_file():
        env.update({k: v for k, v in dotenv_values(dotenv_file).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    port = _int(env, "PORT", 3000, 1, 65535)
    return Settings(
        slack_bot_token=_checked(
            env, "SLACK_BOT_TOKEN", lambda v: v.startswith("xoxb-"), "must be a bot token (xoxb-…)"
        ),
        slack_signing_secret=_optional(env, "SLACK_SIGNING_SECRET"),
        slack_app_token=_checked(
            env, "SLACK_APP_TOKEN", lambda v: v.startswith("xapp-"), "must be an app token (xapp-…)"
        ),
        slack_api_url=(_url(env, "SLACK_API_URL", "https://slack.com/api") or "") + "/",
        errors_channel=_optional(env, "ERRORS_CHANNEL"),
        summary_channel=_optional(env, "SUMMARY_CHANNEL"),
        admin_user_ids=_admin_ids(env),
        database_url=_database_url(env),
        token_encryption_key=_checked(
            env,
            "TOKEN_ENCRYPTION_KEY",
            _fernet_key,
            "must be a Fernet key (32 url-safe base64 bytes)",
        ),
        public_base_url=_url(env, "PUBLIC_BASE_URL", f"http://localhost:{port}") or "",
        port=port,
        # Loopback by default: a reverse proxy on the same host fronts HTTP mode (README).
        bind_address=_checked(
            env, "BIND_ADDRESS", _ip_address, "must be an IP address such as 127.0.0.1 or 0.0.0.0"
        )
        or "127.0.0.1",
        health_token=_checked(
            env, "HEALTH_TOKEN", lambda v: len(v) >= 16, "must be at least 16 characters"
        ),
        log_level=_log_level(env),
        amazon_lwa_client_id=_optional(env, "AMAZON_LWA_CLIENT_ID"),
        amazon_lwa_client_secret=_optional(env, "AMAZON_LWA_CLIENT_SECRET"),
        amazon_spapi_application_id=_optional(env, "AMAZON_SPAPI_APPLICATION_ID"),
        amazon_app_is_draft=_bool(env, "AMAZON_APP_IS_DRAFT"),
        amazon_lwa_url=_url(env, "AMAZON_LWA_URL", "https://api.amazon.com/auth/o2/token") or "",
        amazon_spapi_url=_url(env, "AMAZON_SPAPI_URL", None),
        amazon_seller_central_url=_url(env, "AMAZON_SELLER_CENTRAL_URL", None),
        xero_client_id=_optional(env, "XERO_CLIENT_ID"),
        xero_client_secret=_optional(env, "XERO_CLIENT_SECRET"),
        xero_api_url=_url(env, "XERO_API_URL", "https://api.xero.com") or "",
        xero_identity_url=_url(env, "XERO_IDENTITY_URL", "https://identity.xero.com") or "",
        xero_login_url=_url(env, "XERO_LOGIN_URL", "https://login.xero.com") or "",
        # Amazon's month is complete around the 4th; later than the 28th would skip February.
        sync_day_of_month=_int(env, "SYNC_DAY_OF_MONTH", 4, 1, 28),
        sync_hour_utc=_int(env, "SYNC_HOUR_UTC", 6, 0, 23),
        # Xero's daily calls per organisation: 5,000, or 1,000 on the free developer tier.
        xero_daily_call_limit=_int(env, "XERO_DAILY_CALL_LIMIT", 5000, 1, 1_000_000),
    )
