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
- Banking: bank and other accounts made with PUT Accounts, Payments on invoices and credit notes
  (and their deletion), spend and receive money, transfers between bank accounts, lock dates, and
  `balance` for tests to read an account's balance.
It models behaviour, not the whole product: no batch payments, prepayments, overpayments,
attachments, tracking or reports.
`faults` scripts any other failure (500s, 503s, 401s) on the next calls to a path.

This module is the HTTP gateway; sandbox.xero_wire, xero_where, xero_identity and xero_books
hold the wire formats, the list parameters, the OAuth side and the accounting rules, and
sandbox.xero_banking the rules for money through bank accounts.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, request

from sandbox.faults import Faults
from sandbox.xero_banking import BANKING_ENDPOINTS, Banking
from sandbox.xero_books import ELEMENT_IDS, ZERO_GUID, Books, SandboxOrg, default_tax_rates
from sandbox.xero_identity import DEFAULT_SCOPE, REFRESH_GRACE, Identity
from sandbox.xero_where import (
    HEAVY_FIELDS,
    QueryError,
    csv_values,
    flag,
    modified_since,
    ordered,
    parse_where,
    updated_since,
)
from sandbox.xero_wire import (
    JSON,
    api_error,
    new_id,
    not_found,
    problem,
    render,
    to_json,
    validation_error,
    xero_date,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "DEFAULT_SCOPE",
    "ZERO_GUID",
    "Call",
    "SandboxOrg",
    "XeroSandbox",
    "default_tax_rates",
    "to_json",
]

Clock = Callable[[], datetime]

API_PREFIX = "/api.xro/2.0"
PROVIDER_NAME = "Amazon Xero Bot (sandbox)"
MAX_BATCH = 50
# PUT Accounts takes a single Account (Xero's spec), not a batch.
_BATCH_LIMITS = {"Accounts": 1}
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_IDEMPOTENCY_KEY = 128
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
    "Payments": ("accounting.payments", "accounting.transactions"),
    "BankTransactions": ("accounting.banktransactions", "accounting.transactions"),
    "BankTransfers": ("accounting.banktransactions", "accounting.transactions"),
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
        "Payments",
        "BankTransactions",
        "BankTransfers",
    )
}
_KEYED_COLLECTIONS = (
    "Invoices",
    "CreditNotes",
    "Contacts",
    "Payments",
    "BankTransactions",
    "BankTransfers",
    "connections",
)


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
        self.tenants: list[SandboxOrg] = list(tenants) if tenants is not None else [SandboxOrg()]
        self.minute_limit = minute_limit
        self.day_limit = day_limit
        self.concurrent_limit = concurrent_limit
        self.app_minute_limit = app_minute_limit
        # Seconds each API call holds its concurrency slot, so tests can see overlap.
        self.latency = latency
        self._clock = clock
        self._lock = threading.RLock()
        self.identity = Identity(
            client_id=client_id,
            client_secret=client_secret,
            tenants=self.tenants,
            access_token_ttl=access_token_ttl,
            refresh_grace=refresh_grace,
            clock=clock,
            lock=self._lock,
        )
        self.books = Books(clock)
        self.banking = Banking(self.books, clock)
        # Per organisation, those added to `tenants` later too (a firm's next client).
        self._usage: defaultdict[str, _Usage] = defaultdict(_Usage)
        self._app_minute: deque[float] = deque()
        self.calls: list[Call] = []

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
    def client_id(self) -> str:
        return self.identity.client_id

    @property
    def client_secret(self) -> str:
        return self.identity.client_secret

    @property
    def issued_refresh_tokens(self) -> list[str]:
        return self.identity.issued_refresh_tokens

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
        """Copies of the Invoices, CreditNotes, Contacts, Payments, BankTransactions or
        BankTransfers an organisation holds, oldest first."""
        with self._lock:
            return copy.deepcopy(list(self.org(tenant_id).store(endpoint).values()))

    def balance(self, account_code: str, tenant_id: str | None = None) -> Decimal:
        """The balance payments, bank transactions and transfers leave an account with
        (see Banking.balance): the clearing account's, to check it returns to zero."""
        with self._lock:
            return self.banking.balance(self.org(tenant_id), account_code)

    def api_calls(self, tenant_id: str | None = None) -> list[Call]:
        wanted = tenant_id or self.tenant_id
        return [c for c in self.calls if c.path.startswith(API_PREFIX) and c.tenant_id == wanted]

    def max_in_flight(self, tenant_id: str | None = None) -> int:
        return self._usage[tenant_id or self.tenant_id].max_in_flight

    def authorize_offline(
        self, *, scope: str = DEFAULT_SCOPE, tenant_ids: Sequence[str] | None = None
    ) -> str:
        """A refresh token as if a user had consented, for tests not about the consent page."""
        return self.identity.authorize_offline(scope, tenant_ids or [self.tenant_id])

    def disconnect(self, tenant_id: str | None = None) -> None:
        """Remove the app from an organisation, as its user can in Xero's settings."""
        self.identity.disconnect(tenant_id or self.tenant_id)

    def expire_access_tokens(self) -> None:
        """Make every issued access token stale, as 30 minutes passing would."""
        self.identity.expire_access_tokens()

    # --- wiring ------------------------------------------------------------------------------

    def _routes(self) -> None:
        add = self.app.add_url_rule
        self.identity.add_routes(self.app)
        api = API_PREFIX
        for endpoint in ("Invoices", "CreditNotes", "Contacts", "Payments", "BankTransactions"):
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
        # Xero's POST BankTransfers deletes transfers, which the sandbox does not model.
        add(
            f"{api}/BankTransfers",
            "list_BankTransfers",
            view_func=self._collection("BankTransfers"),
            methods=["GET", "PUT"],
        )
        add(
            f"{api}/BankTransfers/<key>",
            "one_BankTransfers",
            view_func=self._single("BankTransfers"),
            methods=["GET"],
        )
        add(f"{api}/CreditNotes/<key>/Allocations", view_func=self._allocations, methods=["PUT"])
        add(f"{api}/TaxRates", view_func=self._tax_rates, methods=["GET", "PUT", "POST"])
        add(f"{api}/Organisation", view_func=self._organisation, methods=["GET"])
        add(f"{api}/Accounts", view_func=self._accounts, methods=["GET", "PUT"])
        add(f"{api}/Currencies", view_func=self._currencies, methods=["GET"])

    def _now(self) -> datetime:
        return self._clock()

    # --- the API gate: auth, tenant, scope, rate limits --------------------------------------

    def _guard_api(self) -> Response | None:
        if not request.path.startswith(API_PREFIX + "/"):
            return None
        token = self.identity.bearer()
        if token is None:
            return problem(401, "Unauthorized", "AuthenticationUnsuccessful")
        if token.expires_at < self._now():
            stamp = token.expires_at.strftime("%m/%d/%Y %H:%M:%S")
            return problem(401, "Unauthorized", f"TokenExpired: token expired at {stamp}")
        tenant_id = request.headers.get("xero-tenant-id", "")
        connected = self.identity.connected(tenant_id)
        if not connected or tenant_id not in token.grant.tenant_ids:
            return problem(403, "Forbidden", "AuthenticationUnsuccessful")
        resource = request.path[len(API_PREFIX) + 1 :].split("/", 1)[0]
        allowed = _RESOURCE_SCOPES.get(resource, ())
        granted = set(token.grant.scopes)
        if not any(
            scope in granted or (request.method == "GET" and f"{scope}.read" in granted)
            for scope in allowed
        ):
            return problem(401, "Unauthorized", "AuthorizationUnsuccessful")
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
            limit, retry_after = None, 0.0
            if len(usage.day) >= self.day_limit:
                limit, retry_after = "day", 86_400 - (now - usage.day[0])
            elif len(usage.minute) >= self.minute_limit:
                limit, retry_after = "minute", 60 - (now - usage.minute[0])
            elif usage.in_flight >= self.concurrent_limit:
                limit, retry_after = "concurrent", 1.0
            elif len(self._app_minute) >= self.app_minute_limit:
                limit, retry_after = "appminute", 60 - (now - self._app_minute[0])
            if limit is not None:
                response = problem(429, "Too Many Requests", f"Rate limit exceeded: {limit}")
                response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
                response.headers["X-Rate-Limit-Problem"] = limit
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

    def _ok(self, payload: JSON) -> Response:
        return render(self._envelope(payload))

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
        ids = csv_values(args.get("IDs"))
        if ids and id_field:
            wanted = {i.lower() for i in ids}
            documents = [d for d in documents if d[id_field].lower() in wanted]
        if endpoint == "Invoices":
            numbers = {n.casefold() for n in csv_values(args.get("InvoiceNumbers"))}
            if numbers:
                documents = [
                    d for d in documents if d.get("InvoiceNumber", "").casefold() in numbers
                ]
            contact_ids = {c.lower() for c in csv_values(args.get("ContactIDs"))}
            if contact_ids:
                documents = [
                    d for d in documents if d["Contact"]["ContactID"].lower() in contact_ids
                ]
            statuses = set(csv_values(args.get("Statuses")))
            if statuses:
                documents = [d for d in documents if d["Status"] in statuses]
            # Xero has no archived invoices, and every invoice here was made by this one app:
            # both flags are honoured by changing nothing, once they are valid.
            flag(args.get("includeArchived"), "includeArchived")
            flag(args.get("createdByMyApp"), "createdByMyApp")
        if endpoint == "Contacts" and not flag(args.get("includeArchived"), "includeArchived"):
            documents = [d for d in documents if d.get("ContactStatus") != "ARCHIVED"]
        if endpoint == "BankTransfers":
            # Nothing here deletes a transfer, so includeDeleted changes nothing once valid;
            # and the spec gives BankTransfers no paging: a page asked for is refused.
            flag(args.get("includeDeleted"), "includeDeleted")
            if "page" in args:
                raise QueryError("BankTransfers are not paged.")
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
            summary_only = endpoint in HEAVY_FIELDS and flag(
                request.args.get("summaryOnly"), "summaryOnly"
            )
        except QueryError as error:
            return api_error(16, "QueryParseException", str(error))
        page_arg = request.args.get("page")
        if summary_only:
            heavy = HEAVY_FIELDS[endpoint]
            filtered = [{k: v for k, v in d.items() if k not in heavy} for d in filtered]
        elif page_arg is None and endpoint in ("Invoices", "CreditNotes", "BankTransactions"):
            # Unpaged lists are summaries: Xero only returns line items by id or when paging.
            filtered = [{k: v for k, v in d.items() if k != "LineItems"} for d in filtered]
        if page_arg is None:
            return self._ok({endpoint: filtered})
        try:
            page = max(1, int(page_arg))
            size = min(MAX_PAGE_SIZE, max(1, int(request.args.get("pageSize", PAGE_SIZE))))
        except ValueError:
            return api_error(16, "QueryParseException", "page and pageSize must be numbers.")
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
                return not_found()
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
        }.get(endpoint)
        if number_field is None:  # the banking collections are found by id only
            return None
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
                        # "Shown if set" (Xero's spec).
                        **{
                            name: xero_date(lock)
                            for name, lock in (
                                ("PeriodLockDate", org.period_lock_date),
                                ("EndOfYearLockDate", org.end_of_year_lock_date),
                            )
                            if lock is not None
                        },
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
            return api_error(16, "QueryParseException", str(error))
        return self._ok({key: items})

    def _accounts(self) -> Response:
        if request.method == "PUT":
            return self._write("Accounts", "PUT")
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
            return None, api_error(14, "PostDataInvalidException", "Invalid Json data")

    def _idempotent(self, handler: Callable[[], Response]) -> Response:
        """Answer a repeated Idempotency-Key with the first response; nothing runs twice."""
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return handler()
        if len(key) > MAX_IDEMPOTENCY_KEY:
            return api_error(
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
                    return api_error(
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
            return api_error(
                14, "PostDataInvalidException", f"Expected {endpoint} as a list of objects."
            )
        limit = _BATCH_LIMITS.get(endpoint, MAX_BATCH)
        if len(elements) > limit:
            return api_error(
                10,
                "ValidationException",
                f"A maximum of {limit} {endpoint} can be sent in one request.",
            )
        try:
            summarize = flag(request.args.get("summarizeErrors"), "summarizeErrors", True)
        except QueryError as error:
            return api_error(16, "QueryParseException", str(error))
        unit_dp = 4 if request.args.get("unitdp") == "4" else 2
        with self._lock:
            org = self._org()
            results = []
            for element in elements:
                if key is not None:
                    element = {**element, self._id_field(endpoint): key}
                rules = self.banking if endpoint in BANKING_ENDPOINTS else self.books
                results.append(rules.apply(org, endpoint, method, element, unit_dp))
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
        id_field = ELEMENT_IDS.get(endpoint)
        if id_field is not None:
            for element in failed:
                element[id_field] = new_id()
        return validation_error(failed)

    @staticmethod
    def _id_field(endpoint: str) -> str:
        return {**ELEMENT_IDS, "TaxRates": "TaxType"}[endpoint]

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
                return not_found()
            elements = body.get("Allocations", [body]) if isinstance(body, dict) else body
            if not isinstance(elements, list) or not all(isinstance(e, dict) for e in elements):
                return api_error(
                    14, "PostDataInvalidException", "Expected Allocations as a list of objects."
                )
            try:
                summarize = flag(request.args.get("summarizeErrors"), "summarizeErrors", True)
            except QueryError as error:
                return api_error(16, "QueryParseException", str(error))
            results = [self.books.allocation(org, credit_note["CreditNoteID"], e) for e in elements]
        return self._batch_answer("Allocations", results, summarize)

    # --- tax rates --------------------------------------------------------------------------------

    def _tax_rates(self) -> Response:
        if request.method == "GET":
            with self._lock:
                rates = copy.deepcopy(self._org().tax_rates)
            return self._simple_list("TaxRates", rates)
        return self._write("TaxRates", request.method)
