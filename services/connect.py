"""Consent flows: send a user to Amazon's and Xero's consent pages and take the callbacks.

Each redirect carries a random single-use `state` that expires after 10 minutes, bound to the
integration, the workspace whose admin asked for it and that admin; a callback whose state is
unknown, used, expired or does not match changes nothing. What the browser brings back is not
trusted: Amazon's `selling_partner_id` is checked for form and the seller against what the new
token proves (the Sellers API), and a Xero consent for another organisation than the one an
integration posts to is held until an admin confirms it in Slack.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from services.amazon import LwaClient, consent_url
from services.errors import ErrorKind, ServiceError
from services.integrations import IntegrationService
from services.models import Integration, IntegrationStatus, OAuthState
from services.xero import XeroAuth, auth_event_id

STATE_LIFETIME = timedelta(minutes=10)
AMAZON_CALLBACK_PATH = "/oauth/amazon/callback"
XERO_CALLBACK_PATH = "/oauth/xero/callback"
# Amazon's merchant (seller) ids: uppercase letters and digits, such as A2EUQ1WTGCTBG2.
SELLING_PARTNER_ID = re.compile(r"[A-Z0-9]{10,20}")

# The Sellers API's answer for a refresh token: marketplace id -> the seller's store name there.
SellerStores = Callable[[Integration, str], Mapping[str, str]]


class Provider(StrEnum):
    AMAZON = "amazon"
    XERO = "xero"


class Purpose(StrEnum):
    CONNECT = "connect"
    REFRESH = "refresh"


@dataclass(frozen=True)
class AmazonApp:
    application_id: str
    is_draft: bool
    seller_central_url: Callable[[str], str]  # marketplace id -> Seller Central base URL


@dataclass(frozen=True)
class CallbackOutcome:
    integration: Integration
    provider: Provider
    purpose: Purpose
    message: str
    became_active: bool  # this callback completed the setup
    held: bool = False  # a change of Xero organisation waits for an admin's confirmation

    @property
    def connected(self) -> bool:
        return self.integration.status == IntegrationStatus.ACTIVE


class ConnectService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        integrations: IntegrationService,
        *,
        lwa: LwaClient,
        amazon_app: AmazonApp,
        xero_auth: XeroAuth,
        public_base_url: str,
        seller_stores: SellerStores | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`seller_stores` asks the Sellers API which seller a new refresh token belongs to;
        without it a refresh is checked against the redirect's selling_partner_id alone."""
        self._sessions = sessions
        self._seller_stores = seller_stores
        self._integrations = integrations
        self._lwa = lwa
        self._amazon_app = amazon_app
        self._xero_auth = xero_auth
        self._base_url = public_base_url.rstrip("/")
        self._clock = clock

    @property
    def amazon_redirect_uri(self) -> str:
        return self._base_url + AMAZON_CALLBACK_PATH

    @property
    def xero_redirect_uri(self) -> str:
        return self._base_url + XERO_CALLBACK_PATH

    def amazon_consent_url(
        self,
        integration: Integration,
        *,
        actor: str,
        purpose: Purpose = Purpose.CONNECT,
        workspace_id: str | None = None,
    ) -> str:
        """`workspace_id`: the workspace of the admin who asks (None: the operator's CLI)."""
        state = self._new_state(integration, Provider.AMAZON, purpose, actor, workspace_id)
        return consent_url(
            seller_central_url=self._amazon_app.seller_central_url(integration.marketplaces[0]),
            application_id=self._amazon_app.application_id,
            state=state,
            redirect_uri=self.amazon_redirect_uri,
            draft=self._amazon_app.is_draft,
        )

    def xero_consent_url(
        self, integration: Integration, *, actor: str, workspace_id: str | None = None
    ) -> str:
        state = self._new_state(integration, Provider.XERO, Purpose.CONNECT, actor, workspace_id)
        return self._xero_auth.authorize_url(state=state, redirect_uri=self.xero_redirect_uri)

    def complete_amazon(self, *, state: str, code: str, selling_partner_id: str) -> CallbackOutcome:
        oauth_state = self._consume(state, Provider.AMAZON)
        if not code or not selling_partner_id:
            raise ServiceError(
                ErrorKind.VALIDATION,
                "Amazon did not send an authorization code. Start the connection again from Slack.",
                retryable=False,
            )
        if not SELLING_PARTNER_ID.fullmatch(selling_partner_id):
            raise ServiceError(
                ErrorKind.VALIDATION,
                "Amazon's answer does not name a seller account (the link was changed on the "
                "way). Nothing was changed. Start the connection again from Slack.",
                retryable=False,
            )
        integration = self._bound_integration(oauth_state)
        refresh_token = self._lwa.exchange_code(code, self.amazon_redirect_uri)
        # What the token itself proves; the selling_partner_id is only what the browser sent.
        stores = self._seller_stores(integration, refresh_token) if self._seller_stores else None
        stores_before = self._stores_before(integration) if stores is not None else None
        was_pending = integration.status == IntegrationStatus.PENDING_AUTHORIZATION
        integration = self._integrations.record_amazon_authorization(
            oauth_state.integration_id,
            selling_partner_id=selling_partner_id,
            refresh_token=refresh_token,
            actor=oauth_state.created_by,
            stores=stores,
            stores_before=stores_before,
        )
        purpose = Purpose(oauth_state.purpose)
        if purpose == Purpose.REFRESH:
            message = (
                f"Amazon authorization for {integration.name} is renewed for another 365 days."
            )
        else:
            message = f"Amazon Seller Central is connected to {integration.name}."
        return CallbackOutcome(
            integration,
            Provider.AMAZON,
            purpose,
            _with_next_step(message, integration),
            became_active=was_pending and integration.status == IntegrationStatus.ACTIVE,
        )

    def _stores_before(self, integration: Integration) -> dict[str, str] | None:
        """What the integration's own seller proves now: its current token asked live (a store
        renamed since the last consent is still that seller's), else what was recorded then
        (a token that has lapsed answers nothing)."""
        if self._seller_stores is None or integration.amazon_refresh_token_encrypted is None:
            return None
        try:
            token = self._integrations.amazon_refresh_token(integration)
            return dict(self._seller_stores(integration, token))
        except ServiceError:
            return dict(integration.amazon_stores) if integration.amazon_stores else None

    def complete_xero(self, *, state: str, code: str) -> CallbackOutcome:
        oauth_state = self._consume(state, Provider.XERO)
        was_pending = self._bound_integration(oauth_state).status == (
            IntegrationStatus.PENDING_AUTHORIZATION
        )
        if not code:
            raise ServiceError(
                ErrorKind.VALIDATION,
                "Xero did not send an authorization code. Start the connection again from Slack.",
                retryable=False,
            )
        tokens = self._xero_auth.exchange_code(code, self.xero_redirect_uri)
        # Only the organisations chosen in this consent, not older connections of the app.
        tenants = self._xero_auth.connections(
            tokens.access_token, auth_event_id=auth_event_id(tokens.access_token)
        )
        if len(tenants) != 1:
            chosen = "no organisation was" if not tenants else f"{len(tenants)} were"
            raise ServiceError(
                ErrorKind.VALIDATION,
                f"Xero access was granted but {chosen} chosen. Connect again and pick exactly "
                "the one organisation this integration posts to.",
                retryable=False,
            )
        [tenant] = tenants
        integration = self._integrations.record_xero_connection(
            oauth_state.integration_id,
            tenant_id=tenant.tenant_id,
            tenant_name=tenant.name,
            refresh_token=tokens.refresh_token,
            actor=oauth_state.created_by,
        )
        if integration.xero_tenant_id != tenant.tenant_id:
            return CallbackOutcome(
                integration,
                Provider.XERO,
                Purpose.CONNECT,
                f"{integration.name} posts to the Xero organisation "
                f"{integration.xero_tenant_name or integration.xero_tenant_id}, not to "
                f"{tenant.name}. Moving its books is never silent: an admin confirms the "
                "change in Slack first; until then nothing changes.",
                became_active=False,
                held=True,
            )
        message = f"Xero organisation {tenant.name} is connected to {integration.name}."
        return CallbackOutcome(
            integration,
            Provider.XERO,
            Purpose.CONNECT,
            _with_next_step(message, integration),
            became_active=was_pending and integration.status == IntegrationStatus.ACTIVE,
        )

    def _bound_integration(self, oauth_state: OAuthState) -> Integration:
        """The state's integration, if it is still of the workspace the state was issued in
        (a mismatch is audited, and the callback fails as for an unknown link)."""
        try:
            return self._integrations.get_by_id(
                oauth_state.integration_id,
                workspace_id=oauth_state.workspace_id,
                actor=oauth_state.created_by,
            )
        except ServiceError as error:
            if error.kind != ErrorKind.NOT_FOUND:
                raise
            raise _refused("This link is not one the bot issued") from None

    def _new_state(
        self,
        integration: Integration,
        provider: Provider,
        purpose: Purpose,
        actor: str,
        workspace_id: str | None,
    ) -> str:
        """A state for `actor` of `workspace_id` (the CLI: the integration's own workspace); a
        link for another workspace's integration is never issued."""
        bound = self._integrations.get_by_id(integration.id, workspace_id=workspace_id, actor=actor)
        state = secrets.token_urlsafe(32)
        now = self._clock()
        with self._sessions.begin() as session:
            session.add(
                OAuthState(
                    state=state,
                    provider=provider,
                    purpose=purpose,
                    integration_id=bound.id,
                    workspace_id=bound.workspace_id,
                    created_by=actor,
                    created_at=now,
                    expires_at=now + STATE_LIFETIME,
                )
            )
        return state

    def _consume(self, state: str, provider: Provider) -> OAuthState:
        """Mark the state used in one conditional UPDATE, so two callbacks cannot both win."""
        now = self._clock()
        with self._sessions.begin() as session:
            claim = (
                update(OAuthState)
                .where(
                    OAuthState.state == state,
                    OAuthState.provider == provider,
                    OAuthState.used_at.is_(None),
                    OAuthState.expires_at > now,
                )
                .values(used_at=now)
            )
            # Through the session's connection: a Core UPDATE, whose result has a rowcount.
            claimed = session.connection().execute(claim).rowcount
            oauth_state = session.get(OAuthState, state) if state else None
        if claimed == 1 and oauth_state is not None:
            return oauth_state
        if oauth_state is None or oauth_state.provider != provider:
            problem = "This link is not one the bot issued"
        elif oauth_state.used_at is not None:
            problem = "This link was already used"
        else:
            problem = "This link expired (links are valid for 10 minutes)"
        raise _refused(problem)


def _refused(problem: str) -> ServiceError:
    return ServiceError(
        ErrorKind.AUTH,
        f"{problem}. Nothing was changed. Start the connection again from Slack.",
        retryable=False,
    )


def _with_next_step(message: str, integration: Integration) -> str:
    if integration.status == IntegrationStatus.ACTIVE:
        return f"{message} The integration is active."
    if integration.xero_refresh_token_encrypted is None:
        return f"{message} Next, connect Xero."
    return f"{message} Next, connect Amazon Seller Central."
