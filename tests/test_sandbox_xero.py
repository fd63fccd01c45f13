"""The Xero sandbox against Xero's published OpenAPI specs and Xero's documented behaviour.

Responses are checked against the spec with every documented object closed to undocumented
fields (Xero's envelope keys aside), so a misspelt or invented field fails here, not in
production. Error bodies are checked against the spec's Error schema.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from xml.etree import ElementTree

import pytest
import requests
import yaml
from openapi_schema_validator import OAS30ReadValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from sandbox.server import LoopbackServer
from sandbox.xero import DEFAULT_SCOPE, ZERO_GUID, SandboxOrg, XeroSandbox, to_json
from tests.conftest import SHARED
from tests.xero_helpers import REDIRECT_URI, consent, credit_note, invoice, redirect_params

SPECS = SHARED / "specs" / "xero"
ENVELOPE = ("Id", "Status", "ProviderName", "DateTimeUTC")
JSON = dict[str, Any]


# --- the specs --------------------------------------------------------------------------------


@functools.cache
def spec(name: str) -> JSON:
    """Parsed once per test run: the accounting spec is about 900 KB of YAML."""
    return yaml.load((SPECS / name).read_text(), Loader=yaml.CSafeLoader)


def _closed(node: Any) -> Any:
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: _closed(value) for key, value in node.items()}
    if "properties" in copy and "additionalProperties" not in copy:
        copy["additionalProperties"] = False
    return copy


@functools.cache
def _validator(spec_name: str, schema: str, closed: bool, array: bool) -> Any:
    contents = spec(spec_name)
    if closed:
        components = contents["components"]
        contents = {
            **contents,
            "components": {**components, "schemas": _closed(components["schemas"])},
        }
    uri = f"urn:{spec_name}"
    registry: Registry[Any] = Registry().with_resource(
        uri, Resource.from_contents(contents, default_specification=DRAFT4)
    )
    ref = {"$ref": f"{uri}#/components/schemas/{schema}"}
    return OAS30ReadValidator({"type": "array", "items": ref} if array else ref, registry=registry)


def schema_errors(
    instance: Any,
    schema: str,
    *,
    spec_name: str = "xero_accounting.yaml",
    closed: bool = True,
    array: bool = False,
) -> list[str]:
    if isinstance(instance, dict):
        instance = {k: v for k, v in instance.items() if k not in ENVELOPE}
    validator = _validator(spec_name, schema, closed, array)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def assert_matches(instance: Any, schema: str, **options: Any) -> None:
    errors = schema_errors(instance, schema, **options)
    assert not errors, "\n".join(errors[:20])


# --- a sandbox on a port, and calls to it -----------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Api:
    """Raw HTTP against a running sandbox, with a token for its first organisation."""

    def __init__(self, sandbox: XeroSandbox, server: LoopbackServer, scope: str) -> None:
        self.sandbox = sandbox
        self.url = server.url
        self.tenant_id = sandbox.tenant_id
        self.refresh_token = sandbox.authorize_offline(scope=scope)
        self.access_token = self.token("refresh_token", refresh_token=self.refresh_token).json()[
            "access_token"
        ]

    def token(
        self, grant_type: str, *, secret: str | None = None, **form: str
    ) -> requests.Response:
        return requests.post(
            f"{self.url}/connect/token",
            data={"grant_type": grant_type, **form},
            auth=(self.sandbox.client_id, secret or self.sandbox.client_secret),
            timeout=10,
        )

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        accept: str = "application/json",
    ) -> requests.Response:
        sent = {
            "Authorization": f"Bearer {self.access_token}",
            "xero-tenant-id": self.tenant_id,
            "Accept": accept,
            **(headers or {}),
        }
        return requests.request(
            method,
            f"{self.url}/api.xro/2.0/{path}",
            params=params,
            data=None if body is None else to_json(body),
            headers=sent,
            timeout=10,
        )

    def json(self, method: str, path: str, body: Any = None, **options: Any) -> JSON:
        response = self.call(method, path, body, **options)
        assert response.status_code == 200, response.text
        return response.json(parse_float=Decimal)

    def create(self, endpoint: str, *documents: JSON) -> list[JSON]:
        reply = self.json("PUT", endpoint, {endpoint: list(documents)})
        return reply[endpoint]


Start = Callable[..., Api]


@pytest.fixture
def start() -> Iterator[Start]:
    servers: list[LoopbackServer] = []

    def run(scope: str = DEFAULT_SCOPE, **options: Any) -> Api:
        sandbox = XeroSandbox(**options)
        server = LoopbackServer(sandbox.app).start()
        servers.append(server)
        return Api(sandbox, server, scope)

    yield run
    for server in servers:
        server.stop()


@pytest.fixture
def api(start: Start) -> Api:
    return start()


def messages(element: JSON) -> list[str]:
    return [e["Message"] for e in element.get("ValidationErrors", [])]


# --- the harness itself -----------------------------------------------------------------------


def test_closed_schemas_catch_misspelt_fields() -> None:
    assert schema_errors({"Invoices": [{"InvoiceNumbr": "INV-1"}]}, "Invoices")
    assert schema_errors({"Invoices": [{"Status": "SENT"}]}, "Invoices")
    assert not schema_errors({"Id": "x", "Invoices": [{"InvoiceNumber": "INV-1"}]}, "Invoices")


# --- login and identity -----------------------------------------------------------------------


def test_unknown_client_gets_an_error_page(api: Api) -> None:
    response = requests.get(
        f"{api.url}/identity/connect/authorize",
        params={
            "response_type": "code",
            "client_id": "someone-else",
            "redirect_uri": REDIRECT_URI,
            "scope": DEFAULT_SCOPE,
            "state": "s",
        },
        timeout=10,
    )
    assert response.status_code == 400
    assert "unauthorized_client" in response.text


def _authorize_url(api: Api, scope: str) -> str:
    return (
        requests.Request(
            "GET",
            f"{api.url}/identity/connect/authorize",
            params={
                "response_type": "code",
                "client_id": api.sandbox.client_id,
                "redirect_uri": REDIRECT_URI,
                "scope": scope,
                "state": "st",
            },
        )
        .prepare()
        .url
        or ""
    )


def test_consent_without_offline_access_gives_no_refresh_token(api: Api) -> None:
    params = redirect_params(consent(_authorize_url(api, "openid accounting.settings")))
    body = api.token("authorization_code", code=params["code"], redirect_uri=REDIRECT_URI).json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1800
    assert "id_token" in body
    assert "refresh_token" not in body
    assert body["access_token"].count(".") == 2  # JWT-shaped


def test_declining_consent_redirects_with_access_denied(api: Api) -> None:
    params = redirect_params(consent(_authorize_url(api, DEFAULT_SCOPE), action="deny"))
    assert params == {"error": "access_denied", "state": "st"}


def test_codes_are_single_use_and_bound_to_the_redirect_uri(api: Api) -> None:
    first = redirect_params(consent(_authorize_url(api, DEFAULT_SCOPE)))["code"]
    assert api.token("authorization_code", code=first, redirect_uri="http://x/").status_code == 400
    second = redirect_params(consent(_authorize_url(api, DEFAULT_SCOPE)))["code"]
    assert api.token("authorization_code", code=second, redirect_uri=REDIRECT_URI).ok
    reused = api.token("authorization_code", code=second, redirect_uri=REDIRECT_URI)
    assert (reused.status_code, reused.json()) == (400, {"error": "invalid_grant"})


def test_token_endpoint_checks_the_client(api: Api) -> None:
    wrong = api.token("refresh_token", secret="nope", refresh_token=api.refresh_token)
    assert wrong.json() == {"error": "invalid_client"}
    unknown = api.token("password")
    assert unknown.json() == {"error": "unsupported_grant_type"}


def test_refresh_tokens_rotate_with_xeros_grace(start: Start) -> None:
    clock = FakeClock()
    api = start(clock=clock)
    first = api.sandbox.authorize_offline()

    second = api.token("refresh_token", refresh_token=first).json()["refresh_token"]
    assert second != first
    # Within 30 minutes the used token works again and gives the token the caller missed.
    clock.advance(minutes=29)
    assert api.token("refresh_token", refresh_token=first).json()["refresh_token"] == second
    clock.advance(minutes=2)
    expired_grace = api.token("refresh_token", refresh_token=first)
    assert (expired_grace.status_code, expired_grace.json()) == (400, {"error": "invalid_grant"})

    third = api.token("refresh_token", refresh_token=second).json()["refresh_token"]
    assert third not in (first, second)
    assert api.sandbox.issued_refresh_tokens[-2:] == [second, third]


def test_strict_rotation_when_the_grace_is_off(start: Start) -> None:
    api = start(refresh_grace=timedelta(0))
    first = api.sandbox.authorize_offline()
    assert api.token("refresh_token", refresh_token=first).ok
    assert api.token("refresh_token", refresh_token=first).json() == {"error": "invalid_grant"}


def test_connections_match_the_identity_spec(api: Api) -> None:
    response = requests.get(
        f"{api.url}/connections",
        headers={"Authorization": f"Bearer {api.access_token}"},
        timeout=10,
    )
    rows = response.json()
    assert_matches(rows, "Connection", spec_name="xero-identity.yaml", array=True)
    assert [(r["tenantId"], r["tenantType"], r["tenantName"]) for r in rows] == [
        (api.tenant_id, "ORGANISATION", "Demo Company (UK)")
    ]


def test_paths_are_matched_regardless_of_case(api: Api) -> None:
    bearer = {"Authorization": f"Bearer {api.access_token}"}
    # xero-python and Xero's identity spec spell it /Connections.
    rows = requests.get(f"{api.url}/Connections", headers=bearer, timeout=10).json()
    assert [r["tenantId"] for r in rows] == [api.tenant_id]
    (created,) = api.create("Invoices", invoice("amz-1"))
    # The resource name's case is Xero's to ignore; a key (here a number) is left as sent.
    by_number = api.json("GET", "invoices/amz-1")["Invoices"]
    assert [i["InvoiceID"] for i in by_number] == [created["InvoiceID"]]
    assert api.json("GET", "TAXRATES")["TaxRates"]
    deleted = requests.delete(f"{api.url}/CONNECTIONS/{rows[0]['id']}", headers=bearer, timeout=10)
    assert deleted.status_code == 204
    assert requests.get(f"{api.url}/connections", headers=bearer, timeout=10).json() == []


def test_revocation_ends_the_consent_and_its_connections(api: Api) -> None:
    def revoke(token: str, secret: str | None = None) -> requests.Response:
        return requests.post(
            f"{api.url}/connect/revocation",
            data={"token": token},
            auth=(api.sandbox.client_id, secret or api.sandbox.client_secret),
            timeout=10,
        )

    assert revoke(api.refresh_token, secret="wrong").json() == {"error": "invalid_client"}
    rotated = api.token("refresh_token", refresh_token=api.refresh_token).json()["refresh_token"]
    assert revoke(api.refresh_token).status_code == 200
    # Every token of that consent dies, not only the one given.
    assert api.token("refresh_token", refresh_token=rotated).json() == {"error": "invalid_grant"}
    assert api.call("GET", "Organisation").status_code == 403
    bearer = {"Authorization": f"Bearer {api.access_token}"}
    assert requests.get(f"{api.url}/connections", headers=bearer, timeout=10).json() == []
    # RFC 7009: a token the server does not know is answered 200 as well.
    assert revoke("not-a-token").status_code == 200


# --- the API gate -----------------------------------------------------------------------------


def test_api_calls_need_a_bearer_token_for_a_connected_tenant(start: Start) -> None:
    clock = FakeClock()
    api = start(clock=clock)

    anonymous = api.call("GET", "Organisation", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.json()["Detail"] == "AuthenticationUnsuccessful"
    for tenant in ("", "00000000-0000-0000-0000-000000000000"):
        forbidden = api.call("GET", "Organisation", headers={"xero-tenant-id": tenant})
        assert (forbidden.status_code, forbidden.json()["Title"]) == (403, "Forbidden")

    clock.advance(minutes=31)
    expired = api.call("GET", "Organisation")
    assert expired.status_code == 401
    assert expired.json()["Detail"].startswith("TokenExpired: token expired at 03/01/2026 09:30")


def test_scopes_limit_what_a_token_opens(start: Start) -> None:
    api = start(scope="offline_access accounting.settings accounting.invoices.read")
    assert api.call("GET", "Currencies").status_code == 200
    assert api.call("GET", "Invoices").status_code == 200
    assert api.call("PUT", "Invoices", {"Invoices": [invoice()]}).json()["Detail"] == (
        "AuthorizationUnsuccessful"
    )
    assert api.call("GET", "Contacts").status_code == 401


def test_faults_answer_before_anything_else(api: Api) -> None:
    api.sandbox.faults.add("/api.xro/2.0/Currencies", 503)
    assert api.call("GET", "Currencies").status_code == 503
    assert api.call("GET", "Currencies").status_code == 200


# --- responses against the spec ---------------------------------------------------------------


def _populate(api: Api) -> dict[str, str]:
    sale, bill = api.create(
        "Invoices", invoice("AMZ-1"), {**invoice(None), "Type": "ACCPAY", "Reference": "fees"}
    )
    (refund,) = api.create("CreditNotes", credit_note("R-1"))
    api.json(
        "PUT",
        f"CreditNotes/{refund['CreditNoteID']}/Allocations",
        {
            "Allocations": [
                {"Invoice": {"InvoiceID": sale["InvoiceID"]}, "Amount": 1, "Date": "2026-03-02"}
            ]
        },
    )
    return {
        "contact": sale["Contact"]["ContactID"],
        "invoice": sale["InvoiceID"],
        "bill": bill["InvoiceID"],
        "credit": refund["CreditNoteID"],
    }


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("Organisation", "Organisations"),
        ("Accounts", "Accounts"),
        ("Currencies", "Currencies"),
        ("TaxRates", "TaxRates"),
        ("Contacts", "Contacts"),
        ("Contacts?page=1", "Contacts"),
        ("Contacts/{contact}", "Contacts"),
        ("Invoices", "Invoices"),
        ("Invoices?page=1", "Invoices"),
        ("Invoices/{invoice}", "Invoices"),
        ("Invoices/AMZ-1", "Invoices"),
        ("CreditNotes", "CreditNotes"),
        ("CreditNotes?page=1&pageSize=5", "CreditNotes"),
        ("CreditNotes/{credit}", "CreditNotes"),
    ],
)
def test_reads_match_the_spec(api: Api, path: str, schema: str) -> None:
    ids = _populate(api)
    target, _, query = path.format(**ids).partition("?")
    params = dict(part.split("=") for part in query.split("&")) if query else None
    body = api.json("GET", target, params=params)
    assert_matches(body, schema)
    assert body["Status"] == "OK"
    assert body["ProviderName"]
    assert body["DateTimeUTC"].startswith("/Date(")


def test_writes_match_the_spec(api: Api) -> None:
    ids = _populate(api)
    created = api.json("PUT", "Invoices", {"Invoices": [invoice("AMZ-2")]})
    assert_matches(created, "Invoices")
    assert created["Invoices"][0]["StatusAttributeString"] == "OK"
    updated = api.json(
        "POST", "Invoices", {"Invoices": [{"InvoiceNumber": "AMZ-2", "Reference": "Order 1"}]}
    )
    assert_matches(updated, "Invoices")
    assert updated["Invoices"][0]["InvoiceID"] == created["Invoices"][0]["InvoiceID"]
    assert updated["Invoices"][0]["Reference"] == "Order 1"
    by_path = api.json("POST", f"Invoices/{ids['invoice']}", {"Reference": "Order 2"})
    assert_matches(by_path, "Invoices")
    assert_matches(
        api.json("PUT", "CreditNotes", {"CreditNotes": [credit_note("R-2")]}), "CreditNotes"
    )
    contact = api.json(
        "PUT", "Contacts", {"Contacts": [{"Name": "Amazon.fr", "EmailAddress": "a@b.c"}]}
    )
    assert_matches(contact, "Contacts")
    renamed = api.json(
        "POST",
        "Contacts",
        {"Contacts": [{"ContactID": contact["Contacts"][0]["ContactID"], "Name": "Amazon France"}]},
    )
    assert_matches(renamed, "Contacts")
    assert renamed["Contacts"][0]["Name"] == "Amazon France"
    rate = api.json(
        "PUT",
        "TaxRates",
        {
            "TaxRates": [
                {
                    "Name": "20% FR",
                    "ReportTaxType": "MOSSSALES",
                    "TaxComponents": [{"Name": "TVA", "Rate": 20}],
                }
            ]
        },
    )
    assert_matches(rate, "TaxRates")
    renamed_rate = api.json(
        "POST",
        "TaxRates",
        {"TaxRates": [{"TaxType": rate["TaxRates"][0]["TaxType"], "Name": "20% FR (OSS)"}]},
    )
    assert_matches(renamed_rate, "TaxRates")
    assert renamed_rate["TaxRates"][0]["TaxType"] == rate["TaxRates"][0]["TaxType"]
    assert renamed_rate["TaxRates"][0]["EffectiveRate"] == Decimal("20.0000")
    mixed = api.json(
        "PUT",
        "Invoices",
        {"Invoices": [invoice("AMZ-3"), invoice("AMZ-4", tax_type="BOGUS")]},
        params={"summarizeErrors": "false"},
    )
    assert_matches(mixed, "Invoices")
    assert [i["StatusAttributeString"] for i in mixed["Invoices"]] == ["OK", "ERROR"]


def test_allocations_match_the_spec(api: Api) -> None:
    sale, refund = (
        api.create("Invoices", invoice("AMZ-1"))[0],
        api.create("CreditNotes", credit_note())[0],
    )
    body = api.json(
        "PUT",
        f"CreditNotes/{refund['CreditNoteID']}/Allocations",
        {
            "Allocations": [
                {
                    "Invoice": {"InvoiceID": sale["InvoiceID"]},
                    "Amount": Decimal("6.00"),
                    "Date": "2026-03-02",
                }
            ]
        },
    )
    assert_matches(body, "Allocations")
    (allocation,) = body["Allocations"]
    assert allocation["Amount"] == Decimal("6.00")
    assert allocation["Date"] == "/Date(1772409600000+0000)/"
    (after,) = api.json("GET", f"Invoices/{sale['InvoiceID']}")["Invoices"]
    assert (after["AmountDue"], after["AmountCredited"], after["Status"]) == (
        Decimal("6.00"),
        Decimal("6.00"),
        "AUTHORISED",
    )
    assert after["CreditNotes"][0]["AppliedAmount"] == Decimal("6.00")
    (note,) = api.json("GET", f"CreditNotes/{refund['CreditNoteID']}")["CreditNotes"]
    assert (note["RemainingCredit"], note["Status"]) == (Decimal("0.00"), "PAID")


def test_errors_match_the_spec_error_schema(api: Api) -> None:
    api.create("Invoices", invoice("AMZ-1"))
    errors = [
        api.call("PUT", "Invoices", {"Invoices": [invoice("AMZ-1")]}),
        api.call("GET", "Invoices", params={"where": 'Status=="DRAFT" AND'}),
        api.call("PUT", "Invoices", {"Invoices": [invoice(f"X-{i}") for i in range(51)]}),
        api.call("PUT", "Contacts", headers={"Content-Type": "application/json"}),
        requests.put(
            f"{api.url}/api.xro/2.0/Contacts",
            data="{not json",
            headers={
                "Authorization": f"Bearer {api.access_token}",
                "xero-tenant-id": api.tenant_id,
                "Accept": "application/json",
            },
            timeout=10,
        ),
    ]
    for response in errors:
        assert response.status_code == 400, response.text
        body = response.json(parse_float=Decimal)
        assert_matches(body, "Error", closed=False)
        assert body["Type"] in (
            "ValidationException",
            "QueryParseException",
            "PostDataInvalidException",
        )
    assert errors[0].json()["Elements"][0]["ValidationErrors"] == [
        {"Message": "Invoice # must be unique."}
    ]
    assert errors[0].json()["ErrorNumber"] == 10
    assert "50" in errors[2].json()["Message"]


def test_xml_unless_json_is_asked_for(api: Api) -> None:
    api.create("Invoices", invoice("AMZ-1"))
    response = api.call("GET", "Invoices", accept="application/xml")
    assert response.headers["Content-Type"].startswith("text/xml")
    root = ElementTree.fromstring(response.text)
    assert root.tag == "Response"
    assert root.findtext("Status") == "OK"
    assert root.findtext("Invoices/Invoice/InvoiceNumber") == "AMZ-1"
    assert root.findtext("Invoices/Invoice/Total") == "12.00"

    error = api.call("PUT", "Invoices", {"Invoices": [invoice("AMZ-1")]}, accept="*/*")
    failure = ElementTree.fromstring(error.text)
    assert failure.tag == "ApiException"
    assert failure.findtext(
        "Elements/DataContractBase/ValidationErrors/ValidationError/Message"
    ) == ("Invoice # must be unique.")


# --- Xero's validation and arithmetic -------------------------------------------------------------


def test_totals_are_computed_and_rounded_like_xero(api: Api) -> None:
    def lines(*items: tuple[str, str, str]) -> list[JSON]:
        return [
            {
                "Description": "x",
                "Quantity": Decimal(q),
                "UnitAmount": Decimal(u),
                "AccountCode": "200",
                "TaxType": t,
            }
            for q, u, t in items
        ]

    exclusive, inclusive, no_tax, given_tax = api.create(
        "Invoices",
        {**invoice("E"), "LineItems": lines(("3", "3.333", "OUTPUT2"), ("1", "0.05", "RROUTPUT"))},
        {
            **invoice("I"),
            "LineAmountTypes": "Inclusive",
            "LineItems": lines(("1", "12.00", "OUTPUT2")),
        },
        {**invoice("N"), "LineAmountTypes": "NoTax", "LineItems": lines(("2", "4.50", "OUTPUT2"))},
        {
            **invoice("G"),
            "LineItems": [{**lines(("1", "10.00", "OUTPUT2"))[0], "TaxAmount": Decimal("1.99")}],
        },
    )
    # 3 x 3.33 (unit amounts are 2 dp) = 9.99, VAT 1.998 -> 2.00; 0.05 at 5% -> 0.0025 -> 0.00.
    assert [exclusive[k] for k in ("SubTotal", "TotalTax", "Total", "AmountDue")] == [
        Decimal("10.04"),
        Decimal("2.00"),
        Decimal("12.04"),
        Decimal("12.04"),
    ]
    assert [line["LineAmount"] for line in exclusive["LineItems"]] == [
        Decimal("9.99"),
        Decimal("0.05"),
    ]
    assert [inclusive[k] for k in ("SubTotal", "TotalTax", "Total")] == [
        Decimal("10.00"),
        Decimal("2.00"),
        Decimal("12.00"),
    ]
    assert [no_tax[k] for k in ("SubTotal", "TotalTax", "Total")] == [
        Decimal("9.00"),
        Decimal("0.00"),
        Decimal("9.00"),
    ]
    assert no_tax["LineItems"][0]["TaxType"] == "NONE"
    assert given_tax["Total"] == Decimal("11.99")


def test_four_decimal_unit_amounts_with_unitdp(api: Api) -> None:
    body = api.json(
        "PUT",
        "Invoices",
        {
            "Invoices": [
                {
                    **invoice("U"),
                    "LineItems": [
                        {
                            **invoice()["LineItems"][0],
                            "Quantity": 3,
                            "UnitAmount": Decimal("3.3333"),
                        }
                    ],
                }
            ]
        },
        params={"unitdp": "4"},
    )
    (line,) = body["Invoices"][0]["LineItems"]
    assert (line["UnitAmount"], line["LineAmount"]) == (Decimal("3.3333"), Decimal("10.00"))


@pytest.mark.parametrize(
    ("endpoint", "document", "expected"),
    [
        ("Invoices", invoice("AMZ-1"), "Invoice # must be unique."),
        ("CreditNotes", credit_note("R-1"), "Credit Note # must be unique."),
        (
            "Contacts",
            {"Name": " amazon.co.uk customers"},
            "The contact name  amazon.co.uk customers is already assigned to another contact. "
            "The contact name must be unique across all active contacts.",
        ),
        (
            "Invoices",
            invoice("A2", account="999"),
            "Account code '999' is not a valid code for this document.",
        ),
        (
            "Invoices",
            invoice("A3", tax_type="BOGUS"),
            "The TaxType code 'BOGUS' does not exist or cannot be used for this type of "
            "transaction.",
        ),
        (
            "Invoices",
            invoice("A4", currency="SEK"),
            "Organisation is not subscribed to currency SEK",
        ),
        (
            "CreditNotes",
            credit_note("R-2", currency="PLN"),
            "Organisation is not subscribed to currency PLN",
        ),
        (
            "Invoices",
            {**invoice("A5"), "Contact": {}},
            "A Contact must be specified for this type of transaction",
        ),
        ("Invoices", invoice("A6", status="SENT"), "'SENT' is not a valid Status."),
        ("Invoices", invoice("A7", status="PAID"), "Invoice not of valid status for creation"),
        (
            "Invoices",
            {**invoice("A8"), "LineAmountTypes": "Gross"},
            "'Gross' is not a valid LineAmountTypes value. Use one of Exclusive, Inclusive, NoTax.",
        ),
        (
            "Invoices",
            {**invoice("A9"), "Date": "01/03/2026"},
            "Date '01/03/2026' is not a valid date. Use the format YYYY-MM-DD.",
        ),
        (
            "Invoices",
            {**invoice("A10"), "Type": "SALE"},
            "Invoice Type must be one of ACCREC, ACCPAY.",
        ),
    ],
)
def test_validation_like_xero(api: Api, endpoint: str, document: JSON, expected: str) -> None:
    api.create("Invoices", invoice("AMZ-1"))
    api.create("CreditNotes", credit_note("R-1"))
    body = api.json("PUT", endpoint, {endpoint: [document]}, params={"summarizeErrors": "false"})
    (element,) = body[endpoint]
    assert element["StatusAttributeString"] == "ERROR"
    assert expected in messages(element)
    assert_matches(body, endpoint)


def test_bills_may_repeat_a_suppliers_number(api: Api) -> None:
    bill = {
        **invoice("SUP-1"),
        "Type": "ACCPAY",
        "LineItems": [{**invoice()["LineItems"][0], "AccountCode": "310", "TaxType": "INPUT2"}],
    }
    first, second = api.create("Invoices", bill, bill)
    assert first["InvoiceNumber"] == second["InvoiceNumber"] == "SUP-1"


def test_missing_numbers_are_generated(api: Api) -> None:
    first, second = api.create("Invoices", invoice(None), invoice(None))
    assert (first["InvoiceNumber"], second["InvoiceNumber"]) == ("INV-0001", "INV-0002")
    contacts = api.sandbox.documents("Contacts")
    assert [(c["Name"], c["IsCustomer"]) for c in contacts] == [("Amazon.co.uk customers", True)]


def test_a_summarized_400_lists_only_the_failed_elements_and_the_rest_are_saved(
    api: Api,
) -> None:
    batch = {"Invoices": [invoice("OK-1"), invoice("BAD-1", account="999")]}
    rejected = api.call("PUT", "Invoices", batch)
    assert rejected.status_code == 400
    (failed,) = rejected.json()["Elements"]
    assert messages(failed) == ["Account code '999' is not a valid code for this document."]
    assert failed["InvoiceNumber"] == "BAD-1"
    # The 400 hides that OK-1 was saved; the id it gives the failed one names nothing.
    assert [d["InvoiceNumber"] for d in api.sandbox.documents("Invoices")] == ["OK-1"]
    assert api.call("GET", f"Invoices/{failed['InvoiceID']}").status_code == 404


def test_without_summarized_errors_every_element_is_answered_and_failed_ones_have_no_id(
    api: Api,
) -> None:
    batch = {"Invoices": [invoice("OK-1"), invoice("BAD-1", account="999")]}
    mixed = api.json("PUT", "Invoices", batch, params={"summarizeErrors": "False"})
    assert [e["StatusAttributeString"] for e in mixed["Invoices"]] == ["OK", "ERROR"]
    assert mixed["Invoices"][1]["HasErrors"] is True
    assert mixed["Invoices"][1]["InvoiceID"] == ZERO_GUID
    assert [d["InvoiceNumber"] for d in api.sandbox.documents("Invoices")] == ["OK-1"]
    taken = {"Contacts": [{"Name": "Amazon.de"}, {"Name": "Amazon.de"}]}
    contacts = api.json("PUT", "Contacts", taken, params={"summarizeErrors": "false"})["Contacts"]
    assert [c["ContactID"] == ZERO_GUID for c in contacts] == [False, True]
    assert contacts[1]["HasValidationErrors"] is True
    assert_matches({"Contacts": contacts}, "Contacts")


def test_summarize_errors_must_be_true_or_false(api: Api) -> None:
    response = api.call(
        "PUT", "Invoices", {"Invoices": [invoice()]}, params={"summarizeErrors": "no"}
    )
    assert response.status_code == 400
    assert response.json()["Type"] == "QueryParseException"
    assert api.sandbox.documents("Invoices") == []


def test_allocation_rules(api: Api) -> None:
    sale, draft, euro, other = api.create(
        "Invoices",
        invoice("S-1"),
        invoice("S-2", status="DRAFT"),
        invoice("S-3", currency="EUR"),
        invoice("S-4", contact="Someone else"),
    )
    (big,) = api.create("CreditNotes", credit_note("R-1", amount="20.00"))

    def allocate(target: JSON, amount: str) -> list[str]:
        response = api.call(
            "PUT",
            f"CreditNotes/{big['CreditNoteID']}/Allocations",
            {
                "Allocations": [
                    {
                        "Invoice": {"InvoiceID": target["InvoiceID"]},
                        "Amount": Decimal(amount),
                        "Date": "2026-03-02",
                    }
                ]
            },
        )
        if response.status_code == 200:
            return []
        assert_matches(response.json(), "Error", closed=False)
        return messages(response.json()["Elements"][0])

    assert allocate(sale, "12.01") == [
        "The amount to allocate exceeds the amount due on the invoice."
    ]
    assert allocate(draft, "1.00") == [
        "Only AUTHORISED invoices can have credit allocated to them."
    ]
    assert allocate(euro, "1.00") == ["The invoice and credit note must be in the same currency."]
    assert allocate(other, "1.00") == ["The invoice and credit note must be for the same contact."]
    assert allocate(sale, "0") == ["Amount must be greater than zero."]
    assert allocate(sale, "12.00") == []
    (paid,) = api.json("GET", f"Invoices/{sale['InvoiceID']}")["Invoices"]
    assert (paid["Status"], paid["AmountDue"]) == ("PAID", Decimal("0.00"))
    assert allocate(sale, "1.00") == [
        "Only AUTHORISED invoices can have credit allocated to them.",
        "The amount to allocate exceeds the amount due on the invoice.",
    ]
    (note,) = api.json("GET", f"CreditNotes/{big['CreditNoteID']}")["CreditNotes"]
    assert note["RemainingCredit"] == Decimal("12.00")
    (draft_note,) = api.create("CreditNotes", credit_note("R-2", status="DRAFT"))
    refused = api.call(
        "PUT",
        f"CreditNotes/{draft_note['CreditNoteID']}/Allocations",
        {
            "Allocations": [
                {"Invoice": {"InvoiceID": other["InvoiceID"]}, "Amount": 1, "Date": "2026-03-02"}
            ]
        },
    )
    assert "Only AUTHORISED credit notes can be allocated." in messages(
        refused.json()["Elements"][0]
    )


# --- idempotency and limits -------------------------------------------------------------------


def test_an_idempotency_key_replays_the_first_answer(api: Api) -> None:
    body = {"Invoices": [invoice("AMZ-1")]}
    key = {"Idempotency-Key": "run-7-batch-1"}
    first = api.call("PUT", "Invoices", body, headers=key)
    again = api.call("PUT", "Invoices", body, headers=key)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert len(api.sandbox.documents("Invoices")) == 1
    assert (
        int(again.headers["X-MinLimit-Remaining"]) == int(first.headers["X-MinLimit-Remaining"]) - 1
    )

    other_body = api.call("PUT", "Invoices", {"Invoices": [invoice("AMZ-2")]}, headers=key)
    assert other_body.status_code == 400
    assert_matches(other_body.json(), "Error", closed=False)
    too_long = api.call("PUT", "Invoices", body, headers={"Idempotency-Key": "k" * 129})
    assert too_long.status_code == 400


def test_minute_limit(start: Start) -> None:
    clock = FakeClock()
    api = start(minute_limit=3, clock=clock)
    remaining = [api.call("GET", "Currencies").headers["X-MinLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]

    clock.advance(seconds=20)
    limited = api.call("GET", "Currencies")
    assert limited.status_code == 429
    assert limited.headers["X-Rate-Limit-Problem"] == "minute"
    assert limited.headers["Retry-After"] == "40"

    clock.advance(seconds=40)
    ok = api.call("GET", "Currencies")
    assert ok.status_code == 200
    assert ok.headers["X-DayLimit-Remaining"] == "4996"
    assert ok.headers["X-AppMinLimit-Remaining"] == "9999"


def test_day_limit(start: Start) -> None:
    api = start(day_limit=2, clock=FakeClock())
    assert [api.call("GET", "Currencies").headers["X-DayLimit-Remaining"] for _ in range(2)] == [
        "1",
        "0",
    ]
    limited = api.call("GET", "Currencies")
    assert (limited.status_code, limited.headers["X-Rate-Limit-Problem"]) == (429, "day")
    assert limited.headers["Retry-After"] == "86400"


def test_concurrent_limit(start: Start) -> None:
    api = start(concurrent_limit=2, latency=0.3)
    with ThreadPoolExecutor(max_workers=5) as pool:
        responses = list(pool.map(lambda _: api.call("GET", "Currencies"), range(5)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(429) >= 1 and codes.count(200) >= 2
    problems = {r.headers.get("X-Rate-Limit-Problem") for r in responses if r.status_code == 429}
    assert problems == {"concurrent"}
    assert api.sandbox.max_in_flight() == 2


# --- reads: filters, paging, tenants ----------------------------------------------------------


def test_where_filters_ids_numbers_and_paging(api: Api) -> None:
    a, b, c = api.create(
        "Invoices",
        invoice("A-1"),
        invoice("A-2", status="DRAFT"),
        invoice("A-3", contact="Other Ltd"),
    )
    (bill,) = api.create("Invoices", {**invoice("SUP-1"), "Type": "ACCPAY"})

    def numbers(**params: str) -> list[str]:
        return [i["InvoiceNumber"] for i in api.json("GET", "Invoices", params=params)["Invoices"]]

    assert numbers(where='Type=="ACCPAY"') == ["SUP-1"]
    assert numbers(where='Type=="ACCREC" AND (Status=="DRAFT" OR Contact.Name=="other ltd")') == [
        "A-2",
        "A-3",
    ]
    assert numbers(where=f'Contact.ContactID==Guid("{c["Contact"]["ContactID"]}")') == ["A-3"]
    assert numbers(where='InvoiceNumber.StartsWith("a-") AND NOT Status=="DRAFT"') == ["A-1", "A-3"]
    assert numbers(where="Date>=DateTime(2026,3,1) AND Total>12") == []
    assert numbers(InvoiceNumbers="A-1,SUP-1,nope") == ["A-1", "SUP-1"]
    assert numbers(IDs=f"{a['InvoiceID']},{bill['InvoiceID']}") == ["A-1", "SUP-1"]
    assert numbers(Statuses="DRAFT") == ["A-2"]
    assert numbers(ContactIDs=c["Contact"]["ContactID"]) == ["A-3"]
    assert "LineItems" not in api.json("GET", "Invoices")["Invoices"][0]

    paged = api.json("GET", "Invoices", params={"page": "2", "pageSize": "3"})
    assert paged["pagination"] == {"page": 2, "pageSize": 3, "pageCount": 2, "itemCount": 4}
    assert [i["InvoiceNumber"] for i in paged["Invoices"]] == ["SUP-1"]
    assert paged["Invoices"][0]["LineItems"]
    assert b["InvoiceID"] in {
        i["InvoiceID"] for i in api.json("GET", "Invoices", params={"page": "1"})["Invoices"]
    }


def test_contacts_search_and_where(api: Api) -> None:
    api.create(
        "Contacts",
        {"Name": "Amazon.de customers", "EmailAddress": "de@example.com"},
        {"Name": 'O"Brien'},
    )

    def names(**params: str) -> list[str]:
        return [c["Name"] for c in api.json("GET", "Contacts", params=params)["Contacts"]]

    assert names(searchTerm="EXAMPLE.COM") == ["Amazon.de customers"]
    assert names(where=r'Name=="o\"brien"') == ['O"Brien']
    assert names(where='Name=="Amazon.de customers" OR Name=="Nobody"') == ["Amazon.de customers"]


def test_order_is_applied_or_refused(api: Api) -> None:
    api.create(
        "Invoices",
        invoice("B-2", amount="30.00"),
        invoice("A-1", amount="10.00", contact="Zed Ltd"),
        invoice("C-3", amount="10.00"),
    )
    api.create("CreditNotes", credit_note("R-2"), credit_note("R-1"))

    def numbers(endpoint: str, number: str, order: str, **params: str) -> list[str]:
        body = api.json("GET", endpoint, params={"order": order, **params})
        return [d[number] for d in body[endpoint]]

    assert numbers("Invoices", "InvoiceNumber", "InvoiceNumber") == ["A-1", "B-2", "C-3"]
    assert numbers("Invoices", "InvoiceNumber", "InvoiceNumber DESC") == ["C-3", "B-2", "A-1"]
    assert numbers("Invoices", "InvoiceNumber", "Total ASC, InvoiceNumber DESC") == [
        "C-3",
        "A-1",
        "B-2",
    ]
    assert numbers("Invoices", "InvoiceNumber", "contact.name desc", page="1") == [
        "A-1",
        "B-2",
        "C-3",
    ]
    assert numbers("CreditNotes", "CreditNoteNumber", "CreditNoteNumber ASC") == ["R-1", "R-2"]
    assert numbers("Contacts", "Name", "Name DESC") == ["Zed Ltd", "Amazon.co.uk customers"]
    rates = api.json("GET", "TaxRates", params={"order": "EffectiveRate DESC, Name"})["TaxRates"]
    assert rates[0]["TaxType"] == "INPUT2"
    for bad in ("LineItems", "Total UPWARDS", "Nonsense ASC", "InvoiceNumber;DROP"):
        response = api.call("GET", "Invoices", params={"order": bad})
        assert response.status_code == 400, bad
        assert response.json()["Type"] == "QueryParseException"


def test_if_modified_since_is_applied_or_refused(start: Start) -> None:
    clock = FakeClock()
    api = start(clock=clock)
    (old,) = api.create("Invoices", invoice("OLD-1"))
    api.create("Invoices", invoice("STILL-1"))
    clock.advance(minutes=20)
    api.create("Invoices", invoice("NEW-1"))
    api.create("Contacts", {"Name": "New Ltd"})
    api.json("POST", f"Invoices/{old['InvoiceID']}", {"Reference": "touched"})

    def numbers(since: str) -> list[str]:
        body = api.json("GET", "Invoices", headers={"If-Modified-Since": since})
        return sorted(i["InvoiceNumber"] for i in body["Invoices"])

    # As xero-python sends it (isoformat), naive (UTC, as Xero's docs write it), an HTTP date.
    assert numbers("2026-03-01T09:10:00+00:00") == ["NEW-1", "OLD-1"]
    assert numbers("2026-03-01T09:25:00") == []
    assert numbers("Sun, 01 Mar 2026 09:10:00 GMT") == ["NEW-1", "OLD-1"]
    assert numbers("2026-03-01T11:10:00+02:00") == ["NEW-1", "OLD-1"]
    assert numbers("2026-03-01T08:00:00") == ["NEW-1", "OLD-1", "STILL-1"]
    contacts = api.json("GET", "Contacts", headers={"If-Modified-Since": "2026-03-01T09:10:00"})
    assert [c["Name"] for c in contacts["Contacts"]] == ["New Ltd"]
    refused = api.call("GET", "Invoices", headers={"If-Modified-Since": "last tuesday"})
    assert refused.status_code == 400
    assert refused.json()["Type"] == "QueryParseException"


def test_summary_only_leaves_out_the_heavy_fields(api: Api) -> None:
    api.create("Invoices", invoice("AMZ-1"))
    api.create(
        "Contacts",
        {"Name": "Amazon.fr", "Addresses": [{"AddressType": "POBOX", "City": "Paris"}]},
    )
    full = api.json("GET", "Invoices", params={"page": "1"})["Invoices"][0]
    light = api.json("GET", "Invoices", params={"page": "1", "summaryOnly": "True"})["Invoices"][0]
    assert full["LineItems"] and "LineItems" not in light
    assert "CreditNotes" in full and "CreditNotes" not in light
    assert light["Total"] == full["Total"]
    contacts = api.json(
        "GET", "Contacts", params={"summaryOnly": "true", "where": 'Name=="Amazon.fr"'}
    )
    assert "Addresses" not in contacts["Contacts"][0]
    assert api.call("GET", "Invoices", params={"summaryOnly": "maybe"}).status_code == 400


def test_archived_contacts_only_with_include_archived(api: Api) -> None:
    (gone,) = api.create("Contacts", {"Name": "Closed Ltd"})
    archived = api.json(
        "POST",
        "Contacts",
        {"Contacts": [{"ContactID": gone["ContactID"], "ContactStatus": "ARCHIVED"}]},
    )
    assert archived["Contacts"][0]["ContactStatus"] == "ARCHIVED"
    # The name is free again for an active contact.
    api.create("Contacts", {"Name": "Closed Ltd"})

    def statuses(**params: str) -> list[str]:
        return [c["ContactStatus"] for c in api.json("GET", "Contacts", params=params)["Contacts"]]

    assert statuses() == ["ACTIVE"]
    # xero-python sends Python's True.
    assert sorted(statuses(includeArchived="True")) == ["ACTIVE", "ARCHIVED"]
    assert statuses(includeArchived="false") == ["ACTIVE"]
    assert api.call("GET", "Contacts", params={"includeArchived": "1"}).status_code == 400


def test_invoices_search_term(api: Api) -> None:
    api.create("Invoices", invoice("AMZ-1", Reference="Order 202-111"), invoice("AMZ-2"))
    found = api.json("GET", "Invoices", params={"searchTerm": "order 202"})["Invoices"]
    assert [i["InvoiceNumber"] for i in found] == ["AMZ-1"]


def test_a_missing_document_is_404(api: Api) -> None:
    assert api.call("GET", "Invoices/00000000-0000-0000-0000-000000000000").status_code == 404


def test_each_tenant_has_its_own_books(start: Start) -> None:
    uk, de = SandboxOrg(), SandboxOrg(name="Demo GmbH", base_currency="EUR", country_code="DE")
    api = start(tenants=[uk, de])
    api.sandbox.authorize_offline(tenant_ids=[uk.tenant_id, de.tenant_id])
    refresh = api.sandbox.authorize_offline(tenant_ids=[uk.tenant_id, de.tenant_id])
    api.access_token = api.token("refresh_token", refresh_token=refresh).json()["access_token"]
    api.create("Invoices", invoice("AMZ-1"))
    api.tenant_id = de.tenant_id
    assert api.json("GET", "Invoices")["Invoices"] == []
    assert api.json("GET", "Organisation")["Organisations"][0]["BaseCurrency"] == "EUR"
    assert [d["InvoiceNumber"] for d in api.sandbox.documents("Invoices", uk.tenant_id)] == [
        "AMZ-1"
    ]
    assert {c.tenant_id for c in api.sandbox.api_calls(de.tenant_id)} == {de.tenant_id}


def test_json_numbers_keep_their_digits(api: Api) -> None:
    (created,) = api.create("Invoices", invoice("AMZ-1", amount="0.10"))
    raw = api.call("GET", f"Invoices/{created['InvoiceID']}").text
    assert '"Total":0.12' in raw
    assert json.loads(raw)["Invoices"][0]["Total"] == 0.12
