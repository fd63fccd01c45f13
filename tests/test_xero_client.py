"""The Xero client against the Xero sandbox over real HTTP on a loopback port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox.server import LoopbackServer
from sandbox.xero import ZERO_GUID, XeroSandbox
from services import xero as xero_module
from services.errors import ErrorKind, ServiceError
from services.xero import (
    SCOPES,
    NewTaxRate,
    Tenant,
    TokenSet,
    XeroAuth,
    XeroClient,
    to_json,
)
from tests.xero_helpers import (
    REDIRECT_URI,
    BrokenTokenStore,
    MemoryTokenStore,
    RecordingSession,
    consent,
    credit_note,
    invoice,
    redirect_params,
)

Serve = Callable[..., tuple[XeroSandbox, LoopbackServer]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a sandbox (with any options) on a loopback port; stopped after the test."""
    servers: list[LoopbackServer] = []

    def start(**options: object) -> tuple[XeroSandbox, LoopbackServer]:
        sandbox = XeroSandbox(**options)  # type: ignore[arg-type]
        server = LoopbackServer(sandbox.app).start()
        servers.append(server)
        return sandbox, server

    yield start
    for server in servers:
        server.stop()


def make_auth(sandbox: XeroSandbox, server: LoopbackServer) -> XeroAuth:
    return XeroAuth(
        login_url=server.url,
        identity_url=server.url,
        api_url=server.url,
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        sleep=lambda _: None,
    )


def make_client(
    sandbox: XeroSandbox,
    server: LoopbackServer,
    store: MemoryTokenStore | None = None,
    *,
    sleeps: list[float] | None = None,
    session: requests.Session | None = None,
) -> XeroClient:
    recorded = sleeps if sleeps is not None else []
    return XeroClient(
        auth=make_auth(sandbox, server),
        api_url=server.url,
        tenant_id=sandbox.tenant_id,
        token_store=store or MemoryTokenStore(sandbox.authorize_offline()),
        session=session,
        sleep=recorded.append,
    )


def statuses(sandbox: XeroSandbox) -> list[int]:
    return [call.status for call in sandbox.api_calls()]


# --- OAuth ------------------------------------------------------------------------------------


def test_authorize_url_asks_for_offline_access_and_granular_scopes() -> None:
    auth = XeroAuth(
        login_url="https://login.xero.com",
        identity_url="https://identity.xero.com",
        api_url="https://api.xero.com",
        client_id="client-1",
        client_secret="secret",
    )
    url = urlsplit(auth.authorize_url(state="state-1", redirect_uri=REDIRECT_URI))
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == (
        "https://login.xero.com/identity/connect/authorize"
    )
    assert query == {
        "response_type": "code",
        "client_id": "client-1",
        "redirect_uri": REDIRECT_URI,
        "scope": " ".join(SCOPES),
        "state": "state-1",
    }
    assert "offline_access" in SCOPES
    assert "accounting.transactions" not in SCOPES  # not offered to apps made since March 2026


def test_code_flow_through_the_consent_page(serve: Serve) -> None:
    sandbox, server = serve()
    auth = make_auth(sandbox, server)

    params = redirect_params(consent(auth.authorize_url(state="s-42", redirect_uri=REDIRECT_URI)))
    assert params["state"] == "s-42"
    tokens = auth.exchange_code(params["code"], REDIRECT_URI)
    assert timedelta(minutes=29) < tokens.expires_at - datetime.now(UTC) <= timedelta(minutes=30)
    assert auth.connections(tokens.access_token) == [
        Tenant(sandbox.tenant_id, "Demo Company (UK)", "ORGANISATION")
    ]

    # The scopes asked for open everything the client does.
    client = make_client(sandbox, server, MemoryTokenStore(tokens.refresh_token))
    assert client.organisation().name == "Demo Company (UK)"
    (created,) = client.create_documents("Invoices", [invoice()], idempotency_key="k")
    assert created.ok
    assert client.find_contacts_by_name(["Amazon.co.uk customers"])
    assert client.tax_rates()


def test_a_used_code_asks_to_reconnect_without_showing_secrets(serve: Serve) -> None:
    sandbox, server = serve()
    auth = make_auth(sandbox, server)
    code = redirect_params(consent(auth.authorize_url(state="s", redirect_uri=REDIRECT_URI)))[
        "code"
    ]
    auth.exchange_code(code, REDIRECT_URI)

    with pytest.raises(ServiceError) as raised:
        auth.exchange_code(code, REDIRECT_URI)
    assert raised.value.kind is ErrorKind.AUTH
    assert not raised.value.retryable
    assert "Connect Xero again" in raised.value.message
    assert code not in raised.value.message


def test_wrong_client_secret_is_an_auth_error(serve: Serve) -> None:
    sandbox, server = serve()
    auth = XeroAuth(
        login_url=server.url,
        identity_url=server.url,
        api_url=server.url,
        client_id=sandbox.client_id,
        client_secret="not-the-secret",
    )
    with pytest.raises(ServiceError) as raised:
        auth.refresh(sandbox.authorize_offline())
    assert raised.value.kind is ErrorKind.AUTH
    assert "XERO_CLIENT_SECRET" in raised.value.message


def test_token_values_stay_out_of_reprs() -> None:
    tokens = TokenSet("access-secret", "refresh-secret", datetime.now(UTC))
    assert "secret" not in repr(tokens)


# --- refresh-token rotation -------------------------------------------------------------------


def test_the_new_refresh_token_is_saved_before_its_access_token_is_used(serve: Serve) -> None:
    sandbox, server = serve(refresh_grace=timedelta(0))
    first = sandbox.authorize_offline()
    events: list[str] = []
    store = MemoryTokenStore(first, events)
    client = make_client(sandbox, server, store, session=RecordingSession(events))

    client.organisation()
    currencies(client)

    assert events == ["save", "api", "api"]  # one refresh serves both calls
    assert store.token == sandbox.issued_refresh_tokens[-1] != first
    with pytest.raises(ServiceError) as raised:  # rotated: the first token is dead
        make_auth(sandbox, server).refresh(first)
    assert raised.value.kind is ErrorKind.AUTH


def test_a_store_that_cannot_save_stops_the_client_before_any_call(serve: Serve) -> None:
    sandbox, server = serve()
    first = sandbox.authorize_offline()
    client = make_client(sandbox, server, BrokenTokenStore(first))

    with pytest.raises(RuntimeError, match="read-only"):
        client.organisation()
    assert sandbox.api_calls() == []

    # The token still in the database works again within Xero's grace, so nothing is stranded.
    recovered = MemoryTokenStore(first)
    assert make_client(sandbox, server, recovered).organisation().name
    assert recovered.token == sandbox.issued_refresh_tokens[-1]


def test_a_401_mid_session_refreshes_once_and_retries(serve: Serve) -> None:
    sandbox, server = serve()
    store = MemoryTokenStore(sandbox.authorize_offline())
    client = make_client(sandbox, server, store)
    client.organisation()

    sandbox.expire_access_tokens()
    assert client.request("GET", "Accounts")

    assert statuses(sandbox) == [200, 401, 200]
    assert len(store.saved) == 2


def test_a_401_after_refreshing_is_an_auth_error(serve: Serve) -> None:
    sandbox, server = serve()
    sandbox.faults.add("/api.xro/2.0/Accounts", 401, times=2)
    client = make_client(sandbox, server)

    with pytest.raises(ServiceError) as raised:
        client.request("GET", "Accounts")
    assert raised.value.kind is ErrorKind.AUTH
    assert not raised.value.retryable


def test_a_disconnected_organisation_is_an_auth_error(serve: Serve) -> None:
    sandbox, server = serve()
    client = make_client(sandbox, server)
    client.organisation()
    sandbox.disconnect()

    with pytest.raises(ServiceError) as raised:
        client.organisation()
    assert raised.value.kind is ErrorKind.AUTH
    assert "no longer connected" in raised.value.message


# --- limits and retries -----------------------------------------------------------------------


def test_429_waits_for_retry_after_then_succeeds(serve: Serve) -> None:
    sandbox, server = serve()
    sandbox.faults.add(
        "/api.xro/2.0/Organisation",
        429,
        headers={"Retry-After": "7", "X-Rate-Limit-Problem": "minute"},
    )
    sleeps: list[float] = []
    client = make_client(sandbox, server, sleeps=sleeps)

    assert client.organisation().name
    assert sleeps == [7.0]
    assert client.api_calls == 2


def test_the_sixty_first_call_of_a_minute_waits_for_the_window(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xero_module, "MINUTE_LIMIT", 3)  # Xero's 60, made small
    sandbox, server = serve()
    now, sleeps = [1000.0], []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    client = XeroClient(
        auth=make_auth(sandbox, server),
        api_url=server.url,
        tenant_id=sandbox.tenant_id,
        token_store=MemoryTokenStore(sandbox.authorize_offline()),
        sleep=sleep,
        clock=lambda: now[0],
    )
    for _ in range(3):
        client.organisation()
    assert sleeps == []
    client.organisation()
    assert sleeps == [xero_module.MINUTE_WINDOW] and client.api_calls == 4


def test_5xx_is_retried_with_backoff(serve: Serve) -> None:
    sandbox, server = serve()
    sandbox.faults.add("/api.xro/2.0/Currencies", 503, times=2)
    sleeps: list[float] = []
    client = make_client(sandbox, server, sleeps=sleeps)

    assert [c["Code"] for c in currencies(client)] == ["GBP", "EUR", "USD"]
    assert sleeps == [1.0, 2.0]


def test_5xx_that_persists_is_upstream_unavailable(serve: Serve) -> None:
    sandbox, server = serve()
    sandbox.faults.add("/api.xro/2.0/Currencies", 500, times=5)
    client = make_client(sandbox, server)

    with pytest.raises(ServiceError) as raised:
        currencies(client)
    assert raised.value.kind is ErrorKind.UPSTREAM_UNAVAILABLE
    assert raised.value.retryable
    assert client.api_calls == 5


def test_per_tenant_concurrency_stays_within_five(serve: Serve) -> None:
    # Strict rotation: clients racing to refresh with the same stored token would fail.
    sandbox, server = serve(latency=0.05, refresh_grace=timedelta(0))
    store = MemoryTokenStore(sandbox.authorize_offline())
    shared = make_client(sandbox, server, store)

    def call(index: int) -> int:
        # Half the threads share a client, half bring their own: the limit is the organisation's.
        client = shared if index % 2 else make_client(sandbox, server, store)
        return len(currencies(client))

    with ThreadPoolExecutor(max_workers=20) as pool:
        assert list(pool.map(call, range(20))) == [3] * 20

    assert 2 <= sandbox.max_in_flight() <= 5
    assert statuses(sandbox) == [200] * 20
    assert len(store.saved) == 11  # each client refreshed once, one after another


def test_day_limit_is_tracked_and_stops_calls_once_spent(serve: Serve) -> None:
    sandbox, server = serve(day_limit=3)
    client = make_client(sandbox, server)
    assert client.day_limit_remaining is None

    currencies(client)
    assert client.day_limit_remaining == 2
    currencies(client)
    currencies(client)
    assert client.day_limit_remaining == 0

    # The next call learns from Xero's 429 when the allowance frees, and says so.
    with pytest.raises(ServiceError) as raised:
        currencies(client)
    assert raised.value.kind is ErrorKind.RATE_LIMIT
    assert raised.value.retryable and raised.value.stops_the_run
    assert raised.value.retry_after is not None
    assert timedelta(hours=23) < raised.value.retry_after <= timedelta(hours=24)
    assert len(sandbox.api_calls()) == 4
    with pytest.raises(ServiceError):
        currencies(client)
    assert len(sandbox.api_calls()) == 4  # then stopped without calling


def test_a_day_limit_429_stops_without_waiting_hours(serve: Serve) -> None:
    sandbox, server = serve()
    sandbox.faults.add(
        "/api.xro/2.0/Accounts",
        429,
        headers={"Retry-After": "3600", "X-Rate-Limit-Problem": "day"},
    )
    sleeps: list[float] = []
    client = make_client(sandbox, server, sleeps=sleeps)

    with pytest.raises(ServiceError) as raised:
        client.request("GET", "Accounts")
    assert raised.value.kind is ErrorKind.RATE_LIMIT
    assert sleeps == []


# --- documents --------------------------------------------------------------------------------


def test_a_mixed_batch_returns_a_result_per_document(serve: Serve) -> None:
    sandbox, server = serve()
    client = make_client(sandbox, server)
    documents = [
        invoice("AMZ-1"),
        invoice("AMZ-2", account="999"),
        invoice("AMZ-1"),
        invoice("AMZ-3", currency="PLN"),
        invoice("AMZ-4", amount="19.99"),
    ]

    results = client.create_documents("Invoices", documents, idempotency_key="batch-1")

    assert [r.ok for r in results] == [True, False, False, False, True]
    assert [r.number for r in results] == ["AMZ-1", "AMZ-2", "AMZ-1", "AMZ-3", "AMZ-4"]
    assert results[1].errors == ["Account code '999' is not a valid code for this document."]
    assert results[2].errors == ["Invoice # must be unique."]
    assert results[3].errors == ["Organisation is not subscribed to currency PLN"]
    # Xero answers a failed element with the zero GUID: never an id to keep.
    assert results[1].element["InvoiceID"] == ZERO_GUID
    assert [r.xero_id for r in results if not r.ok] == [None, None, None]
    saved = {d["InvoiceNumber"]: d for d in sandbox.documents("Invoices")}
    assert sorted(saved) == ["AMZ-1", "AMZ-4"]
    assert results[0].xero_id == saved["AMZ-1"]["InvoiceID"]
    assert results[4].element["Total"] == Decimal("23.99")  # 19.99 + 20% VAT, rounded as Xero

    # Sent again with the same key (a retry after a lost answer): same answer, nothing new.
    again = client.create_documents("Invoices", documents, idempotency_key="batch-1")
    assert [(r.ok, r.xero_id) for r in again] == [(r.ok, r.xero_id) for r in results]
    assert len(sandbox.documents("Invoices")) == 2


def test_more_than_fifty_documents_is_the_callers_error(serve: Serve) -> None:
    sandbox, server = serve()
    client = make_client(sandbox, server)

    with pytest.raises(ValueError, match="at most 50"):
        client.create_documents(
            "Invoices", [invoice(f"AMZ-{i}") for i in range(51)], idempotency_key="k"
        )
    assert client.api_calls == 0
    assert client.create_documents("Invoices", [], idempotency_key="k") == []


def test_contacts_and_credit_notes_go_through_the_same_batches(serve: Serve) -> None:
    sandbox, server = serve()
    client = make_client(sandbox, server)

    contacts = client.create_documents(
        "Contacts",
        [{"Name": "Amazon.de customers"}, {"Name": "amazon.de customers"}],
        idempotency_key="c",
    )
    assert [(r.ok, r.xero_id is None) for r in contacts] == [(True, False), (False, True)]
    assert contacts[0].number == "Amazon.de customers"
    assert contacts[1].errors == [
        "The contact name amazon.de customers is already assigned to another contact. "
        "The contact name must be unique across all active contacts."
    ]
    notes = client.create_documents("CreditNotes", [credit_note("R-1")], idempotency_key="n")
    assert notes[0].ok and notes[0].number == "R-1" and notes[0].xero_id


def test_lookups_quote_names_and_numbers(serve: Serve) -> None:
    sandbox, server = serve()
    client = make_client(sandbox, server)
    names = ['O"Brien & Sons', "Back\\slash Ltd", "Plain Ltd"]
    client.create_documents("Contacts", [{"Name": n} for n in names], idempotency_key="c")
    client.create_documents(
        "Invoices", [invoice("AMZ-1"), invoice("AMZ,2"), invoice("AMZ-3")], idempotency_key="i"
    )
    client.create_documents(
        "CreditNotes", [credit_note("R-1"), credit_note('R"2')], idempotency_key="n"
    )

    found = client.find_contacts_by_name(['o"brien & sons', "Back\\slash Ltd", "Missing"])
    assert sorted(c.name for c in found) == ["Back\\slash Ltd", 'O"Brien & Sons']
    invoices = client.find_invoices_by_number(["AMZ-1", "AMZ,2", "AMZ-9", "AMZ-1"])
    assert sorted(i.number for i in invoices) == ["AMZ,2", "AMZ-1"]
    notes = client.find_credit_notes_by_number(['R"2', "R-9"])
    assert [n.number for n in notes] == ['R"2']
    assert client.find_invoices_by_number([]) == []


def test_allocating_a_credit_note(serve: Serve) -> None:
    sandbox, server = serve()
    client = make_client(sandbox, server)
    (sale,) = client.create_documents("Invoices", [invoice("AMZ-1")], idempotency_key="i")
    (refund,) = client.create_documents("CreditNotes", [credit_note("R-1")], idempotency_key="n")
    assert refund.xero_id and sale.xero_id

    allocation = client.allocate_credit_note(
        refund.xero_id,
        invoice_id=sale.xero_id,
        amount=Decimal("6.00"),
        date=date(2026, 3, 2),
        idempotency_key="a-1",
    )
    assert allocation["Amount"] == Decimal("6.00")
    assert sandbox.documents("Invoices")[0]["AmountDue"] == Decimal("6.00")

    with pytest.raises(ServiceError) as raised:
        client.allocate_credit_note(
            refund.xero_id,
            invoice_id=sale.xero_id,
            amount=Decimal("0.01"),
            date=date(2026, 3, 2),
            idempotency_key="a-2",
        )
    assert raised.value.kind is ErrorKind.VALIDATION
    assert "exceeds the remaining credit" in raised.value.message


def test_settings(serve: Serve) -> None:
    sandbox, server = serve()
    client = make_client(sandbox, server)

    assert client.organisation().base_currency == "GBP"
    assert {a["Code"] for a in client.request("GET", "Accounts")["Accounts"]} >= {
        "200",
        "610",
        "820",
    }
    created, other = client.create_tax_rates(
        [
            NewTaxRate("23% VAT (PL OSS)", Decimal("23")),
            NewTaxRate("5% VAT (PL OSS)", Decimal("5")),
        ],
        idempotency_key="t",
    )
    assert created.tax_type.startswith("TAX") and other.tax_type != created.tax_type
    assert created.effective_rate == Decimal("23.0000")
    assert created.tax_type in {t.tax_type for t in client.tax_rates()}
    with pytest.raises(ServiceError) as raised:
        client.create_tax_rates([NewTaxRate("23% VAT (PL OSS)", Decimal("23"))])
    assert raised.value.kind is ErrorKind.VALIDATION
    assert "already in use" in raised.value.message


# --- wire formats -----------------------------------------------------------------------------


def test_money_goes_out_as_exact_decimals_and_never_as_float() -> None:
    assert to_json({"Amount": Decimal("0.10"), "Date": date(2026, 3, 1)}) == (
        '{"Amount":0.10,"Date":"2026-03-01"}'
    )
    with pytest.raises(TypeError):
        to_json({"Amount": 0.1})


def currencies(client: XeroClient) -> list[dict[str, Any]]:
    """Any authenticated GET will do to exercise the client: the organisation's currencies."""
    return list(client.request("GET", "Currencies")["Currencies"])
