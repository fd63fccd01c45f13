"""Amazon Selling Partner API: the consent link, LWA tokens, reports and their documents.

Plain Python with no Slack and no database: callers pass in what they stored (the refresh
token) and get back values or a ServiceError. Token values never appear in an error message
or a log line; Amazon's own error text is scrubbed of anything that looks like a token.

Decisions callers should know:
- A report that ends CANCELLED is a ServiceError of kind NOT_FOUND (not retryable): Amazon
  cancels a report by itself when there is no data for the range, so for a scheduled period it
  means "nothing to post", and a caller may treat it that way.
- A report that ends FATAL is UPSTREAM_UNAVAILABLE and retryable: Amazon gives no reason a
  caller could fix, and requesting the report again later usually works.
- A document's text is decoded with the charset its Content-Type names. Without one it is read
  as UTF-8 and, at the first byte sequence that is not UTF-8, as Windows-1252 from there on:
  EU flat files come in either, the two agree on ASCII, so the lines already read stay right.
- `api_calls` counts every HTTP request sent to SP-API (retries and RDT requests included,
  LWA and the document download, which go to other hosts, excluded).
"""

from __future__ import annotations

import codecs
import email.message
import functools
import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import requests

from services.errors import ErrorKind, ServiceError
from services.http import (
    Clock,
    Sleep,
    TokenBucket,
    exponential_backoff,
    retry_after_seconds,
    send_with_retries,
)
from services.textstream import decode_lines, gunzip, unpack_limit

log = logging.getLogger(__name__)

USER_AGENT = "amazon-xero-bot/0.1 (Language=Python)"
REPORTS = "/reports/2021-06-30"
TOKENS = "/tokens/2021-03-01"

# Default usage plans, (requests per second, burst), from the operations' descriptions in
# reports_2021-06-30.json and tokens_2021-03-01.json.
USAGE_PLANS: dict[str, tuple[float, int]] = {
    "getReports": (0.0222, 10),
    "createReport": (0.0167, 15),
    "cancelReport": (0.0222, 10),
    "getReport": (2.0, 15),
    "getReportDocument": (0.0167, 15),
    "createRestrictedDataToken": (1.0, 10),
    "getMarketplaceParticipations": (0.016, 15),
}

REPORT_NAMES = {
    "GET_VAT_TRANSACTION_DATA": "VAT transactions report",
    "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2": "settlement report",
    "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL": "all-orders report",
}

ACCESS_TOKEN_MARGIN = 60.0  # refresh this long before LWA says the token expires
POLL_BASE, POLL_CAP = 2.0, 60.0  # getReport polling backoff, seconds
DOWNLOAD_CHUNK = 64 * 1024
_TOKEN_PATTERN = re.compile(r"Atz[a-z.]*\|[^\s\"',;]+")
# Charset names Amazon sends that Python spells differently.
_CHARSET_ALIASES = {"windows-31j": "cp932"}


def consent_url(
    *, seller_central_url: str, application_id: str, state: str, redirect_uri: str, draft: bool
) -> str:
    """The Seller Central page where the seller authorizes the app (website workflow)."""
    params = {"application_id": application_id, "state": state, "redirect_uri": redirect_uri}
    if draft:
        params["version"] = "beta"  # Amazon answers MD1000 for a draft app without it
    return f"{seller_central_url.rstrip('/')}/apps/authorize/consent?{urlencode(params)}"


def _scrub(text: str) -> str:
    return _TOKEN_PATTERN.sub("[redacted]", text)


def _iso(moment: datetime, name: str) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _wait_for(response: requests.Response | None, attempt: int) -> float:
    """Retry-After if Amazon sent one, else one request's worth of the usage plan, else backoff."""
    if response is not None:
        retry_after = retry_after_seconds(response)
        if retry_after is not None:
            return retry_after
        try:
            rate = float(response.headers.get("x-amzn-RateLimit-Limit", ""))
        except ValueError:
            rate = 0.0
        if rate > 0:
            return 1 / rate
    return exponential_backoff(attempt)


# --- Login with Amazon ------------------------------------------------------------------------


class LwaClient:
    """Exchanges authorization codes and refresh tokens for tokens, caching access tokens."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        session: requests.Session | None = None,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._session = session or requests.Session()
        self._clock = clock
        self._sleep = sleep
        self._cache: dict[str, tuple[str, float]] = {}  # refresh token -> (access token, expiry)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def exchange_code(self, code: str, redirect_uri: str) -> str:
        """The seller's refresh token, for the spapi_oauth_code Amazon sent to redirect_uri."""
        body = self._token_request(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            invalid_grant=(
                "Amazon did not accept the authorization code: it was already used or has "
                "expired (codes last five minutes). Start the Amazon connection again."
            ),
        )
        refresh_token = body.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            raise ServiceError(
                ErrorKind.BAD_DATA, "Amazon's login service answered without a refresh token."
            )
        self._remember(refresh_token, body)
        return refresh_token

    def access_token(self, refresh_token: str) -> str:
        """A valid access token for this seller, from the cache until shortly before expiry."""
        with self._locks_lock:
            lock = self._locks.setdefault(refresh_token, threading.Lock())
        with lock:  # one refresh per seller at a time; other sellers are not held up
            cached = self._cache.get(refresh_token)
            if cached is not None and self._clock() < cached[1] - ACCESS_TOKEN_MARGIN:
                return cached[0]
            body = self._token_request(
                {"grant_type": "refresh_token", "refresh_token": refresh_token},
                invalid_grant=(
                    "Amazon no longer accepts this seller's authorization (it was revoked or "
                    "has expired). Connect the Amazon account again from Seller Central."
                ),
            )
            return self._remember(refresh_token, body)

    def invalidate(self, refresh_token: str, access_token: str | None = None) -> None:
        """Forget the cached access token (only if it is still `access_token`, when given)."""
        with self._locks_lock:
            cached = self._cache.get(refresh_token)
            if cached is not None and access_token in (None, cached[0]):
                del self._cache[refresh_token]

    def _remember(self, refresh_token: str, body: Mapping[str, Any]) -> str:
        access_token = body.get("access_token")
        expires_in = body.get("expires_in", 3600)
        if not isinstance(access_token, str) or not access_token:
            raise ServiceError(
                ErrorKind.BAD_DATA, "Amazon's login service answered without an access token."
            )
        if not isinstance(expires_in, int | float):
            expires_in = 3600
        with self._locks_lock:
            self._cache[refresh_token] = (access_token, self._clock() + float(expires_in))
        return access_token

    def _token_request(self, form: dict[str, str], *, invalid_grant: str) -> dict[str, Any]:
        data = {**form, "client_id": self._client_id, "client_secret": self._client_secret}

        def send() -> requests.Response:
            return self._session.post(
                self.token_url,
                data=data,
                headers={"user-agent": USER_AGENT, "accept": "application/json"},
                timeout=(10, 30),
            )

        response = send_with_retries(
            send, service="Amazon's login service (LWA)", wait_for=_wait_for, sleep=self._sleep
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and isinstance(body, dict):
            return body
        error = body.get("error") if isinstance(body, dict) else None
        log.warning("LWA %s refused: HTTP %s %s", form["grant_type"], response.status_code, error)
        if error == "invalid_client" or response.status_code == 401:
            raise ServiceError(
                ErrorKind.AUTH,
                "Amazon rejected the app's login credentials; check AMAZON_LWA_CLIENT_ID and "
                "AMAZON_LWA_CLIENT_SECRET.",
                retryable=False,
            )
        if error == "invalid_grant":
            raise ServiceError(ErrorKind.AUTH, invalid_grant, retryable=False)
        reason = error if isinstance(error, str) and error.isidentifier() else "unexpected answer"
        raise ServiceError(
            ErrorKind.AUTH,
            f"Amazon's login service refused the request ({reason}, HTTP {response.status_code}).",
            retryable=False,
        )


# --- Selling Partner API ----------------------------------------------------------------------


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Report:
    report_id: str
    report_type: str
    processing_status: str  # IN_QUEUE | IN_PROGRESS | DONE | FATAL | CANCELLED
    created_time: datetime
    marketplace_ids: tuple[str, ...] = ()
    data_start_time: datetime | None = None
    data_end_time: datetime | None = None
    processing_start_time: datetime | None = None
    processing_end_time: datetime | None = None
    report_document_id: str | None = None
    report_schedule_id: str | None = None

    @property
    def name(self) -> str:
        """How a finance person would call it, with Amazon's id for support."""
        label = REPORT_NAMES.get(self.report_type, self.report_type)
        return f"{label} (report {self.report_id})"

    @classmethod
    def from_json(cls, body: object) -> Report:
        try:
            if not isinstance(body, dict):
                raise TypeError("not an object")
            created = _parse_time(body["createdTime"])
            if created is None:
                raise ValueError("no createdTime")
            return cls(
                report_id=str(body["reportId"]),
                report_type=str(body["reportType"]),
                processing_status=str(body["processingStatus"]),
                created_time=created,
                marketplace_ids=tuple(body.get("marketplaceIds") or ()),
                data_start_time=_parse_time(body.get("dataStartTime")),
                data_end_time=_parse_time(body.get("dataEndTime")),
                processing_start_time=_parse_time(body.get("processingStartTime")),
                processing_end_time=_parse_time(body.get("processingEndTime")),
                report_document_id=body.get("reportDocumentId"),
                report_schedule_id=body.get("reportScheduleId"),
            )
        except (KeyError, TypeError, ValueError):
            raise ServiceError(
                ErrorKind.BAD_DATA, "Amazon described a report in an unexpected format."
            ) from None


@dataclass(frozen=True)
class ReportDocument:
    report_document_id: str
    url: str = field(repr=False)  # presigned for five minutes: as good as a password until then
    compression_algorithm: str | None = None


class SpApiClient:
    """One seller's SP-API: client-side usage plans, retries, token refresh on 403."""

    def __init__(
        self,
        *,
        endpoint: str,
        lwa: LwaClient,
        refresh_token: str,
        session: requests.Session | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._lwa = lwa
        self._refresh_token = refresh_token
        self._session = session or requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._buckets = {
            operation: TokenBucket(rate, burst, clock=clock, sleep=sleep)
            for operation, (rate, burst) in USAGE_PLANS.items()
        }
        self._count_lock = threading.Lock()
        self.api_calls = 0

    # --- reports -----------------------------------------------------------------------------

    def create_report(
        self, report_type: str, marketplace_ids: Sequence[str], start: datetime, end: datetime
    ) -> str:
        body = {
            "reportType": report_type,
            "marketplaceIds": list(marketplace_ids),
            "dataStartTime": _iso(start, "start"),
            "dataEndTime": _iso(end, "end"),
        }
        response = self._call("createReport", "POST", f"{REPORTS}/reports", body=body)
        report_id = _json(response).get("reportId")
        if not isinstance(report_id, str):
            raise ServiceError(ErrorKind.BAD_DATA, "Amazon accepted the report without an id.")
        return report_id

    def get_report(self, report_id: str) -> Report:
        path = f"{REPORTS}/reports/{quote(report_id, safe='')}"
        return Report.from_json(_json(self._call("getReport", "GET", path)))

    def wait_for_report(self, report_id: str, *, max_wait: float = 3600) -> Report:
        """Poll getReport with backoff until the report is DONE; anything else is an error."""
        started = self._clock()
        attempt = 0
        while True:
            report = self.get_report(report_id)
            status = report.processing_status
            if status == "DONE":
                if not report.report_document_id:
                    raise ServiceError(
                        ErrorKind.BAD_DATA, f"Amazon finished the {report.name} without a document."
                    )
                return report
            if status == "FATAL":
                raise ServiceError(
                    ErrorKind.UPSTREAM_UNAVAILABLE,
                    f"Amazon could not produce the {report.name}: it stopped with an error "
                    "(FATAL). Requesting it again later usually works.",
                    retryable=True,
                )
            if status == "CANCELLED":
                raise ServiceError(
                    ErrorKind.NOT_FOUND,
                    f"Amazon cancelled the {report.name}. Amazon does this when there is no "
                    "data for the period requested.",
                    retryable=False,
                )
            attempt += 1
            delay = exponential_backoff(attempt, base=POLL_BASE, cap=POLL_CAP)
            if self._clock() - started + delay > max_wait:
                raise ServiceError(
                    ErrorKind.UPSTREAM_UNAVAILABLE,
                    f"Amazon has not finished the {report.name} after {max_wait / 60:.0f} "
                    f"minutes (still {status}). Try again later.",
                    retryable=True,
                )
            self._sleep(delay)

    def marketplace_participations(self) -> dict[str, str]:
        """Marketplace id -> store name of the seller this token belongs to (Sellers API
        getMarketplaceParticipations): what a refresh token itself proves about its seller."""
        response = self._call(
            "getMarketplaceParticipations", "GET", "/sellers/v1/marketplaceParticipations"
        )
        return {
            str(entry["marketplace"]["id"]): str(entry["storeName"])
            for entry in _json(response).get("payload") or []
            if entry.get("participation", {}).get("isParticipating", True)
        }

    def get_reports(
        self,
        report_types: Sequence[str],
        *,
        created_since: datetime,
        created_until: datetime | None = None,
        marketplace_ids: Sequence[str] | None = None,
        processing_statuses: Sequence[str] = ("DONE",),
        page_size: int = 100,
    ) -> list[Report]:
        """Every matching report, newest first, following nextToken to the last page."""
        params: dict[str, str | int] = {
            "reportTypes": ",".join(report_types),
            "createdSince": _iso(created_since, "created_since"),
            "pageSize": page_size,
        }
        if created_until is not None:
            params["createdUntil"] = _iso(created_until, "created_until")
        if marketplace_ids:
            params["marketplaceIds"] = ",".join(marketplace_ids)
        if processing_statuses:
            params["processingStatuses"] = ",".join(processing_statuses)
        reports: list[Report] = []
        while True:
            body = _json(self._call("getReports", "GET", f"{REPORTS}/reports", params=params))
            reports.extend(Report.from_json(item) for item in body.get("reports") or [])
            next_token = body.get("nextToken")
            if not next_token:
                return reports
            params = {"nextToken": next_token}  # Amazon refuses it with any other parameter

    def get_report_document(self, document_id: str, *, restricted: bool = False) -> ReportDocument:
        """Where to download a document; `restricted` documents (VAT) need an RDT first."""
        path = f"{REPORTS}/documents/{quote(document_id, safe='')}"
        body = _json(self._call("getReportDocument", "GET", path, restricted=restricted))
        url = body.get("url")
        if not isinstance(url, str) or not url:
            raise ServiceError(
                ErrorKind.BAD_DATA, f"Amazon described report document {document_id} without a URL."
            )
        return ReportDocument(
            report_document_id=str(body.get("reportDocumentId") or document_id),
            url=url,
            compression_algorithm=body.get("compressionAlgorithm"),
        )

    def restricted_data_token(self, path: str, method: str = "GET") -> str:
        """A Restricted Data Token valid for exactly this method and path."""
        body = {"restrictedResources": [{"method": method, "path": path}]}
        response = self._call(
            "createRestrictedDataToken", "POST", f"{TOKENS}/restrictedDataToken", body=body
        )
        token = _json(response).get("restrictedDataToken")
        if not isinstance(token, str) or not token:
            raise ServiceError(
                ErrorKind.BAD_DATA, "Amazon answered the restricted data token request without one."
            )
        return token

    # --- documents ---------------------------------------------------------------------------

    def iter_report_lines(self, document: ReportDocument) -> Iterator[str]:
        """The document's lines (without terminators), downloaded, gunzipped and decoded as a
        stream: memory stays flat however big the report. A download that breaks off raises
        ServiceError; the caller starts again from a fresh document URL."""
        name = f"report document {document.report_document_id}"
        if document.compression_algorithm not in (None, "GZIP"):
            raise ServiceError(
                ErrorKind.BAD_DATA,
                f"Amazon compressed {name} with {document.compression_algorithm}, "
                "which this app cannot read.",
            )

        def send() -> requests.Response:
            # A presigned URL carries its own authorization: no SP-API token goes to storage.
            return self._session.get(
                document.url, stream=True, headers={"user-agent": USER_AGENT}, timeout=(10, 120)
            )

        response = send_with_retries(
            send, service="Amazon's report storage", wait_for=_wait_for, sleep=self._sleep
        )
        with response:
            if response.status_code == 403:
                raise ServiceError(
                    ErrorKind.UPSTREAM_UNAVAILABLE,
                    f"The download link for {name} expired before the download started; "
                    "ask Amazon for the document again.",
                    retryable=True,
                )
            if response.status_code != 200:
                raise ServiceError(
                    ErrorKind.UPSTREAM_UNAVAILABLE,
                    f"Amazon's report storage answered HTTP {response.status_code} for {name}.",
                )
            chunks: Iterable[bytes] = response.iter_content(chunk_size=DOWNLOAD_CHUNK)
            # requests undoes a Content-Encoding: gzip itself; only a gzip body is ours to undo.
            encoded = response.headers.get("Content-Encoding", "").lower() == "gzip"
            if document.compression_algorithm == "GZIP" and not encoded:
                length = response.headers.get("Content-Length", "")
                limit = unpack_limit(int(length) if length.isdigit() else None)
                chunks = gunzip(chunks, source=f"Amazon's {name}", limit=limit)
            charset = _charset(response.headers.get("Content-Type", ""))
            try:
                yield from decode_lines(chunks, charset, source=f"Amazon's {name}")
            except requests.RequestException:
                raise ServiceError(
                    ErrorKind.UPSTREAM_UNAVAILABLE,
                    f"The download of {name} broke off; start it again.",
                    retryable=True,
                ) from None

    # --- plumbing ----------------------------------------------------------------------------

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
        restricted: bool = False,
    ) -> requests.Response:
        """One operation: usage plan, retries on 429/5xx, one fresh token after a 403."""
        for attempt in (1, 2):
            if restricted:
                token = self.restricted_data_token(path, method)
            else:
                token = self._lwa.access_token(self._refresh_token)
            send = functools.partial(self._send, operation, method, path, token, params, body)
            response = send_with_retries(
                send, service=f"Amazon ({operation})", wait_for=_wait_for, sleep=self._sleep
            )
            if response.status_code not in (401, 403) or attempt == 2:
                break
            # An expired or revoked token looks like any other refusal: retry once, fresh.
            if not restricted:
                self._lwa.invalidate(self._refresh_token, token)
        if 200 <= response.status_code < 300:
            return response
        raise _failure(operation, response, restricted=restricted)

    def _send(
        self,
        operation: str,
        method: str,
        path: str,
        token: str,
        params: Mapping[str, str | int] | None,
        body: Mapping[str, Any] | None,
    ) -> requests.Response:
        self._buckets[operation].acquire()
        with self._count_lock:
            self.api_calls += 1
        headers = {
            "x-amz-access-token": token,
            "x-amz-date": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
            "user-agent": USER_AGENT,
            "accept": "application/json",
        }
        return self._session.request(
            method,
            self.endpoint + path,
            params=params,
            json=body,
            headers=headers,
            timeout=(10, 60),
        )


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ServiceError(ErrorKind.BAD_DATA, "Amazon answered with something that is not JSON.")
    return body


def _failure(operation: str, response: requests.Response, *, restricted: bool) -> ServiceError:
    """A refused SP-API call as an error a finance person can act on."""
    try:
        errors = response.json().get("errors") or []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
    except (ValueError, AttributeError):
        first = {}
    message = _scrub(str(first.get("message") or "no reason given"))[:300]
    status = response.status_code
    log.warning("SP-API %s refused: HTTP %s %s", operation, status, first.get("code"))
    if status in (401, 403):
        hint = (
            "the app may lack the restricted role this data needs"
            if restricted
            else "the seller may need to authorize the app again"
        )
        return ServiceError(
            ErrorKind.AUTH, f"Amazon refused access to {operation}: {hint}.", retryable=False
        )
    if status == 404:
        return ServiceError(ErrorKind.NOT_FOUND, f"Amazon found nothing for {operation}: {message}")
    if 400 <= status < 500:
        return ServiceError(
            ErrorKind.VALIDATION, f"Amazon rejected {operation}: {message}", retryable=False
        )
    return ServiceError(
        ErrorKind.UPSTREAM_UNAVAILABLE, f"Amazon answered HTTP {status} to {operation}: {message}"
    )


def _charset(content_type: str) -> str | None:
    message = email.message.Message()
    message["content-type"] = content_type
    charset = message.get_content_charset()
    if not charset:
        return None
    charset = _CHARSET_ALIASES.get(charset, charset)
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return None  # a name Python does not know: fall back as if none were given
