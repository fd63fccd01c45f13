"""A stand-in for Amazon: LWA, the Seller Central consent page, the Reports, Tokens and Sellers
APIs.

One Flask app serves every Amazon host on one port, with Amazon's wire formats: LWA's OAuth
errors, SP-API's `{"errors": [...]}` bodies and headers, usage plans enforced as 429s, report
processing that takes a few polls, restricted documents that need a Restricted Data Token, and
presigned report documents generated on the fly (sandbox.amazon_reports): gzip-compressed like
Amazon's VAT and order reports, plain text like its settlement reports.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import itertools
import json
import random
import re
import secrets
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, request

from sandbox.amazon_reports import (
    ALL_ORDERS_REPORT,
    SETTLEMENT_REPORT,
    VAT_REPORT,
    generate_all_orders_report,
    generate_settlement_report,
    generate_vat_report,
    vat_periods,
)
from sandbox.faults import Faults
from services.amazon import USAGE_PLANS
from services.http import TokenBucket
from services.marketplaces import MARKETPLACES, Region

REPORTS = "/reports/2021-06-30"
TOKENS = "/tokens/2021-03-01"
SELLERS = "/sellers/v1"
# getMarketplaceParticipations' usage plan, from its description in sellers.json.
RESTRICTED_REPORT_TYPES = frozenset({VAT_REPORT})
# Amazon's internal numbers for the settlement types, as its refusal message quotes them.
SETTLEMENT_TYPE_NUMBERS = {
    "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE": 1117,
    SETTLEMENT_REPORT: 1118,
}
PROCESSING_STATUSES = ("CANCELLED", "DONE", "FATAL", "IN_PROGRESS", "IN_QUEUE")
CODE_LIFETIME = 300.0  # LWA authorization codes expire after five minutes
URL_LIFETIME = 300  # presigned document URLs, likewise
RDT_LIFETIME = 3600
RETENTION = timedelta(days=90)  # getReports never looks further back
SETTLEMENT_CADENCE = timedelta(days=14)
# Each marketplace settles on its own 14-day cycle, which starts at some second of the two weeks
# after this (Amazon's periods run from an odd time, e.g. 10.03. 08:24:51 to 24.03. 08:24:50).
SETTLEMENT_ANCHOR = datetime(2025, 12, 29, tzinfo=UTC)
# Amazon serves settlement documents uncompressed: getReportDocument names no compression.
UNCOMPRESSED_REPORT_TYPES = frozenset({SETTLEMENT_REPORT})
# The sandbox is only ever served on loopback (sandbox/server.py).
LOOPBACK = "127.0.0.1"

# Statuses whose answers carry x-amzn-RateLimit-Limit, per API, as the specs declare them.
_RATE_HEADER_STATUSES = {
    "reports": frozenset({200, 202, 400, 404}),
    "tokens": frozenset({200, 400, 404, 415, 429, 500, 503}),
    "sellers": frozenset({200, 400, 404}),  # the others' header is deprecated in sellers.json
}
_API_OF = {"createRestrictedDataToken": "tokens", "getMarketplaceParticipations": "sellers"}
# A marketplace's defaultLanguageCode, as getMarketplaceParticipations gives it.
_LANGUAGES = {
    "AE": "en_AE", "AU": "en_AU", "BE": "fr_BE", "BR": "pt_BR", "CA": "en_CA", "DE": "de_DE",
    "EG": "ar_EG", "ES": "es_ES", "FR": "fr_FR", "GB": "en_GB", "IE": "en_IE", "IN": "en_IN",
    "IT": "it_IT", "JP": "ja_JP", "MX": "es_MX", "NL": "nl_NL", "PL": "pl_PL", "SA": "ar_SA",
    "SE": "sv_SE", "SG": "en_SG", "TR": "tr_TR", "US": "en_US", "ZA": "en_ZA",
}  # fmt: skip
# Paths an RDT can be issued for (Tokens API use case guide), {x} standing for one segment.
_RESTRICTED_PATHS = (
    f"{REPORTS}/documents/{{reportDocumentId}}",
    "/orders/v0/orders",
    "/orders/v0/orders/{orderId}",
    "/orders/v0/orders/{orderId}/address",
    "/orders/v0/orders/{orderId}/buyerInfo",
    "/orders/v0/orders/{orderId}/orderItems",
    "/orders/v0/orders/{orderId}/orderItems/buyerInfo",
)


class _Refused(Exception):
    """Raised by a usage plan's bucket instead of sleeping: the caller gets a 429 now."""


def _refuse(_wait: float) -> None:
    raise _Refused


def _path_matches(template: str, path: str) -> bool:
    pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
    return re.fullmatch(pattern, path) is not None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _parse_time(value: object) -> datetime | None:
    """ISO 8601 with an offset (or Z), as SP-API requires; None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


@dataclass
class _Code:
    redirect_uri: str
    expires: float
    seller: str  # the selling partner id of whoever confirmed the consent
    used: bool = False


@dataclass(frozen=True)
class Seller:
    """A selling account: its id, its store name and the marketplaces it sells in."""

    selling_partner_id: str
    store_name: str
    marketplace_ids: tuple[str, ...]


@dataclass
class _Rdt:
    resources: tuple[tuple[str, str], ...]
    expires: float
    seller: str  # whose access token asked for it: its calls count against that seller's plan


@dataclass
class _Report:
    report_id: str
    report_type: str
    marketplace_ids: list[str]
    data_start: datetime
    data_end: datetime
    created: datetime
    outcome: str  # the status processing will end in
    polls_needed: int
    status: str = "IN_QUEUE"
    polls: int = 0
    processing_start: datetime | None = None
    processing_end: datetime | None = None
    document_id: str | None = None
    # How to write the document once processing is DONE.
    lines: Callable[[], Iterator[str]] | None = field(default=None, repr=False)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "reportId": self.report_id,
            "reportType": self.report_type,
            "marketplaceIds": self.marketplace_ids,
            "dataStartTime": _iso(self.data_start),
            "dataEndTime": _iso(self.data_end),
            "createdTime": _iso(self.created),
            "processingStatus": self.status,
        }
        if self.processing_start:
            body["processingStartTime"] = _iso(self.processing_start)
        if self.processing_end:
            body["processingEndTime"] = _iso(self.processing_end)
        if self.document_id:
            body["reportDocumentId"] = self.document_id
        return body


@dataclass
class _Document:
    report_type: str
    lines: Callable[[], Iterator[str]] = field(repr=False)
    gzip: bool = True


class AmazonSandbox:
    """Amazon for one seller: tests drive it over HTTP and inspect it through its attributes."""

    def __init__(
        self,
        *,
        client_id: str = "sandbox-lwa-client-id",
        client_secret: str = "sandbox-lwa-client-secret",
        application_id: str = "amzn1.sp.solution.sandbox-app",
        application_name: str = "Amazon Xero Bot (sandbox)",
        seed: int = 2026,
        orders_per_report: int = 200,
        report_processing_polls: int = 2,
        draft_app: bool = False,
        redirect_uris: Sequence[str] | None = None,
        enforce_rate_limits: bool = True,
        usage_plans: Mapping[str, tuple[float, int]] | None = None,
        access_token_ttl: int = 3600,
        gzip_documents: bool = True,
        vat_calculation: bool = True,
        document_charset: str = "UTF-8",
        declare_charset: bool = True,
        settlement_marketplace_ids: Sequence[str] = (
            "A1PA6795UKMFR9",
            "A1F83G8C2ARO7P",
            "A1C3SOZRARQ6R3",
            "ATVPDKIKX0DER",
        ),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.application_id = application_id
        self.application_name = application_name
        self.seed = seed
        self.orders_per_report = orders_per_report
        self.report_processing_polls = report_processing_polls
        self.draft_app = draft_app
        self.redirect_uris = list(redirect_uris) if redirect_uris is not None else None
        self.enforce_rate_limits = enforce_rate_limits
        self.access_token_ttl = access_token_ttl
        # False: the VAT and order reports come uncompressed too (settlements always do).
        self.gzip_documents = gzip_documents
        # False: the seller does not use Amazon's VAT calculation service (VCS), so its VAT
        # reports carry only VAT-inclusive amounts.
        self.vat_calculation = vat_calculation
        self.document_charset = document_charset
        # False: the Content-Type names no charset, as with some of Amazon's EU flat files.
        self.declare_charset = declare_charset
        self._clock = clock
        self._rng = random.Random(f"amazon-sandbox:{seed}")
        self.selling_partner_id = self._new_seller_id()
        self.sellers = {
            self.selling_partner_id: Seller(
                self.selling_partner_id, "Sandbox Store", tuple(settlement_marketplace_ids)
            )
        }
        # Whoever is signed in to Seller Central when a consent is confirmed gives it.
        self.signed_in = self.selling_partner_id
        self._lock = threading.RLock()
        self._codes: dict[str, _Code] = {}
        # Every token belongs to the seller who consented: refresh token -> selling partner id.
        self._refresh_tokens: dict[str, str] = {}
        self._access_tokens: dict[str, tuple[float, str]] = {}
        self._rdts: dict[str, _Rdt] = {}
        self._reports: dict[str, _Report] = {}
        self._documents: dict[str, _Document] = {}
        self._report_ids = itertools.count(50_000_000_000 + seed % 10_000 * 100_000)
        self._next_outcomes: deque[str] = deque()
        self._signing_key = secrets.token_bytes(32)
        self._plans = {**USAGE_PLANS, **(usage_plans or {})}
        # SP-API's usage plans are per selling partner and application: one bucket each.
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._rates = {operation: rate for operation, (rate, _) in self._plans.items()}

        self.issued_refresh_tokens: list[str] = []
        self.issued_access_tokens: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.app = Flask(__name__)
        self.app.before_request(self._record)
        self.faults = Faults()
        self.faults.install(self.app)
        self._routes()
        self._create_settlement_reports(settlement_marketplace_ids)

    # --- helpers for tests -----------------------------------------------------------------

    def add_seller(self, store_name: str, marketplace_ids: Sequence[str]) -> str:
        """Another selling account (sign in as it with `signed_in`); its selling partner id."""
        with self._lock:
            seller_id = self._new_seller_id()
            self.sellers[seller_id] = Seller(seller_id, store_name, tuple(marketplace_ids))
        return seller_id

    def authorization_code(self, redirect_uri: str = "https://bot.example/amazon/callback") -> str:
        """What the consent page issues when the seller confirms, without the browser steps."""
        code = "ANDt" + secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(redirect_uri, self._clock() + CODE_LIFETIME, self.signed_in)
        return code

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working, as an hour passing would do."""
        with self._lock:
            for token, (_, seller) in self._access_tokens.items():
                self._access_tokens[token] = (0.0, seller)

    def revoke(self, refresh_token: str) -> None:
        """The seller removed the app in Seller Central."""
        with self._lock:
            self._refresh_tokens.pop(refresh_token, None)

    def end_next_report_with(self, status: str) -> None:
        """The next report created finishes FATAL or CANCELLED instead of DONE."""
        if status not in ("DONE", "FATAL", "CANCELLED"):
            raise ValueError(f"a report cannot end {status}")
        with self._lock:
            self._next_outcomes.append(status)

    def report(self, report_id: str) -> dict[str, Any]:
        """getReport's body, without counting as a poll."""
        with self._lock:
            return self._reports[report_id].body()

    @property
    def settlement_report_ids(self) -> list[str]:
        with self._lock:
            reports = self._reports.values()
            return [r.report_id for r in reports if r.report_type == SETTLEMENT_REPORT]

    # --- plumbing ------------------------------------------------------------------------------

    def _new_seller_id(self) -> str:
        # Like Amazon's merchant ids: A and 13 uppercase letters and digits.
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        return "A" + "".join(self._rng.choice(alphabet) for _ in range(13))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _record(self) -> None:
        with self._lock:
            self.calls.append((request.method, request.path))

    def _routes(self) -> None:
        rule = self.app.add_url_rule
        rule("/auth/o2/token", "lwa_token", self._lwa_token, methods=["POST"])
        rule("/apps/authorize/consent", "consent", self._consent_page, methods=["GET"])
        rule("/apps/authorize/consent", "confirm", self._consent_confirm, methods=["POST"])
        rule(f"{REPORTS}/reports", "createReport", self._create_report, methods=["POST"])
        rule(f"{REPORTS}/reports", "getReports", self._get_reports, methods=["GET"])
        rule(f"{REPORTS}/reports/<report_id>", "getReport", self._get_report, methods=["GET"])
        rule(
            f"{REPORTS}/reports/<report_id>",
            "cancelReport",
            self._cancel_report,
            methods=["DELETE"],
        )
        rule(
            f"{REPORTS}/documents/<document_id>",
            "getReportDocument",
            self._get_document,
            methods=["GET"],
        )
        rule(
            f"{TOKENS}/restrictedDataToken",
            "createRestrictedDataToken",
            self._create_rdt,
            methods=["POST"],
        )
        rule("/documents-bucket/<document_id>", "document", self._download, methods=["GET"])
        rule(
            f"{SELLERS}/marketplaceParticipations",
            "getMarketplaceParticipations",
            self._marketplace_participations,
            methods=["GET"],
        )

    def _sp_response(self, operation: str, status: int, body: Mapping[str, Any] | None) -> Response:
        response = Response(
            json.dumps(body) if body is not None else "",
            status=status,
            mimetype="application/json",
        )
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        api = _API_OF.get(operation, "reports")
        if status in _RATE_HEADER_STATUSES[api]:
            response.headers["x-amzn-RateLimit-Limit"] = f"{self._rates[operation]:g}"
        return response

    def _error(
        self, operation: str, status: int, code: str, message: str, details: str = ""
    ) -> Response:
        body = {"errors": [{"code": code, "message": message, "details": details}]}
        return self._sp_response(operation, status, body)

    def _gate(self, operation: str) -> Response | None:
        """Authentication, then the usage plan: the answer to send instead, or None to proceed."""
        token = request.headers.get("x-amz-access-token", "")
        with self._lock:
            rdt = self._rdts.get(token)
            expires, seller = self._access_tokens.get(token, (None, None))
            now = self._clock()
            # The error's details, or None when the token opens this operation.
            details: str | None
            if not token:
                details = ""
            elif rdt is not None:
                allowed = now < rdt.expires and any(
                    method == request.method and _path_matches(path, request.path)
                    for method, path in rdt.resources
                )
                details = None if allowed else ""
            elif expires is None:
                details = "The access token you provided is revoked, malformed or invalid."
            elif now >= expires:
                details = "The access token you provided has expired."
            else:
                details = None
        if details is not None:
            return self._error(
                operation, 403, "Unauthorized", "Access to requested resource is denied.", details
            )
        if self.enforce_rate_limits:
            try:
                key = (rdt.seller if rdt is not None else seller or "", operation)
                bucket = self._buckets.get(key)
                if bucket is None:
                    rate, burst = self._plans[operation]
                    bucket = self._buckets[key] = TokenBucket(rate, burst, sleep=_refuse)
                bucket.acquire()
            except _Refused:
                message = "You exceeded your quota for the requested resource."
                return self._error(operation, 429, "QuotaExceeded", message)
        return None

    # --- Login with Amazon -------------------------------------------------------------------

    def _oauth_error(self, status: int, error: str, description: str) -> Response:
        body = json.dumps({"error_description": description, "error": error})
        return Response(body, status=status, mimetype="application/json")

    def _invalid_grant(self, parameter: str) -> Response:
        description = f"The request has an invalid grant parameter : {parameter}"
        return self._oauth_error(400, "invalid_grant", description)

    def _lwa_token(self) -> Response:
        form = request.form
        grant = form.get("grant_type", "")
        if grant not in ("authorization_code", "refresh_token"):
            return self._oauth_error(
                400, "unsupported_grant_type", "The authorization grant type is not supported"
            )
        if form.get("client_id") != self.client_id or not hmac.compare_digest(
            form.get("client_secret", ""), self.client_secret
        ):
            return self._oauth_error(401, "invalid_client", "Client authentication failed")
        with self._lock:
            if grant == "authorization_code":
                code = self._codes.get(form.get("code", ""))
                if code is None or code.used or self._clock() >= code.expires:
                    return self._invalid_grant("code")
                code.used = True  # single use, even when the rest of the request is wrong
                if form.get("redirect_uri", code.redirect_uri) != code.redirect_uri:
                    return self._invalid_grant("redirect_uri")
                refresh_token = "Atzr|" + secrets.token_urlsafe(96)
                self._refresh_tokens[refresh_token] = code.seller
                self.issued_refresh_tokens.append(refresh_token)
            else:
                refresh_token = form.get("refresh_token", "")
                if refresh_token not in self._refresh_tokens:
                    return self._invalid_grant("refresh_token")
            seller = self._refresh_tokens[refresh_token]
            access_token = "Atza|" + secrets.token_urlsafe(96)
            self._access_tokens[access_token] = (self._clock() + self.access_token_ttl, seller)
            self.issued_access_tokens.append(access_token)
        body = {
            "access_token": access_token,
            "refresh_token": refresh_token,
            "token_type": "bearer",
            "expires_in": self.access_token_ttl,
        }
        return Response(json.dumps(body), status=200, mimetype="application/json")

    # --- Seller Central consent page ---------------------------------------------------------

    def _page(self, title: str, body: str, status: int = 200) -> Response:
        document = (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
            f"{body}</body></html>"
        )
        return Response(document, status=status, mimetype="text/html")

    def _consent_problem(self, values: Mapping[str, str]) -> tuple[Response | None, str]:
        """An error page for a consent request Amazon would refuse, else the redirect URI."""
        if values.get("application_id") != self.application_id:
            return self._page(
                "This application was not found",
                "<p>The application_id in the authorization link does not match any "
                "Selling Partner API application. Ask the developer for a new link.</p>",
                400,
            ), ""
        if self.draft_app and values.get("version") != "beta":
            return self._page(
                "Error MD1000",
                "<p>This application is in Draft state. Authorizing a Draft application needs "
                "the version=beta parameter in the authorization URI.</p>",
                400,
            ), ""
        redirect_uri = values.get("redirect_uri") or (self.redirect_uris or [""])[0]
        allowed = (
            redirect_uri in self.redirect_uris
            if self.redirect_uris is not None
            else redirect_uri.startswith(("https://", "http://"))
        )
        if not allowed:
            return self._page(
                "Error MD5101",
                "<p>The redirect URI does not match any OAuth redirect URI registered for this "
                "application.</p>",
                400,
            ), ""
        return None, redirect_uri

    def _consent_page(self) -> Response:
        problem, redirect_uri = self._consent_problem(request.args)
        if problem is not None:
            return problem
        hidden = "".join(
            f"<input type='hidden' name='{name}' value='{html.escape(value, quote=True)}'>"
            for name, value in (
                ("application_id", self.application_id),
                ("state", request.args.get("state", "")),
                ("redirect_uri", redirect_uri),
                ("version", request.args.get("version", "")),
            )
        )
        return self._page(
            f"Authorize {self.application_name}",
            f"<p>{html.escape(self.application_name)} is requesting access to your selling "
            "account: finance and accounting, tax invoicing (restricted).</p>"
            f"<form method='post' action='/apps/authorize/consent'>{hidden}"
            "<button type='submit' name='confirm' value='1'>Confirm</button></form>",
        )

    def _consent_confirm(self) -> Response:
        problem, redirect_uri = self._consent_problem(request.form)
        if problem is not None:
            return problem
        code = self.authorization_code(redirect_uri)
        query = urlencode(
            {
                "state": request.form.get("state", ""),
                "selling_partner_id": self.signed_in,
                "spapi_oauth_code": code,
            }
        )
        separator = "&" if "?" in redirect_uri else "?"
        return Response(status=302, headers={"Location": f"{redirect_uri}{separator}{query}"})

    # --- Sellers API -----------------------------------------------------------------------

    def _marketplace_participations(self) -> Response:
        """getMarketplaceParticipations: the marketplaces of the seller the token belongs to,
        with its store name; nothing in the answer names the seller's id (sellers.json)."""
        refused = self._gate("getMarketplaceParticipations")
        if refused is not None:
            return refused
        with self._lock:
            _, seller_id = self._access_tokens[request.headers["x-amz-access-token"]]
            seller = self.sellers[seller_id]
        markets = [MARKETPLACES[m] for m in seller.marketplace_ids if m in MARKETPLACES]
        payload = [
            {
                "marketplace": {
                    "id": market.id,
                    "name": market.domain.capitalize(),  # "Amazon.de"
                    "countryCode": market.country,
                    "defaultCurrencyCode": market.currency,
                    "defaultLanguageCode": _LANGUAGES[market.country],
                    "domainName": f"www.{market.domain}",
                },
                "storeName": seller.store_name,
                "participation": {"isParticipating": True, "hasSuspendedListings": False},
            }
            for market in markets
        ]
        return self._sp_response("getMarketplaceParticipations", 200, {"payload": payload})

    # --- Reports API -----------------------------------------------------------------------

    def _new_document_id(self, marketplace_ids: Iterable[str]) -> str:
        regions = {MARKETPLACES[m].region for m in marketplace_ids if m in MARKETPLACES}
        region = "na" if Region.NA in regions else "eu"
        return f"amzn1.spdoc.1.4.{region}.{uuid.UUID(int=self._rng.getrandbits(128), version=4)}"

    def _create_settlement_reports(self, marketplace_ids: Sequence[str]) -> None:
        """The settlements of the last 90 days, per marketplace, EU and North America alike,
        listed as Amazon lists them: dataStartTime and dataEndTime the settlement's period,
        createdTime shortly after it closes."""
        now = self._now()
        # The seller's VAT report: the one a sync of all its EU and UK marketplaces asks for.
        vat_ids = tuple(m for m in marketplace_ids if MARKETPLACES[m].region == Region.EU)
        cycles = []
        for marketplace_id in marketplace_ids:
            cycle = random.Random(f"settlement-cycle:{self.seed}:{marketplace_id}")
            offset = timedelta(seconds=cycle.randrange(int(SETTLEMENT_CADENCE.total_seconds())))
            cycles.append((SETTLEMENT_ANCHOR + offset, marketplace_id, cycle))
        for start, marketplace_id, cycle in cycles:
            while start + SETTLEMENT_CADENCE <= now:
                end = start + SETTLEMENT_CADENCE - timedelta(seconds=1)
                created = end + timedelta(minutes=cycle.randint(40, 180))
                if now - RETENTION <= created <= now:
                    self._add_settlement(marketplace_id, start, end, created, vat_ids)
                start += SETTLEMENT_CADENCE

    def _add_settlement(
        self,
        marketplace_id: str,
        start: datetime,
        end: datetime,
        created: datetime,
        vat_ids: tuple[str, ...],
    ) -> None:
        report_id = str(next(self._report_ids))
        document_id = self._new_document_id([marketplace_id])
        settlement_id = str(self._rng.randrange(10**10, 10**11))

        def lines() -> Iterator[str]:
            # Read when downloaded, like the VAT report's: the orders it settles are the
            # ones the sandbox serves then.
            return generate_settlement_report(
                period=(start, end),
                marketplace_id=marketplace_id,
                seed=self.seed,
                orders=self.orders_per_report,
                settlement_id=settlement_id,
                vat_marketplace_ids=vat_ids if marketplace_id in vat_ids else None,
                vat_calculation=self.vat_calculation,
            )

        self._documents[document_id] = _Document(SETTLEMENT_REPORT, lines, gzip=False)
        self._reports[report_id] = _Report(
            report_id=report_id,
            report_type=SETTLEMENT_REPORT,
            marketplace_ids=[marketplace_id],
            data_start=start,
            data_end=end,
            created=created,
            outcome="DONE",
            polls_needed=0,
            status="DONE",
            processing_start=created - timedelta(minutes=20),
            processing_end=created,
            document_id=document_id,
        )

    def _document_lines(
        self, report_type: str, marketplace_ids: list[str], start: datetime, end: datetime
    ) -> Callable[[], Iterator[str]]:
        seed, orders, vcs = self.seed, self.orders_per_report, self.vat_calculation
        if report_type == VAT_REPORT:
            months = vat_periods(start, end)

            def vat_lines() -> Iterator[str]:
                for index, period in enumerate(months):
                    report = generate_vat_report(
                        period=period,
                        marketplace_ids=marketplace_ids,
                        seed=seed,
                        orders=orders,
                        vat_calculation=vcs,
                    )
                    if index:
                        next(report)  # one header for the whole range
                    yield from report

            return vat_lines

        def order_lines() -> Iterator[str]:
            for index, marketplace_id in enumerate(marketplace_ids):
                report = generate_all_orders_report(
                    period=(start, end), marketplace_id=marketplace_id, seed=seed, orders=orders
                )
                if index:
                    next(report)
                yield from report

        return order_lines

    def _create_report(self) -> Response:
        operation = "createReport"
        refused = self._gate(operation)
        if refused is not None:
            return refused
        if request.mimetype != "application/json":
            return self._error(operation, 415, "InvalidInput", "Unsupported Media Type")
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self._error(operation, 400, "InvalidInput", "Invalid request body")
        report_type = body.get("reportType")
        marketplace_ids = body.get("marketplaceIds")
        if not isinstance(report_type, str) or not report_type:
            return self._error(operation, 400, "InvalidInput", "reportType is required")
        if (
            not isinstance(marketplace_ids, list)
            or not 1 <= len(marketplace_ids) <= 25
            or not all(isinstance(m, str) for m in marketplace_ids)
        ):
            message = "marketplaceIds must list 1 to 25 ids"
            return self._error(operation, 400, "InvalidInput", message)
        if report_type in SETTLEMENT_TYPE_NUMBERS:
            number = SETTLEMENT_TYPE_NUMBERS[report_type]
            return self._error(
                operation,
                400,
                "InvalidInput",
                f"Request for report type {number} is not allowed at this time",
            )
        unknown = [m for m in marketplace_ids if m not in MARKETPLACES]
        if unknown:
            return self._error(operation, 400, "InvalidInput", "Invalid marketplaceIds specified")
        regions = {MARKETPLACES[m].region for m in marketplace_ids}
        supported = {VAT_REPORT: {Region.EU}, ALL_ORDERS_REPORT: {Region.NA}}
        if report_type not in supported:
            return self._error(operation, 400, "InvalidInput", f"Invalid reportType {report_type}")
        if not regions <= supported[report_type]:
            return self._error(
                operation,
                400,
                "InvalidInput",
                f"{report_type} is not available in the marketplaces requested",
            )
        now = self._now()
        start = _parse_time(body.get("dataStartTime", _iso(now)))
        end = _parse_time(body.get("dataEndTime", _iso(now)))
        if start is None or end is None:
            return self._error(
                operation, 400, "InvalidInput", "dataStartTime and dataEndTime must be ISO 8601"
            )
        if start > end:
            return self._error(
                operation, 400, "InvalidInput", "dataStartTime must be before dataEndTime"
            )
        with self._lock:
            report_id = str(next(self._report_ids))
            outcome = self._next_outcomes.popleft() if self._next_outcomes else "DONE"
            self._reports[report_id] = _Report(
                report_id=report_id,
                report_type=report_type,
                marketplace_ids=list(marketplace_ids),
                data_start=start,
                data_end=end,
                created=now,
                outcome=outcome,
                polls_needed=self.report_processing_polls,
                lines=self._document_lines(report_type, marketplace_ids, start, end),
            )
        return self._sp_response(operation, 202, {"reportId": report_id})

    def _advance(self, report: _Report) -> None:
        """One poll's worth of processing: IN_QUEUE, then IN_PROGRESS, then the outcome."""
        report.polls += 1
        if report.status not in ("IN_QUEUE", "IN_PROGRESS"):
            return
        now = self._now()
        if report.polls > report.polls_needed:
            report.status = report.outcome
            report.processing_start = report.processing_start or now
            report.processing_end = now
            if report.outcome == "DONE" and report.lines is not None:
                document_id = self._new_document_id(report.marketplace_ids)
                compressed = self.gzip_documents and (
                    report.report_type not in UNCOMPRESSED_REPORT_TYPES
                )
                self._documents[document_id] = _Document(
                    report.report_type, report.lines, gzip=compressed
                )
                report.document_id = document_id
        elif report.polls > 1:
            report.status = "IN_PROGRESS"
            report.processing_start = report.processing_start or now

    def _on_report(
        self, operation: str, report_id: str, answer: Callable[[_Report], Response]
    ) -> Response:
        """A call about one report: throttled as Amazon throttles it, 404 for an unknown id,
        else `answer`, under the lock."""
        refused = self._gate(operation)
        if refused is not None:
            return refused
        with self._lock:
            report = self._reports.get(report_id)
            if report is None:
                return self._error(operation, 404, "NotFound", f"Report {report_id} not found")
            return answer(report)

    def _get_report(self, report_id: str) -> Response:
        def answer(report: _Report) -> Response:
            self._advance(report)
            return self._sp_response("getReport", 200, report.body())

        return self._on_report("getReport", report_id, answer)

    def _cancel_report(self, report_id: str) -> Response:
        def answer(report: _Report) -> Response:
            if report.status != "IN_QUEUE":
                return self._error(
                    "cancelReport", 400, "InvalidInput", "Only reports IN_QUEUE can be cancelled"
                )
            report.status = report.outcome = "CANCELLED"
            report.processing_end = self._now()
            return self._sp_response("cancelReport", 200, None)

        return self._on_report("cancelReport", report_id, answer)

    def _get_reports(self) -> Response:
        operation = "getReports"
        refused = self._gate(operation)
        if refused is not None:
            return refused
        args = request.args
        if "nextToken" in args:
            if len(args) > 1:
                return self._error(
                    operation, 400, "InvalidInput", "nextToken must be the only parameter"
                )
            try:
                query = json.loads(base64.urlsafe_b64decode(args["nextToken"]))
            except (ValueError, binascii.Error):
                return self._error(operation, 400, "InvalidInput", "Invalid nextToken")
        else:
            query, problem = self._reports_query()
            if problem:
                return self._error(operation, 400, "InvalidInput", problem)
        since = datetime.fromisoformat(query["createdSince"])
        until = datetime.fromisoformat(query["createdUntil"])
        with self._lock:
            matching = sorted(
                (
                    r
                    for r in self._reports.values()
                    if r.report_type in query["reportTypes"]
                    and (not query["statuses"] or r.status in query["statuses"])
                    and (
                        not query["marketplaceIds"]
                        or set(r.marketplace_ids) & set(query["marketplaceIds"])
                    )
                    and since <= r.created <= until
                ),
                key=lambda r: (r.created, r.report_id),
                reverse=True,
            )
            offset, size = query["offset"], query["pageSize"]
            page = [r.body() for r in matching[offset : offset + size]]
        body: dict[str, Any] = {"reports": page}
        if offset + size < len(matching):
            token = json.dumps({**query, "offset": offset + size}).encode()
            body["nextToken"] = base64.urlsafe_b64encode(token).decode()
        return self._sp_response(operation, 200, body)

    def _reports_query(self) -> tuple[dict[str, Any], str]:
        """getReports' filters, checked as the spec constrains them, or the problem found."""
        args = request.args

        def listed(name: str) -> list[str]:
            # Swagger 2's default collectionFormat is csv; repeated parameters are taken too.
            return [v for value in args.getlist(name) for v in value.split(",") if v]

        report_types = listed("reportTypes")
        statuses = listed("processingStatuses")
        marketplace_ids = listed("marketplaceIds")
        if not 1 <= len(report_types) <= 10:
            return {}, "reportTypes (1 to 10) or nextToken is required"
        if any(s not in PROCESSING_STATUSES for s in statuses):
            return {}, "processingStatuses has an unknown status"
        if len(marketplace_ids) > 10:
            return {}, "marketplaceIds takes at most 10 ids"
        try:
            page_size = int(args.get("pageSize", "10"))
        except ValueError:
            page_size = 0
        if not 1 <= page_size <= 100:
            return {}, "pageSize must be between 1 and 100"
        now = self._now()
        since = _parse_time(args.get("createdSince", _iso(now - RETENTION)))
        until = _parse_time(args.get("createdUntil", _iso(now)))
        if since is None or until is None:
            return {}, "createdSince and createdUntil must be ISO 8601 date-times"
        query = {
            "reportTypes": report_types,
            "statuses": statuses,
            "marketplaceIds": marketplace_ids,
            "createdSince": max(since, now - RETENTION).isoformat(),
            "createdUntil": until.isoformat(),
            "pageSize": page_size,
            "offset": 0,
        }
        return query, ""

    def _get_document(self, document_id: str) -> Response:
        operation = "getReportDocument"
        refused = self._gate(operation)
        if refused is not None:
            return refused
        with self._lock:
            document = self._documents.get(document_id)
            restricted = document is not None and document.report_type in RESTRICTED_REPORT_TYPES
            token = request.headers.get("x-amz-access-token", "")
            if restricted and token not in self._rdts:
                return self._error(
                    operation, 403, "Unauthorized", "Access to requested resource is denied."
                )
        if document is None:
            return self._error(
                operation, 404, "NotFound", f"Report document {document_id} not found"
            )
        body = {"reportDocumentId": document_id, "url": self._presign(document_id)}
        if document.gzip:
            body["compressionAlgorithm"] = "GZIP"
        return self._sp_response(operation, 200, body)

    # --- the presigned document bucket --------------------------------------------------------

    def _signature(self, document_id: str, stamp: str) -> str:
        message = f"{document_id}\n{stamp}\n{URL_LIFETIME}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def _presign(self, document_id: str) -> str:
        stamp = self._now().strftime("%Y%m%dT%H%M%SZ")
        query = urlencode(
            {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Date": stamp,
                "X-Amz-Expires": URL_LIFETIME,
                "X-Amz-Signature": self._signature(document_id, stamp),
            }
        )
        # From the port this server is bound to, never from the Host header, which a client may
        # set to anything (python-amazon-sp-api sends the SP-API host's name).
        port = request.environ["SERVER_PORT"]
        return f"http://{LOOPBACK}:{port}/documents-bucket/{document_id}?{query}"

    def _s3_error(self, code: str, message: str) -> Response:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>"
        )
        return Response(body, status=403, mimetype="application/xml")

    def _download(self, document_id: str) -> Response:
        stamp = request.args.get("X-Amz-Date", "")
        signature = request.args.get("X-Amz-Signature", "")
        if not hmac.compare_digest(signature, self._signature(document_id, stamp)):
            return self._s3_error(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        signed = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if self._now() > signed + timedelta(seconds=URL_LIFETIME):
            return self._s3_error("AccessDenied", "Request has expired")
        with self._lock:
            document = self._documents[document_id]
        mimetype = "text/plain"
        if self.declare_charset:
            mimetype += f";charset={self.document_charset}"
        body = _encoded(document.lines(), self.document_charset, gzip=document.gzip)
        return Response(body, status=200, headers={"Content-Type": mimetype})

    # --- Tokens API ------------------------------------------------------------------------

    def _create_rdt(self) -> Response:
        operation = "createRestrictedDataToken"
        refused = self._gate(operation)
        if refused is not None:
            return refused
        body = request.get_json(silent=True)
        resources = body.get("restrictedResources") if isinstance(body, dict) else None
        if not isinstance(resources, list) or not 1 <= len(resources) <= 50:
            return self._error(
                operation, 400, "InvalidInput", "restrictedResources must list 1 to 50 resources"
            )
        granted: list[tuple[str, str]] = []
        for resource in resources:
            method = resource.get("method") if isinstance(resource, dict) else None
            path = resource.get("path") if isinstance(resource, dict) else None
            if method not in ("GET", "PUT", "POST", "DELETE") or not isinstance(path, str):
                return self._error(
                    operation, 400, "InvalidInput", "Each restricted resource needs method and path"
                )
            if not any(_path_matches(template, path) for template in _RESTRICTED_PATHS):
                return self._error(
                    operation, 400, "InvalidInput", f"{method} {path} is not a restricted resource"
                )
            granted.append((method, path))
        token = "Atz.sprdt|" + secrets.token_urlsafe(96)
        with self._lock:
            _, seller = self._access_tokens[request.headers["x-amz-access-token"]]
            self._rdts[token] = _Rdt(tuple(granted), self._clock() + RDT_LIFETIME, seller)
        body = {"restrictedDataToken": token, "expiresIn": RDT_LIFETIME}
        return self._sp_response(operation, 200, body)


def _encoded(lines: Iterator[str], charset: str, *, gzip: bool) -> Iterator[bytes]:
    """Lines as bytes in `charset`, gzip-compressed when asked, in chunks of about 64 KiB."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        # Amazon writes characters the charset lacks as "?", which is what replace does.
        data = (line + "\n").encode(charset, errors="replace")
        chunk.append(data)
        size += len(data)
        if size >= 65536:
            joined = b"".join(chunk)
            chunk, size = [], 0
            out = compressor.compress(joined) if compressor else joined
            if out:
                yield out
    joined = b"".join(chunk)
    yield compressor.compress(joined) + compressor.flush() if compressor else joined
