"""The integration lifecycle: set up, update settings, stop, activate, record authorizations.

States: pending_authorization -> active (both Amazon and Xero connected) <-> stopped;
active -> authorization_expired when Amazon's 365-day authorization lapses; a refresh
(new Amazon consent) makes it active again. Every change is written to the audit log.
"""

from __future__ import annotations

import builtins  # in IntegrationService, `list` is the method: its annotations say builtins.list
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import list_currencies
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from services.crypto import TokenCipher
from services.errors import ErrorKind, ServiceError
from services.marketplaces import MARKETPLACES, Region
from services.models import (
    AuditEntry,
    ContactPolicy,
    Integration,
    IntegrationStatus,
    InvoiceStatus,
    XeroContact,
)
from services.settlement_plan import MAPPABLE_LINES, LineAccountChoice
from services.transactions import TaxScheme
from services.vat_rates import (
    country_name,
    is_country,
    own_rate_key,
    percent_text,
    rate_exists,
    rates_in_force,
)

log = logging.getLogger(__name__)

AMAZON_AUTHORIZATION_LIFETIME = timedelta(days=365)
EXPIRY_WARNING = timedelta(days=7)  # how long before it lapses the errors channel is told
EXPIRY_WARNED = "amazon.expiry_warned"
NAME_MAX_LENGTH = 50
ACCOUNT_CODE_MAX_LENGTH = 10  # Xero's limit for an account code, and the column's
CHANNEL_MAX_LENGTH = 80  # Slack's limit for a channel name, and the column's
# Terminal escapes and other controls, bidirectional overrides, zero-width and private-use
# characters, line separators: a name with one can show as something else than it is.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp"})
LOCAL_WORKSPACE = "local"  # integrations made from the CLI, outside any Slack workspace
# The schemes a seller sets a rate for: exports, reverse charge and tax Amazon collects as
# facilitator are 0% by law.
OWN_VAT_SCHEMES = (TaxScheme.DOMESTIC, TaxScheme.OSS, TaxScheme.IOSS)

Clock = Callable[[], datetime]


class InvalidInput(ServiceError):
    """Bad input, field by field, so a Slack modal can show each message on its field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(ErrorKind.VALIDATION, " ".join(errors.values()), retryable=False)
        self.errors = errors


@dataclass(frozen=True)
class PostingSettings:
    invoice_status: InvoiceStatus = InvoiceStatus.AUTHORISED
    contact_policy: ContactPolicy = ContactPolicy.BUYERS
    sales_account_code: str = "200"
    shipping_account_code: str = "200"
    # "DE:19" -> Xero TaxType; overrides the map built from the organisation's tax rates.
    tax_overrides: dict[str, str] = field(default_factory=dict)
    # The seller's own VAT rates, for sales Amazon calculated no VAT for: "DE:domestic" -> "19"
    # (percent). Without one such a sale fails and says which rate it needs; never guessed.
    vat_rates: dict[str, str] = field(default_factory=dict)
    # The bank account Amazon pays each currency into: "EUR" -> Xero account code. A currency
    # not named pays into the organisation's one other bank account in it.
    payout_accounts: dict[str, str] = field(default_factory=dict)
    # The Amazon clearing account of each currency: "EUR" -> Xero bank account code. A currency
    # not named gets "Amazon EUR clearing", found by name or made.
    clearing_accounts: dict[str, str] = field(default_factory=dict)
    # The account and tax rate of a settlement's fee and charge lines, per kind ("referral");
    # a kind not named goes to the bot's default account, without tax.
    line_accounts: dict[str, LineAccountChoice] = field(default_factory=dict)


@dataclass(frozen=True)
class IntegrationSpec:
    name: str
    region: Region
    marketplaces: tuple[str, ...]
    start_date: date
    errors_channel: str | None = None
    summary_channel: str | None = None
    posting: PostingSettings = field(default_factory=PostingSettings)


def _validate(
    spec: IntegrationSpec, today: date, *, checked_vat_rates: Mapping[str, str] | None = None
) -> IntegrationSpec:
    errors: dict[str, str] = {}
    name = " ".join(spec.name.split())
    if not 1 <= len(name) <= NAME_MAX_LENGTH:
        errors["name"] = f"The name must be 1 to {NAME_MAX_LENGTH} characters."
    elif _has_hidden(name):
        errors["name"] = (
            "The name has an invisible or control character (such as a terminal escape, a "
            "text direction override or a zero-width space): type it again."
        )
    if not isinstance(spec.region, Region):
        regions = ", ".join(region.value.upper() for region in Region)
        errors["region"] = f"{spec.region} is not an Amazon region: choose one of {regions}."
        raise InvalidInput(errors)
    if not spec.marketplaces:
        errors["marketplaces"] = "Choose at least one marketplace."
    for marketplace_id in spec.marketplaces:
        known = MARKETPLACES.get(marketplace_id)
        if known is None:
            errors["marketplaces"] = f"{marketplace_id} is not an Amazon marketplace id."
        elif known.region != spec.region:
            errors["marketplaces"] = (
                f"{known.domain} belongs to the {known.region.value.upper()} region, "
                f"not {spec.region.value.upper()}."
            )
    if spec.start_date > today:
        errors["start_date"] = "The start date cannot be in the future."
    posting = spec.posting
    if not isinstance(posting.invoice_status, InvoiceStatus):
        errors["invoice_status"] = (
            f"{posting.invoice_status} is not an invoice status: choose "
            f"{' or '.join(status.value for status in InvoiceStatus)}."
        )
    if not isinstance(posting.contact_policy, ContactPolicy):
        errors["contact_policy"] = (
            f"{posting.contact_policy} is not a contacts choice: choose "
            f"{' or '.join(policy.value for policy in ContactPolicy)}."
        )
    for field_name in ("sales_account_code", "shipping_account_code"):
        code = getattr(posting, field_name).strip()
        if not code:
            errors[field_name] = "An account code is required."
        elif not _is_account_code(code):
            errors[field_name] = _ACCOUNT_CODE_RULE
    payout_accounts = _valid_bank_choices(posting.payout_accounts, "payout_accounts", errors)
    clearing_accounts = _valid_bank_choices(posting.clearing_accounts, "clearing_accounts", errors)
    for currency, code in clearing_accounts.items():
        if payout_accounts.get(currency) == code:
            errors["clearing_accounts"] = (
                f"{currency} {code} is the payout account too: the clearing account holds what "
                "Amazon settles until the payout moves it to the bank, so they must differ."
            )
    line_accounts = _valid_line_accounts(posting.line_accounts, errors)
    for field_name in ("errors_channel", "summary_channel"):
        channel = getattr(spec, field_name)
        if channel is not None and (
            not 1 <= len(channel) <= CHANNEL_MAX_LENGTH
            or _has_hidden(channel)
            or any(char.isspace() for char in channel)
        ):
            errors[field_name] = (
                f"A channel is its id or its name, up to {CHANNEL_MAX_LENGTH} characters "
                "without spaces."
            )
    vat_rates, vat_errors = _valid_vat_rates(
        posting.vat_rates, today, checked=checked_vat_rates or {}
    )
    if vat_errors:
        errors["vat_rates"] = " ".join(vat_errors)
    if errors:
        raise InvalidInput(errors)
    return replace(
        spec,
        name=name,
        marketplaces=tuple(dict.fromkeys(spec.marketplaces)),
        posting=replace(
            posting,
            vat_rates=vat_rates,
            payout_accounts=payout_accounts,
            clearing_accounts=clearing_accounts,
            line_accounts=line_accounts,
        ),
    )


def _valid_bank_choices(
    choices: Mapping[str, str], field_name: str, errors: dict[str, str]
) -> dict[str, str]:
    """A currency -> bank account code choice, normalised; what is wrong goes to `errors`."""
    valid: dict[str, str] = {}
    for currency_text, code_text in choices.items():
        currency, code = currency_text.strip().upper(), code_text.strip()
        if currency not in _CURRENCIES:
            errors[field_name] = f"{currency} is not an ISO currency code such as EUR."
        elif not _is_account_code(code):
            errors[field_name] = f"{currency} {code}: {_ACCOUNT_CODE_RULE}"
        else:
            valid[currency] = code
    return valid


def _valid_line_accounts(
    choices: Mapping[str, LineAccountChoice], errors: dict[str, str]
) -> dict[str, LineAccountChoice]:
    valid: dict[str, LineAccountChoice] = {}
    for kind_text, choice in choices.items():
        kind = kind_text.strip().lower()
        code, tax_type = choice.code.strip(), (choice.tax_type or "").strip().upper() or None
        if kind not in MAPPABLE_LINES:
            errors["line_accounts"] = (
                f"{kind} is not a kind of Amazon fee or charge: choose from "
                f"{', '.join(MAPPABLE_LINES)}."
            )
        elif not _is_account_code(code):
            errors["line_accounts"] = f"{kind} {code}: {_ACCOUNT_CODE_RULE}"
        elif tax_type is not None and not _TAX_TYPE.fullmatch(tax_type):
            errors["line_accounts"] = (
                f"{kind} {code} {tax_type}: a tax type is Xero's code for a tax rate, letters "
                "and digits such as INPUT2."
            )
        else:
            valid[kind] = LineAccountChoice(code, tax_type)
    return valid


_ACCOUNT_CODE_RULE = (
    f"An account code is up to {ACCOUNT_CODE_MAX_LENGTH} letters and digits, as in Xero's "
    "chart of accounts."
)
_CURRENCIES = frozenset(list_currencies())
_TAX_TYPE = re.compile(r"[A-Z0-9_]{1,50}")


def _is_account_code(code: str) -> bool:
    return 0 < len(code) <= ACCOUNT_CODE_MAX_LENGTH and not _has_hidden(code) and " " not in code


def _has_hidden(text: str) -> bool:
    return any(unicodedata.category(char) in _HIDDEN_CATEGORIES for char in text)


def _valid_vat_rates(
    rates: Mapping[str, str], today: date, *, checked: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The seller's own VAT rates normalized ("de:Domestic": "19.0%" -> "DE:domestic": "19"),
    and a message per bad entry, naming it. A rate must exist in its country today; one in
    `checked` (already stored) is not judged again, so a rate abolished since it was set does
    not block other settings (the mapping checks each sale's own date anyway)."""
    valid: dict[str, str] = {}
    errors: list[str] = []
    for key_text, written in rates.items():
        entry = f"{key_text.strip()} {written.strip()}"
        country, _, scheme_text = (part.strip() for part in key_text.partition(":"))
        country, scheme_text = country.upper(), scheme_text.lower()
        name = country_name(country)
        try:
            percent = Decimal(written.strip().removesuffix("%").strip().replace(",", "."))
        except InvalidOperation:
            percent = Decimal("NaN")
        if not is_country(country):
            problem = f"{country or 'the country'} is not an ISO country code such as DE or GB."
        elif rates_in_force(country, today) is None:
            problem = f"no VAT rates are known for {name}."
        elif scheme_text not in {scheme.value for scheme in OWN_VAT_SCHEMES}:
            problem = (
                f"the scheme is one of {', '.join(s.value for s in OWN_VAT_SCHEMES)} (exports, "
                "reverse charge and tax Amazon collects are 0% and need no rate)."
            )
        elif not percent.is_finite() or not 0 <= percent < 100:
            problem = "the rate is a percentage from 0 to under 100, such as 19 or 5.5."
        else:
            key, value = own_rate_key(country, scheme_text), percent_text(percent)
            if key in valid:
                problem = f"{key} is set twice."
            elif checked.get(key) == value or rate_exists(country, today, percent) is not False:
                valid[key] = value
                continue
            else:
                known = sorted(rates_in_force(country, today) or (), reverse=True)
                problem = (
                    f"{name} has no {value}% VAT rate today (its rates: "
                    f"{', '.join(percent_text(rate) + '%' for rate in known)}, 0%)."
                )
        errors.append(f"{entry}: {problem}")
    return valid, errors


def _not_found(session: Session, name: str, workspace_id: str | None) -> ServiceError:
    """No such name: the error lists the names there are (in every workspace for None)."""
    query = select(Integration.name).distinct().order_by(Integration.name)
    if workspace_id is not None:
        query = query.where(Integration.workspace_id == workspace_id)
    names = session.scalars(query).all()
    known = ", ".join(names) if names else "none yet"
    return ServiceError(
        ErrorKind.NOT_FOUND,
        f"There is no integration named {name!r}. Integrations: {known}.",
        retryable=False,
    )


class IntegrationService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        cipher: TokenCipher,
        *,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._cipher = cipher
        self._clock = clock

    # -- reading ---------------------------------------------------------------------------

    def list(self, workspace_id: str | None = LOCAL_WORKSPACE) -> list[Integration]:
        """One workspace's integrations; with None, every workspace's (the CLI's view)."""
        with self._sessions() as session:
            query = select(Integration)
            if workspace_id is not None:
                query = query.where(Integration.workspace_id == workspace_id)
            return list(session.scalars(query.order_by(Integration.workspace_id, Integration.name)))

    def list_active(self) -> builtins.list[Integration]:
        """Every active integration of every workspace: what the scheduler syncs."""
        with self._sessions() as session:
            query = select(Integration).where(Integration.status == IntegrationStatus.ACTIVE)
            return list(session.scalars(query.order_by(Integration.id)))

    def get(self, name: str, workspace_id: str = LOCAL_WORKSPACE) -> Integration:
        with self._sessions() as session:
            return self._find(session, name, workspace_id)

    def find(self, name: str, workspace_id: str | None) -> Integration:
        """By name in one workspace, or, with None, in whichever workspace has that name: the
        CLI serves every workspace, and integrations are mostly set up in Slack."""
        if workspace_id is not None:
            return self.get(name, workspace_id)
        with self._sessions() as session:
            named = select(Integration).where(Integration.name == name.strip())
            found = list(session.scalars(named))
            if not found:
                raise _not_found(session, name, workspace_id)
        if len(found) > 1:
            workspaces = ", ".join(sorted(i.workspace_id for i in found))
            raise ServiceError(
                ErrorKind.VALIDATION,
                f"{name!r} names integrations in several workspaces ({workspaces}): "
                "say which workspace.",
                retryable=False,
            )
        return found[0]

    def get_by_id(
        self, integration_id: int, *, workspace_id: str | None, actor: str = "system"
    ) -> Integration:
        """By id. With `workspace_id` (the id came in a request from that workspace) another
        workspace's integration is not found, as a missing one is; the attempt is audited."""
        with self._sessions() as session:
            integration = session.get(Integration, integration_id)
        if integration is None or not self.belongs(
            integration, workspace_id, actor=actor, looked_up=f"integration {integration_id}"
        ):
            raise ServiceError(
                ErrorKind.NOT_FOUND, f"No integration with id {integration_id}.", retryable=False
            )
        return integration

    def belongs(
        self, integration: Integration, workspace_id: str | None, *, actor: str, looked_up: str
    ) -> bool:
        """Whether a request from `workspace_id` may reach `integration` (None: the operator's
        CLI, which serves every workspace). When it may not, the attempt is logged and written
        to the audit log of the integration it aimed at, and the caller answers "not found"."""
        if workspace_id is None or integration.workspace_id == workspace_id:
            return True
        log.warning(
            "%s of workspace %s asked for %s, which belongs to another workspace: not found",
            actor,
            workspace_id,
            looked_up,
        )
        with self._sessions.begin() as session:
            details = {"workspace_id": workspace_id, "looked_up": looked_up}
            self._audit(session, actor, "workspace.access_refused", integration, details)
        return False

    def record_refusal(self, *, actor: str, workspace_id: str, doing: str) -> None:
        """Someone who may not `doing` tried to: kept in the audit log (no integration is
        named, since nothing was looked up for them)."""
        log.warning("%s of workspace %s may not %s: refused", actor, workspace_id, doing)
        with self._sessions.begin() as session:
            session.add(
                AuditEntry(
                    at=self._clock(),
                    actor=actor,
                    action="admin.refused",
                    integration_id=None,
                    details={"workspace_id": workspace_id, "doing": doing},
                )
            )

    def amazon_refresh_token(self, integration: Integration) -> str:
        if integration.amazon_refresh_token_encrypted is None:
            raise ServiceError(
                ErrorKind.AUTH,
                f"{integration.name} is not connected to Amazon yet.",
                retryable=False,
            )
        return self._cipher.decrypt(integration.amazon_refresh_token_encrypted)

    def xero_refresh_token(self, integration_id: int) -> str:
        integration = self.get_by_id(integration_id, workspace_id=None)
        if integration.xero_refresh_token_encrypted is None:
            raise _not_connected_to_xero(integration)
        return self._cipher.decrypt(integration.xero_refresh_token_encrypted)

    def authorization_expires_at(self, integration: Integration) -> datetime | None:
        if integration.amazon_authorized_at is None:
            return None
        return integration.amazon_authorized_at + AMAZON_AUTHORIZATION_LIFETIME

    # -- lifecycle -------------------------------------------------------------------------
    # Changes name the integration by id, with the workspace the request came from (None: the
    # operator's CLI, which serves every workspace): another workspace's id is not found.

    def create(
        self,
        spec: IntegrationSpec,
        *,
        actor: str,
        workspace_id: str = LOCAL_WORKSPACE,
    ) -> Integration:
        spec = _validate(spec, self._clock().date())
        with self._sessions.begin() as session:
            self._ensure_name_free(session, spec.name, workspace_id)
            integration = Integration(
                workspace_id=workspace_id,
                name=spec.name,
                region=spec.region.value,
                marketplaces=list(spec.marketplaces),
                start_date=spec.start_date,
                status=IntegrationStatus.PENDING_AUTHORIZATION,
                invoice_status=spec.posting.invoice_status,
                contact_policy=spec.posting.contact_policy,
                sales_account_code=spec.posting.sales_account_code.strip(),
                shipping_account_code=spec.posting.shipping_account_code.strip(),
                tax_overrides=dict(spec.posting.tax_overrides),
                vat_rates=dict(spec.posting.vat_rates),
                payout_accounts=dict(spec.posting.payout_accounts),
                clearing_accounts=dict(spec.posting.clearing_accounts),
                line_accounts=_line_accounts_json(spec.posting.line_accounts),
                errors_channel=spec.errors_channel,
                summary_channel=spec.summary_channel,
                created_by=actor,
            )
            session.add(integration)
            session.flush()
            self._audit(session, actor, "integration.created", integration, _spec_details(spec))
            return integration

    def create_connected(
        self,
        spec: IntegrationSpec,
        *,
        actor: str,
        selling_partner_id: str,
        amazon_refresh_token: str,
        xero_tenant_id: str,
        xero_refresh_token: str,
        workspace_id: str = LOCAL_WORKSPACE,
    ) -> Integration:
        """For operators who obtained both refresh tokens elsewhere: active at once."""
        for variable, value in (
            ("selling partner id", selling_partner_id),
            ("Amazon refresh token", amazon_refresh_token),
            ("Xero tenant id", xero_tenant_id),
            ("Xero refresh token", xero_refresh_token),
        ):
            if not value.strip():
                raise InvalidInput({variable: f"The {variable} is required."})
        integration = self.create(spec, actor=actor, workspace_id=workspace_id)
        self.record_amazon_authorization(
            integration.id,
            selling_partner_id=selling_partner_id,
            refresh_token=amazon_refresh_token,
            actor=actor,
        )
        return self.record_xero_connection(
            integration.id,
            tenant_id=xero_tenant_id,
            tenant_name=None,
            refresh_token=xero_refresh_token,
            actor=actor,
        )

    def update_settings(
        self, integration_id: int, *, actor: str, workspace_id: str | None, **changes: Any
    ) -> Integration:
        self._reachable(integration_id, workspace_id, actor)
        with self._sessions.begin() as session:
            integration = self._lock(session, integration_id)
            return self._change_settings(session, integration, actor, changes)

    def set_vat_rate(
        self,
        integration_id: int,
        country: str,
        scheme: str,
        percent: str | None,
        *,
        actor: str,
        workspace_id: str | None,
    ) -> Integration:
        """Set one of the seller's own VAT rates ("DE", "domestic", "19"), or remove it with
        None; the others stay. Validated and audited as any settings change."""
        key = own_rate_key(country, scheme)
        self._reachable(integration_id, workspace_id, actor)
        with self._sessions.begin() as session:
            integration = self._lock(session, integration_id)
            rates = dict(integration.vat_rates)
            if percent is not None:
                rates[key] = percent
            elif rates.pop(key, None) is None:
                raise InvalidInput(
                    {"vat_rates": f"{integration.name} has no VAT rate set for {key}."}
                )
            return self._change_settings(session, integration, actor, {"vat_rates": rates})

    def stop(self, integration_id: int, *, actor: str, workspace_id: str | None) -> Integration:
        """No data is pulled for the next period until the integration is activated again."""
        self._reachable(integration_id, workspace_id, actor)
        with self._sessions.begin() as session:
            integration = self._lock(session, integration_id)
            if integration.status == IntegrationStatus.STOPPED:
                raise ServiceError(
                    ErrorKind.VALIDATION, f"{integration.name} is already stopped.", retryable=False
                )
            if integration.status != IntegrationStatus.ACTIVE:
                raise ServiceError(
                    ErrorKind.VALIDATION,
                    f"{integration.name} is {_describe(integration.status)}; only an active "
                    "integration can be stopped.",
                    retryable=False,
                )
            integration.status = IntegrationStatus.STOPPED
            self._audit(session, actor, "integration.stopped", integration, {})
            return integration

    def activate(self, integration_id: int, *, actor: str, workspace_id: str | None) -> Integration:
        self._reachable(integration_id, workspace_id, actor)
        with self._sessions.begin() as session:
            integration = self._lock(session, integration_id)
            if integration.status == IntegrationStatus.ACTIVE:
                raise ServiceError(
                    ErrorKind.VALIDATION, f"{integration.name} is already active.", retryable=False
                )
            if integration.status != IntegrationStatus.STOPPED:
                raise ServiceError(
                    ErrorKind.VALIDATION,
                    f"{integration.name} is {_describe(integration.status)}: "
                    + (
                        "refresh it to authorize Amazon again."
                        if integration.status == IntegrationStatus.AUTHORIZATION_EXPIRED
                        else "connect Amazon and Xero first."
                    ),
                    retryable=False,
                )
            integration.status = IntegrationStatus.ACTIVE
            self._audit(session, actor, "integration.activated", integration, {})
            return integration

    def record_amazon_authorization(
        self,
        integration_id: int,
        *,
        selling_partner_id: str,
        refresh_token: str,
        actor: str,
        stores: Mapping[str, str] | None = None,
        stores_before: Mapping[str, str] | None = None,
    ) -> Integration:
        """A (new) Amazon consent: the token is replaced and the 365-day clock restarts.
        `stores` is what the new token itself proved (marketplace id -> store name, from the
        Sellers API), `stores_before` what the integration's seller proves (its current token
        asked now, else what was recorded): a refresh must prove the same seller, since the
        redirect's `selling_partner_id` is only what the browser sent. Nothing to compare with
        is a refusal, not a pass."""
        with self._sessions.begin() as session:
            integration = self._lock(session, integration_id)
            previous = integration.amazon_selling_partner_id
            if previous and previous != selling_partner_id:
                given_by = f"seller {selling_partner_id}"
            elif previous and stores is not None and not _same_seller(stores_before, stores):
                given_by = f"the seller of {_stores_text(stores)}"
            else:
                given_by = None
            if given_by is not None:
                raise ServiceError(
                    ErrorKind.VALIDATION,
                    f"{integration.name} is connected to Amazon seller {previous}, but this "
                    f"consent was given by {given_by}. Sign in to Seller Central as the "
                    "original seller, or set up a new integration.",
                    retryable=False,
                )
            integration.amazon_selling_partner_id = selling_partner_id
            if stores is not None:
                integration.amazon_stores = dict(stores)
            integration.amazon_refresh_token_encrypted = self._cipher.encrypt(refresh_token)
            integration.amazon_authorized_at = self._clock()
            action = "amazon.reauthorized" if previous else "amazon.authorized"
            self._activate_if_connected(integration)
            self._audit(
                session, actor, action, integration, {"selling_partner_id": selling_partner_id}
            )
            return integration

    def record_xero_connection(
        self,
        integration_id: int,
        *,
        tenant_id: str,
        tenant_name: str | None,
        refresh_token: str,
        actor: str,
    ) -> Integration:
        """A Xero consent. One for another organisation than the one an integration already
        posts to is held, not applied: the books move only once an admin confirms it in Slack
        (`confirm_xero_change`); the returned integration then has it as its pending tenant."""
        with self._sessions.begin() as session:
            integration = self._lock(session, integration_id)
            details = {"tenant_id": tenant_id, "tenant_name": tenant_name}
            moves = integration.xero_tenant_id not in (None, tenant_id)
            if moves and integration.status != IntegrationStatus.PENDING_AUTHORIZATION:
                integration.xero_pending_tenant_id = tenant_id
                integration.xero_pending_tenant_name = tenant_name
                integration.xero_pending_refresh_token_encrypted = self._cipher.encrypt(
                    refresh_token
                )
                integration.xero_pending_by = actor
                integration.xero_pending_at = self._clock()
                self._audit(session, actor, "xero.change_held", integration, details)
                return integration
            self._connect_xero(integration, tenant_id, tenant_name, refresh_token)
            if moves:
                self._forget_organisation(session, integration)
            self._audit(session, actor, "xero.connected", integration, details)
            return integration

    def confirm_xero_change(
        self, integration_id: int, tenant_id: str, *, actor: str, workspace_id: str | None
    ) -> Integration:
        """An admin confirmed the held Xero consent for `tenant_id`: from now on the
        integration posts to that organisation."""
        self._reachable(integration_id, workspace_id, actor)
        with self._sessions.begin() as session:
            integration = self._held_change(session, integration_id, tenant_id)
            previous = {
                "tenant_id": integration.xero_tenant_id,
                "name": integration.xero_tenant_name,
            }
            refresh_token = integration.xero_pending_refresh_token_encrypted
            assert refresh_token is not None  # held together with the tenant
            self._connect_xero(
                integration,
                tenant_id,
                integration.xero_pending_tenant_name,
                self._cipher.decrypt(refresh_token),
            )
            self._forget_organisation(session, integration)
            _clear_held_change(integration)
            details = {
                "from": previous,
                "to": {"tenant_id": tenant_id, "name": integration.xero_tenant_name},
            }
            self._audit(session, actor, "xero.change_confirmed", integration, details)
            return integration

    def cancel_xero_change(
        self, integration_id: int, tenant_id: str, *, actor: str, workspace_id: str | None
    ) -> Integration:
        """The held Xero consent is dropped; the integration keeps its organisation."""
        self._reachable(integration_id, workspace_id, actor)
        with self._sessions.begin() as session:
            integration = self._held_change(session, integration_id, tenant_id)
            details = {"tenant_id": tenant_id, "tenant_name": integration.xero_pending_tenant_name}
            _clear_held_change(integration)
            self._audit(session, actor, "xero.change_cancelled", integration, details)
            return integration

    def rotate_xero_refresh_token(
        self, integration_id: int, exchange: Callable[[str], str]
    ) -> None:
        """Xero rotates refresh tokens: the stored one is spent on `exchange` (Xero's refresh)
        and the one it returns committed before it is ever used. Every other rotation of the
        integration waits meanwhile, then spends the new token, never the one just spent: on
        PostgreSQL the integration's row lock holds other processes; SQLite serves one process,
        where a lock of the process's does (its database lock would hold every other write for
        as long as Xero takes to answer)."""
        if self._sessions.kw["bind"].dialect.name == "sqlite":
            with _sqlite_rotation(integration_id):
                spent = self.xero_refresh_token(integration_id)
                self.save_xero_refresh_token(integration_id, exchange(spent))
            return
        with self._sessions.begin() as session:
            integration = self._lock(session, integration_id)
            if integration.xero_refresh_token_encrypted is None:
                raise _not_connected_to_xero(integration)
            spent = self._cipher.decrypt(integration.xero_refresh_token_encrypted)
            integration.xero_refresh_token_encrypted = self._cipher.encrypt(exchange(spent))

    def save_xero_refresh_token(self, integration_id: int, refresh_token: str) -> None:
        with self._sessions.begin() as session:
            integration = self._lock(session, integration_id)
            integration.xero_refresh_token_encrypted = self._cipher.encrypt(refresh_token)

    def expire_lapsed_authorizations(self) -> builtins.list[Integration]:
        """Mark integrations whose Amazon authorization is over 365 days old."""
        cutoff = self._clock() - AMAZON_AUTHORIZATION_LIFETIME
        with self._sessions.begin() as session:
            lapsed = list(
                session.scalars(
                    select(Integration).where(
                        Integration.status.in_(
                            [IntegrationStatus.ACTIVE, IntegrationStatus.STOPPED]
                        ),
                        Integration.amazon_authorized_at <= cutoff,
                    )
                )
            )
            for integration in lapsed:
                integration.status = IntegrationStatus.AUTHORIZATION_EXPIRED
                self._audit(session, "system", "amazon.authorization_expired", integration, {})
            return lapsed

    def due_expiry_warnings(self) -> builtins.list[Integration]:
        """Integrations whose Amazon authorization lapses within a week, not yet warned of."""
        now = self._clock()
        with self._sessions() as session:
            soon = list(
                session.scalars(
                    select(Integration).where(
                        Integration.status.in_(
                            [IntegrationStatus.ACTIVE, IntegrationStatus.STOPPED]
                        ),
                        Integration.amazon_authorized_at
                        <= now - AMAZON_AUTHORIZATION_LIFETIME + EXPIRY_WARNING,
                        Integration.amazon_authorized_at > now - AMAZON_AUTHORIZATION_LIFETIME,
                    )
                )
            )
            warned = {
                (entry.integration_id, entry.at)
                for entry in session.scalars(
                    select(AuditEntry).where(
                        AuditEntry.action == EXPIRY_WARNED,
                        AuditEntry.integration_id.in_([i.id for i in soon]),
                    )
                )
            }
        return [
            integration
            for integration in soon
            if not any(
                warned_id == integration.id
                and integration.amazon_authorized_at is not None
                and at >= integration.amazon_authorized_at
                for warned_id, at in warned
            )
        ]

    def record_expiry_warning(self, integration_id: int) -> None:
        with self._sessions.begin() as session:
            integration = self._lock(session, integration_id)
            self._audit(session, "system", EXPIRY_WARNED, integration, {})

    def audit_log(self, integration_id: int) -> builtins.list[AuditEntry]:
        with self._sessions() as session:
            query = (
                select(AuditEntry)
                .where(AuditEntry.integration_id == integration_id)
                .order_by(AuditEntry.id)
            )
            return list(session.scalars(query))

    # -- helpers ---------------------------------------------------------------------------

    def _change_settings(
        self,
        session: Session,
        integration: Integration,
        actor: str,
        changes: Mapping[str, Any],
    ) -> Integration:
        current = _spec_of(integration)
        posting_fields = set(PostingSettings.__dataclass_fields__)
        posting = replace(
            current.posting, **{k: v for k, v in changes.items() if k in posting_fields}
        )
        spec_changes = {k: v for k, v in changes.items() if k not in posting_fields}
        unknown = set(spec_changes) - set(IntegrationSpec.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        spec = _validate(
            replace(current, posting=posting, **spec_changes),
            self._clock().date(),
            checked_vat_rates=current.posting.vat_rates,
        )
        if spec.name != integration.name:
            self._ensure_name_free(session, spec.name, integration.workspace_id)
        before = _spec_details(current)
        _apply(integration, spec)
        after = _spec_details(spec)
        changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
        self._audit(session, actor, "integration.settings_updated", integration, changed)
        return integration

    def _find(self, session: Session, name: str, workspace_id: str) -> Integration:
        integration = session.scalar(
            select(Integration).where(
                Integration.workspace_id == workspace_id, Integration.name == name.strip()
            )
        )
        if integration is None:
            raise _not_found(session, name, workspace_id)
        return integration

    def _reachable(self, integration_id: int, workspace_id: str | None, actor: str) -> None:
        """Not found unless a request from `workspace_id` may reach it: checked before the
        row is locked, since a refusal is audited in a transaction of its own (which would
        wait for that lock on PostgreSQL)."""
        self.get_by_id(integration_id, workspace_id=workspace_id, actor=actor)

    def _held_change(self, session: Session, integration_id: int, tenant_id: str) -> Integration:
        integration = self._lock(session, integration_id)
        if integration.xero_pending_tenant_id != tenant_id:
            # Confirmed or cancelled already, or replaced by a later consent.
            raise ServiceError(
                ErrorKind.VALIDATION,
                f"No change of Xero organisation is waiting for {integration.name} any more: "
                f"it posts to {integration.xero_tenant_name or integration.xero_tenant_id}.",
                retryable=False,
            )
        return integration

    def _connect_xero(
        self,
        integration: Integration,
        tenant_id: str,
        tenant_name: str | None,
        refresh_token: str,
    ) -> None:
        integration.xero_tenant_id = tenant_id
        integration.xero_tenant_name = tenant_name
        integration.xero_refresh_token_encrypted = self._cipher.encrypt(refresh_token)
        integration.xero_connected_at = self._clock()
        self._activate_if_connected(integration)

    @staticmethod
    def _forget_organisation(session: Session, integration: Integration) -> None:
        """What was learnt of the previous organisation names its ids: its tax types and its
        contacts do not exist in the new one."""
        integration.xero_tax_types = {}
        session.execute(delete(XeroContact).where(XeroContact.integration_id == integration.id))

    def _lock(self, session: Session, integration_id: int) -> Integration:
        integration = session.get(Integration, integration_id, with_for_update=True)
        if integration is None:
            raise ServiceError(ErrorKind.NOT_FOUND, f"No integration with id {integration_id}.")
        return integration

    def _ensure_name_free(self, session: Session, name: str, workspace_id: str) -> None:
        taken = session.scalar(
            select(Integration.id).where(
                Integration.workspace_id == workspace_id, Integration.name == name
            )
        )
        if taken is not None:
            raise InvalidInput({"name": f"An integration named {name!r} already exists."})

    def _activate_if_connected(self, integration: Integration) -> None:
        connected = (
            integration.amazon_refresh_token_encrypted is not None
            and integration.xero_refresh_token_encrypted is not None
        )
        if connected and integration.status in (
            IntegrationStatus.PENDING_AUTHORIZATION,
            IntegrationStatus.AUTHORIZATION_EXPIRED,
        ):
            integration.status = IntegrationStatus.ACTIVE

    def _audit(
        self,
        session: Session,
        actor: str,
        action: str,
        integration: Integration,
        details: dict[str, Any],
    ) -> None:
        session.add(
            AuditEntry(
                at=self._clock(),
                actor=actor,
                action=action,
                integration_id=integration.id,
                details=details,
            )
        )


def _clear_held_change(integration: Integration) -> None:
    integration.xero_pending_tenant_id = None
    integration.xero_pending_tenant_name = None
    integration.xero_pending_refresh_token_encrypted = None
    integration.xero_pending_by = None
    integration.xero_pending_at = None


def _describe(status: str) -> str:
    return status.replace("_", " ")


def _spec_of(integration: Integration) -> IntegrationSpec:
    return IntegrationSpec(
        name=integration.name,
        region=Region(integration.region),
        marketplaces=tuple(integration.marketplaces),
        start_date=integration.start_date,
        errors_channel=integration.errors_channel,
        summary_channel=integration.summary_channel,
        posting=posting_settings(integration),
    )


def posting_settings(integration: Integration) -> PostingSettings:
    return PostingSettings(
        invoice_status=InvoiceStatus(integration.invoice_status),
        contact_policy=ContactPolicy(integration.contact_policy),
        sales_account_code=integration.sales_account_code,
        shipping_account_code=integration.shipping_account_code,
        tax_overrides=dict(integration.tax_overrides),
        vat_rates=dict(integration.vat_rates),
        payout_accounts=dict(integration.payout_accounts),
        clearing_accounts=dict(integration.clearing_accounts),
        line_accounts=line_account_choices(integration),
    )


def line_account_choices(integration: Integration) -> dict[str, LineAccountChoice]:
    """The account and tax rate chosen for each settlement line kind."""
    return {
        kind: LineAccountChoice.from_json(value)
        for kind, value in (integration.line_accounts or {}).items()
    }


def _line_accounts_json(choices: Mapping[str, LineAccountChoice]) -> dict[str, Any]:
    return {kind: choice.to_json() for kind, choice in choices.items()}


def _apply(integration: Integration, spec: IntegrationSpec) -> None:
    integration.name = spec.name
    integration.region = spec.region.value
    integration.marketplaces = list(spec.marketplaces)
    integration.start_date = spec.start_date
    integration.errors_channel = spec.errors_channel
    integration.summary_channel = spec.summary_channel
    integration.invoice_status = spec.posting.invoice_status
    integration.contact_policy = spec.posting.contact_policy
    integration.sales_account_code = spec.posting.sales_account_code.strip()
    integration.shipping_account_code = spec.posting.shipping_account_code.strip()
    integration.tax_overrides = dict(spec.posting.tax_overrides)
    integration.vat_rates = dict(spec.posting.vat_rates)
    integration.payout_accounts = dict(spec.posting.payout_accounts)
    integration.clearing_accounts = dict(spec.posting.clearing_accounts)
    integration.line_accounts = _line_accounts_json(spec.posting.line_accounts)


def _spec_details(spec: IntegrationSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "region": spec.region.value,
        "marketplaces": list(spec.marketplaces),
        "start_date": spec.start_date.isoformat(),
        "errors_channel": spec.errors_channel,
        "summary_channel": spec.summary_channel,
        "invoice_status": spec.posting.invoice_status.value,
        "contact_policy": spec.posting.contact_policy.value,
        "sales_account_code": spec.posting.sales_account_code,
        "shipping_account_code": spec.posting.shipping_account_code,
        "tax_overrides": dict(spec.posting.tax_overrides),
        "vat_rates": dict(spec.posting.vat_rates),
        "payout_accounts": dict(spec.posting.payout_accounts),
        "clearing_accounts": dict(spec.posting.clearing_accounts),
        "line_accounts": {kind: str(choice) for kind, choice in spec.posting.line_accounts.items()},
    }


def _same_seller(known: Mapping[str, str] | None, proved: Mapping[str, str]) -> bool:
    """Whether a token's stores are the seller's: the same store name in every marketplace
    both list (a seller may have joined marketplaces since). Nothing known, or nothing shared,
    proves nothing."""
    if not known:
        return False
    shared = set(known) & set(proved)
    return bool(shared) and all(known[m] == proved[m] for m in shared)


def _not_connected_to_xero(integration: Integration) -> ServiceError:
    return ServiceError(
        ErrorKind.AUTH, f"{integration.name} is not connected to Xero yet.", retryable=False
    )


# SQLite's rotations, one at a time per integration: the process is the only one.
_SQLITE_ROTATIONS: dict[int, threading.Lock] = {}
_SQLITE_ROTATIONS_LOCK = threading.Lock()


def _sqlite_rotation(integration_id: int) -> threading.Lock:
    with _SQLITE_ROTATIONS_LOCK:
        return _SQLITE_ROTATIONS.setdefault(integration_id, threading.Lock())


def _stores_text(stores: Mapping[str, str]) -> str:
    names = sorted(set(stores.values()))
    return ", ".join(repr(name) for name in names) or "no store"


class XeroTokenStore:
    """Where a XeroClient keeps an integration's rotating refresh token: the database."""

    def __init__(self, integrations: IntegrationService, integration_id: int) -> None:
        self._integrations = integrations
        self._integration_id = integration_id

    def rotate(self, exchange: Callable[[str], str]) -> None:
        self._integrations.rotate_xero_refresh_token(self._integration_id, exchange)
