"""The Amazon sandbox read by a real integrator's client: python-amazon-sp-api.

The SDK talks to the sandbox as it talks to Amazon: its own LWA client exchanges the
authorization code and refreshes the access token, its Reports and Tokens clients call
createReport, getReport, getReports, createRestrictedDataToken and getReportDocument, and its
download path fetches and decompresses the documents. Only its endpoints are pointed at the
sandbox. The SDK writes its own Host header (its endpoint minus the first eight characters,
"https://"), which for the sandbox's http:// address is not the sandbox's address at all: document
URLs built from the Host header would send it off the machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import pytest
from sp_api.api import Reports, Tokens
from sp_api.auth import AccessTokenClient
from sp_api.base import Marketplaces, SellingApiForbiddenException

from sandbox.amazon import AmazonSandbox
from sandbox.amazon_reports import SETTLEMENT_HEADER, VAT_HEADER, generate_vat_report
from sandbox.server import LoopbackServer

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DE, UK = "A1PA6795UKMFR9", "A1F83G8C2ARO7P"
VAT = "GET_VAT_TRANSACTION_DATA"
SETTLEMENT = "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2"
ORDERS = 30


class _AmazonHostReports(Reports):
    """Sends the Host header of Amazon's EU endpoint, as a client behind a proxy would."""

    @property
    def headers(self) -> dict[str, str]:
        return {**super().headers, "host": "sellingpartnerapi-eu.amazon.com"}


@pytest.fixture
def sandbox() -> AmazonSandbox:
    return AmazonSandbox(clock=NOW.timestamp, orders_per_report=ORDERS)


@pytest.fixture
def server(sandbox: AmazonSandbox) -> Iterator[LoopbackServer]:
    with LoopbackServer(sandbox.app) as running:
        yield running


@pytest.fixture
def sdk(sandbox: AmazonSandbox, server: LoopbackServer) -> SdkFactory:
    return SdkFactory(sandbox, server)


class SdkFactory:
    """SDK clients for the sandbox's seller: the SDK's own LWA client, pointed at the sandbox."""

    def __init__(self, sandbox: AmazonSandbox, server: LoopbackServer) -> None:
        self.server = server
        self.credentials = {
            "lwa_app_id": sandbox.client_id,
            "lwa_client_secret": sandbox.client_secret,
        }

        class SandboxLwa(AccessTokenClient):
            scheme = "http://"
            host = urlparse(server.url).netloc

        self.lwa = SandboxLwa
        consent = SandboxLwa(credentials=_Config(self.credentials))
        self.refresh_token = consent.authorize_auth_code(sandbox.authorization_code())[
            "refresh_token"
        ]

    def client(self, kind: type[Any], **options: Any) -> Any:
        client = kind(
            Marketplaces.DE,
            refresh_token=self.refresh_token,
            credentials=self.credentials,
            auth_token_client_class=self.lwa,
            **options,
        )
        client.endpoint = self.server.url
        return client


class _Config:
    """The shape of credentials the SDK's LWA client reads (CredentialProvider.Config)."""

    def __init__(self, credentials: dict[str, str]) -> None:
        self.lwa_app_id = credentials["lwa_app_id"]
        self.lwa_client_secret = credentials["lwa_client_secret"]
        self.refresh_token = None


def _done(reports: Any, report_id: str) -> dict[str, Any]:
    for _ in range(5):
        report: dict[str, Any] = reports.get_report(report_id).payload
        if report["processingStatus"] == "DONE":
            return report
    raise AssertionError(f"report {report_id} never finished: {report}")


def test_the_sdk_reads_a_vat_report_through_an_rdt(sdk: SdkFactory, sandbox: AmazonSandbox) -> None:
    reports = sdk.client(Reports)
    created = reports.create_report(
        reportType=VAT,
        marketplaceIds=[DE, UK],
        dataStartTime="2026-10-01T00:00:00Z",
        dataEndTime="2026-10-31T23:59:59Z",
    )
    report = _done(reports, created.payload["reportId"])
    assert report["reportType"] == VAT and report["marketplaceIds"] == [DE, UK]
    document_id = report["reportDocumentId"]

    # A VAT report is restricted: the SDK's own access token is refused, an RDT opens it.
    path = f"/reports/2021-06-30/documents/{document_id}"
    with pytest.raises(SellingApiForbiddenException) as refused:
        reports.get_report_document(document_id)
    assert refused.value.error[0]["code"] == "Unauthorized"
    rdt = (
        sdk.client(Tokens)
        .create_restricted_data_token(restrictedResources=[{"method": "GET", "path": path}])
        .payload["restrictedDataToken"]
    )
    restricted = sdk.client(Reports, restricted_data_token=rdt)
    document = restricted.get_report_document(document_id, download=True).payload
    assert document["compressionAlgorithm"] == "GZIP"
    assert document["url"].startswith(f"{sdk.server.url}/documents-bucket/{document_id}?")
    expected = generate_vat_report(
        period="2026-10", marketplace_ids=[DE, UK], seed=sandbox.seed, orders=ORDERS
    )
    lines = document["document"].splitlines()
    assert lines == list(expected)
    assert lines[0].split("\t") == list(VAT_HEADER)
    assert any("Kaffeemühle" in line for line in lines)  # decoded as UTF-8, as declared


def test_the_sdk_lists_and_downloads_plain_settlement_documents(sdk: SdkFactory) -> None:
    reports = sdk.client(Reports)
    listed = reports.get_reports(
        reportTypes=[SETTLEMENT], processingStatuses=["DONE"], marketplaceIds=[DE], pageSize=3
    )
    page = listed.payload["reports"]
    assert len(page) == 3 and listed.next_token
    following = reports.get_reports(nextToken=listed.next_token).payload["reports"]
    assert following and {r["reportId"] for r in following}.isdisjoint(
        {r["reportId"] for r in page}
    )
    for report in (*page, *following):
        assert report["reportType"] == SETTLEMENT and report["marketplaceIds"] == [DE]

    document_id = page[0]["reportDocumentId"]
    answer = reports.get_report_document(document_id, download=True).payload
    assert "compressionAlgorithm" not in answer  # settlements come uncompressed
    lines = answer["document"].splitlines()
    assert lines[0].split("\t") == list(SETTLEMENT_HEADER)
    summary = dict(zip(SETTLEMENT_HEADER, lines[1].split("\t"), strict=True))
    assert summary["currency"] == "EUR" and "," in summary["total-amount"]
    detail = dict(zip(SETTLEMENT_HEADER, lines[2].split("\t"), strict=True))
    assert detail["currency"] == "" and detail["transaction-type"]


def test_document_urls_ignore_the_host_header_the_client_sends(sdk: SdkFactory) -> None:
    reports = sdk.client(_AmazonHostReports)
    listed = reports.get_reports(reportTypes=[SETTLEMENT], marketplaceIds=[DE])
    document_id = listed.payload["reports"][0]["reportDocumentId"]
    answer = reports.get_report_document(document_id, download=True).payload
    assert urlparse(answer["url"]).netloc == urlparse(sdk.server.url).netloc
    assert answer["document"].startswith("settlement-id\t")
