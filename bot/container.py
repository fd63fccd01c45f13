"""Builds the services from the settings: the one place where the object graph is wired."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot import db
from bot.config import DATA_DIR, Settings
from bot.slack_client import PacedWebClient, paced_web_client
from services import xero as xero_module
from services.amazon import LwaClient, SpApiClient
from services.connect import AmazonApp, ConnectService
from services.crypto import TokenCipher
from services.integrations import IntegrationService, XeroTokenStore
from services.marketplaces import Region
from services.models import Integration
from services.notifications import Notifier, NullNotifier
from services.periods import next_sync
from services.run_claims import RunClaims
from services.shared_limits import OrganisationLimits
from services.sync import SyncEngine
from services.xero import XeroAuth, XeroClient

log = logging.getLogger(__name__)

KEY_FILE = DATA_DIR / "token-encryption.key"


def load_or_create_key(settings: Settings, key_file: Path = KEY_FILE) -> str:
    """TOKEN_ENCRYPTION_KEY, or a key generated once into the data directory."""
    if settings.token_encryption_key:
        return settings.token_encryption_key
    if key_file.is_file():
        return key_file.read_text().strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    # Created owner-only; losing this file makes the stored refresh tokens unreadable.
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    log.warning(
        "TOKEN_ENCRYPTION_KEY is not set: generated one into %s. Back it up, or set the "
        "variable; without it the stored tokens cannot be read.",
        key_file,
    )
    return key


@dataclass
class Container:
    settings: Settings

    @property
    def admin_user_ids(self) -> tuple[str, ...]:
        return self.settings.admin_user_ids

    @cached_property
    def background(self) -> ThreadPoolExecutor:
        """Slow work Slack listeners start after their ack (a retry, a sync), off Bolt's
        listener pool, so that long waits on Xero never stop the bot from acking."""
        return ThreadPoolExecutor(max_workers=4, thread_name_prefix="background")

    def next_sync(self) -> tuple[datetime, str]:
        settings = self.settings
        return next_sync(settings.sync_day_of_month, settings.sync_hour_utc, datetime.now(UTC))

    @cached_property
    def slack_client(self) -> PacedWebClient:
        """Every Slack Web API call of this process: one client, so one pace per channel."""
        return paced_web_client(self.settings)

    @cached_property
    def notifier(self) -> Notifier:
        if not self.settings.slack_bot_token:
            return NullNotifier()
        from bot.slack_notifier import SlackNotifier

        return SlackNotifier(
            self.slack_client,
            default_errors_channel=self.settings.errors_channel,
            default_summary_channel=self.settings.summary_channel,
        )

    @cached_property
    def engine(self) -> Engine:
        return db.make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return db.make_sessions(self.engine)

    def migrate(self) -> None:
        db.upgrade(self.engine)

    @cached_property
    def cipher(self) -> TokenCipher:
        return TokenCipher(load_or_create_key(self.settings))

    @cached_property
    def integrations(self) -> IntegrationService:
        return IntegrationService(self.sessions, self.cipher)

    @cached_property
    def lwa(self) -> LwaClient:
        self.settings.require("AMAZON_LWA_CLIENT_ID", "AMAZON_LWA_CLIENT_SECRET")
        return LwaClient(
            token_url=self.settings.amazon_lwa_url,
            client_id=self.settings.amazon_lwa_client_id or "",
            client_secret=self.settings.amazon_lwa_client_secret or "",
        )

    @cached_property
    def xero_auth(self) -> XeroAuth:
        self.settings.require("XERO_CLIENT_ID", "XERO_CLIENT_SECRET")
        return XeroAuth(
            login_url=self.settings.xero_login_url,
            identity_url=self.settings.xero_identity_url,
            api_url=self.settings.xero_api_url,
            client_id=self.settings.xero_client_id or "",
            client_secret=self.settings.xero_client_secret or "",
        )

    @cached_property
    def connect(self) -> ConnectService:
        self.settings.require("AMAZON_SPAPI_APPLICATION_ID")
        return ConnectService(
            self.sessions,
            self.integrations,
            lwa=self.lwa,
            amazon_app=AmazonApp(
                application_id=self.settings.amazon_spapi_application_id or "",
                is_draft=self.settings.amazon_app_is_draft,
                seller_central_url=self.settings.seller_central_url,
            ),
            xero_auth=self.xero_auth,
            public_base_url=self.settings.public_base_url,
            seller_stores=self._seller_stores,
        )

    def _seller_stores(self, integration: Integration, refresh_token: str) -> dict[str, str]:
        """What a new Amazon refresh token proves about its seller: its stores."""
        return SpApiClient(
            endpoint=self.settings.spapi_endpoint(Region(integration.region)),
            lwa=self.lwa,
            refresh_token=refresh_token,
        ).marketplace_participations()

    @cached_property
    def claims(self) -> RunClaims:
        return RunClaims(self.engine)

    @cached_property
    def sync(self) -> SyncEngine:
        return SyncEngine(
            self.sessions,
            self.integrations,
            claims=self.claims,
            spapi=self.spapi,
            xero=self.xero,
            notifier=self.notifier,
            xero_daily_calls=self.settings.xero_daily_call_limit,
        )

    def spapi(self, integration: Integration) -> SpApiClient:
        return SpApiClient(
            endpoint=self.settings.spapi_endpoint(Region(integration.region)),
            lwa=self.lwa,
            refresh_token=self.integrations.amazon_refresh_token(integration),
        )

    def xero(self, integration: Integration) -> XeroClient:
        if integration.xero_tenant_id is None:
            raise ValueError(f"{integration.name} has no Xero tenant")
        return XeroClient(
            auth=self.xero_auth,
            api_url=self.settings.xero_api_url,
            tenant_id=integration.xero_tenant_id,
            token_store=XeroTokenStore(self.integrations, integration.id),
            shared_limits=self.xero_limits,
        )

    @cached_property
    def xero_limits(self) -> OrganisationLimits | None:
        """On PostgreSQL, where several processes may call one organisation, its minute limit
        is counted in the database; SQLite's single process counts it in memory."""
        if self.engine.dialect.name != "postgresql":
            return None
        return OrganisationLimits(
            self.engine, xero_module.MINUTE_LIMIT, period=xero_module.MINUTE_WINDOW
        )
