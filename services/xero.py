"""Xero: OAuth 2 (consent, code exchange, rotating refresh tokens) and the Accounting API calls
the bot makes, kept within Xero's per-organisation limits.

Rules kept here because breaking them loses data or the connection:
- Refresh tokens rotate: each refresh returns a new one and the used one dies (after a 30-minute
  grace). The new one is saved through the TokenStore before the new access token is used, so a
  crash can never leave an integration holding only a dead token; the store holds other
  processes' refreshes meanwhile, so two never spend the same token.
- Xero allows 5 calls in flight, 60 a minute and 5,000 a day per organisation. The first two are
  enforced here for every client of the organisation in this process (the minute across
  processes too, with SharedLimits); the day allowance is read
  from Xero's X-DayLimit-Remaining header and, once spent, stops calls instead of hammering.
- Documents go in batches of at most 50 with summarizeErrors=false (one bad document does not
  sink the other 49) and an Idempotency-Key (a retried batch is not posted twice).
- Money crosses the wire as exact decimals, never through float; answers are parsed the same way.
Token values never appear in messages or logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, Literal, Protocol, TypeVar
from urllib.parse import urlencode

import requests

from services.errors import ErrorKind, ServiceError
from services.http import (
    Clock,
    Sleep,
    SlidingWindow,
    exponential_backoff,
    retry_after_seconds,
    send_with_retries,
)

log = logging.getLogger(__name__)

LOGIN_URL = "https://login.xero.com"
IDENTITY_URL = "https://identity.xero.com"
API_URL = "https://api.xero.com"
ACCOUNTING_PATH = "/api.xro/2.0"

# Xero's granular scopes, the only ones offered to apps created since 2 March 2026 (older apps
# must move to them by September 2027): accounting.invoices covers Invoices, CreditNotes and
# their allocations; accounting.payments Payments; accounting.banktransactions BankTransactions
# and BankTransfers; accounting.settings covers TaxRates (creating them too), Organisation,
# Accounts (creating them too) and Currencies. offline_access is what yields a refresh token.
SCOPES: tuple[str, ...] = (
    "offline_access",
    "accounting.invoices",
    "accounting.payments",
    "accounting.banktransactions",
    "accounting.contacts",
    "accounting.settings",
)

MAX_BATCH = 50
CONCURRENT_LIMIT = 5
MINUTE_LIMIT = 60
# Xero's minute, and a second more: Xero counts a call when it arrives, a little after it was
# sent, so a window of exactly 60 s had 1 to 3 calls a month refused at its edge (429).
MINUTE_WINDOW = 61.0
# Once Xero reports the day's calls spent, how long to stop before letting one call probe again
# (Xero's day window is rolling, so allowance comes back gradually).
DAY_LIMIT_PAUSE = 15 * 60.0
DAY_LIMIT_FRESH = 10 * 60.0  # how long what Xero said is left of the day still holds
ATTEMPTS = 5
TIMEOUT = 30.0
# Refresh a little before Xero's expiry so a token does not die between check and use.
EXPIRY_MARGIN = timedelta(seconds=60)
PAGE_SIZE = 100
# Numbers per InvoiceNumbers lookup, and names or numbers per `where` lookup: keeps URLs short.
NUMBERS_PER_LOOKUP = 50
TERMS_PER_WHERE = 25

Endpoint = Literal["Invoices", "CreditNotes", "Contacts"]
BankingEndpoint = Literal["Payments", "BankTransactions", "BankTransfers"]
# Per endpoint: the element's Xero id field and the field our callers know it by.
_KEY_FIELDS: Mapping[str, tuple[str, str]] = {
    "Invoices": ("InvoiceID", "InvoiceNumber"),
    "CreditNotes": ("CreditNoteID", "CreditNoteNumber"),
    "Contacts": ("ContactID", "Name"),
}

_RECONNECT = "Reconnect Xero from Slack to continue."


@dataclass(frozen=True)
class TokenSet:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    tenant_type: str


@dataclass(frozen=True)
class NewTaxRate:
    name: str
    rate: Decimal  # a percentage: 19 for 19%
    report_tax_type: str = "OUTPUT"
    component_name: str = "VAT"


@dataclass(frozen=True)
class XeroTaxRate:
    """A tax rate as Xero lists it (GET /TaxRates, or the answer to creating one)."""

    tax_type: str
    name: str
    report_tax_type: str
    effective_rate: Decimal | None  # a percentage: 19 for 19%
    active: bool
    can_apply_to_revenue: bool  # may be used on sales documents

    @classmethod
    def from_wire(cls, element: Mapping[str, Any]) -> XeroTaxRate:
        effective = element.get("EffectiveRate")
        return cls(
            tax_type=str(element.get("TaxType") or ""),
            name=str(element.get("Name") or ""),
            report_tax_type=str(element.get("ReportTaxType") or ""),
            effective_rate=None if effective is None else Decimal(str(effective)),
            active=element.get("Status", "ACTIVE") == "ACTIVE",
            can_apply_to_revenue=bool(element.get("CanApplyToRevenue", True)),
        )


@dataclass(frozen=True)
class DocumentResult:
    """Xero's answer for one document of a batch, in the order the documents were sent."""

    ok: bool
    xero_id: str | None
    number: str | None
    element: dict[str, Any]
    errors: list[str]


@dataclass(frozen=True)
class XeroDocument:
    """A sales invoice or credit note as Xero lists it: what is checked before sending,
    allocating or adopting one."""

    xero_id: str
    number: str
    type: str  # ACCREC, ACCRECCREDIT (ACCPAY... are bills)
    status: str
    reference: str | None
    amount_due: Decimal | None  # an invoice's AmountDue, a credit note's RemainingCredit
    contact_id: str | None

    @property
    def live(self) -> bool:
        """Deleted and voided documents do not count: their numbers can be used again."""
        return self.status not in ("DELETED", "VOIDED")

    @classmethod
    def from_element(cls, element: Mapping[str, Any]) -> XeroDocument:
        due = element.get("AmountDue", element.get("RemainingCredit"))
        return cls(
            xero_id=str(element.get("InvoiceID") or element.get("CreditNoteID") or ""),
            number=str(element.get("InvoiceNumber") or element.get("CreditNoteNumber") or ""),
            type=str(element.get("Type") or ""),
            status=str(element.get("Status") or ""),
            reference=element.get("Reference"),
            amount_due=None if due is None else Decimal(str(due)),
            contact_id=(element.get("Contact") or {}).get("ContactID"),
        )


@dataclass(frozen=True)
class XeroContactRef:
    contact_id: str
    name: str


@dataclass(frozen=True)
class Organisation:
    name: str
    country_code: str | None
    base_currency: str | None


@dataclass(frozen=True)
class NewAccount:
    """An account to add to the chart: a bank account (type BANK, with its number and currency;
    the code is optional) or another one, such as a CURRENT asset account for Amazon's reserve."""

    name: str
    type: str  # Xero's AccountType: BANK, CURRENT, ...
    code: str | None = None
    bank_account_number: str | None = None  # BANK only
    currency: str | None = None  # BANK only; the organisation's base currency when None

    def payload(self) -> dict[str, Any]:
        optional = {
            "Code": self.code,
            "BankAccountNumber": self.bank_account_number,
            "CurrencyCode": self.currency,
        }
        return {
            "Name": self.name,
            "Type": self.type,
            **{key: value for key, value in optional.items() if value is not None},
        }


@dataclass(frozen=True)
class XeroAccount:
    """An account of the chart as Xero lists it."""

    account_id: str
    code: str | None
    name: str
    type: str
    status: str
    currency: str | None  # bank accounts only
    bank_account_number: str | None
    payments_enabled: bool  # a bank account, or payments enabled on it: payments may use it

    @classmethod
    def from_element(cls, element: Mapping[str, Any]) -> XeroAccount:
        type_ = str(element.get("Type") or "")
        return cls(
            account_id=str(element.get("AccountID") or ""),
            code=element.get("Code") or None,
            name=str(element.get("Name") or ""),
            type=type_,
            status=str(element.get("Status") or ""),
            currency=element.get("CurrencyCode") or None,
            bank_account_number=element.get("BankAccountNumber") or None,
            payments_enabled=type_ == "BANK" or bool(element.get("EnablePaymentsToAccount")),
        )


@dataclass(frozen=True)
class NewPayment:
    """Money received against a sales invoice, or refunded against a credit note, through a
    bank account (the clearing account)."""

    applies_to: Literal["Invoice", "CreditNote"]
    document_id: str  # the InvoiceID or CreditNoteID
    account_id: str
    amount: Decimal
    date: date
    reference: str
    # For a document in a currency other than the bank account's (Xero's day rate otherwise).
    currency_rate: Decimal | None = None

    def payload(self) -> dict[str, Any]:
        if not isinstance(self.amount, Decimal):
            raise TypeError("payment amounts must be Decimal")
        payload: dict[str, Any] = {
            self.applies_to: {f"{self.applies_to}ID": self.document_id},
            "Account": {"AccountID": self.account_id},
            "Date": self.date,
            "Amount": self.amount,
            "Reference": self.reference,
        }
        if self.currency_rate is not None:
            payload["CurrencyRate"] = self.currency_rate
        return payload


@dataclass(frozen=True)
class XeroPayment:
    """A payment as Xero lists it (or answers creating one)."""

    payment_id: str
    status: str  # AUTHORISED or DELETED
    payment_type: str  # ACCRECPAYMENT, ARCREDITPAYMENT, ...
    document_id: str  # the InvoiceID or CreditNoteID it pays
    account_id: str
    amount: Decimal
    date: date | None
    reference: str

    @classmethod
    def from_element(cls, element: Mapping[str, Any]) -> XeroPayment:
        # GET lists a credit note's refund under Invoice, creating one answers CreditNote.
        invoice = element.get("Invoice") or {}
        credit_note = element.get("CreditNote") or {}
        return cls(
            payment_id=str(element.get("PaymentID") or ""),
            status=str(element.get("Status") or ""),
            payment_type=str(element.get("PaymentType") or ""),
            document_id=str(invoice.get("InvoiceID") or credit_note.get("CreditNoteID") or ""),
            account_id=str((element.get("Account") or {}).get("AccountID") or ""),
            amount=Decimal(str(element.get("Amount", "0"))),
            date=parse_xero_date(element.get("Date")),
            reference=str(element.get("Reference") or ""),
        )


@dataclass(frozen=True)
class NewLine:
    """One line of spend or receive money: an amount coded to an account."""

    account_code: str
    amount: Decimal  # the LineAmount, read as the transaction's LineAmountTypes says
    description: str
    tax_type: str | None = None  # the account's default tax rate when None


@dataclass(frozen=True)
class NewBankTransaction:
    """Spend money (fees paid out of the clearing account) or receive money (reimbursements
    into it); its currency is the bank account's."""

    type: Literal["SPEND", "RECEIVE"]
    bank_account_id: str
    contact_name: str
    lines: tuple[NewLine, ...]
    date: date
    reference: str
    line_amount_types: Literal["Exclusive", "Inclusive", "NoTax"] = "Exclusive"
    contact_id: str | None = None  # used instead of the name once known

    def payload(self) -> dict[str, Any]:
        lines = []
        for line in self.lines:
            if not isinstance(line.amount, Decimal):
                raise TypeError("line amounts must be Decimal")
            item: dict[str, Any] = {
                "Description": line.description,
                "Quantity": Decimal("1"),
                "UnitAmount": line.amount,
                "LineAmount": line.amount,
                "AccountCode": line.account_code,
            }
            if line.tax_type is not None:
                item["TaxType"] = line.tax_type
            lines.append(item)
        contact = {"ContactID": self.contact_id} if self.contact_id else {"Name": self.contact_name}
        return {
            "Type": self.type,
            "Contact": contact,
            "BankAccount": {"AccountID": self.bank_account_id},
            "Date": self.date,
            "Reference": self.reference,
            "LineAmountTypes": self.line_amount_types,
            "LineItems": lines,
        }


@dataclass(frozen=True)
class XeroBankTransaction:
    """Spend or receive money as Xero lists it (transfers' two sides are listed too)."""

    bank_transaction_id: str
    type: str
    status: str
    bank_account_id: str
    reference: str
    total: Decimal
    currency: str
    date: date | None

    @classmethod
    def from_element(cls, element: Mapping[str, Any]) -> XeroBankTransaction:
        return cls(
            bank_transaction_id=str(element.get("BankTransactionID") or ""),
            type=str(element.get("Type") or ""),
            status=str(element.get("Status") or ""),
            bank_account_id=str((element.get("BankAccount") or {}).get("AccountID") or ""),
            reference=str(element.get("Reference") or ""),
            total=Decimal(str(element.get("Total", "0"))),
            currency=str(element.get("CurrencyCode") or ""),
            date=parse_xero_date(element.get("Date")),
        )


@dataclass(frozen=True)
class NewBankTransfer:
    """Money moved between two bank accounts of one currency (the payout, clearing to bank)."""

    from_account_id: str
    to_account_id: str
    amount: Decimal
    date: date
    reference: str

    def payload(self) -> dict[str, Any]:
        if not isinstance(self.amount, Decimal):
            raise TypeError("transfer amounts must be Decimal")
        return {
            "FromBankAccount": {"AccountID": self.from_account_id},
            "ToBankAccount": {"AccountID": self.to_account_id},
            "Amount": self.amount,
            "Date": self.date,
            "Reference": self.reference,
        }


@dataclass(frozen=True)
class XeroBankTransfer:
    bank_transfer_id: str
    from_account_id: str
    to_account_id: str
    amount: Decimal
    date: date | None
    reference: str

    @classmethod
    def from_element(cls, element: Mapping[str, Any]) -> XeroBankTransfer:
        return cls(
            bank_transfer_id=str(element.get("BankTransferID") or ""),
            from_account_id=str((element.get("FromBankAccount") or {}).get("AccountID") or ""),
            to_account_id=str((element.get("ToBankAccount") or {}).get("AccountID") or ""),
            amount=Decimal(str(element.get("Amount", "0"))),
            date=parse_xero_date(element.get("Date")),
            reference=str(element.get("Reference") or ""),
        )


Made = TypeVar("Made")


@dataclass(frozen=True)
class ItemResult(Generic[Made]):
    """Xero's answer for one element of a batch, in the order the elements were sent: what
    it made (None when refused) and its validation messages."""

    ok: bool
    made: Made | None
    errors: list[str]
    element: dict[str, Any]


class SharedLimits(Protocol):
    def acquire(self, organisation: str) -> None:
        """Wait until the organisation may take one more call from any process; count it."""
        ...


class TokenStore(Protocol):
    def rotate(self, exchange: Callable[[str], str]) -> None:
        """Spend the stored refresh token on `exchange` and store the one it returns, before
        anything uses it; no other process spends the stored token meanwhile."""
        ...


# --- wire formats -----------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS_DATE = re.compile(r"/Date\((-?\d+)(?:([+-])(\d{2})(\d{2}))?\)/")


def parse_xero_date(value: object) -> date | None:
    """The day a Xero JSON date (/Date(ms+hhmm)/: milliseconds since the epoch, then the offset
    of the organisation's clock) names; None for anything else."""
    match = _MS_DATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    millis, sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours or 0), minutes=int(minutes or 0))
    moment = _EPOCH + timedelta(milliseconds=int(millis)) + (-offset if sign == "-" else offset)
    return moment.date()


def auth_event_id(access_token: str) -> str | None:
    """The consent that issued this access token (its `authentication_event_id` claim).

    The token came straight from Xero's token endpoint, so reading the claim without checking
    the signature is enough to tell which organisations that consent connected.
    """
    parts = access_token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    event = claims.get("authentication_event_id") if isinstance(claims, dict) else None
    return event if isinstance(event, str) else None


# What json.dumps writes for a str. The plain types are dispatched on first, by exact type:
# every request and every dry-run line goes through here (5x faster than the isinstance chain).
_json_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


def to_json(value: object) -> str:
    """JSON for Xero with Decimals written as exact numbers. Floats are refused: money is Decimal,
    and a float that slipped in would post a rounded amount without anyone noticing."""
    if type(value) is str:
        return _json_string(value)
    if type(value) is dict:
        pairs = [f"{to_json(str(key))}:{to_json(item)}" for key, item in value.items()]
        return "{" + ",".join(pairs) + "}"
    if type(value) is list:
        return "[" + ",".join([to_json(item) for item in value]) + "]"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send {value} to Xero")
        return format(value, "f")
    if isinstance(value, float):
        raise TypeError("amounts for Xero must be Decimal, not float")
    if isinstance(value, date):
        return json.dumps(value.isoformat())
    if isinstance(value, Mapping):
        items = (f"{to_json(str(key))}:{to_json(item)}" for key, item in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(item) for item in value) + "]"
    if value is None or isinstance(value, bool | int | str):
        return json.dumps(value)
    raise TypeError(f"cannot send {type(value).__name__} to Xero")


def _where_literal(text: str) -> str:
    """A string literal for Xero's `where` filter: double-quoted, backslash-escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json(parse_float=Decimal)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _validation_messages(body: Mapping[str, Any]) -> list[str]:
    """The messages of a Xero 400: each element's ValidationErrors, else the top-level Message."""
    messages: list[str] = []
    for element in body.get("Elements") or []:
        for error in element.get("ValidationErrors") or []:
            message = error.get("Message")
            if message and message not in messages:
                messages.append(message)
    if not messages and body.get("Message"):
        messages.append(str(body["Message"]))
    return messages


def _day_spent(wait_seconds: float) -> ServiceError:
    return ServiceError(
        ErrorKind.RATE_LIMIT,
        "Xero's daily allowance of API calls for this organisation is spent.",
        retryable=True,
        retry_after=timedelta(seconds=max(1.0, wait_seconds)),
    )


def _backoff(response: requests.Response | None, attempt: int) -> float:
    """Wait as long as Xero asks on a 429; otherwise back off exponentially."""
    if response is not None and response.status_code == 429:
        asked = retry_after_seconds(response)
        if asked is not None:
            return asked
    return exponential_backoff(attempt)


# --- OAuth ------------------------------------------------------------------------------------


class XeroAuth:
    """Xero's OAuth 2 endpoints: the consent page, the token endpoint and /connections."""

    def __init__(
        self,
        *,
        login_url: str,
        identity_url: str,
        api_url: str,
        client_id: str,
        client_secret: str,
        session: requests.Session | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._login_url = login_url.rstrip("/")
        self._identity_url = identity_url.rstrip("/")
        self._api_url = api_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._session = session or requests.Session()
        self._sleep = sleep

    def authorize_url(
        self, *, state: str, redirect_uri: str, scopes: Sequence[str] = SCOPES
    ) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(scopes),
                "state": state,
            }
        )
        return f"{self._login_url}/identity/connect/authorize?{query}"

    def exchange_code(self, code: str, redirect_uri: str) -> TokenSet:
        return self._token(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        )

    def refresh(self, refresh_token: str) -> TokenSet:
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def connections(self, access_token: str, *, auth_event_id: str | None = None) -> list[Tenant]:
        """The organisations this authorisation reaches, oldest connection first.

        With `auth_event_id`, only those connected by that consent (Xero's authEventId filter).
        """
        params = {"authEventId": auth_event_id} if auth_event_id else None
        response = send_with_retries(
            lambda: self._session.get(
                f"{self._api_url}/connections",
                params=params,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=TIMEOUT,
            ),
            service="Xero",
            attempts=ATTEMPTS,
            wait_for=_backoff,
            sleep=self._sleep,
        )
        if response.status_code in (401, 403):
            raise ServiceError(
                ErrorKind.AUTH,
                f"Xero did not accept the new authorisation. {_RECONNECT}",
                retryable=False,
            )
        if not response.ok:
            raise ServiceError(
                ErrorKind.UPSTREAM_UNAVAILABLE,
                f"Xero could not list the connected organisations (HTTP {response.status_code}).",
            )
        rows = response.json()
        return [
            Tenant(
                tenant_id=row["tenantId"],
                name=row.get("tenantName") or "",
                tenant_type=row["tenantType"],
            )
            for row in rows
        ]

    def _token(self, form: dict[str, str]) -> TokenSet:
        # Retrying a refresh whose answer was lost is safe: Xero accepts the used refresh token
        # again for 30 minutes.
        response = send_with_retries(
            lambda: self._session.post(
                f"{self._identity_url}/connect/token",
                data=form,
                auth=(self._client_id, self._client_secret),
                headers={"Accept": "application/json"},
                timeout=TIMEOUT,
            ),
            service="Xero",
            attempts=ATTEMPTS,
            wait_for=_backoff,
            sleep=self._sleep,
        )
        if response.status_code in (400, 401):
            error = _json_object(response).get("error")
            if error == "invalid_grant" and form["grant_type"] == "authorization_code":
                raise ServiceError(
                    ErrorKind.AUTH,
                    "The Xero sign-in expired or was already used. Connect Xero again from Slack.",
                    retryable=False,
                )
            if error == "invalid_grant":
                raise ServiceError(
                    ErrorKind.AUTH,
                    "Xero no longer accepts this connection's authorisation (revoked, unused for "
                    f"60 days, or superseded). {_RECONNECT}",
                    retryable=False,
                )
            if error in ("invalid_client", "unauthorized_client"):
                raise ServiceError(
                    ErrorKind.AUTH,
                    "Xero rejected the app's credentials: check XERO_CLIENT_ID and "
                    "XERO_CLIENT_SECRET.",
                    retryable=False,
                )
            raise ServiceError(
                ErrorKind.AUTH,
                f"Xero refused the sign-in ({error or response.status_code}). {_RECONNECT}",
                retryable=False,
            )
        if not response.ok:
            raise ServiceError(
                ErrorKind.UPSTREAM_UNAVAILABLE,
                f"Xero's sign-in service answered HTTP {response.status_code}.",
            )
        body = response.json()
        if not body.get("refresh_token"):
            raise ServiceError(
                ErrorKind.AUTH,
                "Xero granted no offline access (the offline_access scope is missing), so the "
                f"connection cannot be kept. {_RECONNECT}",
                retryable=False,
            )
        expires_in = int(body.get("expires_in", 1800))
        return TokenSet(
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
        )


# --- per-organisation state shared by all clients in the process --------------------------------


@dataclass
class _TenantState:
    in_flight: threading.BoundedSemaphore
    per_minute: SlidingWindow
    # One refresh at a time per organisation, so clients sharing a stored refresh token each
    # load the newest one rather than racing to use the same one twice.
    refresh_lock: threading.Lock = field(default_factory=threading.Lock)
    day_limit_remaining: int | None = None
    day_limit_seen: float | None = None  # when Xero said it (the client's clock)
    day_paused_until: float | None = None


_TENANTS: dict[str, _TenantState] = {}
_TENANTS_LOCK = threading.Lock()


def _tenant_state(tenant_id: str, *, clock: Clock, sleep: Sleep) -> _TenantState:
    """Xero's limits are per organisation, so every client of one shares this (the first
    client's clock and sleep drive the shared minute window)."""
    with _TENANTS_LOCK:
        state = _TENANTS.get(tenant_id)
        if state is None:
            state = _TenantState(
                in_flight=threading.BoundedSemaphore(CONCURRENT_LIMIT),
                per_minute=SlidingWindow(MINUTE_LIMIT, MINUTE_WINDOW, clock=clock, sleep=sleep),
            )
            _TENANTS[tenant_id] = state
        return state


# --- the Accounting API -----------------------------------------------------------------------


class XeroClient:
    """One organisation's Accounting API, authorised by the integration's stored refresh token."""

    def __init__(
        self,
        *,
        auth: XeroAuth,
        api_url: str,
        tenant_id: str,
        token_store: TokenStore,
        session: requests.Session | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        shared_limits: SharedLimits | None = None,
    ) -> None:
        """`shared_limits`: the minute limit counted across processes (PostgreSQL), on top of
        this process's own window."""
        self._auth = auth
        self._shared_limits = shared_limits
        self._base = api_url.rstrip("/") + ACCOUNTING_PATH
        self.tenant_id = tenant_id
        self._token_store = token_store
        self._session = session or requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._state = _tenant_state(tenant_id, clock=clock, sleep=sleep)
        # Access tokens stay with the client: another integration may reach the same
        # organisation through its own connection, whose refresh token must keep being used.
        self._current: TokenSet | None = None
        self._count_lock = threading.Lock()
        self.api_calls = 0

    @property
    def day_limit_remaining(self) -> int | None:
        """What Xero said, in the last few minutes, is left of the organisation's daily
        allowance (None: nothing lately; Xero's day is rolling, what it said earlier is old)."""
        seen = self._state.day_limit_seen
        if seen is None or self._clock() - seen > DAY_LIMIT_FRESH:
            return None
        return self._state.day_limit_remaining

    # --- plumbing -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: object = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Call the Accounting API and return its JSON answer (amounts as Decimal)."""
        url = f"{self._base}/{path.lstrip('/')}"
        body = None if json is None else to_json(json)
        tokens = self._tokens()
        response = self._send(method, url, params, body, idempotency_key, tokens)
        if response.status_code == 401:
            # Access tokens can die before their time (revoked, keys rotated): refresh once.
            tokens = self._tokens(stale=tokens)
            response = self._send(method, url, params, body, idempotency_key, tokens)
        return self._answer(response, method, path)

    def _tokens(self, *, stale: TokenSet | None = None) -> TokenSet:
        with self._state.refresh_lock:
            current = self._current
            if (
                current is not None
                and current is not stale
                and current.expires_at - EXPIRY_MARGIN > datetime.now(UTC)
            ):
                return current
            refreshed: list[TokenSet] = []

            def exchange(refresh_token: str) -> str:
                refreshed.append(self._auth.refresh(refresh_token))
                return refreshed[0].refresh_token

            # Saved before the new access token is used: if saving fails we stop here, and the
            # token still stored stays usable for Xero's 30-minute grace.
            self._token_store.rotate(exchange)
            fresh = self._current = refreshed[0]
            log.info("refreshed Xero access for tenant %s", self.tenant_id)
            return fresh

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        body: str | None,
        idempotency_key: str | None,
        tokens: TokenSet,
    ) -> requests.Response:
        headers = {
            "Authorization": f"Bearer {tokens.access_token}",
            "xero-tenant-id": self.tenant_id,
            "Accept": "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key

        def attempt() -> requests.Response:
            self._check_day_allowance()
            with self._state.in_flight:
                self._state.per_minute.acquire()
                if self._shared_limits is not None:
                    self._shared_limits.acquire(self.tenant_id)
                with self._count_lock:
                    self.api_calls += 1
                response = self._session.request(
                    method, url, params=params, data=body, headers=headers, timeout=TIMEOUT
                )
            self._note_limits(response)
            log.debug("Xero %s %s -> %s", method, url, response.status_code)
            return response

        return send_with_retries(
            attempt, service="Xero", attempts=ATTEMPTS, wait_for=_backoff, sleep=self._sleep
        )

    def _check_day_allowance(self) -> None:
        paused_until = self._state.day_paused_until
        if paused_until is not None and self._clock() < paused_until:
            raise _day_spent(paused_until - self._clock())

    def _note_limits(self, response: requests.Response) -> None:
        state = self._state
        remaining = response.headers.get("X-DayLimit-Remaining")
        if remaining is not None and remaining.isdigit():
            # At 0 the next call goes all the same: Xero's 429 says when the allowance frees
            # (Retry-After), which is what the run's pause and its Slack post say.
            state.day_limit_remaining = int(remaining)
            state.day_limit_seen = self._clock()
        if (
            response.status_code == 429
            and response.headers.get("X-Rate-Limit-Problem", "").lower() == "day"
        ):
            # Waiting hours inside a retry loop would hold a worker; stop and say so instead.
            state.day_limit_remaining, state.day_limit_seen = 0, self._clock()
            wait = retry_after_seconds(response) or DAY_LIMIT_PAUSE
            state.day_paused_until = self._clock() + wait
            raise _day_spent(wait)

    def _answer(self, response: requests.Response, method: str, path: str) -> dict[str, Any]:
        status = response.status_code
        if 200 <= status < 300:
            if not response.content:
                return {}
            body = _json_object(response)
            if not body:
                raise ServiceError(
                    ErrorKind.UPSTREAM_UNAVAILABLE,
                    f"Xero's answer to {method} {path} was not the JSON it should be.",
                    retryable=False,
                )
            return body
        if status == 400:
            messages = _validation_messages(_json_object(response))
            raise ServiceError(
                ErrorKind.VALIDATION,
                "Xero rejected the request: " + ("; ".join(messages) or f"HTTP {status}"),
                retryable=False,
            )
        if status == 401:
            raise ServiceError(
                ErrorKind.AUTH,
                f"Xero no longer accepts the app's access to this organisation. {_RECONNECT}",
                retryable=False,
            )
        if status == 403:
            raise ServiceError(
                ErrorKind.AUTH,
                "This Xero organisation is no longer connected to the app, or the connection "
                f"lacks the permission needed. {_RECONNECT}",
                retryable=False,
            )
        if status == 404:
            raise ServiceError(ErrorKind.NOT_FOUND, f"Xero has nothing at {path}.", retryable=False)
        raise ServiceError(
            ErrorKind.UPSTREAM_UNAVAILABLE,
            f"Xero answered HTTP {status} to {method} {path}.",
            retryable=False,
        )

    def _all_pages(self, endpoint: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            reply = self.request("GET", endpoint, params={**params, "page": str(page)})
            items = reply.get(endpoint) or []
            found.extend(items)
            page_count = (reply.get("pagination") or {}).get("pageCount")
            done = page >= page_count if isinstance(page_count, int) else len(items) < PAGE_SIZE
            if done:
                return found
            page += 1

    def _find_where(
        self, endpoint: str, field_name: str, values: Iterable[str], *, paged: bool = True
    ) -> list[dict[str, Any]]:
        """Elements whose `field_name` is one of `values`. Lists Xero does not page (its spec
        gives BankTransfers no page parameter) come whole in one answer."""
        unique = list(dict.fromkeys(values))
        found: list[dict[str, Any]] = []
        for chunk in _chunks(unique, TERMS_PER_WHERE):
            where = " OR ".join(f"{field_name}=={_where_literal(v)}" for v in chunk)
            if paged:
                found.extend(self._all_pages(endpoint, {"where": where}))
            else:
                found.extend(
                    self.request("GET", endpoint, params={"where": where}).get(endpoint) or []
                )
        return found

    # --- documents ------------------------------------------------------------------------------

    def create_documents(
        self,
        endpoint: Endpoint,
        documents: Sequence[Mapping[str, Any]],
        *,
        idempotency_key: str,
        method: Literal["PUT", "POST"] = "PUT",
    ) -> list[DocumentResult]:
        """Send up to 50 Invoices, CreditNotes or Contacts; one result per document, in order.

        PUT only creates; POST also updates documents named by id (or invoice number).
        """
        if endpoint not in _KEY_FIELDS:
            raise ValueError(f"create_documents does not handle {endpoint}")
        id_field, number_field = _KEY_FIELDS[endpoint]
        return [
            DocumentResult(
                ok=ok,
                xero_id=element.get(id_field) if ok else None,
                number=element.get(number_field),
                element=element,
                errors=errors,
            )
            for ok, element, errors in self._send_batch(
                endpoint, documents, idempotency_key=idempotency_key, method=method
            )
        ]

    def _send_batch(
        self,
        endpoint: str,
        elements: Sequence[Mapping[str, Any]],
        *,
        idempotency_key: str,
        method: Literal["PUT", "POST"] = "PUT",
    ) -> list[tuple[bool, dict[str, Any], list[str]]]:
        """Send up to 50 elements with summarizeErrors=false; Xero's answer for each, in order:
        whether it was saved, the element Xero answered, its validation messages."""
        if len(elements) > MAX_BATCH:
            raise ValueError(
                f"Xero takes at most {MAX_BATCH} {endpoint} a request, not {len(elements)}"
            )
        if not elements:
            return []
        reply = self.request(
            method,
            endpoint,
            params={"summarizeErrors": "false"},
            json={endpoint: list(elements)},
            idempotency_key=idempotency_key,
        )
        answered = reply.get(endpoint)
        if not isinstance(answered, list) or len(answered) != len(elements):
            count = len(answered) if isinstance(answered, list) else 0
            raise ServiceError(
                ErrorKind.UPSTREAM_UNAVAILABLE,
                f"Xero answered for {count} of the {len(elements)} {endpoint} sent; check "
                "Xero before sending them again.",
                retryable=False,
            )
        results = []
        for element in answered:
            errors = [
                str(error.get("Message", "")) for error in element.get("ValidationErrors") or []
            ]
            ok = element.get("StatusAttributeString") != "ERROR" and not errors
            results.append((ok, element, errors))
        return results

    def find_invoices_by_number(self, numbers: Iterable[str]) -> list[XeroDocument]:
        """Invoices (any type or status) whose number is one of `numbers`."""
        unique = list(dict.fromkeys(numbers))
        # InvoiceNumbers is comma-separated, so a number holding a comma must go through `where`.
        plain = [n for n in unique if "," not in n]
        found: list[dict[str, Any]] = []
        for chunk in _chunks(plain, NUMBERS_PER_LOOKUP):
            found.extend(self._all_pages("Invoices", {"InvoiceNumbers": ",".join(chunk)}))
        found.extend(self._find_where("Invoices", "InvoiceNumber", [n for n in unique if "," in n]))
        return [XeroDocument.from_element(element) for element in found]

    def find_credit_notes_by_number(self, numbers: Iterable[str]) -> list[XeroDocument]:
        """Credit notes whose number is one of `numbers` (Xero has no number list parameter)."""
        found = self._find_where("CreditNotes", "CreditNoteNumber", numbers)
        return [XeroDocument.from_element(element) for element in found]

    def find_sales_invoice_contacts(self, references: Iterable[str]) -> dict[str, str]:
        """Reference (an Amazon order id) -> ContactID of the sales invoice Xero has with that
        reference, for invoices that are not deleted or voided."""
        contacts: dict[str, str] = {}
        for element in self._find_where("Invoices", "Reference", references):
            document = XeroDocument.from_element(element)
            if document.type == "ACCREC" and document.live and document.contact_id:
                contacts.setdefault(str(document.reference), document.contact_id)
        return contacts

    def find_contacts_by_name(self, names: Iterable[str]) -> list[XeroContactRef]:
        """Active contacts named one of `names`; Xero matches names regardless of case."""
        return [
            XeroContactRef(str(element["ContactID"]), str(element["Name"]))
            for element in self._find_where("Contacts", "Name", names)
        ]

    def credit_note_allocations(self, credit_note_id: str) -> set[str]:
        """The invoices a credit note is allocated to, by InvoiceID."""
        body = self.request("GET", f"CreditNotes/{credit_note_id}")
        return {
            str(allocation["Invoice"]["InvoiceID"])
            for element in body.get("CreditNotes", [])
            for allocation in element.get("Allocations") or []
            if (allocation.get("Invoice") or {}).get("InvoiceID")
        }

    def allocate_credit_note(
        self,
        credit_note_id: str,
        *,
        invoice_id: str,
        amount: Decimal,
        date: date,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Apply `amount` of an AUTHORISED credit note to an AUTHORISED invoice of the same
        contact and currency. Returns Xero's allocation."""
        if not isinstance(amount, Decimal):
            raise TypeError("allocation amounts must be Decimal")
        reply = self.request(
            "PUT",
            f"CreditNotes/{credit_note_id}/Allocations",
            json={
                "Allocations": [
                    {"Invoice": {"InvoiceID": invoice_id}, "Amount": amount, "Date": date}
                ]
            },
            idempotency_key=idempotency_key,
        )
        return dict(reply["Allocations"][0])

    # --- banking: accounts, payments, spend and receive money, transfers -----------------------

    def accounts(self) -> list[XeroAccount]:
        """The organisation's active accounts, bank accounts among them."""
        reply = self.request("GET", "Accounts", params={"where": 'Status=="ACTIVE"'})
        return [XeroAccount.from_element(element) for element in reply.get("Accounts") or []]

    def create_account(self, account: NewAccount, *, idempotency_key: str) -> XeroAccount:
        """Add one account to the chart (Xero's PUT Accounts takes one). A name or code already
        in use, or a currency the organisation has not enabled, is a VALIDATION ServiceError."""
        reply = self.request(
            "PUT", "Accounts", json=account.payload(), idempotency_key=idempotency_key
        )
        return XeroAccount.from_element(reply["Accounts"][0])

    def create_payments(
        self, payments: Sequence[NewPayment], *, idempotency_key: str
    ) -> list[ItemResult[XeroPayment]]:
        """Send up to 50 payments; one result per payment, in order."""
        return [
            ItemResult(ok, XeroPayment.from_element(element) if ok else None, errors, element)
            for ok, element, errors in self._send_batch(
                "Payments", [p.payload() for p in payments], idempotency_key=idempotency_key
            )
        ]

    def find_payments_by_reference(self, references: Iterable[str]) -> list[XeroPayment]:
        """Payments (deleted ones too) whose Reference is one of `references`."""
        return [
            XeroPayment.from_element(element)
            for element in self._find_where("Payments", "Reference", references)
        ]

    def create_bank_transactions(
        self, transactions: Sequence[NewBankTransaction], *, idempotency_key: str
    ) -> list[ItemResult[XeroBankTransaction]]:
        """Send up to 50 spend or receive money transactions; one result each, in order."""
        return [
            ItemResult(
                ok, XeroBankTransaction.from_element(element) if ok else None, errors, element
            )
            for ok, element, errors in self._send_batch(
                "BankTransactions",
                [t.payload() for t in transactions],
                idempotency_key=idempotency_key,
            )
        ]

    def find_bank_transactions_by_reference(
        self, references: Iterable[str]
    ) -> list[XeroBankTransaction]:
        """Spend and receive money (deleted too) whose Reference is one of `references`."""
        return [
            XeroBankTransaction.from_element(element)
            for element in self._find_where("BankTransactions", "Reference", references)
        ]

    def create_bank_transfer(
        self, transfer: NewBankTransfer, *, idempotency_key: str
    ) -> XeroBankTransfer:
        """Move money between two bank accounts of one currency. One per request: Xero's spec
        gives PUT BankTransfers no summarizeErrors, so in a batch one refused transfer would
        hide which others were saved. A refusal is a VALIDATION ServiceError."""
        reply = self.request(
            "PUT",
            "BankTransfers",
            json={"BankTransfers": [transfer.payload()]},
            idempotency_key=idempotency_key,
        )
        return XeroBankTransfer.from_element(reply["BankTransfers"][0])

    def find_bank_transfers_by_reference(self, references: Iterable[str]) -> list[XeroBankTransfer]:
        """Transfers whose Reference is one of `references`."""
        return [
            XeroBankTransfer.from_element(element)
            for element in self._find_where("BankTransfers", "Reference", references, paged=False)
        ]

    # --- settings -------------------------------------------------------------------------------

    def tax_rates(self) -> list[XeroTaxRate]:
        return [
            XeroTaxRate.from_wire(element)
            for element in self.request("GET", "TaxRates").get("TaxRates") or []
        ]

    def create_tax_rates(
        self, rates: Sequence[NewTaxRate], *, idempotency_key: str | None = None
    ) -> list[XeroTaxRate]:
        """Create single-component tax rates in one call; Xero answers with their TaxType codes.

        report_tax_type says which box of the VAT return a rate feeds (OUTPUT for UK sales).
        """
        for rate in rates:
            if not isinstance(rate.rate, Decimal):
                raise TypeError("tax rates must be Decimal")
        reply = self.request(
            "PUT",
            "TaxRates",
            json={
                "TaxRates": [
                    {
                        "Name": rate.name,
                        "ReportTaxType": rate.report_tax_type,
                        "TaxComponents": [
                            {"Name": rate.component_name, "Rate": rate.rate, "IsCompound": False}
                        ],
                    }
                    for rate in rates
                ]
            },
            idempotency_key=idempotency_key,
        )
        return [XeroTaxRate.from_wire(element) for element in reply["TaxRates"]]

    def organisation(self) -> Organisation:
        element = self.request("GET", "Organisation")["Organisations"][0]
        return Organisation(
            name=str(element.get("Name") or ""),
            country_code=element.get("CountryCode"),
            base_currency=element.get("BaseCurrency"),
        )


def idempotency_key(integration_id: int, endpoint: str, material: str) -> str:
    """The same request (same integration, endpoint, documents and attempt) gets the same
    key, so that Xero answers a resent one from its cache instead of acting twice."""
    digest = hashlib.sha256(f"{integration_id}:{endpoint}:{material}".encode()).hexdigest()
    return f"axb-{digest[:40]}"
