"""The Amazon sandbox against Amazon's own specs and samples.

Every JSON answer is validated against the response schema the Reports / Tokens API model
declares for that operation and status (objects closed to unknown fields, so a misspelt field
fails), and the generated reports are checked against the real headers in the samples.
"""

from __future__ import annotations

import copy
import csv
import gzip
import itertools
import json
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from jsonschema import Draft4Validator
from stdnum.util import get_cc_module

from sandbox.amazon import AmazonSandbox
from sandbox.amazon_reports import (
    ALL_ORDERS_HEADER,
    SETTLEMENT_HEADER,
    VAT_FAMILIES,
    VAT_HEADER,
    VAT_HEADER_2018,
    VAT_HEADER_2020,
    VAT_HEADER_2021,
    VAT_HEADER_2025,
    generate_all_orders_report,
    generate_settlement_report,
    generate_vat_report,
    vat_header,
)
from sandbox.server import LoopbackServer
from services.amazon import USAGE_PLANS
from tests.conftest import SHARED

SPECS = SHARED / "specs" / "amazon-sp-api"
SAMPLES = SHARED / "samples" / "amazon"
REPORTS = "/reports/2021-06-30"
EU = ["A1PA6795UKMFR9", "A1F83G8C2ARO7P", "A1C3SOZRARQ6R3", "A2NODRKZP88ZB9", "A13V1IB3VIYZZH"]
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
REDIRECT = "https://bot.example/amazon/callback"


def _load(relative: str) -> Any:
    return json.loads((SPECS / relative).read_text())


def _sample(relative: str) -> Path:
    return SAMPLES / relative


def _closed(schema: Any) -> Any:
    """The schema with every object that lists its properties closed to any others."""
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if "properties" in closed and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


class Spec:
    def __init__(self, relative: str) -> None:
        self.model = _load(relative)
        self.definitions = _closed(copy.deepcopy(self.model["definitions"]))

    def operation(self, operation_id: str) -> dict[str, Any]:
        for methods in self.model["paths"].values():
            for operation in methods.values():
                if isinstance(operation, dict) and operation.get("operationId") == operation_id:
                    return operation
        raise KeyError(operation_id)

    def check(self, operation_id: str, response: requests.Response) -> Any:
        """The response is one the spec declares, headers and body; returns the body."""
        declared = self.operation(operation_id)["responses"]
        status = str(response.status_code)
        assert status in declared, f"{operation_id} may not answer {status}"
        assert response.headers.get("x-amzn-RequestId")
        headers = declared[status].get("headers", {})
        if "x-amzn-RateLimit-Limit" in response.headers:
            assert "x-amzn-RateLimit-Limit" in headers
            assert float(response.headers["x-amzn-RateLimit-Limit"]) > 0
        schema = declared[status].get("schema")
        if schema is None:
            assert response.content == b""
            return None
        body = response.json()
        validator = Draft4Validator(
            {**schema, "definitions": self.definitions},
            format_checker=Draft4Validator.FORMAT_CHECKER,
        )
        errors = [e.message for e in validator.iter_errors(body)]
        assert not errors, f"{operation_id} {status}: {errors}"
        return body


@pytest.fixture(scope="module")
def reports_spec() -> Spec:
    return Spec("models/reports-api-model/reports_2021-06-30.json")


@pytest.fixture(scope="module")
def tokens_spec() -> Spec:
    return Spec("models/tokens-api-model/tokens_2021-03-01.json")


class WallClock:
    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
def sandbox(clock: WallClock) -> AmazonSandbox:
    return AmazonSandbox(clock=clock, orders_per_report=30)


@pytest.fixture
def server(sandbox: AmazonSandbox) -> Iterator[LoopbackServer]:
    with LoopbackServer(sandbox.app) as running:
        yield running


def _tokens(sandbox: AmazonSandbox, server: LoopbackServer) -> dict[str, Any]:
    response = requests.post(
        f"{server.url}/auth/o2/token",
        data={
            "grant_type": "authorization_code",
            "code": sandbox.authorization_code(REDIRECT),
            "redirect_uri": REDIRECT,
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
    )
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def token(sandbox: AmazonSandbox, server: LoopbackServer) -> str:
    return str(_tokens(sandbox, server)["access_token"])


def _sp(server: LoopbackServer, method: str, path: str, token: str, **kwargs: Any) -> Any:
    headers = {"x-amz-access-token": token} if token else {}
    return requests.request(method, server.url + path, headers=headers, timeout=10, **kwargs)


def _vat_body() -> dict[str, Any]:
    return {
        "reportType": "GET_VAT_TRANSACTION_DATA",
        "marketplaceIds": EU[:2],
        "dataStartTime": "2026-10-01T00:00:00Z",
        "dataEndTime": "2026-10-31T23:59:59Z",
    }


# --- usage plans ------------------------------------------------------------------------------


def test_usage_plans_match_the_specs(reports_spec: Spec, tokens_spec: Spec) -> None:
    for spec in (reports_spec, tokens_spec):
        for methods in spec.model["paths"].values():
            for operation in methods.values():
                if not isinstance(operation, dict) or operation["operationId"] not in USAGE_PLANS:
                    continue
                table = re.search(r"\|\s*([\d.]+)\s*\|\s*(\d+)\s*\|", operation["description"])
                assert table, operation["operationId"]
                rate, burst = float(table.group(1)), int(table.group(2))
                assert USAGE_PLANS[operation["operationId"]] == (rate, burst)


# --- Login with Amazon and the consent page -------------------------------------------------


def test_lwa_code_and_refresh_grants(sandbox: AmazonSandbox, server: LoopbackServer) -> None:
    tokens = _tokens(sandbox, server)
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert tokens["access_token"].startswith("Atza|")
    assert tokens["refresh_token"].startswith("Atzr|")
    assert (tokens["token_type"], tokens["expires_in"]) == ("bearer", 3600)
    assert sandbox.issued_refresh_tokens == [tokens["refresh_token"]]

    refreshed = requests.post(
        f"{server.url}/auth/o2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
    ).json()
    assert refreshed["access_token"].startswith("Atza|")
    assert refreshed["access_token"] != tokens["access_token"]


def test_lwa_errors_are_oauth_errors(
    sandbox: AmazonSandbox, server: LoopbackServer, clock: WallClock
) -> None:
    url = f"{server.url}/auth/o2/token"
    client = {"client_id": sandbox.client_id, "client_secret": sandbox.client_secret}
    code = sandbox.authorization_code(REDIRECT)
    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    assert requests.post(url, data={**grant, **client}).status_code == 200

    reused = requests.post(url, data={**grant, **client})
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert reused.json()["error_description"]

    wrong = requests.post(url, data={**grant, **client, "client_secret": "nope"})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")

    stale = sandbox.authorization_code(REDIRECT)
    clock.now += 301
    expired = requests.post(url, data={**grant, "code": stale, **client})
    assert (expired.status_code, expired.json()["error"]) == (400, "invalid_grant")

    unknown = requests.post(
        url, data={"grant_type": "refresh_token", "refresh_token": "Atzr|x", **client}
    )
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_grant")
    odd = requests.post(url, data={"grant_type": "password", **client})
    assert (odd.status_code, odd.json()["error"]) == (400, "unsupported_grant_type")


def test_consent_page_redirects_with_an_authorization_code(
    sandbox: AmazonSandbox, server: LoopbackServer
) -> None:
    params = {"application_id": sandbox.application_id, "state": "s-123", "redirect_uri": REDIRECT}
    page = requests.get(f"{server.url}/apps/authorize/consent", params=params)
    assert page.status_code == 200
    assert f"Authorize {sandbox.application_name}" in page.text
    assert "Confirm" in page.text and "<form" in page.text

    confirmed = requests.post(
        f"{server.url}/apps/authorize/consent", data=params, allow_redirects=False
    )
    assert confirmed.status_code == 302
    location = urlparse(confirmed.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert query["state"] == "s-123"
    assert query["selling_partner_id"] == sandbox.selling_partner_id
    exchanged = requests.post(
        f"{server.url}/auth/o2/token",
        data={
            "grant_type": "authorization_code",
            "code": query["spapi_oauth_code"],
            "redirect_uri": REDIRECT,
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
    )
    assert exchanged.status_code == 200


def test_consent_page_refuses_what_amazon_refuses(clock: WallClock) -> None:
    sandbox = AmazonSandbox(clock=clock, draft_app=True, redirect_uris=[REDIRECT])
    with LoopbackServer(sandbox.app) as server:
        url = f"{server.url}/apps/authorize/consent"
        good = {"application_id": sandbox.application_id, "state": "s", "version": "beta"}

        unknown = requests.get(url, params={**good, "application_id": "amzn1.sp.solution.other"})
        assert unknown.status_code == 400
        assert "application was not found" in unknown.text

        draft = requests.get(url, params={**good, "version": ""})
        assert draft.status_code == 400 and "MD1000" in draft.text and "version=beta" in draft.text

        elsewhere = requests.get(url, params={**good, "redirect_uri": "https://evil.example/"})
        assert elsewhere.status_code == 400 and "MD5101" in elsewhere.text

        beta = requests.get(url, params=good)  # no redirect_uri: the registered one is used
        assert beta.status_code == 200 and "Confirm" in beta.text
        posted = requests.post(url, data=good, allow_redirects=False)
        assert posted.headers["Location"].startswith(REDIRECT + "?")


# --- Reports API against the spec -----------------------------------------------------------


def test_report_lifecycle_matches_the_spec(
    sandbox: AmazonSandbox,
    server: LoopbackServer,
    token: str,
    reports_spec: Spec,
    tokens_spec: Spec,
) -> None:
    created = reports_spec.check(
        "createReport", _sp(server, "POST", f"{REPORTS}/reports", token, json=_vat_body())
    )
    report_id = created["reportId"]
    statuses = []
    for _ in range(3):
        response = _sp(server, "GET", f"{REPORTS}/reports/{report_id}", token)
        report = reports_spec.check("getReport", response)
        statuses.append(report["processingStatus"])
    assert statuses == ["IN_QUEUE", "IN_PROGRESS", "DONE"]
    assert report["marketplaceIds"] == EU[:2]
    assert report["dataStartTime"] == "2026-10-01T00:00:00+00:00"
    document_id = report["reportDocumentId"]
    document_path = f"{REPORTS}/documents/{document_id}"

    # The VAT report is restricted: an access token is not enough, an RDT is.
    refused = _sp(server, "GET", document_path, token)
    assert refused.status_code == 403
    assert reports_spec.check("getReportDocument", refused)["errors"][0]["code"] == "Unauthorized"
    rdt_response = _sp(
        server,
        "POST",
        "/tokens/2021-03-01/restrictedDataToken",
        token,
        json={"restrictedResources": [{"method": "GET", "path": document_path}]},
    )
    rdt = tokens_spec.check("createRestrictedDataToken", rdt_response)
    assert rdt["expiresIn"] == 3600
    document = reports_spec.check(
        "getReportDocument", _sp(server, "GET", document_path, rdt["restrictedDataToken"])
    )
    assert document["compressionAlgorithm"] == "GZIP"
    assert document["reportDocumentId"] == document_id

    download = requests.get(document["url"])
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith("text/plain")
    text = gzip.decompress(download.content).decode("utf-8")
    assert text.split("\n", 1)[0].split("\t") == list(VAT_HEADER)


def test_restricted_data_token_only_opens_its_own_path(
    sandbox: AmazonSandbox,
    server: LoopbackServer,
    token: str,
    tokens_spec: Spec,
    reports_spec: Spec,
) -> None:
    sandbox.report_processing_polls = 0
    ids = []
    for _ in range(2):
        report_id = _sp(server, "POST", f"{REPORTS}/reports", token, json=_vat_body()).json()
        ids.append(_sp(server, "GET", f"{REPORTS}/reports/{report_id['reportId']}", token).json())
    first, second = (f"{REPORTS}/documents/{r['reportDocumentId']}" for r in ids)
    rdt = _sp(
        server,
        "POST",
        "/tokens/2021-03-01/restrictedDataToken",
        token,
        json={"restrictedResources": [{"method": "GET", "path": first}]},
    ).json()
    key = rdt["restrictedDataToken"]
    assert _sp(server, "GET", first, key).status_code == 200
    assert reports_spec.check("getReportDocument", _sp(server, "GET", second, key))
    assert _sp(server, "GET", second, key).status_code == 403
    assert _sp(server, "GET", f"{REPORTS}/reports/{ids[0]['reportId']}", key).status_code == 403

    not_restricted = _sp(
        server,
        "POST",
        "/tokens/2021-03-01/restrictedDataToken",
        token,
        json={"restrictedResources": [{"method": "GET", "path": f"{REPORTS}/reports"}]},
    )
    assert tokens_spec.check("createRestrictedDataToken", not_restricted)
    assert not_restricted.status_code == 400


def test_error_answers_match_the_spec(
    sandbox: AmazonSandbox, server: LoopbackServer, token: str, reports_spec: Spec
) -> None:
    def error(operation: str, response: requests.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status
        return dict(reports_spec.check(operation, response)["errors"][0])

    missing = error("getReport", _sp(server, "GET", f"{REPORTS}/reports/1", ""), 403)
    assert missing == {
        "code": "Unauthorized",
        "message": "Access to requested resource is denied.",
        "details": "",
    }
    sandbox.expire_access_tokens()
    expired = error("getReport", _sp(server, "GET", f"{REPORTS}/reports/1", token), 403)
    assert "expired" in expired["details"]
    token = str(_tokens(sandbox, server)["access_token"])

    assert error("getReport", _sp(server, "GET", f"{REPORTS}/reports/1", token), 404)
    settlement = {**_vat_body(), "reportType": "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2"}
    refused = error(
        "createReport", _sp(server, "POST", f"{REPORTS}/reports", token, json=settlement), 400
    )
    assert refused == {
        "code": "InvalidInput",
        "details": "",
        "message": "Request for report type 1118 is not allowed at this time",
    }
    bad_market = {**_vat_body(), "marketplaceIds": ["NOPE"]}
    error("createReport", _sp(server, "POST", f"{REPORTS}/reports", token, json=bad_market), 400)
    wrong_region = {**_vat_body(), "marketplaceIds": ["ATVPDKIKX0DER"]}
    error("createReport", _sp(server, "POST", f"{REPORTS}/reports", token, json=wrong_region), 400)
    error("createReport", _sp(server, "POST", f"{REPORTS}/reports", token, data="x"), 415)
    error("getReports", _sp(server, "GET", f"{REPORTS}/reports", token), 400)
    mixed = {"nextToken": "abc", "pageSize": "10"}
    error("getReports", _sp(server, "GET", f"{REPORTS}/reports", token, params=mixed), 400)
    big = {"reportTypes": "GET_VAT_TRANSACTION_DATA", "pageSize": "101"}
    error("getReports", _sp(server, "GET", f"{REPORTS}/reports", token, params=big), 400)


def test_usage_plans_are_enforced_with_429(
    clock: WallClock, reports_spec: Spec, tokens_spec: Spec
) -> None:
    strict = {"getReport": (0.001, 2), "createRestrictedDataToken": (0.001, 1)}
    sandbox = AmazonSandbox(clock=clock, usage_plans=strict)
    with LoopbackServer(sandbox.app) as server:
        token = str(_tokens(sandbox, server)["access_token"])
        answers = [_sp(server, "GET", f"{REPORTS}/reports/1", token) for _ in range(3)]
        assert [a.status_code for a in answers] == [404, 404, 429]
        quota = reports_spec.check("getReport", answers[2])
        assert quota["errors"][0]["code"] == "QuotaExceeded"
        body = {"restrictedResources": [{"method": "GET", "path": f"{REPORTS}/documents/x"}]}
        path = "/tokens/2021-03-01/restrictedDataToken"
        assert _sp(server, "POST", path, token, json=body).status_code == 200
        throttled = _sp(server, "POST", path, token, json=body)
        assert throttled.status_code == 429
        tokens_spec.check("createRestrictedDataToken", throttled)

    relaxed = AmazonSandbox(clock=clock, usage_plans=strict, enforce_rate_limits=False)
    with LoopbackServer(relaxed.app) as server:
        token = str(_tokens(relaxed, server)["access_token"])
        answers = [_sp(server, "GET", f"{REPORTS}/reports/1", token) for _ in range(4)]
        assert {a.status_code for a in answers} == {404}


def test_fatal_cancelled_and_cancelReport(
    sandbox: AmazonSandbox, server: LoopbackServer, token: str, reports_spec: Spec
) -> None:
    sandbox.end_next_report_with("FATAL")
    sandbox.end_next_report_with("CANCELLED")
    for expected in ("FATAL", "CANCELLED"):
        report_id = _sp(server, "POST", f"{REPORTS}/reports", token, json=_vat_body()).json()
        for _ in range(3):
            response = _sp(server, "GET", f"{REPORTS}/reports/{report_id['reportId']}", token)
            report = reports_spec.check("getReport", response)
        assert report["processingStatus"] == expected
        assert "reportDocumentId" not in report
        assert "processingEndTime" in report

    queued = _sp(server, "POST", f"{REPORTS}/reports", token, json=_vat_body()).json()["reportId"]
    cancelled = _sp(server, "DELETE", f"{REPORTS}/reports/{queued}", token)
    assert cancelled.status_code == 200
    reports_spec.check("cancelReport", cancelled)
    assert sandbox.report(queued)["processingStatus"] == "CANCELLED"
    again = _sp(server, "DELETE", f"{REPORTS}/reports/{queued}", token)
    assert again.status_code == 400
    reports_spec.check("cancelReport", again)


def test_settlement_reports_exist_and_paginate(
    sandbox: AmazonSandbox, server: LoopbackServer, token: str, reports_spec: Spec
) -> None:
    params: dict[str, str] = {
        "reportTypes": "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2",
        "processingStatuses": "DONE",
        "pageSize": "4",
    }
    seen: list[dict[str, Any]] = []
    pages = 0
    while True:
        body = reports_spec.check(
            "getReports", _sp(server, "GET", f"{REPORTS}/reports", token, params=params)
        )
        pages += 1
        seen.extend(body["reports"])
        if "nextToken" not in body:
            break
        params = {"nextToken": body["nextToken"]}
    assert len(seen) == len(sandbox.settlement_report_ids) > 4
    assert pages == -(-len(seen) // 4)
    created = [r["createdTime"] for r in seen]
    assert created == sorted(created, reverse=True)
    for report in seen:
        assert report["processingStatus"] == "DONE" and report["reportDocumentId"]
        start = datetime.fromisoformat(report["dataStartTime"])
        end = datetime.fromisoformat(report["dataEndTime"])
        assert (end - start).days == 13
    germany = {
        "reportTypes": "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2",
        "marketplaceIds": "A1PA6795UKMFR9",
        "createdSince": "2026-10-01T00:00:00Z",
    }
    recent = _sp(server, "GET", f"{REPORTS}/reports", token, params=germany).json()["reports"]
    assert recent and all(r["marketplaceIds"] == ["A1PA6795UKMFR9"] for r in recent)
    assert all(r["createdTime"] >= "2026-10-01" for r in recent)

    # Amazon serves settlement documents as plain text: no compressionAlgorithm, no gzip.
    document = reports_spec.check(
        "getReportDocument",
        _sp(server, "GET", f"{REPORTS}/documents/{recent[0]['reportDocumentId']}", token),
    )
    assert "compressionAlgorithm" not in document
    content = requests.get(document["url"]).content
    assert not content.startswith(b"\x1f\x8b")
    lines = content.decode().splitlines()
    assert lines[0].split("\t") == list(SETTLEMENT_HEADER)
    assert lines[1].split("\t")[5] == "EUR"  # amazon.de: the summary row's currency


def test_document_urls_are_signed_and_expire(
    sandbox: AmazonSandbox, server: LoopbackServer, token: str, clock: WallClock
) -> None:
    report_id = sandbox.settlement_report_ids[0]
    document_id = sandbox.report(report_id)["reportDocumentId"]
    url = _sp(server, "GET", f"{REPORTS}/documents/{document_id}", token).json()["url"]
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url
    signature = parse_qs(urlparse(url).query)["X-Amz-Signature"][0]
    tampered = url.replace(signature, "0" * len(signature))
    refused = requests.get(tampered)
    assert refused.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in refused.text
    clock.now += 301
    expired = requests.get(url)
    assert expired.status_code == 403 and "<Code>AccessDenied</Code>" in expired.text


def test_document_urls_point_at_the_sandbox_whatever_the_host_header(
    sandbox: AmazonSandbox, server: LoopbackServer, token: str
) -> None:
    document_id = sandbox.report(sandbox.settlement_report_ids[0])["reportDocumentId"]
    answer = requests.get(
        f"{server.url}{REPORTS}/documents/{document_id}",
        headers={"x-amz-access-token": token, "Host": "sellingpartnerapi-eu.amazon.com"},
        timeout=10,
    )
    assert answer.status_code == 200
    url = answer.json()["url"]
    assert url.startswith(f"{server.url}/documents-bucket/{document_id}?")
    assert requests.get(url, timeout=10).status_code == 200


def test_all_orders_report_for_north_america(
    sandbox: AmazonSandbox, server: LoopbackServer, token: str
) -> None:
    sandbox.report_processing_polls = 0
    body = {
        "reportType": "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL",
        "marketplaceIds": ["ATVPDKIKX0DER"],
        "dataStartTime": "2026-11-01T00:00:00Z",
        "dataEndTime": "2026-11-08T00:00:00Z",
    }
    report_id = _sp(server, "POST", f"{REPORTS}/reports", token, json=body).json()["reportId"]
    document_id = _sp(server, "GET", f"{REPORTS}/reports/{report_id}", token).json()[
        "reportDocumentId"
    ]
    url = _sp(server, "GET", f"{REPORTS}/documents/{document_id}", token).json()["url"]
    lines = gzip.decompress(requests.get(url).content).decode().splitlines()
    assert lines[0].split("\t") == list(ALL_ORDERS_HEADER)
    assert len(lines) > 30
    europe = {**body, "marketplaceIds": ["A1PA6795UKMFR9"]}
    assert _sp(server, "POST", f"{REPORTS}/reports", token, json=europe).status_code == 400


# --- the VAT transactions report --------------------------------------------------------------

# Columns a seller without Amazon's VAT calculation finds empty on its own SALE and REFUND rows.
NO_VCS_EMPTY = (
    *(
        column
        for column in VAT_HEADER_2020
        if column.endswith(("_AMT_VAT_EXCL", "_VAT_AMT", "_VAT_RATE_PERCENT"))
    ),
    "TAX_CALCULATION_DATE",
    "VAT_CALCULATION_IMPUTATION_COUNTRY",
    "TAXABLE_JURISDICTION",
    "TAXABLE_JURISDICTION_LEVEL",
    "VAT_INV_NUMBER",
    "VAT_INV_CONVERTED_AMT",
    "INVOICE_URL",
    "TRANSACTION_SELLER_VAT_NUMBER",
)
COUNTRY_NAMES = {
    "DE": "GERMANY",
    "FR": "FRANCE",
    "IT": "ITALY",
    "ES": "SPAIN",
    "NL": "NETHERLANDS",
    "BE": "BELGIUM",
    "AT": "AUSTRIA",
    "IE": "IRELAND",
    "PL": "POLAND",
    "SE": "SWEDEN",
    "GB": "UNITED KINGDOM",
}


def _rows(lines: list[str]) -> list[dict[str, str]]:
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def _vat_rows(
    orders: int = 120,
    seed: int = 7,
    period: str = "2026-10",
    markets: list[str] = EU,
    vat_calculation: bool = True,
) -> list[dict[str, str]]:
    return _rows(
        list(
            generate_vat_report(
                period=period,
                marketplace_ids=markets,
                seed=seed,
                orders=orders,
                vat_calculation=vat_calculation,
            )
        )
    )


def _tsv_header(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()[0].split("\t")


def test_vat_header_follows_the_period_as_amazons_did() -> None:
    bookwork = _sample("vat-bookwork-2018-01/2018_01_Amazon_Transaktionsbericht_dummy.txt")
    with _sample("vat-transactions-row/sheet_with_strict_ooxml.derived.csv").open() as handle:
        sample_2020 = next(csv.reader(handle))
    assert list(VAT_HEADER_2018) == _tsv_header(bookwork) and len(VAT_HEADER_2018) == 90
    assert list(VAT_HEADER_2020) == sample_2020 and len(VAT_HEADER_2020) == 92
    assert "DEPATURE_CITY" in VAT_HEADER_2020  # Amazon's spelling, kept
    assert (
        *VAT_HEADER_2020,
        "TAX_REPORTING_SCHEME",
        "TAX_COLLECTION_RESPONSIBILITY",
    ) == VAT_HEADER_2021
    assert VAT_HEADER_2025[4] == "PROGRAM_TYPE" and len(VAT_HEADER_2025) == 95
    assert VAT_HEADER == VAT_HEADER_2025
    expected = {
        "2018-01": VAT_HEADER_2018,
        "2019-12": VAT_HEADER_2018,
        "2020-01": VAT_HEADER_2020,
        "2021-06": VAT_HEADER_2020,
        "2021-07": VAT_HEADER_2021,
        "2024-12": VAT_HEADER_2021,
        "2025-01": VAT_HEADER_2025,
        "2026-10": VAT_HEADER_2025,
    }
    for period, header in expected.items():
        assert vat_header(period) == header
        lines = list(generate_vat_report(period=period, marketplace_ids=EU, seed=1, orders=15))
        assert lines[0].split("\t") == list(header), period
        assert all(len(line.split("\t")) == len(header) for line in lines), period


def test_vat_dates_are_written_as_in_their_period() -> None:
    for period, pattern in (("2020-03", r"\d\d-03-2020"), ("2026-10", r"\d\d\.10\.2026")):
        for row in _vat_rows(orders=30, period=period):
            assert re.fullmatch(pattern, row["TRANSACTION_COMPLETE_DATE"]), row
            if row["TAX_CALCULATION_DATE"]:
                assert re.fullmatch(pattern, row["TAX_CALCULATION_DATE"])


def test_vat_amounts_add_up_on_every_row() -> None:
    amount = re.compile(r"^-?\d+\.\d{2}$")
    priced = [r for r in _vat_rows() if r["TRANSACTION_TYPE"] != "RETURN"]
    for row in priced:
        for family in (*VAT_FAMILIES, "TOTAL_ACTIVITY_VALUE"):
            prefixes = ("", "PROMO_", "TOTAL_") if family != "TOTAL_ACTIVITY_VALUE" else ("",)
            for prefix in prefixes:
                name = prefix + family
                excl, vat, incl = (
                    row[f"{name}_AMT_VAT_EXCL"],
                    row[f"{name}_VAT_AMT"],
                    row[f"{name}_AMT_VAT_INCL"],
                )
                assert amount.match(excl) and amount.match(vat) and amount.match(incl), name
                assert Decimal(excl) + Decimal(vat) == Decimal(incl), (name, row)
            if family != "TOTAL_ACTIVITY_VALUE":
                for part in ("_AMT_VAT_EXCL", "_VAT_AMT", "_AMT_VAT_INCL"):
                    base, promo = Decimal(row[family + part]), Decimal(row[f"PROMO_{family}{part}"])
                    assert base + promo == Decimal(row[f"TOTAL_{family}{part}"])
                rate = row[f"{family}_VAT_RATE_PERCENT"]
                assert re.fullmatch(r"0\.\d{1,3}", rate), rate
        for part in ("_AMT_VAT_EXCL", "_VAT_AMT", "_AMT_VAT_INCL"):
            total = sum(Decimal(row[f"TOTAL_{family}{part}"]) for family in VAT_FAMILIES)
            assert total == Decimal(row[f"TOTAL_ACTIVITY_VALUE{part}"])
    # A RETURN moves goods only: the money is on its REFUND row.
    returns = [r for r in _vat_rows() if r["TRANSACTION_TYPE"] == "RETURN"]
    assert returns and all(not r["TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL"] for r in returns)


def test_vat_report_covers_the_cases_a_seller_meets() -> None:
    rows = _vat_rows()
    types = {row["TRANSACTION_TYPE"] for row in rows}
    assert types == {"SALE", "REFUND", "FC_TRANSFER", "INBOUND", "RETURN"}
    sales = [row for row in rows if row["TRANSACTION_TYPE"] == "SALE"]
    assert {row["TRANSACTION_CURRENCY_CODE"] for row in sales} == {"EUR", "GBP", "PLN", "SEK"}
    for row in rows:
        assert row["ACTIVITY_PERIOD"] == "2026-OCT"
        assert row["ACTIVITY_TRANSACTION_ID"]
    movements = [r for r in rows if r["TRANSACTION_TYPE"] in ("FC_TRANSFER", "INBOUND")]
    assert all(r["MARKETPLACE"] == "N/A" for r in movements)

    b2b = [row for row in sales if row["BUYER_VAT_NUMBER"]]
    assert b2b
    for row in b2b:
        country = row["BUYER_VAT_NUMBER_COUNTRY"]
        assert row["BUYER_VAT_NUMBER"].startswith(country)
        module = get_cc_module(country.lower(), "vat")
        assert module is not None and module.is_valid(row["BUYER_VAT_NUMBER"])
    reverse = [r for r in b2b if r["BUYER_VAT_NUMBER_COUNTRY"] != r["DEPARTURE_COUNTRY"]]
    assert reverse and all(r["TOTAL_ACTIVITY_VALUE_VAT_AMT"] == "0.00" for r in reverse)
    assert all(r["PRICE_OF_ITEMS_VAT_RATE_PERCENT"] == "0.0" for r in reverse)

    oss = [r for r in sales if r["TAX_REPORTING_SCHEME"] == "UNION-OSS"]
    assert oss and all(r["DEPARTURE_COUNTRY"] != r["ARRIVAL_COUNTRY"] for r in oss)
    assert all(r["TAXABLE_JURISDICTION"] == COUNTRY_NAMES[r["ARRIVAL_COUNTRY"]] for r in oss)
    domestic = [r for r in sales if r["DEPARTURE_COUNTRY"] == r["ARRIVAL_COUNTRY"] == "DE"]
    assert domestic and all(r["TAXABLE_JURISDICTION"] == "GERMANY" for r in domestic)
    exports = [r for r in sales if r["ARRIVAL_COUNTRY"] in ("CH", "NO")]
    assert exports and all(r["TOTAL_ACTIVITY_VALUE_VAT_AMT"] == "0.00" for r in exports)
    assert all(r["EXPORT_OUTSIDE_EU"] == "YES" for r in exports)

    by_order: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in sales:
        by_order[row["TRANSACTION_EVENT_ID"]].append(row)
    assert all(re.fullmatch(r"\d{3}-\d{7}-\d{7}", order) for order in by_order)
    multi = [items for items in by_order.values() if len(items) > 1]
    assert any(len({i["VAT_INV_NUMBER"] for i in items}) == 1 for items in multi)
    assert any(len({i["ACTIVITY_TRANSACTION_ID"] for i in items}) > 1 for items in multi)
    for row in sales:
        if row["VAT_INV_NUMBER"]:
            assert re.fullmatch(r"[A-Z]{2}-AEU-2026-\d+", row["VAT_INV_NUMBER"])
            # The invoice number's country is the taxing country, whatever the imputation.
            country = row["VAT_INV_NUMBER"][:2]
            assert COUNTRY_NAMES[country] == row["TAXABLE_JURISDICTION"]
    assert any(not r["VAT_INV_NUMBER"] for r in sales)

    b2c = [r for r in sales if not r["BUYER_VAT_NUMBER"]]
    assert any(r["BUYER_NAME"] for r in b2c) and any(not r["BUYER_NAME"] for r in b2c)
    homonyms: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for row in b2c:
        if row["BUYER_NAME"]:
            homonyms[row["BUYER_NAME"]].add((row["ARRIVAL_CITY"], row["ARRIVAL_POST_CODE"]))
    assert any(len(addresses) > 1 for addresses in homonyms.values())
    assert any(r["PROMO_PRICE_OF_ITEMS_AMT_VAT_INCL"] != "0.00" for r in sales)
    assert any(r["GIFT_WRAP_AMT_VAT_INCL"] != "0.00" for r in sales)
    assert any(r["SHIP_CHARGE_AMT_VAT_INCL"] != "0.00" for r in sales)
    assert any(r["VAT_INV_CONVERTED_AMT"] for r in sales)


def test_pan_eu_rows_are_taxed_where_the_goods_leave() -> None:
    sales = [r for r in _vat_rows(orders=20) if r["TRANSACTION_TYPE"] == "SALE"]
    from_poland = [
        r for r in sales if r["DEPARTURE_COUNTRY"] == "PL" and r["MARKETPLACE"] != "amazon.pl"
    ]
    to_austria = [r for r in from_poland if r["ARRIVAL_COUNTRY"] == "AT"]
    assert to_austria
    for row in to_austria:  # taxed in Poland at 23%, shipped to Austria
        assert row["TAXABLE_JURISDICTION"] == "POLAND"
        assert row["VAT_CALCULATION_IMPUTATION_COUNTRY"] == "AT"
        assert row["PRICE_OF_ITEMS_VAT_RATE_PERCENT"] == "0.23"
        assert row["VAT_INV_NUMBER"].startswith("PL-")
        assert row["TRANSACTION_CURRENCY_CODE"] == "EUR"
        assert row["VAT_INV_CURRENCY_CODE"] == "PLN"
    b2b = [r for r in from_poland if r["BUYER_VAT_NUMBER"]]
    assert b2b
    for row in b2b:  # an intra-EU B2B supply from the Polish warehouse: declared in Poland
        assert row["TAXABLE_JURISDICTION"] == "POLAND"
        assert row["VAT_CALCULATION_IMPUTATION_COUNTRY"] == row["BUYER_VAT_NUMBER_COUNTRY"]
        assert row["BUYER_VAT_NUMBER_COUNTRY"] not in ("PL", "")
        assert row["PRICE_OF_ITEMS_VAT_RATE_PERCENT"] == "0.0"
        assert row["TRANSACTION_SELLER_VAT_NUMBER"].startswith("PL")


def test_since_july_2021_rows_say_who_collects_the_vat() -> None:
    rows = _vat_rows()
    schemes = {r["TAX_REPORTING_SCHEME"] for r in rows}
    assert schemes == {"", "REGULAR", "UNION-OSS", "UK_VOEC-IMPORT", "DEEMED_RESELLER-IOSS"}
    for row in rows:
        moved = row["TRANSACTION_TYPE"] in ("FC_TRANSFER", "INBOUND", "RETURN")
        assert (row["TAX_REPORTING_SCHEME"] == "") == moved
        marketplace = row["TAX_REPORTING_SCHEME"] in ("UK_VOEC-IMPORT", "DEEMED_RESELLER-IOSS")
        responsibility = "" if moved else "MARKETPLACE" if marketplace else "SELLER"
        assert row["TAX_COLLECTION_RESPONSIBILITY"] == responsibility
        assert row["PROGRAM_TYPE"] == ("" if row["MARKETPLACE"] == "N/A" else "REGULAR")
    collected = [r for r in rows if r["TAX_COLLECTION_RESPONSIBILITY"] == "MARKETPLACE"]
    for row in collected:  # Amazon's VAT as deemed supplier: no seller invoice, no seller VAT id
        assert row["PRICE_OF_ITEMS_VAT_RATE_PERCENT"] and row["TOTAL_ACTIVITY_VALUE_VAT_AMT"]
        assert not row["VAT_INV_NUMBER"] and not row["TRANSACTION_SELLER_VAT_NUMBER"]
    assert any(Decimal(r["TOTAL_ACTIVITY_VALUE_VAT_AMT"]) for r in collected)
    uk = [r for r in collected if r["TAX_REPORTING_SCHEME"] == "UK_VOEC-IMPORT"]
    assert uk and all(r["TAXABLE_JURISDICTION"] == "UNITED KINGDOM" for r in uk)
    assert all(
        (r["DEPARTURE_COUNTRY"], r["MARKETPLACE"]) == ("DE", "amazon.co.uk")
        for r in uk
        if r["DEPARTURE_COUNTRY"]
    )
    ioss = [r for r in collected if r["TAX_REPORTING_SCHEME"] == "DEEMED_RESELLER-IOSS"]
    assert ioss and all(r["DEPARTURE_COUNTRY"] == "GB" for r in ioss)
    assert all(r["TAXABLE_JURISDICTION"] == COUNTRY_NAMES[r["ARRIVAL_COUNTRY"]] for r in ioss)


def test_before_the_oss_distance_sales_were_taxed_where_they_left() -> None:
    rows = _vat_rows(period="2020-03")
    assert "TAX_REPORTING_SCHEME" not in rows[0]
    unregistered = [
        r
        for r in rows
        if r["TRANSACTION_TYPE"] == "SALE"
        and r["DEPARTURE_COUNTRY"] == "DE"
        and r["ARRIVAL_COUNTRY"] in ("NL", "AT", "SE", "BE", "IE")
        and not r["BUYER_VAT_NUMBER"]
    ]
    assert unregistered
    for row in unregistered:
        assert row["TAXABLE_JURISDICTION"] == "GERMANY"
        assert row["VAT_CALCULATION_IMPUTATION_COUNTRY"] == row["ARRIVAL_COUNTRY"]
        assert row["PRICE_OF_ITEMS_VAT_RATE_PERCENT"] in ("0.19", "0.07")


def test_refund_rows_carry_no_buyer_and_no_address() -> None:
    rows = _vat_rows()
    sold: dict[str, dict[str, str]] = {}
    refunds = 0
    for row in rows:
        if row["TRANSACTION_TYPE"] == "SALE":
            sold.setdefault(row["TRANSACTION_EVENT_ID"], row)
        if row["TRANSACTION_TYPE"] != "REFUND":
            continue
        refunds += 1
        sale = sold[row["TRANSACTION_EVENT_ID"]]  # a refund comes after the sale of its order
        for column in ("BUYER_NAME", "ARRIVAL_ADDRESS", "ARRIVAL_CITY", "ARRIVAL_POST_CODE"):
            assert row[column] == "", column
        assert row["ARRIVAL_COUNTRY"] == "" and row["DEPARTURE_COUNTRY"] == ""
        assert row["SALE_ARRIVAL_COUNTRY"] == sale["SALE_ARRIVAL_COUNTRY"]
        assert row["MARKETPLACE"] == sale["MARKETPLACE"]
        assert Decimal(row["TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL"]) < 0
        assert int(row["QTY"]) > 0
    assert refunds
    named = [
        event
        for event, sale in sold.items()
        if sale["BUYER_NAME"]
        and any(
            r["TRANSACTION_EVENT_ID"] == event for r in rows if r["TRANSACTION_TYPE"] == "REFUND"
        )
    ]
    assert named  # a named buyer's refund must be matched to its order to find the buyer


def _bookwork_rows() -> list[dict[str, str]]:
    path = _sample("vat-bookwork-2018-01/2018_01_Amazon_Transaktionsbericht_dummy.txt")
    return _rows([line for line in path.read_bytes().decode("ascii").split("\r\n") if line])


@pytest.mark.parametrize("period", ["2018-01", "2026-10"])
def test_a_seller_without_vcs_gets_vat_inclusive_amounts_only(period: str) -> None:
    real = [r for r in _bookwork_rows() if r["TRANSACTION_TYPE"] in ("SALE", "REFUND")]
    assert real and all(not r[column] for r in real for column in NO_VCS_EMPTY)
    rows = _vat_rows(period=period, vat_calculation=False)
    assert rows[0].keys() == set(vat_header(period))
    own = [
        r
        for r in rows
        if r["TRANSACTION_TYPE"] in ("SALE", "REFUND")
        and r.get("TAX_COLLECTION_RESPONSIBILITY", "SELLER") == "SELLER"
    ]
    assert own
    inclusive = [c for c in VAT_HEADER_2020 if c.endswith("_AMT_VAT_INCL")]
    for row in own:
        assert all(not row[column] for column in NO_VCS_EMPTY), row
        for column in inclusive:  # written as the bookwork sample writes them: 215.0, -124.99
            assert re.fullmatch(r"-?\d+\.\d{1,2}", row[column]), (column, row[column])
            assert not re.fullmatch(r"-?\d+\.\d0", row[column])
        assert row["SALE_DEPART_COUNTRY"] and row["SALE_ARRIVAL_COUNTRY"]
    with_vcs = _vat_rows(period=period)
    assert sum(Decimal(r["TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL"]) for r in own) == sum(
        Decimal(r["TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL"])
        for r in with_vcs
        if r["TRANSACTION_TYPE"] in ("SALE", "REFUND")
        and r.get("TAX_COLLECTION_RESPONSIBILITY", "SELLER") == "SELLER"
    )
    # What Amazon collects itself it still calculates, VCS or not.
    collected = [r for r in rows if r.get("TAX_COLLECTION_RESPONSIBILITY") == "MARKETPLACE"]
    assert all(r["TAXABLE_JURISDICTION"] and r["TOTAL_ACTIVITY_VALUE_VAT_AMT"] for r in collected)


def test_vat_report_is_deterministic_and_streamed() -> None:
    assert _vat_rows(orders=30, seed=3) == _vat_rows(orders=30, seed=3)
    assert _vat_rows(orders=30, seed=3) != _vat_rows(orders=30, seed=4)
    started = time.perf_counter()
    huge = generate_vat_report(period="2026-10", marketplace_ids=EU, seed=1, orders=1_000_000)
    assert len(list(itertools.islice(huge, 2_000))) == 2_000
    assert time.perf_counter() - started < 5  # nothing is built up front


# --- settlement and all-orders files ----------------------------------------------------------

SETTLEMENT_PERIOD = (
    datetime(2026, 10, 19, tzinfo=UTC),
    datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC),
)
SUMMARY_ONLY = ("settlement-start-date", "settlement-end-date", "deposit-date", "total-amount")


def _settlement(marketplace_id: str, seed: int = 5, orders: int = 80) -> list[dict[str, str]]:
    return _rows(
        list(
            generate_settlement_report(
                period=SETTLEMENT_PERIOD, marketplace_id=marketplace_id, seed=seed, orders=orders
            )
        )
    )


def test_settlement_header_is_the_samples() -> None:
    sample = _sample("settlement-v2/settlement-sample.txt")
    assert sample.read_text().split("\n", 1)[0].split("\t") == list(SETTLEMENT_HEADER)


@pytest.mark.parametrize(
    ("marketplace_id", "currency", "comma"),
    [
        ("A1PA6795UKMFR9", "EUR", True),
        ("A1F83G8C2ARO7P", "GBP", False),
        ("ATVPDKIKX0DER", "USD", False),
    ],
)
def test_settlement_summary_row_alone_carries_currency_and_totals(
    marketplace_id: str, currency: str, comma: bool
) -> None:
    # A settlement with refunds that holds a reserve back (a negative one holds none).
    rows = _settlement(marketplace_id, seed=1)
    summary, details = rows[0], rows[1:]
    amount = r"-?\d+,\d{2}" if comma else r"-?\d+\.\d{2}"
    moment = (
        r"\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d UTC" if comma else r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    )
    start, end, deposit = (
        ("19.10.2026", "01.11.2026", "04.11.2026")
        if comma
        else (
            "2026-10-19",
            "2026-11-01",
            "2026-11-04",
        )
    )
    assert summary["settlement-start-date"] == f"{start} 00:00:00 UTC"
    assert summary["settlement-end-date"] == f"{end} 23:59:59 UTC"
    assert summary["deposit-date"] == f"{deposit} 00:00:00 UTC"
    assert summary["currency"] == currency
    assert re.fullmatch(amount, summary["total-amount"])
    assert not summary["transaction-type"] and not summary["amount"]

    def value(text: str) -> Decimal:
        return Decimal(text.replace(",", ".") if comma else text)

    assert sum(value(row["amount"]) for row in details) == value(summary["total-amount"])
    assert len({row["settlement-id"] for row in rows}) == 1
    for row in details:
        assert row["currency"] == "", row
        assert all(row[column] == "" for column in SUMMARY_ONLY)
        assert re.fullmatch(amount, row["amount"]), row["amount"]
        assert re.fullmatch(moment, row["posted-date-time"])
    kinds = {row["transaction-type"] for row in details}
    assert {"Order", "Refund", "ServiceFee", "Transfer"} <= kinds
    descriptions = {(row["amount-type"], row["amount-description"]) for row in details}
    assert {
        ("ItemPrice", "Principal"),
        ("ItemPrice", "Tax"),
        ("ItemFees", "Commission"),
        ("ItemFees", "RefundCommission"),
        ("other-transaction", "Previous Reserve Amount Balance"),
        ("other-transaction", "Current Reserve Amount"),
        ("other-transaction", "Subscription Fee"),
    } <= descriptions


def test_settlements_hold_amazons_other_quirks() -> None:
    settlements = {
        (market, seed): _settlement(market, seed=seed)
        for market in ("A1PA6795UKMFR9", "A1F83G8C2ARO7P", "ATVPDKIKX0DER")
        for seed in range(6)
    }
    # An EU settlement that pays nothing out: the reserve keeps the whole balance.
    assert any(rows[0]["total-amount"] == "0,00" for rows in settlements.values())
    tax_first = 0
    for rows in settlements.values():
        details = rows[1:]
        for before, after in itertools.pairwise(details):
            same = before["order-id"] == after["order-id"] != ""
            if same and before["transaction-type"] == after["transaction-type"] == "Refund":
                pair = (before["amount-description"], after["amount-description"])
                tax_first += pair == ("Tax", "Principal")
    assert tax_first  # refunds whose Tax row comes before their Principal row
    descriptions = {
        market: {
            (r["amount-type"], r["amount-description"])
            for (m, _), rows in settlements.items()
            if m == market
            for r in rows
        }
        for market in ("A1PA6795UKMFR9", "A1F83G8C2ARO7P", "ATVPDKIKX0DER")
    }
    # Tax Amazon collects itself comes back out: VAT under UK VAT on eCommerce (and IOSS),
    # US sales tax as ItemWithheldTax.
    assert ("ItemFees", "MarketplaceFacilitatorVAT-Principal") in descriptions["A1F83G8C2ARO7P"]
    assert ("ItemFees", "MarketplaceFacilitatorVAT-Shipping") in descriptions["A1F83G8C2ARO7P"]
    assert ("ItemFees", "MarketplaceFacilitatorVAT-Principal") in descriptions["A1PA6795UKMFR9"]
    assert ("ItemWithheldTax", "MarketplaceFacilitatorTax-Principal") in descriptions[
        "ATVPDKIKX0DER"
    ]


def test_all_orders_header_is_the_samples() -> None:
    sample = _sample(
        "airbyte-sp-api-records/GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL"
        ".reconstructed.tsv"
    )
    assert sample.read_text().split("\n", 1)[0].split("\t") == list(ALL_ORDERS_HEADER)
    period = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 8, tzinfo=UTC))
    lines = list(
        generate_all_orders_report(period=period, marketplace_id="ATVPDKIKX0DER", seed=1, orders=20)
    )
    assert all(len(line.split("\t")) == len(ALL_ORDERS_HEADER) for line in lines)
    with pytest.raises(ValueError):
        next(generate_all_orders_report(period=period, marketplace_id="A1PA6795UKMFR9", seed=1))
