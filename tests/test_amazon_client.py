"""services.amazon against the Amazon sandbox over real HTTP.

Waiting is injected: the client's clock and sleep are a FakeTime, so backoff, Retry-After and
usage plans are asserted as the sleeps the client asked for, and the tests stay fast.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from sandbox.amazon import AmazonSandbox
from sandbox.amazon_reports import VAT_HEADER, generate_vat_report
from sandbox.server import LoopbackServer
from services.amazon import LwaClient, SpApiClient, consent_url
from services.errors import ErrorKind, ServiceError

VAT = "GET_VAT_TRANSACTION_DATA"
SETTLEMENT = "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2"
DE, UK = "A1PA6795UKMFR9", "A1F83G8C2ARO7P"
OCTOBER = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
REDIRECT = "https://bot.example/amazon/callback"
QUOTA = {"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota."}]}
TOKEN_SHAPE = re.compile(r"Atz[a-z.]*\|")


class FakeTime:
    """The client's clock and sleep: sleeping moves the clock, nothing really waits."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RecordingSession(requests.Session):
    """A real session that remembers what it was asked to send."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append((method, url, kwargs))
        return super().request(method, url, *args, **kwargs)


class Amazon:
    """One sandbox on a loopback port, and a connected client for it."""

    def __init__(self, **options: Any) -> None:
        self.wall = NOW.timestamp()
        options.setdefault("orders_per_report", 40)
        self.sandbox = AmazonSandbox(clock=lambda: self.wall, **options)
        self.server = LoopbackServer(self.sandbox.app).start()
        self.time = FakeTime()
        self.session = RecordingSession()
        self.lwa = LwaClient(
            token_url=f"{self.server.url}/auth/o2/token",
            client_id=self.sandbox.client_id,
            client_secret=self.sandbox.client_secret,
            session=self.session,
            clock=self.time.clock,
            sleep=self.time.sleep,
        )
        self.refresh_token = self.lwa.exchange_code(
            self.sandbox.authorization_code(REDIRECT), REDIRECT
        )
        self.client = self.connect(self.refresh_token)

    def connect(self, refresh_token: str) -> SpApiClient:
        return SpApiClient(
            endpoint=self.server.url,
            lwa=self.lwa,
            refresh_token=refresh_token,
            session=self.session,
            sleep=self.time.sleep,
            clock=self.time.clock,
        )

    def lwa_calls(self) -> int:
        return self.sandbox.calls.count(("POST", "/auth/o2/token"))

    def tokens(self) -> list[str]:
        return self.sandbox.issued_refresh_tokens + self.sandbox.issued_access_tokens


@pytest.fixture
def amazon() -> Iterator[Amazon]:
    running = Amazon()
    yield running
    running.server.stop()


@pytest.fixture
def make_amazon() -> Iterator[Any]:
    started: list[Amazon] = []

    def make(**options: Any) -> Amazon:
        started.append(Amazon(**options))
        return started[-1]

    yield make
    for running in started:
        running.server.stop()


def _vat_report(amazon: Amazon) -> str:
    return amazon.client.create_report(VAT, [DE, UK], *OCTOBER)


def _no_token_in(error: ServiceError, tokens: list[str]) -> None:
    text = f"{error} {error!r} {error.message}"
    assert not TOKEN_SHAPE.search(text), text
    assert not any(token in text for token in tokens)


# --- consent and LWA --------------------------------------------------------------------------


def test_consent_url_adds_version_beta_only_for_a_draft_app() -> None:
    common = {
        "seller_central_url": "https://sellercentral.amazon.de/",
        "application_id": "amzn1.sp.solution.abc",
        "state": "st&te=1",
        "redirect_uri": REDIRECT,
    }
    published = urlparse(consent_url(**common, draft=False))
    assert (published.netloc, published.path) == (
        "sellercentral.amazon.de",
        "/apps/authorize/consent",
    )
    query = parse_qs(published.query)
    assert query == {
        "application_id": ["amzn1.sp.solution.abc"],
        "state": ["st&te=1"],
        "redirect_uri": [REDIRECT],
    }
    draft = parse_qs(urlparse(consent_url(**common, draft=True)).query)
    assert draft["version"] == ["beta"]


def test_consent_page_code_exchange_and_refresh(make_amazon: Any) -> None:
    amazon = make_amazon(draft_app=True, redirect_uris=[REDIRECT])
    url = consent_url(
        seller_central_url=amazon.server.url,
        application_id=amazon.sandbox.application_id,
        state="abc",
        redirect_uri=REDIRECT,
        draft=True,
    )
    page = requests.get(url)
    assert page.status_code == 200 and "Confirm" in page.text
    form = dict(re.findall(r"name='(\w+)' value='([^']*)'", page.text))
    redirect = requests.post(
        f"{amazon.server.url}/apps/authorize/consent", data=form, allow_redirects=False
    )
    query = parse_qs(urlparse(redirect.headers["Location"]).query)
    assert query["state"] == ["abc"]
    assert query["selling_partner_id"] == [amazon.sandbox.selling_partner_id]

    refresh_token = amazon.lwa.exchange_code(query["spapi_oauth_code"][0], REDIRECT)
    assert refresh_token in amazon.sandbox.issued_refresh_tokens
    calls = amazon.lwa_calls()
    amazon.lwa.access_token(refresh_token)  # the code exchange already brought one
    assert amazon.lwa_calls() == calls


def test_access_token_is_cached_until_a_minute_before_expiry(amazon: Amazon) -> None:
    first = amazon.lwa.access_token(amazon.refresh_token)
    calls = amazon.lwa_calls()
    amazon.time.now += 3600 - 61
    assert amazon.lwa.access_token(amazon.refresh_token) == first
    assert amazon.lwa_calls() == calls
    amazon.time.now += 2
    second = amazon.lwa.access_token(amazon.refresh_token)
    assert second != first and second in amazon.sandbox.issued_access_tokens
    assert amazon.lwa_calls() == calls + 1
    # The refresh request carried what LWA expects, form-encoded.
    method, url, kwargs = amazon.session.sent[-1]
    assert (method, url) == ("POST", amazon.lwa.token_url)
    assert kwargs["data"]["grant_type"] == "refresh_token"


def test_concurrent_callers_share_one_refresh(amazon: Amazon) -> None:
    amazon.time.now += 7200
    calls = amazon.lwa_calls()
    seen: list[str] = []
    threads = [
        threading.Thread(target=lambda: seen.append(amazon.lwa.access_token(amazon.refresh_token)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1 and len(seen) == 8
    assert amazon.lwa_calls() == calls + 1


def test_authorization_code_is_single_use(amazon: Amazon) -> None:
    code = amazon.sandbox.authorization_code(REDIRECT)
    amazon.lwa.exchange_code(code, REDIRECT)
    with pytest.raises(ServiceError) as caught:
        amazon.lwa.exchange_code(code, REDIRECT)
    assert caught.value.kind is ErrorKind.AUTH and not caught.value.retryable
    assert "already used or has expired" in caught.value.message
    _no_token_in(caught.value, [*amazon.tokens(), code])


def test_bad_client_secret_and_revoked_authorization(amazon: Amazon) -> None:
    wrong = LwaClient(
        token_url=amazon.lwa.token_url,
        client_id=amazon.sandbox.client_id,
        client_secret="not-the-secret",
    )
    with pytest.raises(ServiceError) as caught:
        wrong.access_token(amazon.refresh_token)
    assert caught.value.kind is ErrorKind.AUTH
    assert "AMAZON_LWA_CLIENT_SECRET" in caught.value.message
    _no_token_in(caught.value, amazon.tokens())

    amazon.sandbox.revoke(amazon.refresh_token)
    amazon.time.now += 7200
    with pytest.raises(ServiceError) as caught:
        amazon.client.get_report("1")
    assert caught.value.kind is ErrorKind.AUTH and not caught.value.retryable
    assert "Connect the Amazon account again" in caught.value.message
    _no_token_in(caught.value, amazon.tokens())


# --- reports ----------------------------------------------------------------------------------


def test_vat_report_end_to_end(amazon: Amazon) -> None:
    report_id = _vat_report(amazon)
    report = amazon.client.wait_for_report(report_id)
    assert report.processing_status == "DONE" and report.report_type == VAT
    assert report.marketplace_ids == (DE, UK)
    assert report.data_start_time == OCTOBER[0] and report.created_time.tzinfo is not None
    assert amazon.time.sleeps == [2.0, 4.0]  # polled with backoff: IN_QUEUE, IN_PROGRESS, DONE

    assert report.report_document_id
    document = amazon.client.get_report_document(report.report_document_id, restricted=True)
    assert document.compression_algorithm == "GZIP"
    assert document.url not in repr(document)
    rdt_request = [kw["json"] for m, url, kw in amazon.session.sent if url.endswith("Token")]
    path = f"/reports/2021-06-30/documents/{report.report_document_id}"
    assert rdt_request == [{"restrictedResources": [{"method": "GET", "path": path}]}]

    lines = list(amazon.client.iter_report_lines(document))
    expected = list(
        generate_vat_report(
            period="2026-10", marketplace_ids=[DE, UK], seed=amazon.sandbox.seed, orders=40
        )
    )
    assert lines == expected
    assert lines[0].split("\t") == list(VAT_HEADER)
    assert any("Kaffeemühle" in line for line in lines)
    # createReport, getReport x3, createRestrictedDataToken, getReportDocument.
    assert amazon.client.api_calls == 6


def test_every_call_carries_amazons_headers(amazon: Amazon) -> None:
    report = amazon.client.wait_for_report(_vat_report(amazon))
    assert report.report_document_id
    document = amazon.client.get_report_document(report.report_document_id, restricted=True)
    next(amazon.client.iter_report_lines(document))
    for _, url, kwargs in amazon.session.sent:
        headers = kwargs.get("headers") or {}
        assert headers["user-agent"] == "amazon-xero-bot/0.1 (Language=Python)"
        if "/reports/" in url or "/tokens/" in url:
            assert headers["x-amz-access-token"].startswith("Atz")
            assert re.fullmatch(r"\d{8}T\d{6}Z", headers["x-amz-date"])
        else:
            assert "x-amz-access-token" not in headers  # LWA and the presigned document URL
    download = [kw for _, url, kw in amazon.session.sent if "/documents-bucket/" in url]
    assert download and download[0]["stream"] is True


def test_restricted_document_needs_an_rdt(amazon: Amazon) -> None:
    report = amazon.client.wait_for_report(_vat_report(amazon))
    assert report.report_document_id
    with pytest.raises(ServiceError) as caught:
        amazon.client.get_report_document(report.report_document_id)
    assert caught.value.kind is ErrorKind.AUTH
    assert "getReportDocument" in caught.value.message
    _no_token_in(caught.value, amazon.tokens())


def test_fatal_report_is_a_retryable_upstream_error(amazon: Amazon) -> None:
    amazon.sandbox.end_next_report_with("FATAL")
    report_id = _vat_report(amazon)
    with pytest.raises(ServiceError) as caught:
        amazon.client.wait_for_report(report_id)
    assert caught.value.kind is ErrorKind.UPSTREAM_UNAVAILABLE and caught.value.retryable
    assert "VAT transactions report" in caught.value.message and report_id in caught.value.message


def test_cancelled_report_means_no_data(amazon: Amazon) -> None:
    amazon.sandbox.end_next_report_with("CANCELLED")
    report_id = _vat_report(amazon)
    with pytest.raises(ServiceError) as caught:
        amazon.client.wait_for_report(report_id)
    assert caught.value.kind is ErrorKind.NOT_FOUND and not caught.value.retryable
    assert "no data" in caught.value.message and report_id in caught.value.message


def test_waiting_gives_up_after_max_wait(make_amazon: Any) -> None:
    amazon = make_amazon(report_processing_polls=1000)
    with pytest.raises(ServiceError) as caught:
        amazon.client.wait_for_report(_vat_report(amazon), max_wait=300)
    assert caught.value.kind is ErrorKind.UPSTREAM_UNAVAILABLE and caught.value.retryable
    assert sum(amazon.time.sleeps) <= 300
    assert amazon.time.sleeps[:4] == [2.0, 4.0, 8.0, 16.0]


def test_settlement_cannot_be_requested(amazon: Amazon) -> None:
    with pytest.raises(ServiceError) as caught:
        amazon.client.create_report(SETTLEMENT, [DE], *OCTOBER)
    assert caught.value.kind is ErrorKind.VALIDATION
    assert "report type 1118 is not allowed" in caught.value.message


def test_naive_datetimes_are_refused(amazon: Amazon) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        amazon.client.create_report(VAT, [DE], datetime(2026, 10, 1), OCTOBER[1])


def test_get_reports_follows_next_token(amazon: Amazon) -> None:
    since = datetime(2026, 8, 1, tzinfo=UTC)
    reports = amazon.client.get_reports([SETTLEMENT], created_since=since, page_size=3)
    expected = {
        amazon.sandbox.report(i)["reportId"]
        for i in amazon.sandbox.settlement_report_ids
        if amazon.sandbox.report(i)["createdTime"] >= "2026-08-01"
    }
    assert {r.report_id for r in reports} == expected and len(reports) > 3
    assert [r.created_time for r in reports] == sorted(
        (r.created_time for r in reports), reverse=True
    )
    pages = [kw["params"] for m, url, kw in amazon.session.sent if url.endswith("/reports")]
    assert len(pages) == -(-len(reports) // 3)
    assert pages[0]["reportTypes"] == SETTLEMENT and pages[0]["processingStatuses"] == "DONE"
    assert all(set(page) == {"nextToken"} for page in pages[1:])

    germany = amazon.client.get_reports([SETTLEMENT], created_since=since, marketplace_ids=[DE])
    assert germany and all(r.marketplace_ids == (DE,) for r in germany)
    assert germany[0].report_document_id
    document = amazon.client.get_report_document(germany[0].report_document_id)
    lines = list(amazon.client.iter_report_lines(document))
    assert lines[0].startswith("settlement-id\t") and lines[1].split("\t")[5] == "EUR"


# --- throttling and retries -------------------------------------------------------------------


def test_429_honours_retry_after_then_succeeds(amazon: Amazon) -> None:
    report_id = _vat_report(amazon)
    amazon.sandbox.faults.add(
        f"/reports/2021-06-30/reports/{report_id}",
        429,
        headers={"Retry-After": "7", "x-amzn-RequestId": "r"},
        body=QUOTA,
    )
    assert amazon.client.get_report(report_id).report_id == report_id
    assert amazon.time.sleeps == [7.0]
    assert amazon.client.api_calls == 3


def test_429_without_retry_after_waits_for_the_usage_plan(amazon: Amazon) -> None:
    report_id = _vat_report(amazon)
    amazon.sandbox.faults.add(
        f"/reports/2021-06-30/reports/{report_id}",
        429,
        headers={"x-amzn-RateLimit-Limit": "0.5"},
        body=QUOTA,
    )
    amazon.client.get_report(report_id)
    assert amazon.time.sleeps == [2.0]


def test_5xx_is_retried_with_backoff(amazon: Amazon) -> None:
    report_id = _vat_report(amazon)
    amazon.sandbox.faults.add("/reports/2021-06-30/reports/", 503, method="GET", times=2)
    amazon.client.get_report(report_id)
    assert amazon.time.sleeps == [1.0, 2.0]


def test_persistent_5xx_is_upstream_unavailable(amazon: Amazon) -> None:
    amazon.sandbox.faults.add("/reports/2021-06-30/reports", 500, times=10)
    with pytest.raises(ServiceError) as caught:
        _vat_report(amazon)
    assert caught.value.kind is ErrorKind.UPSTREAM_UNAVAILABLE and caught.value.retryable
    assert amazon.client.api_calls == 5
    assert amazon.time.sleeps == [1.0, 2.0, 4.0, 8.0]


def test_server_side_quota_becomes_a_rate_limit_error(make_amazon: Any) -> None:
    amazon = make_amazon(usage_plans={"getReport": (0.0001, 1)})
    report_id = _vat_report(amazon)
    amazon.client.get_report(report_id)
    with pytest.raises(ServiceError) as caught:
        amazon.client.get_report(report_id)
    assert caught.value.kind is ErrorKind.RATE_LIMIT and caught.value.retryable
    # Amazon sent x-amzn-RateLimit-Limit on the 200s only; the 429s fell back to backoff.
    assert amazon.time.sleeps[-4:] == [1.0, 2.0, 4.0, 8.0]


def test_client_keeps_to_the_usage_plan(make_amazon: Any) -> None:
    amazon = make_amazon(enforce_rate_limits=False)
    for _ in range(16):  # createReport: burst 15, then 0.0167 per second
        _vat_report(amazon)
    assert amazon.time.sleeps == [pytest.approx(1 / 0.0167)]


def test_expired_access_token_is_replaced_once(amazon: Amazon) -> None:
    report_id = _vat_report(amazon)
    calls = amazon.lwa_calls()
    amazon.sandbox.expire_access_tokens()  # Amazon's clock and ours disagree
    assert amazon.client.get_report(report_id).report_id == report_id
    assert amazon.lwa_calls() == calls + 1


# --- documents --------------------------------------------------------------------------------


def _document_lines(amazon: Amazon) -> list[str]:
    report = amazon.client.wait_for_report(_vat_report(amazon))
    assert report.report_document_id
    document = amazon.client.get_report_document(report.report_document_id, restricted=True)
    return list(amazon.client.iter_report_lines(document))


def _expected_lines(amazon: Amazon, charset: str = "utf-8") -> list[str]:
    """What the sandbox wrote, as it reads back after encoding: Amazon writes "?" for what
    the charset cannot hold."""
    lines = generate_vat_report(
        period="2026-10", marketplace_ids=[DE, UK], seed=amazon.sandbox.seed, orders=40
    )
    return [line.encode(charset, errors="replace").decode(charset) for line in lines]


def test_declared_windows_1252_is_decoded(make_amazon: Any) -> None:
    amazon = make_amazon(document_charset="Cp1252")
    lines = _document_lines(amazon)
    assert lines == _expected_lines(amazon, "cp1252")
    assert any("Kaffeemühle" in line for line in lines)
    assert lines != _expected_lines(amazon)  # some characters did not survive, as with Amazon


def test_undeclared_charset_falls_back_from_utf8_to_windows_1252(make_amazon: Any) -> None:
    amazon = make_amazon(declare_charset=False)
    assert _document_lines(amazon) == _expected_lines(amazon)
    amazon = make_amazon(declare_charset=False, document_charset="cp1252")
    lines = _document_lines(amazon)
    assert lines == _expected_lines(amazon, "cp1252")
    assert any("Kaffeemühle" in line for line in lines)


def test_uncompressed_documents_are_read_too(make_amazon: Any) -> None:
    amazon = make_amazon(gzip_documents=False)
    lines = _document_lines(amazon)
    assert lines[0].split("\t") == list(VAT_HEADER) and len(lines) > 40


def test_expired_download_link_is_a_retryable_error(amazon: Amazon) -> None:
    report = amazon.client.wait_for_report(_vat_report(amazon))
    assert report.report_document_id
    document = amazon.client.get_report_document(report.report_document_id, restricted=True)
    amazon.wall += 301
    with pytest.raises(ServiceError) as caught:
        next(amazon.client.iter_report_lines(document))
    assert caught.value.kind is ErrorKind.UPSTREAM_UNAVAILABLE and caught.value.retryable
    assert "expired" in caught.value.message
    assert document.url not in caught.value.message
