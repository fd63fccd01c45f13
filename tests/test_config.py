from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from services.marketplaces import Region

NO_DOTENV = Path("/nonexistent/.env")


def test_defaults_need_no_credentials() -> None:
    settings = load_settings({}, dotenv=NO_DOTENV)
    assert settings.database_url.startswith("sqlite:///data/")
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.amazon_lwa_url == "https://api.amazon.com/auth/o2/token"
    assert settings.spapi_endpoint(Region.EU) == "https://sellingpartnerapi-eu.amazon.com"
    assert settings.seller_central_url("A1PA6795UKMFR9") == "https://sellercentral.amazon.de"
    assert settings.xero_login_url == "https://login.xero.com"
    assert (settings.sync_day_of_month, settings.sync_hour_utc) == (4, 6)
    # Loopback, for a reverse proxy on the same host; INFO; health details for nobody.
    assert (settings.bind_address, settings.log_level, settings.health_token) == (
        "127.0.0.1",
        "INFO",
        None,
    )


def test_server_settings() -> None:
    settings = load_settings(
        {"BIND_ADDRESS": "::", "LOG_LEVEL": "debug", "HEALTH_TOKEN": "s3cret-s3cret-s3cret"},
        dotenv=NO_DOTENV,
    )
    assert (settings.bind_address, settings.log_level) == ("::", "DEBUG")
    assert settings.health_token == "s3cret-s3cret-s3cret"


def test_overrides_replace_every_endpoint() -> None:
    settings = load_settings(
        {
            "AMAZON_SPAPI_URL": "http://127.0.0.1:9/",
            "AMAZON_SELLER_CENTRAL_URL": "http://127.0.0.1:9",
            "SLACK_API_URL": "http://127.0.0.1:8/api",
        },
        dotenv=NO_DOTENV,
    )
    assert settings.spapi_endpoint(Region.NA) == "http://127.0.0.1:9"
    assert settings.seller_central_url("ATVPDKIKX0DER") == "http://127.0.0.1:9"
    assert settings.slack_api_url == "http://127.0.0.1:8/api/"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PORT", "eighty", "PORT: must be a whole number"),
        ("PORT", "70000", "PORT: must be from 1 to 65535"),
        ("SYNC_DAY_OF_MONTH", "31", "SYNC_DAY_OF_MONTH: must be from 1 to 28"),
        ("SYNC_HOUR_UTC", "24", "SYNC_HOUR_UTC: must be from 0 to 23"),
        ("AMAZON_APP_IS_DRAFT", "maybe", "AMAZON_APP_IS_DRAFT: must be true or false"),
        ("XERO_API_URL", "api.xero.com", "XERO_API_URL: must be an http(s) URL"),
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL: must be a sqlite://"),
        ("DATABASE_URL", "::not a url::", "DATABASE_URL: is not a SQLAlchemy database URL"),
        ("ADMIN_USER_IDS", "U01ABC, bob", "ADMIN_USER_IDS: 'bob' is not a Slack user id"),
        ("SLACK_BOT_TOKEN", "xoxp-user-token", "SLACK_BOT_TOKEN: must be a bot token"),
        ("SLACK_APP_TOKEN", "xoxb-1", "SLACK_APP_TOKEN: must be an app token"),
        ("TOKEN_ENCRYPTION_KEY", "short", "TOKEN_ENCRYPTION_KEY: must be a Fernet key"),
        ("BIND_ADDRESS", "example.com", "BIND_ADDRESS: must be an IP address"),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR"),
        ("HEALTH_TOKEN", "short", "HEALTH_TOKEN: must be at least 16 characters"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({variable: value}, dotenv=NO_DOTENV)
    assert str(raised.value).startswith(expected)
    assert raised.value.variable == variable


def test_secret_values_are_never_echoed() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"SLACK_BOT_TOKEN": "xoxp-very-secret"}, dotenv=NO_DOTENV)
    assert "very-secret" not in str(raised.value)


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("PORT=4000\nSYNC_HOUR_UTC=3\n")
    settings = load_settings({"PORT": "5000"}, dotenv=dotenv)
    assert (settings.port, settings.sync_hour_utc) == (5000, 3)


def test_cli_reports_bad_configuration_in_one_line_with_status_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "integration", "list"],
        env={"PATH": "/usr/bin:/bin", "SYNC_DAY_OF_MONTH": "0"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "amazon-xero-bot: configuration error: SYNC_DAY_OF_MONTH: must be from 1 to 28, got 0"
    ]
    assert "Traceback" not in result.stderr
