"""Xero's login, identity and Accounting API hosts, played by one Flask app on a loopback port.

Faithful where our client's correctness depends on it:
- OAuth 2: a consent page with an organisation picker, single-use codes, 30-minute access tokens,
  refresh tokens that rotate on every use (the used one dies once Xero's 30-minute grace is over),
  /connections and /connect/revocation. Paths match regardless of case, as Xero's do.
- Accounting API: Bearer token plus xero-tenant-id, JSON only when asked for (XML otherwise),
  batches of at most 50 with summarizeErrors (a 400 naming only the failed elements, the valid
  ones saved) or without (failed elements carry the zero GUID), Xero's validation messages, totals
  computed and rounded as Xero does, /Date(ms+0000)/ timestamps, Idempotency-Key replay, and the
  per-tenant limits (60 a minute, 5,000 a day, 5 at once) with Xero's headers and 429s.
- Lists: where, order, If-Modified-Since, paging, summaryOnly, includeArchived and searchTerm are
  applied; a value the sandbox cannot apply is refused with Xero's 400, never ignored.
It models behaviour, not the whole product: no payments, attachments, tracking or reports.
`faults` scripts any other failure (500s, 503s, 401s) on the next calls to a path.
"""

from __future__ import annotations

import base64
import copy
import email.utils
import hashlib
import html
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree

from flask import Flask, Response, g, request

from sandbox.faults import Faults

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

JSON = dict[str, Any]
Clock = Callable[[], datetime]

API_PREFIX = "/api.xro/2.0"
PROVIDER_NAME = "Amazon Xero Bot (sandbox)"
DEFAULT_SCOPE = "offline_access accounting.invoices accounting.contacts accounting.settings"
MAX_BATCH = 50
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
CODE_TTL = timedelta(minutes=5)
REFRESH_TOKEN_TTL = timedelta(days=60)
REFRESH_GRACE = timedelta(minutes=30)
MAX_IDEMPOTENCY_KEY = 128
# What Xero puts in the id of an element it did not save (a batch sent with summarizeErrors=false).
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
# The id field of each kind of element a batch can create.
_ELEMENT_IDS = {
    "Invoices": "InvoiceID",
    "CreditNotes": "CreditNoteID",
    "Contacts": "ContactID",
    "Allocations": "AllocationID",
}

INVOICE_TYPES = ("ACCREC", "ACCPAY")
CREDIT_NOTE_TYPES = ("ACCRECCREDIT", "ACCPAYCREDIT")
STATUSES = ("DRAFT", "SUBMITTED", "DELETED", "AUTHORISED", "PAID", "VOIDED")
CREATABLE_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED")
_NEXT_STATUSES = {
    "DRAFT": ("DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"),
    "SUBMITTED": ("DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"),
    "AUTHORISED": ("AUTHORISED", "VOIDED"),
}
LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")
REPORT_TAX_TYPES = (
    "OUTPUT",
    "INPUT",
    "ECOUTPUT",
    "ECOUTPUTSERVICES",
    "ECACQUISITIONS",
    "EXEMPTOUTPUT",
    "EXEMPTINPUT",
    "ZERORATEDOUTPUT",
    "ZERORATEDINPUT",
    "REVERSECHARGES",
    "MOSSSALES",
    "NONE",
    "CAPITALSALESOUTPUT",
    "CAPITALEXPENSESINPUT",
    "GSTONIMPORTS",
)
# The scopes that open each resource: Xero's granular ones (required of apps made since March
# 2026) and the broad ones older apps still hold. A ".read" variant opens GETs only.
_RESOURCE_SCOPES: dict[str, tuple[str, ...]] = {
    "Invoices": ("accounting.invoices", "accounting.transactions"),
    "CreditNotes": ("accounting.invoices", "accounting.transactions"),
    "Contacts": ("accounting.contacts",),
    "TaxRates": ("accounting.settings",),
    "Organisation": ("accounting.settings",),
    "Accounts": ("accounting.settings",),
    "Currencies": ("accounting.settings",),
}
_CURRENCY_NAMES = {
    "GBP": "British Pound",
    "EUR": "Euro",
    "USD": "United States Dollar",
    "PLN": "Polish Zloty",
    "SEK": "Swedish Krona",
    "CAD": "Canadian Dollar",
    "AUD": "Australian Dollar",
    "JPY": "Japanese Yen",
}
CENT = Decimal("0.01")


class _Invalid(Exception):
    """One validation message for the element being prepared."""


# --- wire formats -----------------------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


def to_json(value: object) -> str:
    """JSON with Decimals written as numbers with their exact digits (never through float)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(item) for item in value) + "]"
    return json.dumps(value)


def _singular(name: str) -> str:
    if name == "Elements":
        return "DataContractBase"
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("sses"):
        return name[:-2]
    return name[:-1] if name.endswith("s") else name


def _xml_fill(parent: ElementTree.Element, value: object) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _xml_fill(ElementTree.SubElement(parent, key), item)
    elif isinstance(value, list):
        for item in value:
            _xml_fill(ElementTree.SubElement(parent, _singular(parent.tag)), item)
    elif isinstance(value, bool):
        parent.text = "true" if value else "false"
    elif isinstance(value, Decimal):
        parent.text = format(value, "f")
    elif value is not None:
        parent.text = str(value)


def to_xml(root: str, payload: JSON) -> str:
    element = ElementTree.Element(root)
    _xml_fill(element, payload)
    return ElementTree.tostring(element, encoding="unicode")


def xero_date(moment: datetime | date) -> str:
    """Xero's JSON dates: /Date(milliseconds since the epoch+0000)/."""
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return f"/Date({int(moment.timestamp() * 1000)}+0000)/"


_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def _parse_xero_date(text: str) -> datetime | None:
    match = _MS_DATE.match(text)
    if match is None:
        return None
    return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)


def _parse_input_date(value: object, label: str) -> date:
    if isinstance(value, str):
        parsed = _parse_xero_date(value)
        if parsed is not None:
            return parsed.date()
        for pattern in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"):
            try:
                return datetime.strptime(value, pattern).date()
            except ValueError:
                continue
    raise _Invalid(f"{label} '{value}' is not a valid date. Use the format YYYY-MM-DD.")


def _decimal(value: object, label: str) -> Decimal:
    # JSON numbers arrive as int or Decimal (bodies are parsed with parse_float=Decimal).
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise _Invalid(f"{label} must be a number.")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise _Invalid(f"{label} must be a number.") from None
    if not number.is_finite():
        raise _Invalid(f"{label} must be a number.")
    return number


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt_like(claims: JSON) -> str:
    """Shaped like Xero's RS256 JWTs (three base64url parts); only the sandbox can read it."""
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(secrets.token_bytes(32))}"


# Xero matches paths regardless of case (its identity spec spells /Connections, its docs
# /connections); the sandbox respells each path word as its routes do. Keys (ids, numbers) follow
# a collection's name and are left as sent.
_PATH_WORDS = {
    word.casefold(): word
    for word in (
        "identity",
        "connect",
        "authorize",
        "token",
        "revocation",
        "connections",
        "api.xro",
        "Invoices",
        "CreditNotes",
        "Contacts",
        "Allocations",
        "TaxRates",
        "Organisation",
        "Accounts",
        "Currencies",
    )
}
_KEYED_COLLECTIONS = ("Invoices", "CreditNotes", "Contacts", "connections")


def canonical_path(path: str) -> str:
    parts = path.split("/")
    for index, part in enumerate(parts):
        if index == 0 or parts[index - 1] not in _KEYED_COLLECTIONS:
            parts[index] = _PATH_WORDS.get(part.casefold(), part)
    return "/".join(parts)


class _CaseInsensitiveFlask(Flask):
    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["PATH_INFO"] = canonical_path(environ.get("PATH_INFO", ""))
        return super().wsgi_app(environ, start_response)


# --- organisations ----------------------------------------------------------------------------


def _account(code: str, name: str, type_: str, class_: str, tax_type: str, **extra: str) -> JSON:
    return {
        "AccountID": new_id(),
        "Code": code,
        "Name": name,
        "Type": type_,
        "Class": class_,
        "TaxType": tax_type,
        "Status": "ACTIVE",
        "EnablePaymentsToAccount": False,
        "ShowInExpenseClaims": False,
        "HasAttachments": False,
        "AddToWatchlist": False,
        "UpdatedDateUTC": xero_date(datetime(2024, 1, 1, tzinfo=UTC)),
        **extra,
    }


def default_accounts() -> list[JSON]:
    """A UK chart of accounts like Xero's demo company, trimmed to what Amazon postings use."""
    return [
        _account(
            "090",
            "Business Bank Account",
            "BANK",
            "ASSET",
            "NONE",
            BankAccountNumber="20000012345678",
            BankAccountType="BANK",
            CurrencyCode="GBP",
        ),
        _account("200", "Sales", "REVENUE", "REVENUE", "OUTPUT2"),
        _account("260", "Other Revenue", "REVENUE", "REVENUE", "OUTPUT2"),
        _account("310", "Cost of Goods Sold", "DIRECTCOSTS", "EXPENSE", "INPUT2"),
        _account("404", "Bank Fees", "EXPENSE", "EXPENSE", "NONE"),
        _account("429", "General Expenses", "EXPENSE", "EXPENSE", "INPUT2"),
        _account("610", "Accounts Receivable", "CURRENT", "ASSET", "NONE", SystemAccount="DEBTORS"),
        _account(
            "800", "Accounts Payable", "CURRLIAB", "LIABILITY", "NONE", SystemAccount="CREDITORS"
        ),
        _account("820", "VAT", "CURRLIAB", "LIABILITY", "NONE", SystemAccount="GST"),
    ]


def _tax_rate(tax_type: str, name: str, rate: str, report_tax_type: str) -> JSON:
    value = Decimal(rate)
    return {
        "Name": name,
        "TaxType": tax_type,
        "ReportTaxType": report_tax_type,
        "Status": "ACTIVE",
        "TaxComponents": [
            {"Name": "VAT", "Rate": value, "IsCompound": False, "IsNonRecoverable": False}
        ],
        "CanApplyToAssets": True,
        "CanApplyToEquity": True,
        "CanApplyToExpenses": True,
        "CanApplyToLiabilities": True,
        "CanApplyToRevenue": True,
        "DisplayTaxRate": value,
        "EffectiveRate": value,
    }


def default_tax_rates() -> list[JSON]:
    """The UK tax rates a new Xero organisation starts with (the ones Amazon sales need)."""
    return [
        _tax_rate("OUTPUT2", "20% (VAT on Income)", "20.0000", "OUTPUT"),
        _tax_rate("INPUT2", "20% (VAT on Expenses)", "20.0000", "INPUT"),
        _tax_rate("RROUTPUT", "5% (VAT on Income)", "5.0000", "OUTPUT"),
        _tax_rate("ZERORATEDOUTPUT", "Zero Rated Income", "0.0000", "ZERORATEDOUTPUT"),
        _tax_rate("EXEMPTOUTPUT", "Exempt Income", "0.0000", "EXEMPTOUTPUT"),
        _tax_rate("ECZROUTPUT", "Zero Rated EC Goods Income", "0.0000", "ECOUTPUT"),
        _tax_rate("NONE", "No VAT", "0.0000", "NONE"),
    ]


@dataclass
class SandboxOrg:
    """One Xero organisation (tenant): its settings, and the documents the API has made in it."""

    name: str = "Demo Company (UK)"
    tenant_id: str = field(default_factory=new_id)
    base_currency: str = "GBP"
    # Currencies enabled in Settings > Currencies; PLN and SEK are deliberately off.
    currencies: tuple[str, ...] = ("GBP", "EUR", "USD")
    country_code: str = "GB"
    accounts: list[JSON] = field(default_factory=default_accounts)
    tax_rates: list[JSON] = field(default_factory=default_tax_rates)
    contacts: dict[str, JSON] = field(default_factory=dict)
    invoices: dict[str, JSON] = field(default_factory=dict)
    credit_notes: dict[str, JSON] = field(default_factory=dict)
    sequences: dict[str, int] = field(default_factory=dict)
    organisation_id: str = field(default_factory=new_id)

    def next_number(self, prefix: str, width: int = 4) -> str:
        self.sequences[prefix] = self.sequences.get(prefix, 0) + 1
        return f"{prefix}{self.sequences[prefix]:0{width}d}"

    def store(self, endpoint: str) -> dict[str, JSON]:
        return {
            "Invoices": self.invoices,
            "CreditNotes": self.credit_notes,
            "Contacts": self.contacts,
        }[endpoint]

    def snapshot(self) -> tuple[Any, ...]:
        # Documents are replaced, never mutated in place, so shallow copies are a full snapshot.
        return (
            dict(self.contacts),
            dict(self.invoices),
            dict(self.credit_notes),
            list(self.tax_rates),
            dict(self.sequences),
        )

    def restore(self, snapshot: tuple[Any, ...]) -> None:
        self.contacts, self.invoices, self.credit_notes, self.tax_rates, self.sequences = snapshot


# --- OAuth records ----------------------------------------------------------------------------


@dataclass
class _Grant:
    """One consent: who agreed, to which scopes, for which organisations."""

    client_id: str
    scopes: tuple[str, ...]
    tenant_ids: tuple[str, ...]
    auth_event_id: str = field(default_factory=new_id)
    user_id: str = field(default_factory=new_id)


@dataclass
class _RefreshToken:
    grant: _Grant
    issued_at: datetime
    used_at: datetime | None = None
    successor: str | None = None


@dataclass
class _AccessToken:
    grant: _Grant
    expires_at: datetime


@dataclass
class _Code:
    grant: _Grant
    redirect_uri: str
    expires_at: datetime


@dataclass
class _Connection:
    id: str
    tenant_id: str
    auth_event_id: str
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class Call:
    """One request the sandbox answered, for tests to inspect."""

    method: str
    path: str
    status: int
    tenant_id: str | None
    idempotency_key: str | None
    query: str


@dataclass
class _Usage:
    """A tenant's rate-limit windows and idempotency memory."""

    minute: deque[float] = field(default_factory=deque)
    day: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    max_in_flight: int = 0
    replies: dict[str, tuple[str, int, str, str]] = field(default_factory=dict)


# --- where filters ----------------------------------------------------------------------------

_WHERE_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?)'
    r"|(?P<op>==|!=|>=|<=|&&|\|\||[><().,!])|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
)
Predicate = Callable[[JSON], bool]


class QueryError(ValueError):
    """A query the sandbox cannot answer faithfully: Xero's 400 QueryParseException."""


class WhereError(QueryError):
    pass


def _field(document: JSON, path: Sequence[str]) -> object:
    value: object = document
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if isinstance(value, str):
        return _parse_xero_date(value) or value
    return value


def _compare(left: object, op: str, right: object) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        # Xero's filters match text case-insensitively, as its database collation does.
        left, right = left.casefold(), right.casefold()
    elif isinstance(left, bool) or isinstance(right, bool) or left is None or right is None:
        if op in ("==", "!="):
            return (left == right) == (op == "==")
        return False
    elif not (
        (isinstance(left, Decimal | int) and isinstance(right, Decimal | int))
        or (isinstance(left, datetime) and isinstance(right, datetime))
    ):
        return op == "!="
    operations: dict[str, Callable[[Any, Any], bool]] = {
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
    }
    return operations[op](left, right)


class _WhereParser:
    """The subset of Xero's `where` syntax (Dynamic LINQ) that integrations use:
    comparisons, AND/OR/NOT, parentheses, Guid(...), DateTime(...), Contains/StartsWith/EndsWith.
    """

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            match = _WHERE_TOKEN.match(text, position)
            if match is None or match.end() == position:
                if text[position:].strip() == "":
                    break
                raise WhereError(f"Unexpected text in where clause at position {position}.")
            kind = match.lastgroup
            assert kind is not None
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.index = 0

    def parse(self) -> Predicate:
        try:
            predicate = self._or()
        except ValueError as error:
            raise WhereError(str(error)) from None
        if self.index != len(self.tokens):
            raise WhereError("Unexpected text at the end of the where clause.")
        return predicate

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _take(self, value: str | None = None) -> tuple[str, str]:
        token = self._peek()
        if token is None or (value is not None and token[1].upper() != value.upper()):
            raise WhereError(f"Expected {value or 'more'} in the where clause.")
        self.index += 1
        return token

    def _at(self, *values: str) -> bool:
        token = self._peek()
        return token is not None and token[1].upper() in values

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._at("OR", "||"):
            self._take()
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else lambda doc: any(p(doc) for p in parts)

    def _and(self) -> Predicate:
        parts = [self._not()]
        while self._at("AND", "&&"):
            self._take()
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else lambda doc: all(p(doc) for p in parts)

    def _not(self) -> Predicate:
        if self._at("NOT", "!"):
            self._take()
            inner = self._not()
            return lambda doc: not inner(doc)
        if self._at("("):
            self._take("(")
            inner = self._or()
            self._take(")")
            return inner
        return self._comparison()

    def _comparison(self) -> Predicate:
        kind, name = self._take()
        if kind != "name":
            raise WhereError(f"Expected a field name, not {name!r}.")
        path = [name]
        while self._at("."):
            self._take(".")
            name = self._take()[1]
            if self._at("("):
                return self._method(path, name)
            path.append(name)
        kind, op = self._take()
        if kind != "op" or op not in ("==", "!=", ">", ">=", "<", "<="):
            raise WhereError(f"Expected a comparison after {'.'.join(path)}.")
        right = self._value()
        return lambda doc: _compare(_field(doc, path), op, right)

    def _method(self, path: list[str], name: str) -> Predicate:
        self._take("(")
        argument = self._value()
        self._take(")")
        tests: dict[str, Callable[[str, str], bool]] = {
            "CONTAINS": lambda a, b: b in a,
            "STARTSWITH": lambda a, b: a.startswith(b),
            "ENDSWITH": lambda a, b: a.endswith(b),
        }
        test = tests.get(name.upper())
        if test is None or not isinstance(argument, str):
            raise WhereError(f"{name} is not supported in where clauses.")
        needle = argument.casefold()

        def predicate(doc: JSON) -> bool:
            value = _field(doc, path)
            return isinstance(value, str) and test(value.casefold(), needle)

        return predicate

    def _value(self) -> object:
        kind, text = self._take()
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "num":
            return Decimal(text)
        upper = text.upper()
        if upper in ("TRUE", "FALSE"):
            return upper == "TRUE"
        if upper == "NULL":
            return None
        if upper == "GUID":
            self._take("(")
            value = self._value()
            self._take(")")
            return str(value).lower()
        if upper == "DATETIME":
            self._take("(")
            parts = [int(self._take()[1])]
            while self._at(","):
                self._take(",")
                parts.append(int(self._take()[1]))
            self._take(")")
            if not 3 <= len(parts) <= 6:
                raise WhereError("DateTime(...) needs a year, month and day.")
            year, month, day, hour, minute, second = (*parts, 0, 0, 0)[:6]
            try:
                return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            except ValueError:
                raise WhereError("DateTime(...) needs a valid year, month and day.") from None
        raise WhereError(f"Unexpected {text!r} in the where clause.")


def parse_where(text: str) -> Predicate:
    return _WhereParser(text).parse()


# --- the other list parameters: flags, order, If-Modified-Since, summaryOnly -------------------

# The fields each list can be ordered by: its scalar fields. Any other `order` is refused, never
# ignored, so a test cannot pass on an order the sandbox did not apply.
_ORDER_FIELDS: dict[str, tuple[str, ...]] = {
    "Invoices": (
        "InvoiceID",
        "InvoiceNumber",
        "Type",
        "Reference",
        "Date",
        "DueDate",
        "Status",
        "LineAmountTypes",
        "CurrencyCode",
        "CurrencyRate",
        "SubTotal",
        "TotalTax",
        "Total",
        "AmountDue",
        "AmountPaid",
        "AmountCredited",
        "FullyPaidOnDate",
        "UpdatedDateUTC",
        "SentToContact",
        "HasErrors",
        "Contact.ContactID",
        "Contact.Name",
    ),
    "CreditNotes": (
        "CreditNoteID",
        "CreditNoteNumber",
        "Type",
        "Reference",
        "Date",
        "DueDate",
        "Status",
        "LineAmountTypes",
        "CurrencyCode",
        "CurrencyRate",
        "SubTotal",
        "TotalTax",
        "Total",
        "RemainingCredit",
        "FullyPaidOnDate",
        "UpdatedDateUTC",
        "HasErrors",
        "Contact.ContactID",
        "Contact.Name",
    ),
    "Contacts": (
        "ContactID",
        "Name",
        "FirstName",
        "LastName",
        "EmailAddress",
        "ContactNumber",
        "AccountNumber",
        "ContactStatus",
        "TaxNumber",
        "CompanyNumber",
        "DefaultCurrency",
        "IsSupplier",
        "IsCustomer",
        "UpdatedDateUTC",
    ),
    "TaxRates": ("Name", "TaxType", "ReportTaxType", "Status", "DisplayTaxRate", "EffectiveRate"),
    "Accounts": (
        "AccountID",
        "Code",
        "Name",
        "Type",
        "Class",
        "TaxType",
        "Status",
        "BankAccountNumber",
        "CurrencyCode",
        "SystemAccount",
        "UpdatedDateUTC",
    ),
    "Currencies": ("Code", "Description"),
}
_ORDER_TERM = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?:\s+(ASC|DESC))?", re.IGNORECASE)
# summaryOnly=true: Xero's "lightweight fields" only; the sandbox drops the nested collections.
_HEAVY_FIELDS: dict[str, tuple[str, ...]] = {
    "Invoices": ("LineItems", "Payments", "CreditNotes", "Prepayments", "Overpayments"),
    "Contacts": ("Addresses", "Phones", "ContactGroups", "ContactPersons"),
}


def flag(value: str | None, name: str, default: bool = False) -> bool:
    """A boolean query parameter, read as Xero reads it: true or false in any case (the SDKs
    send Python's True). Anything else is refused rather than taken as the default."""
    if value is None or value == "":
        return default
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise QueryError(f"'{value}' is not a valid value for {name}: use true or false.")


def modified_since(header: str | None) -> datetime | None:
    """If-Modified-Since as Xero's SDKs send it (ISO 8601, naive meaning UTC) or as an HTTP date."""
    if not header:
        return None
    try:
        moment = datetime.fromisoformat(header.strip())
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            raise QueryError(f"If-Modified-Since '{header}' is not a valid date.") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def updated_since(documents: list[JSON], since: datetime) -> list[JSON]:
    """Records created or modified at or after `since` (Xero: "since this timestamp")."""
    return [
        d
        for d in documents
        if (moment := _parse_xero_date(str(d.get("UpdatedDateUTC", "")))) is not None
        and moment >= since
    ]


def _sort_key(value: object) -> tuple[int, Any]:
    # Missing values first, as SQL orders NULLs; each type compares only with its own kind.
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | Decimal):
        return (2, Decimal(value))
    if isinstance(value, datetime):
        return (3, value)
    return (4, str(value).casefold())


def ordered(documents: list[JSON], text: str | None, endpoint: str) -> list[JSON]:
    """Xero's `order`: comma-separated fields, each optionally followed by ASC or DESC."""
    if not text or not text.strip():
        return documents
    fields = {name.casefold(): name for name in _ORDER_FIELDS.get(endpoint, ())}
    terms: list[tuple[list[str], bool]] = []
    for term in text.split(","):
        match = _ORDER_TERM.fullmatch(term.strip())
        if match is None:
            raise QueryError(
                f"'{term.strip()}' is not a valid order: name a field, then ASC or DESC."
            )
        name = fields.get(match.group(1).casefold())
        if name is None:
            raise QueryError(f"{endpoint} cannot be ordered by '{match.group(1)}'.")
        terms.append((name.split("."), (match.group(2) or "ASC").upper() == "DESC"))
    # Sorting by the last key first, stably, gives the order of all the keys together.
    for path, descending in reversed(terms):
        documents = sorted(documents, key=_sort_by(path), reverse=descending)
    return documents


def _sort_by(path: Sequence[str]) -> Callable[[JSON], tuple[int, Any]]:
    return lambda document: _sort_key(_field(document, path))


# --- the sandbox ------------------------------------------------------------------------------


def _blank_contact(contact_id: str) -> JSON:
    """A new active contact with the fields Xero fills in itself."""
    return {
        "ContactID": contact_id,
        "ContactStatus": "ACTIVE",
        "IsSupplier": False,
        "IsCustomer": False,
        "Addresses": [],
        "Phones": [],
        "ContactGroups": [],
        "ContactPersons": [],
        "HasAttachments": False,
        "HasValidationErrors": False,
    }


class XeroSandbox:
    """Xero on one port. Point XERO_LOGIN_URL, XERO_IDENTITY_URL and XERO_API_URL at it."""

    def __init__(
        self,
        *,
        client_id: str = "sandbox-xero-client-id",
        client_secret: str = "sandbox-xero-client-secret",
        tenants: Sequence[SandboxOrg] | None = None,
        access_token_ttl: int = 1800,
        refresh_grace: timedelta = REFRESH_GRACE,
        minute_limit: int = 60,
        day_limit: int = 5000,
        concurrent_limit: int = 5,
        app_minute_limit: int = 10_000,
        latency: float = 0.0,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.tenants: list[SandboxOrg] = list(tenants) if tenants is not None else [SandboxOrg()]
        self.access_token_ttl = access_token_ttl
        # Xero lets the previous refresh token be used again for 30 minutes after rotation, so
        # a client that lost the response can recover; timedelta(0) makes rotation strict.
        self.refresh_grace = refresh_grace
        self.minute_limit = minute_limit
        self.day_limit = day_limit
        self.concurrent_limit = concurrent_limit
        self.app_minute_limit = app_minute_limit
        # Seconds each API call holds its concurrency slot, so tests can see overlap.
        self.latency = latency
        self._clock = clock
        self._lock = threading.RLock()
        self._codes: dict[str, _Code] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._access_tokens: dict[str, _AccessToken] = {}
        self._connections: dict[str, _Connection] = {}
        self._usage: dict[str, _Usage] = {org.tenant_id: _Usage() for org in self.tenants}
        self._app_minute: deque[float] = deque()
        self.calls: list[Call] = []
        self.issued_refresh_tokens: list[str] = []

        self.app = _CaseInsensitiveFlask(__name__)
        self.faults = Faults()
        # Scripted faults answer before anything else, as a failing Xero front end would.
        self.faults.install(self.app)
        self.app.before_request(self._guard_api)
        self.app.after_request(self._after)
        self.app.teardown_request(self._release)
        self._routes()

    # --- inspection helpers for tests --------------------------------------------------------

    @property
    def tenant_id(self) -> str:
        return self.tenants[0].tenant_id

    def org(self, tenant_id: str | None = None) -> SandboxOrg:
        wanted = tenant_id or self.tenant_id
        for org in self.tenants:
            if org.tenant_id == wanted:
                return org
        raise KeyError(wanted)

    def documents(self, endpoint: str, tenant_id: str | None = None) -> list[JSON]:
        """Copies of the Invoices, CreditNotes or Contacts an organisation holds, oldest first."""
        with self._lock:
            return copy.deepcopy(list(self.org(tenant_id).store(endpoint).values()))

    def api_calls(self, tenant_id: str | None = None) -> list[Call]:
        wanted = tenant_id or self.tenant_id
        return [c for c in self.calls if c.path.startswith(API_PREFIX) and c.tenant_id == wanted]

    def max_in_flight(self, tenant_id: str | None = None) -> int:
        return self._usage[tenant_id or self.tenant_id].max_in_flight

    def authorize_offline(
        self, *, scope: str = DEFAULT_SCOPE, tenant_ids: Sequence[str] | None = None
    ) -> str:
        """A refresh token as if a user had consented, for tests not about the consent page."""
        with self._lock:
            grant = self._consent(self.client_id, scope.split(), tenant_ids or [self.tenant_id])
            return self._new_refresh_token(grant)

    def disconnect(self, tenant_id: str | None = None) -> None:
        """Remove the app from an organisation, as its user can in Xero's settings."""
        with self._lock:
            self._connections.pop(tenant_id or self.tenant_id, None)

    def expire_access_tokens(self) -> None:
        """Make every issued access token stale, as 30 minutes passing would."""
        with self._lock:
            past = self._clock() - timedelta(seconds=1)
            for token in self._access_tokens.values():
                token.expires_at = past

    # --- wiring ------------------------------------------------------------------------------

    def _routes(self) -> None:
        add = self.app.add_url_rule
        add("/identity/connect/authorize", view_func=self._authorize, methods=["GET", "POST"])
        add("/connect/token", view_func=self._token, methods=["POST"])
        add("/connect/revocation", view_func=self._revoke, methods=["POST"])
        add("/connections", view_func=self._list_connections, methods=["GET"])
        add("/connections/<connection_id>", view_func=self._delete_connection, methods=["DELETE"])
        api = API_PREFIX
        for endpoint in ("Invoices", "CreditNotes", "Contacts"):
            add(
                f"{api}/{endpoint}",
                f"list_{endpoint}",
                view_func=self._collection(endpoint),
                methods=["GET", "PUT", "POST"],
            )
            add(
                f"{api}/{endpoint}/<key>",
                f"one_{endpoint}",
                view_func=self._single(endpoint),
                methods=["GET", "POST"],
            )
        add(f"{api}/CreditNotes/<key>/Allocations", view_func=self._allocations, methods=["PUT"])
        add(f"{api}/TaxRates", view_func=self._tax_rates, methods=["GET", "PUT", "POST"])
        add(f"{api}/Organisation", view_func=self._organisation, methods=["GET"])
        add(f"{api}/Accounts", view_func=self._accounts, methods=["GET"])
        add(f"{api}/Currencies", view_func=self._currencies, methods=["GET"])

    def _now(self) -> datetime:
        return self._clock()

    # --- login: the consent page ----------------------------------------------------------------

    def _authorize(self) -> Response:
        source = request.args if request.method == "GET" else request.form
        client_id = source.get("client_id", "")
        redirect_uri = source.get("redirect_uri", "")
        scope = source.get("scope", "")
        state = source.get("state", "")
        if client_id != self.client_id:
            return self._error_page("unauthorized_client", "Unknown client or client not enabled")
        if request.method == "GET" and request.args.get("response_type") != "code":
            return self._error_page("unsupported_response_type", "response_type must be code")
        target = urlsplit(redirect_uri)
        if target.scheme not in ("http", "https") or not target.netloc:
            return self._error_page("invalid_request", "Invalid redirect_uri")
        if not scope.split():
            return self._error_page("invalid_scope", "No scope was requested")
        if request.method == "GET":
            return self._consent_page(client_id, redirect_uri, scope, state)
        if request.form.get("action") != "allow":
            return self._redirect(redirect_uri, {"error": "access_denied", "state": state})
        chosen = request.form.getlist("tenant") or [self.tenant_id]
        known = {org.tenant_id for org in self.tenants}
        if not set(chosen) <= known:
            return self._error_page("invalid_request", "Unknown organisation")
        with self._lock:
            grant = self._consent(client_id, scope.split(), chosen)
            code = secrets.token_urlsafe(24)
            self._codes[code] = _Code(grant, redirect_uri, self._now() + CODE_TTL)
        return self._redirect(
            redirect_uri, {"code": code, "scope": scope, "state": state, "session_state": new_id()}
        )

    def _consent_page(self, client_id: str, redirect_uri: str, scope: str, state: str) -> Response:
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(value)}">'
            for name, value in (
                ("client_id", client_id),
                ("redirect_uri", redirect_uri),
                ("scope", scope),
                ("state", state),
            )
        )
        options = "".join(
            f'<option value="{org.tenant_id}"{" selected" if i == 0 else ""}>'
            f"{html.escape(org.name)}</option>"
            for i, org in enumerate(self.tenants)
        )
        scopes = "".join(f"<li>{html.escape(s)}</li>" for s in scope.split())
        page = (
            "<!doctype html><html><head><title>Xero | Authorise app</title></head><body>"
            "<h1>Amazon Xero Bot wants access to your Xero organisation</h1>"
            f"<ul>{scopes}</ul>"
            f'<form method="post" action="/identity/connect/authorize">{hidden}'
            f'<label>Organisation <select name="tenant">{options}</select></label>'
            '<button type="submit" name="action" value="allow">Allow access</button>'
            '<button type="submit" name="action" value="deny">Cancel</button>'
            "</form></body></html>"
        )
        return Response(page, mimetype="text/html")

    @staticmethod
    def _error_page(error: str, description: str) -> Response:
        page = (
            "<!doctype html><html><head><title>Xero | Error</title></head><body>"
            f"<h1>Sorry, something went wrong</h1><p>Error: {html.escape(error)}</p>"
            f"<p>Error details: {html.escape(description)}</p></body></html>"
        )
        return Response(page, status=400, mimetype="text/html")

    @staticmethod
    def _redirect(uri: str, params: dict[str, str]) -> Response:
        separator = "&" if urlsplit(uri).query else "?"
        return Response(status=302, headers={"Location": f"{uri}{separator}{urlencode(params)}"})

    def _consent(self, client_id: str, scopes: Sequence[str], tenant_ids: Sequence[str]) -> _Grant:
        grant = _Grant(client_id, tuple(scopes), tuple(tenant_ids))
        now = self._now()
        for tenant_id in tenant_ids:
            existing = self._connections.get(tenant_id)
            if existing is None:
                self._connections[tenant_id] = _Connection(
                    new_id(), tenant_id, grant.auth_event_id, now, now
                )
            else:
                existing.auth_event_id = grant.auth_event_id
                existing.updated = now
        return grant

    # --- identity: tokens and connections -----------------------------------------------------

    def _token(self) -> Response:
        client_id, client_secret = self._client_credentials()
        if client_id != self.client_id or client_secret != self.client_secret:
            return self._oauth_error("invalid_client")
        grant_type = request.form.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                code = self._codes.pop(request.form.get("code", ""), None)
                if (
                    code is None
                    or code.expires_at < self._now()
                    or code.redirect_uri != request.form.get("redirect_uri")
                    or code.grant.client_id != client_id
                ):
                    return self._oauth_error("invalid_grant")
                return self._token_response(code.grant, None)
            if grant_type == "refresh_token":
                return self._refresh(request.form.get("refresh_token", ""), client_id)
        return self._oauth_error("unsupported_grant_type")

    def _revoke(self) -> Response:
        """Xero's revocation endpoint (RFC 7009): the refresh token given, every token rotated
        from the same consent, and that consent's connections go. Access tokens already issued
        are JWTs Xero cannot recall; with the connections gone they open nothing."""
        client_id, client_secret = self._client_credentials()
        if client_id != self.client_id or client_secret != self.client_secret:
            return self._oauth_error("invalid_client")
        token = request.form.get("token", "")
        if not token:
            return self._oauth_error("invalid_request")
        with self._lock:
            record = self._refresh_tokens.get(token)
            # An unknown token is answered 200 all the same, as RFC 7009 asks.
            if record is not None and record.grant.client_id == client_id:
                grant = record.grant
                for value, refresh in list(self._refresh_tokens.items()):
                    if refresh.grant is grant:
                        del self._refresh_tokens[value]
                for tenant_id in grant.tenant_ids:
                    self._connections.pop(tenant_id, None)
        return Response(status=200)

    def _client_credentials(self) -> tuple[str, str]:
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            return auth.username or "", auth.password or ""
        return request.form.get("client_id", ""), request.form.get("client_secret", "")

    def _refresh(self, token: str, client_id: str) -> Response:
        record = self._refresh_tokens.get(token)
        now = self._now()
        if record is None or record.grant.client_id != client_id:
            return self._oauth_error("invalid_grant")
        if record.used_at is not None:
            successor = self._refresh_tokens.get(record.successor or "")
            if (
                now - record.used_at > self.refresh_grace
                or successor is None
                or successor.used_at is not None
            ):
                return self._oauth_error("invalid_grant")
            # Within the grace the caller gets the token it missed, not a second lineage.
            return self._token_response(record.grant, record.successor)
        if now - record.issued_at > REFRESH_TOKEN_TTL:
            return self._oauth_error("invalid_grant")
        if not set(record.grant.tenant_ids) & set(self._connections):
            return self._oauth_error("invalid_grant")
        record.used_at = now
        response = self._token_response(record.grant, None)
        record.successor = response.get_json().get("refresh_token")
        return response

    def _new_refresh_token(self, grant: _Grant) -> str:
        token = secrets.token_hex(32)
        self._refresh_tokens[token] = _RefreshToken(grant, self._now())
        self.issued_refresh_tokens.append(token)
        return token

    def _token_response(self, grant: _Grant, refresh_token: str | None) -> Response:
        now = self._now()
        expires_at = now + timedelta(seconds=self.access_token_ttl)
        claims = {
            "nbf": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "iss": "https://identity.xero.com",
            "aud": "https://identity.xero.com/resources",
            "client_id": grant.client_id,
            "sub": grant.user_id,
            "xero_userid": grant.user_id,
            "authentication_event_id": grant.auth_event_id,
            "jti": new_id(),
            "scope": list(grant.scopes),
        }
        access_token = _jwt_like(claims)
        self._access_tokens[access_token] = _AccessToken(grant, expires_at)
        body: JSON = {
            "access_token": access_token,
            "expires_in": self.access_token_ttl,
            "token_type": "Bearer",
            "scope": " ".join(grant.scopes),
        }
        if "openid" in grant.scopes:
            body["id_token"] = _jwt_like({"sub": grant.user_id, "aud": grant.client_id})
        if "offline_access" in grant.scopes:
            body["refresh_token"] = refresh_token or self._new_refresh_token(grant)
        return Response(json.dumps(body), mimetype="application/json")

    @staticmethod
    def _oauth_error(error: str) -> Response:
        return Response(json.dumps({"error": error}), status=400, mimetype="application/json")

    def _bearer(self) -> _AccessToken | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        return self._access_tokens.get(header.removeprefix("Bearer ").strip())

    def _list_connections(self) -> Response:
        token = self._bearer()
        if token is None or token.expires_at < self._now():
            return self._problem(401, "Unauthorized", "AuthenticationUnsuccessful")
        wanted_event = request.args.get("authEventId")
        names = {org.tenant_id: org.name for org in self.tenants}
        with self._lock:
            rows = [
                {
                    "id": c.id,
                    "authEventId": c.auth_event_id,
                    "tenantId": c.tenant_id,
                    "tenantType": "ORGANISATION",
                    "tenantName": names[c.tenant_id],
                    "createdDateUtc": c.created.strftime("%Y-%m-%dT%H:%M:%S.%f0"),
                    "updatedDateUtc": c.updated.strftime("%Y-%m-%dT%H:%M:%S.%f0"),
                }
                for c in sorted(self._connections.values(), key=lambda c: c.created)
                # Like Xero: every organisation connected to the app, not only this consent's.
                if wanted_event in (None, c.auth_event_id)
            ]
        return Response(json.dumps(rows), mimetype="application/json")

    def _delete_connection(self, connection_id: str) -> Response:
        token = self._bearer()
        if token is None or token.expires_at < self._now():
            return self._problem(401, "Unauthorized", "AuthenticationUnsuccessful")
        with self._lock:
            for tenant_id, connection in list(self._connections.items()):
                if connection.id == connection_id and tenant_id in token.grant.tenant_ids:
                    del self._connections[tenant_id]
                    return Response(status=204)
        return Response(status=404)

    # --- the API gate: auth, tenant, scope, rate limits --------------------------------------

    @staticmethod
    def _problem(status: int, title: str, detail: str) -> Response:
        body: JSON = {
            "Type": None,
            "Title": title,
            "Status": status,
            "Detail": detail,
            "Instance": new_id(),
            "Extensions": {},
        }
        return Response(json.dumps(body), status=status, mimetype="application/json")

    def _guard_api(self) -> Response | None:
        if not request.path.startswith(API_PREFIX + "/"):
            return None
        token = self._bearer()
        if token is None:
            return self._problem(401, "Unauthorized", "AuthenticationUnsuccessful")
        if token.expires_at < self._now():
            stamp = token.expires_at.strftime("%m/%d/%Y %H:%M:%S")
            return self._problem(401, "Unauthorized", f"TokenExpired: token expired at {stamp}")
        tenant_id = request.headers.get("xero-tenant-id", "")
        with self._lock:
            connected = tenant_id in self._connections
        if not connected or tenant_id not in token.grant.tenant_ids:
            return self._problem(403, "Forbidden", "AuthenticationUnsuccessful")
        resource = request.path[len(API_PREFIX) + 1 :].split("/", 1)[0]
        allowed = _RESOURCE_SCOPES.get(resource, ())
        granted = set(token.grant.scopes)
        if not any(
            scope in granted or (request.method == "GET" and f"{scope}.read" in granted)
            for scope in allowed
        ):
            return self._problem(401, "Unauthorized", "AuthorizationUnsuccessful")
        g.tenant_id = tenant_id
        return self._admit(tenant_id)

    def _admit(self, tenant_id: str) -> Response | None:
        """Count the call against the tenant's limits, or answer 429 as Xero does."""
        now = self._now().timestamp()
        with self._lock:
            usage = self._usage[tenant_id]
            for window, span in ((usage.minute, 60), (usage.day, 86_400), (self._app_minute, 60)):
                while window and now - window[0] >= span:
                    window.popleft()
            problem, retry_after = None, 0.0
            if len(usage.day) >= self.day_limit:
                problem, retry_after = "day", 86_400 - (now - usage.day[0])
            elif len(usage.minute) >= self.minute_limit:
                problem, retry_after = "minute", 60 - (now - usage.minute[0])
            elif usage.in_flight >= self.concurrent_limit:
                problem, retry_after = "concurrent", 1.0
            elif len(self._app_minute) >= self.app_minute_limit:
                problem, retry_after = "appminute", 60 - (now - self._app_minute[0])
            if problem is not None:
                response = self._problem(
                    429, "Too Many Requests", f"Rate limit exceeded: {problem}"
                )
                response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
                response.headers["X-Rate-Limit-Problem"] = problem
                return response
            usage.minute.append(now)
            usage.day.append(now)
            self._app_minute.append(now)
            usage.in_flight += 1
            usage.max_in_flight = max(usage.max_in_flight, usage.in_flight)
            g.holds_slot = True
        if self.latency:
            time.sleep(self.latency)
        return None

    def _after(self, response: Response) -> Response:
        tenant_id = g.get("tenant_id")
        if tenant_id is not None:
            with self._lock:
                usage = self._usage[tenant_id]
                response.headers["X-MinLimit-Remaining"] = str(
                    max(0, self.minute_limit - len(usage.minute))
                )
                response.headers["X-DayLimit-Remaining"] = str(
                    max(0, self.day_limit - len(usage.day))
                )
                response.headers["X-AppMinLimit-Remaining"] = str(
                    max(0, self.app_minute_limit - len(self._app_minute))
                )
        with self._lock:
            self.calls.append(
                Call(
                    request.method,
                    request.path,
                    response.status_code,
                    tenant_id or request.headers.get("xero-tenant-id"),
                    request.headers.get("Idempotency-Key"),
                    request.query_string.decode(),
                )
            )
        return response

    def _release(self, _error: BaseException | None) -> None:
        if g.get("holds_slot"):
            with self._lock:
                self._usage[g.tenant_id].in_flight -= 1

    # --- API responses ---------------------------------------------------------------------------

    def _envelope(self, payload: JSON) -> JSON:
        stamp = int(self._now().timestamp() * 1000)
        return {
            "Id": new_id(),
            "Status": "OK",
            "ProviderName": PROVIDER_NAME,
            "DateTimeUTC": f"/Date({stamp})/",
            **payload,
        }

    @staticmethod
    def _render(payload: JSON, status: int = 200, root: str = "Response") -> Response:
        # Xero answers XML unless the caller asks for JSON.
        if "application/json" in request.headers.get("Accept", ""):
            return Response(to_json(payload), status=status, mimetype="application/json")
        return Response(to_xml(root, payload), status=status, mimetype="text/xml")

    def _ok(self, payload: JSON) -> Response:
        return self._render(self._envelope(payload))

    def _api_error(
        self, number: int, type_: str, message: str, elements: list[JSON] | None = None
    ) -> Response:
        body: JSON = {"ErrorNumber": number, "Type": type_, "Message": message}
        if elements is not None:
            body["Elements"] = elements
        return self._render(body, 400, root="ApiException")

    def _validation_error(self, elements: list[JSON]) -> Response:
        return self._api_error(
            10, "ValidationException", "A validation exception occurred", elements
        )

    @staticmethod
    def _not_found() -> Response:
        return Response(
            "The resource you're looking for cannot be found", status=404, mimetype="text/plain"
        )

    def _org(self) -> SandboxOrg:
        return self.org(g.tenant_id)

    # --- reads ----------------------------------------------------------------------------------

    def _filtered(self, documents: list[JSON], endpoint: str) -> list[JSON]:
        args = request.args
        id_field = {
            "Invoices": "InvoiceID",
            "CreditNotes": "CreditNoteID",
            "Contacts": "ContactID",
        }.get(endpoint)
        ids = _csv(args.get("IDs"))
        if ids and id_field:
            wanted = {i.lower() for i in ids}
            documents = [d for d in documents if d[id_field].lower() in wanted]
        if endpoint == "Invoices":
            numbers = {n.casefold() for n in _csv(args.get("InvoiceNumbers"))}
            if numbers:
                documents = [
                    d for d in documents if d.get("InvoiceNumber", "").casefold() in numbers
                ]
            contact_ids = {c.lower() for c in _csv(args.get("ContactIDs"))}
            if contact_ids:
                documents = [
                    d for d in documents if d["Contact"]["ContactID"].lower() in contact_ids
                ]
            statuses = set(_csv(args.get("Statuses")))
            if statuses:
                documents = [d for d in documents if d["Status"] in statuses]
            # Xero has no archived invoices, and every invoice here was made by this one app:
            # both flags are honoured by changing nothing, once they are valid.
            flag(args.get("includeArchived"), "includeArchived")
            flag(args.get("createdByMyApp"), "createdByMyApp")
        if endpoint == "Contacts" and not flag(args.get("includeArchived"), "includeArchived"):
            documents = [d for d in documents if d.get("ContactStatus") != "ARCHIVED"]
        since = modified_since(request.headers.get("If-Modified-Since"))
        if since is not None:
            documents = updated_since(documents, since)
        term = args.get("searchTerm", "").casefold()
        search_fields = {
            "Contacts": ("Name", "FirstName", "LastName", "ContactNumber", "EmailAddress"),
            "Invoices": ("InvoiceNumber", "Reference"),
        }.get(endpoint)
        if term and search_fields:
            documents = [
                d
                for d in documents
                if any(term in str(d.get(f, "")).casefold() for f in search_fields)
            ]
        where = args.get("where")
        if where:
            predicate = parse_where(where)
            documents = [d for d in documents if predicate(d)]
        return ordered(documents, args.get("order"), endpoint)

    def _list(self, endpoint: str, documents: list[JSON]) -> Response:
        try:
            filtered = self._filtered(documents, endpoint)
            summary_only = endpoint in _HEAVY_FIELDS and flag(
                request.args.get("summaryOnly"), "summaryOnly"
            )
        except QueryError as error:
            return self._api_error(16, "QueryParseException", str(error))
        page_arg = request.args.get("page")
        if summary_only:
            heavy = _HEAVY_FIELDS[endpoint]
            filtered = [{k: v for k, v in d.items() if k not in heavy} for d in filtered]
        elif page_arg is None and endpoint in ("Invoices", "CreditNotes"):
            # Unpaged lists are summaries: Xero only returns line items by id or when paging.
            filtered = [{k: v for k, v in d.items() if k != "LineItems"} for d in filtered]
        if page_arg is None:
            return self._ok({endpoint: filtered})
        try:
            page = max(1, int(page_arg))
            size = min(MAX_PAGE_SIZE, max(1, int(request.args.get("pageSize", PAGE_SIZE))))
        except ValueError:
            return self._api_error(16, "QueryParseException", "page and pageSize must be numbers.")
        chunk = filtered[(page - 1) * size : page * size]
        pagination = {
            "page": page,
            "pageSize": size,
            "pageCount": math.ceil(len(filtered) / size),
            "itemCount": len(filtered),
        }
        return self._ok({"pagination": pagination, endpoint: chunk})

    def _collection(self, endpoint: str) -> Callable[[], Response]:
        def view() -> Response:
            if request.method == "GET":
                with self._lock:
                    documents = copy.deepcopy(list(self._org().store(endpoint).values()))
                return self._list(endpoint, documents)
            return self._write(endpoint, request.method)

        return view

    def _single(self, endpoint: str) -> Callable[[str], Response]:
        def view(key: str) -> Response:
            if request.method == "POST":
                return self._write(endpoint, "POST", key)
            with self._lock:
                document = self._find(endpoint, key)
                found = copy.deepcopy(document) if document is not None else None
            if found is None:
                return self._not_found()
            return self._ok({endpoint: [found]})

        return view

    def _find(self, endpoint: str, key: str) -> JSON | None:
        store = self._org().store(endpoint)
        by_id = store.get(key.lower())
        if by_id is not None:
            return by_id
        number_field = {
            "Invoices": "InvoiceNumber",
            "CreditNotes": "CreditNoteNumber",
            "Contacts": "ContactNumber",
        }[endpoint]
        return next((d for d in store.values() if d.get(number_field) == key), None)

    def _organisation(self) -> Response:
        org = self._org()
        return self._ok(
            {
                "Organisations": [
                    {
                        "OrganisationID": org.organisation_id,
                        "APIKey": org.tenant_id.replace("-", "")[:30],
                        "Name": org.name,
                        "LegalName": org.name,
                        "PaysTax": True,
                        "Version": "UK",
                        "OrganisationType": "COMPANY",
                        "BaseCurrency": org.base_currency,
                        "CountryCode": org.country_code,
                        "IsDemoCompany": True,
                        "OrganisationStatus": "ACTIVE",
                        "FinancialYearEndDay": 31,
                        "FinancialYearEndMonth": 3,
                        "SalesTaxBasis": "ACCRUALS",
                        "SalesTaxPeriod": "QUARTERLY1",
                        "DefaultSalesTax": "Tax Exclusive",
                        "DefaultPurchasesTax": "Tax Exclusive",
                        "CreatedDateUTC": "/Date(1704067200000)/",
                        "OrganisationEntityType": "COMPANY",
                        "Timezone": "GMTSTANDARDTIME",
                        "ShortCode": "!sandb",
                        "Edition": "BUSINESS",
                        "Class": "DEMO",
                        "Addresses": [],
                        "Phones": [],
                        "ExternalLinks": [],
                        "PaymentTerms": {},
                    }
                ]
            }
        )

    def _simple_list(self, key: str, items: list[JSON]) -> Response:
        try:
            # Of these lists only Accounts take the header (in Xero's spec) and carry the date.
            if key == "Accounts":
                since = modified_since(request.headers.get("If-Modified-Since"))
                if since is not None:
                    items = updated_since(items, since)
            where = request.args.get("where")
            if where:
                predicate = parse_where(where)
                items = [item for item in items if predicate(item)]
            items = ordered(items, request.args.get("order"), key)
        except QueryError as error:
            return self._api_error(16, "QueryParseException", str(error))
        return self._ok({key: items})

    def _accounts(self) -> Response:
        with self._lock:
            accounts = copy.deepcopy(self._org().accounts)
        return self._simple_list("Accounts", accounts)

    def _currencies(self) -> Response:
        rows = [
            {"Code": c, "Description": _CURRENCY_NAMES.get(c, c)} for c in self._org().currencies
        ]
        return self._simple_list("Currencies", rows)

    # --- writes ---------------------------------------------------------------------------------

    def _body(self) -> tuple[Any, Response | None]:
        try:
            return json.loads(request.get_data(as_text=True) or "null", parse_float=Decimal), None
        except ValueError:
            return None, self._api_error(14, "PostDataInvalidException", "Invalid Json data")

    def _idempotent(self, handler: Callable[[], Response]) -> Response:
        """Answer a repeated Idempotency-Key with the first response; nothing runs twice."""
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return handler()
        if len(key) > MAX_IDEMPOTENCY_KEY:
            return self._api_error(
                10, "ValidationException", "Idempotency-Key must be 128 characters or fewer."
            )
        fingerprint = hashlib.sha256(
            b"\n".join([request.method.encode(), request.full_path.encode(), request.get_data()])
        ).hexdigest()
        with self._lock:
            replies = self._usage[g.tenant_id].replies
            seen = replies.get(key)
            if seen is not None:
                if seen[0] != fingerprint:
                    return self._api_error(
                        10,
                        "ValidationException",
                        "This Idempotency-Key has already been used with a different request.",
                    )
                return Response(seen[2], status=seen[1], mimetype=seen[3])
            response = handler()
            replies[key] = (
                fingerprint,
                response.status_code,
                response.get_data(as_text=True),
                response.mimetype or "text/plain",
            )
            return response

    def _write(self, endpoint: str, method: str, key: str | None = None) -> Response:
        return self._idempotent(lambda: self._write_batch(endpoint, method, key))

    def _write_batch(self, endpoint: str, method: str, key: str | None) -> Response:
        body, error = self._body()
        if error is not None:
            return error
        if isinstance(body, dict) and endpoint in body:
            elements = body[endpoint]
        else:
            elements = [body] if isinstance(body, dict) else body
        if not isinstance(elements, list) or not all(isinstance(e, dict) for e in elements):
            return self._api_error(
                14, "PostDataInvalidException", f"Expected {endpoint} as a list of objects."
            )
        if len(elements) > MAX_BATCH:
            return self._api_error(
                10,
                "ValidationException",
                f"A maximum of {MAX_BATCH} {endpoint} can be sent in one request.",
            )
        try:
            summarize = flag(request.args.get("summarizeErrors"), "summarizeErrors", True)
        except QueryError as error:
            return self._api_error(16, "QueryParseException", str(error))
        unit_dp = 4 if request.args.get("unitdp") == "4" else 2
        with self._lock:
            org = self._org()
            results = []
            for element in elements:
                if key is not None:
                    element = {**element, self._id_field(endpoint): key}
                results.append(self._apply(org, endpoint, method, element, unit_dp))
        return self._batch_answer(endpoint, results, summarize)

    def _batch_answer(self, endpoint: str, results: list[JSON], summarize: bool) -> Response:
        """Xero's answer to a batch. With summarizeErrors (its default) a batch with a failed
        element is a 400 that lists only the failed elements, each with a new id that names
        nothing, while the valid elements are saved all the same (seen by integrators, e.g.
        XeroAPI/xero-ruby#247); without it, a 200 lists every element, failed ones with the
        zero GUID."""
        failed = [r for r in results if r.get("ValidationErrors")]
        if not (summarize and failed):
            return self._ok({endpoint: results})
        id_field = _ELEMENT_IDS.get(endpoint)
        if id_field is not None:
            for element in failed:
                element[id_field] = new_id()
        return self._validation_error(failed)

    @staticmethod
    def _id_field(endpoint: str) -> str:
        return {
            "Invoices": "InvoiceID",
            "CreditNotes": "CreditNoteID",
            "Contacts": "ContactID",
            "TaxRates": "TaxType",
        }[endpoint]

    def _apply(
        self, org: SandboxOrg, endpoint: str, method: str, element: JSON, unit_dp: int
    ) -> JSON:
        """Validate one element and, if it is valid, save it. Returns Xero's answer for it."""
        out: JSON = {}
        errors: list[str] = []
        # A failed element leaves nothing behind (not even the contact it would have created).
        before = org.snapshot()
        if endpoint == "Contacts":
            self._contact(org, method, element, out, errors)
        elif endpoint == "TaxRates":
            self._tax_rate_element(org, method, element, out, errors)
        else:
            self._transaction(org, endpoint, method, element, out, errors, unit_dp)
        if errors:
            org.restore(before)
            out["ValidationErrors"] = [{"Message": m} for m in errors]
            out["StatusAttributeString"] = "ERROR"
            if endpoint in _ELEMENT_IDS:
                # Nothing was saved, so there is no id to give: Xero answers the zero GUID.
                out = {_ELEMENT_IDS[endpoint]: ZERO_GUID, **out}
            if endpoint in ("Invoices", "CreditNotes"):
                out["HasErrors"] = True
            elif endpoint == "Contacts":
                out["HasValidationErrors"] = True
        elif endpoint != "TaxRates":  # Xero's TaxRate carries no status attribute
            out["StatusAttributeString"] = "OK"
        return out

    # --- contacts -------------------------------------------------------------------------------

    @staticmethod
    def _contact_named(org: SandboxOrg, name: str, exclude: str | None = None) -> JSON | None:
        wanted = name.strip().casefold()
        return next(
            (
                c
                for c in org.contacts.values()
                if c["ContactStatus"] == "ACTIVE"
                and c["Name"].strip().casefold() == wanted
                and c["ContactID"] != exclude
            ),
            None,
        )

    def _contact(
        self, org: SandboxOrg, method: str, element: JSON, out: JSON, errors: list[str]
    ) -> None:
        existing = None
        contact_id = element.get("ContactID")
        if contact_id is not None:
            existing = org.contacts.get(str(contact_id).lower())
            if existing is None or method == "PUT":
                errors.append(
                    f"Contact with ContactID {contact_id} "
                    + ("already exists." if existing else "could not be found.")
                )
                return
        merged = {**(existing or {}), **element}
        name = merged.get("Name")
        if not isinstance(name, str) or not name.strip():
            errors.append("The contact name must be specified.")
            return
        out["Name"] = name
        if len(name) > 255:
            errors.append("The contact name must be 255 characters or fewer.")
        status = merged.get("ContactStatus", "ACTIVE")
        if status not in ("ACTIVE", "ARCHIVED"):
            errors.append(f"'{status}' is not a valid ContactStatus.")
        # Names are unique among active contacts only.
        clash = self._contact_named(org, name, exclude=existing["ContactID"] if existing else None)
        if clash is not None and status == "ACTIVE":
            errors.append(
                f"The contact name {name} is already assigned to another contact. "
                "The contact name must be unique across all active contacts."
            )
        currency = merged.get("DefaultCurrency")
        if currency is not None and currency not in org.currencies:
            errors.append(f"Organisation is not subscribed to currency {currency}")
        if errors:
            return
        contact = _blank_contact(existing["ContactID"] if existing else new_id())
        contact["ContactStatus"] = status
        for text_field in (
            "Name",
            "FirstName",
            "LastName",
            "EmailAddress",
            "ContactNumber",
            "AccountNumber",
            "TaxNumber",
            "CompanyNumber",
            "DefaultCurrency",
            "AccountsReceivableTaxType",
            "AccountsPayableTaxType",
        ):
            if isinstance(merged.get(text_field), str):
                contact[text_field] = merged[text_field]
        for list_field in ("Addresses", "Phones", "ContactPersons"):
            if isinstance(merged.get(list_field), list):
                contact[list_field] = merged[list_field]
        if existing:
            contact["IsSupplier"], contact["IsCustomer"] = (
                existing["IsSupplier"],
                existing["IsCustomer"],
            )
        contact["UpdatedDateUTC"] = xero_date(self._now())
        org.contacts[contact["ContactID"]] = contact
        out.clear()
        out.update(copy.deepcopy(contact))

    def _resolve_contact(
        self, org: SandboxOrg, given: object, type_: str | None, errors: list[str]
    ) -> JSON | None:
        """Find the document's contact; an unknown Name makes a new contact, as Xero does."""
        if not isinstance(given, dict) or not any(
            given.get(k) for k in ("ContactID", "Name", "ContactNumber")
        ):
            errors.append("A Contact must be specified for this type of transaction")
            return None
        contact = None
        if given.get("ContactID"):
            contact = org.contacts.get(str(given["ContactID"]).lower())
            if contact is None:
                errors.append(f"Contact with ContactID {given['ContactID']} could not be found.")
                return None
        elif given.get("ContactNumber"):
            contact = next(
                (
                    c
                    for c in org.contacts.values()
                    if c.get("ContactNumber") == given["ContactNumber"]
                ),
                None,
            )
            if contact is None and not given.get("Name"):
                errors.append(
                    f"Contact with ContactNumber {given['ContactNumber']} could not be found."
                )
                return None
        if contact is None:
            name = str(given["Name"])
            contact = self._contact_named(org, name)
            if contact is None:
                contact = _blank_contact(new_id()) | {
                    "Name": name,
                    "UpdatedDateUTC": xero_date(self._now()),
                }
                if given.get("ContactNumber"):
                    contact["ContactNumber"] = str(given["ContactNumber"])
                org.contacts[contact["ContactID"]] = contact
        role = "IsCustomer" if type_ in ("ACCREC", "ACCRECCREDIT") else "IsSupplier"
        if type_ is not None and not contact[role]:
            contact = {**contact, role: True}
            org.contacts[contact["ContactID"]] = contact
        return contact

    # --- invoices and credit notes --------------------------------------------------------------

    def _transaction(
        self,
        org: SandboxOrg,
        endpoint: str,
        method: str,
        element: JSON,
        out: JSON,
        errors: list[str],
        unit_dp: int,
    ) -> None:
        is_invoice = endpoint == "Invoices"
        id_field = "InvoiceID" if is_invoice else "CreditNoteID"
        number_field = "InvoiceNumber" if is_invoice else "CreditNoteNumber"
        types = INVOICE_TYPES if is_invoice else CREDIT_NOTE_TYPES
        store = org.store(endpoint)

        existing = None
        if element.get(id_field):
            existing = store.get(str(element[id_field]).lower())
            if existing is None or method == "PUT":
                noun = "Invoice" if is_invoice else "Credit note"
                state = "already exists; use POST to update it" if existing else "does not exist"
                errors.append(f"{noun} {element[id_field]} {state}.")
                return
        elif method == "POST" and element.get(number_field):
            existing = next(
                (
                    d
                    for d in store.values()
                    if d.get(number_field) == element[number_field]
                    and d["Type"] in ("ACCREC", "ACCRECCREDIT")
                ),
                None,
            )
        if existing is not None and existing["Status"] in ("PAID", "VOIDED", "DELETED"):
            errors.append(f"This document cannot be edited as it is {existing['Status'].lower()}.")
            return
        merged = {**(existing or {}), **element}

        type_ = merged.get("Type")
        if type_ in types:
            out["Type"] = type_
        else:
            noun = "Invoice" if is_invoice else "Credit Note"
            errors.append(f"{noun} Type must be one of {', '.join(types)}.")
        status = merged.get("Status", "DRAFT")
        if status not in STATUSES:
            errors.append(f"'{status}' is not a valid Status.")
        elif existing is None and status not in CREATABLE_STATUSES:
            errors.append(
                f"{'Invoice' if is_invoice else 'Credit note'} not of valid status for creation"
            )
        elif existing is not None and status not in _NEXT_STATUSES[existing["Status"]]:
            errors.append(f"The status cannot change from {existing['Status']} to {status}.")
        else:
            out["Status"] = status
        line_amount_types = merged.get("LineAmountTypes", "Exclusive")
        if line_amount_types in LINE_AMOUNT_TYPES:
            out["LineAmountTypes"] = line_amount_types
        else:
            errors.append(
                f"'{line_amount_types}' is not a valid LineAmountTypes value. "
                f"Use one of {', '.join(LINE_AMOUNT_TYPES)}."
            )
        currency = merged.get("CurrencyCode", org.base_currency)
        if currency in org.currencies:
            out["CurrencyCode"] = currency
        else:
            errors.append(f"Organisation is not subscribed to currency {currency}")
        for date_field in ("Date", "DueDate"):
            if date_field in merged:
                try:
                    out[date_field] = xero_date(_parse_input_date(merged[date_field], date_field))
                except _Invalid as invalid:
                    errors.append(str(invalid))
        out.setdefault("Date", xero_date(self._now().date()))
        # CreditNotes have no Url in Xero's schema.
        for text_field in ("Reference", "BrandingThemeID", *(("Url",) if is_invoice else ())):
            if isinstance(merged.get(text_field), str):
                out[text_field] = merged[text_field]

        contact = self._resolve_contact(org, merged.get("Contact"), out.get("Type"), errors)
        if contact is not None:
            out["Contact"] = {"ContactID": contact["ContactID"], "Name": contact["Name"]}

        number = merged.get(number_field)
        sales = type_ in ("ACCREC", "ACCRECCREDIT")
        if number is None and sales:
            prefix = "INV-" if is_invoice else "CN-"
            number = org.next_number(prefix)
            while any(d.get(number_field) == number for d in store.values()):
                number = org.next_number(prefix)
        if number is not None:
            out[number_field] = str(number)
            own_id = existing[id_field] if existing else None
            # Sales numbers are unique in an organisation; bills may repeat a supplier's number.
            if sales and any(
                d.get(number_field, "").casefold() == str(number).casefold()
                and d["Type"] == type_
                and d[id_field] != own_id
                for d in store.values()
            ):
                errors.append(
                    "Invoice # must be unique." if is_invoice else "Credit Note # must be unique."
                )

        self._lines(org, merged.get("LineItems", []), out, errors, unit_dp)
        if errors:
            return

        total = out["Total"]
        document = {
            id_field: existing[id_field] if existing else new_id(),
            **out,
            "CurrencyRate": Decimal("1.000000")
            if currency == org.base_currency
            else Decimal("1.150000"),
            "HasAttachments": False,
            "Payments": [],
            "UpdatedDateUTC": xero_date(self._now()),
        }
        if is_invoice:
            credited = existing["AmountCredited"] if existing else Decimal("0.00")
            document.update(
                {
                    "AmountDue": total - credited,
                    "AmountPaid": Decimal("0.00"),
                    "AmountCredited": credited,
                    "SentToContact": False,
                    "IsDiscounted": False,
                    "HasErrors": False,
                    "CreditNotes": existing["CreditNotes"] if existing else [],
                    "Prepayments": [],
                    "Overpayments": [],
                }
            )
            if document["AmountDue"] < 0:
                errors.append(
                    "The invoice total cannot be less than the credit already allocated to it."
                )
                return
        else:
            allocated = (
                sum((a["Amount"] for a in existing["Allocations"]), Decimal("0.00"))
                if existing
                else Decimal("0.00")
            )
            document.update(
                {
                    "RemainingCredit": total - allocated,
                    "HasErrors": False,
                    "Allocations": existing["Allocations"] if existing else [],
                }
            )
            if document["RemainingCredit"] < 0:
                errors.append(
                    "The credit note total cannot be less than the credit already "
                    "allocated from it."
                )
                return
        store[document[id_field]] = document
        out.clear()
        out.update(copy.deepcopy(document))

    def _lines(
        self, org: SandboxOrg, lines: object, out: JSON, errors: list[str], unit_dp: int
    ) -> None:
        """Line items and totals, computed and rounded as Xero does."""
        if not isinstance(lines, list):
            errors.append("LineItems must be a list.")
            return
        if not lines and out.get("Status") in ("SUBMITTED", "AUTHORISED"):
            errors.append("At least one line item is required to approve a document.")
        accounts = {a["Code"]: a for a in org.accounts if a["Status"] == "ACTIVE"}
        tax_rates = {t["TaxType"]: t for t in org.tax_rates if t["Status"] == "ACTIVE"}
        amount_types = out.get("LineAmountTypes", "Exclusive")
        result: list[JSON] = []
        for line in lines:
            if not isinstance(line, dict):
                errors.append("Each line item must be an object.")
                continue
            item: JSON = {"LineItemID": str(line.get("LineItemID") or new_id())}
            if isinstance(line.get("Description"), str):
                item["Description"] = line["Description"]
            try:
                quantity = _decimal(line.get("Quantity", 1), "Quantity").quantize(Decimal("0.0001"))
                unit = line.get("UnitAmount")
                if unit is None and line.get("LineAmount") is not None:
                    unit = _decimal(line["LineAmount"], "LineAmount") / (quantity or 1)
                unit_amount = _decimal(unit if unit is not None else 0, "UnitAmount")
                unit_amount = (
                    _money(unit_amount)
                    if unit_dp == 2
                    else unit_amount.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
                )
                line_amount = (
                    _money(_decimal(line["LineAmount"], "LineAmount"))
                    if line.get("LineAmount") is not None
                    else _money(quantity * unit_amount)
                )
            except _Invalid as invalid:
                errors.append(str(invalid))
                continue
            item.update(Quantity=quantity, UnitAmount=unit_amount, LineAmount=line_amount)
            code = line.get("AccountCode")
            account = accounts.get(str(code)) if code is not None else None
            if code is not None:
                item["AccountCode"] = str(code)
                if account is None:
                    errors.append(f"Account code '{code}' is not a valid code for this document.")
            elif out.get("Status") in ("SUBMITTED", "AUTHORISED"):
                errors.append(
                    "An account code must be specified for each line item of an approved document."
                )
            tax_type = line.get("TaxType") or (account["TaxType"] if account else "NONE")
            if amount_types == "NoTax":
                tax_type = "NONE"
            rate = tax_rates.get(str(tax_type))
            if rate is None:
                errors.append(
                    f"The TaxType code '{tax_type}' does not exist or cannot be used "
                    "for this type of transaction."
                )
                continue
            item["TaxType"] = str(tax_type)
            percent = rate["EffectiveRate"]
            if amount_types == "NoTax":
                tax = Decimal("0.00")
            elif line.get("TaxAmount") is not None:
                try:
                    tax = _money(_decimal(line["TaxAmount"], "TaxAmount"))
                except _Invalid as invalid:
                    errors.append(str(invalid))
                    continue
            elif amount_types == "Inclusive":
                tax = _money(line_amount * percent / (100 + percent))
            else:
                tax = _money(line_amount * percent / 100)
            item["TaxAmount"] = tax
            item["Tracking"] = line["Tracking"] if isinstance(line.get("Tracking"), list) else []
            result.append(item)
        out["LineItems"] = result
        line_total = sum((i["LineAmount"] for i in result), Decimal("0.00"))
        tax_total = sum((i["TaxAmount"] for i in result), Decimal("0.00"))
        if amount_types == "Inclusive":
            out.update(SubTotal=line_total - tax_total, TotalTax=tax_total, Total=line_total)
        else:
            out.update(SubTotal=line_total, TotalTax=tax_total, Total=line_total + tax_total)

    # --- allocations ------------------------------------------------------------------------------

    def _allocations(self, key: str) -> Response:
        return self._idempotent(lambda: self._allocate(key))

    def _allocate(self, key: str) -> Response:
        body, error = self._body()
        if error is not None:
            return error
        with self._lock:
            org = self._org()
            credit_note = self._find("CreditNotes", key)
            if credit_note is None:
                return self._not_found()
            elements = body.get("Allocations", [body]) if isinstance(body, dict) else body
            if not isinstance(elements, list) or not all(isinstance(e, dict) for e in elements):
                return self._api_error(
                    14, "PostDataInvalidException", "Expected Allocations as a list of objects."
                )
            try:
                summarize = flag(request.args.get("summarizeErrors"), "summarizeErrors", True)
            except QueryError as error:
                return self._api_error(16, "QueryParseException", str(error))
            results = [self._allocation(org, credit_note["CreditNoteID"], e) for e in elements]
        return self._batch_answer("Allocations", results, summarize)

    def _allocation(self, org: SandboxOrg, credit_note_id: str, element: JSON) -> JSON:
        credit_note = org.credit_notes[credit_note_id]
        out: JSON = {
            "CreditNote": {
                "CreditNoteID": credit_note_id,
                "CreditNoteNumber": credit_note.get("CreditNoteNumber", ""),
            }
        }
        errors: list[str] = []
        given = element.get("Invoice")
        invoice = None
        if isinstance(given, dict) and given.get("InvoiceID"):
            invoice = org.invoices.get(str(given["InvoiceID"]).lower())
        elif isinstance(given, dict) and given.get("InvoiceNumber"):
            invoice = next(
                (
                    i
                    for i in org.invoices.values()
                    if i.get("InvoiceNumber") == given["InvoiceNumber"]
                ),
                None,
            )
        if invoice is None:
            errors.append("Invoice could not be found.")
        else:
            out["Invoice"] = {
                "InvoiceID": invoice["InvoiceID"],
                "InvoiceNumber": invoice.get("InvoiceNumber", ""),
            }
        try:
            amount = _money(_decimal(element.get("Amount"), "Amount"))
            out["Amount"] = amount
        except _Invalid as invalid:
            errors.append(str(invalid))
            amount = None
        try:
            if "Date" not in element:
                raise _Invalid("A date must be specified for the allocation.")
            out["Date"] = xero_date(_parse_input_date(element["Date"], "Date"))
        except _Invalid as invalid:
            errors.append(str(invalid))
        if credit_note["Status"] != "AUTHORISED":
            errors.append("Only AUTHORISED credit notes can be allocated.")
        if invoice is not None:
            if invoice["Status"] != "AUTHORISED":
                errors.append("Only AUTHORISED invoices can have credit allocated to them.")
            if {invoice["Type"], credit_note["Type"]} not in (
                {"ACCREC", "ACCRECCREDIT"},
                {"ACCPAY", "ACCPAYCREDIT"},
            ):
                errors.append(
                    "Sales credit notes can only be allocated to sales invoices, "
                    "and purchase credit notes to bills."
                )
            if invoice["CurrencyCode"] != credit_note["CurrencyCode"]:
                errors.append("The invoice and credit note must be in the same currency.")
            if invoice["Contact"]["ContactID"] != credit_note["Contact"]["ContactID"]:
                errors.append("The invoice and credit note must be for the same contact.")
        if amount is not None:
            if amount <= 0:
                errors.append("Amount must be greater than zero.")
            if amount > credit_note["RemainingCredit"]:
                errors.append(
                    "The amount to allocate exceeds the remaining credit on the credit note."
                )
            if invoice is not None and amount > invoice["AmountDue"]:
                errors.append("The amount to allocate exceeds the amount due on the invoice.")
        if errors:
            out["AllocationID"] = ZERO_GUID
            out["ValidationErrors"] = [{"Message": m} for m in errors]
            out["StatusAttributeString"] = "ERROR"
            return out
        assert invoice is not None and amount is not None
        allocation_id = new_id()
        out["AllocationID"] = allocation_id
        stamp = xero_date(self._now())
        due = invoice["AmountDue"] - amount
        remaining = credit_note["RemainingCredit"] - amount
        applied = {
            "CreditNoteID": credit_note_id,
            "CreditNoteNumber": credit_note.get("CreditNoteNumber", ""),
            "AppliedAmount": amount,
            "Date": out["Date"],
        }
        org.invoices[invoice["InvoiceID"]] = {
            **invoice,
            "AmountDue": due,
            "AmountCredited": invoice["AmountCredited"] + amount,
            "CreditNotes": [*invoice["CreditNotes"], applied],
            "UpdatedDateUTC": stamp,
            **({"Status": "PAID", "FullyPaidOnDate": out["Date"]} if due == 0 else {}),
        }
        allocation = {
            "AllocationID": allocation_id,
            "Amount": amount,
            "Date": out["Date"],
            "Invoice": out["Invoice"],
        }
        org.credit_notes[credit_note_id] = {
            **credit_note,
            "RemainingCredit": remaining,
            "UpdatedDateUTC": stamp,
            "Allocations": [*credit_note["Allocations"], allocation],
            **({"Status": "PAID", "FullyPaidOnDate": out["Date"]} if remaining == 0 else {}),
        }
        out["StatusAttributeString"] = "OK"
        return out

    # --- tax rates --------------------------------------------------------------------------------

    def _tax_rates(self) -> Response:
        if request.method == "GET":
            with self._lock:
                rates = copy.deepcopy(self._org().tax_rates)
            return self._simple_list("TaxRates", rates)
        return self._write("TaxRates", request.method)

    def _tax_rate_element(
        self, org: SandboxOrg, method: str, element: JSON, out: JSON, errors: list[str]
    ) -> None:
        existing = None
        if method == "POST":
            existing = next(
                (
                    t
                    for t in org.tax_rates
                    if t["TaxType"] == element.get("TaxType") or t["Name"] == element.get("Name")
                ),
                None,
            )
        merged = {**(existing or {}), **element}
        name = merged.get("Name")
        if not isinstance(name, str) or not name.strip():
            errors.append("The tax rate name must be specified.")
            return
        out["Name"] = name
        if any(
            t["Name"].casefold() == name.casefold() and t is not existing for t in org.tax_rates
        ):
            errors.append(f"The tax rate name '{name}' is already in use.")
        report_tax_type = merged.get("ReportTaxType", "OUTPUT")
        if report_tax_type not in REPORT_TAX_TYPES:
            errors.append(
                f"'{report_tax_type}' is not a valid ReportTaxType for this organisation."
            )
        components = merged.get("TaxComponents")
        if not isinstance(components, list) or not components:
            errors.append("A tax rate needs at least one tax component.")
            return
        parsed: list[JSON] = []
        for component in components:
            try:
                rate = _decimal(
                    component.get("Rate") if isinstance(component, dict) else None, "Rate"
                ).quantize(Decimal("0.0001"))
            except _Invalid as invalid:
                errors.append(str(invalid))
                continue
            if rate < 0:
                errors.append("A tax rate cannot be negative.")
            parsed.append(
                {
                    "Name": str(component.get("Name") or name),
                    "Rate": rate,
                    "IsCompound": bool(component.get("IsCompound", False)),
                    "IsNonRecoverable": False,
                }
            )
        if errors:
            return
        effective = sum((c["Rate"] for c in parsed), Decimal("0.0000"))
        tax_type = existing["TaxType"] if existing else org.next_number("TAX", 3)
        rate_doc = {
            **_tax_rate(tax_type, name, "0", str(report_tax_type)),
            "TaxComponents": parsed,
            "DisplayTaxRate": effective,
            "EffectiveRate": effective,
            "Status": merged.get("Status", "ACTIVE"),
        }
        org.tax_rates = [t for t in org.tax_rates if t is not existing] + [rate_doc]
        out.clear()
        out.update(copy.deepcopy(rate_doc))


def _csv(value: str | None) -> list[str]:
    """Xero's list parameters: comma-separated, each item optionally double-quoted."""
    if not value:
        return []
    return [item.strip().strip('"') for item in value.split(",") if item.strip()]
