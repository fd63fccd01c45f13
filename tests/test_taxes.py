"""The tax map against the Xero sandbox's UK organisation, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from sandbox.server import LoopbackServer
from sandbox.xero import XeroSandbox, default_tax_rates
from services.documents import TaxKey
from services.errors import ErrorKind, ServiceError
from services.taxes import TaxMap
from services.transactions import TaxScheme
from services.xero import NewTaxRate, XeroClient, XeroTaxRate
from tests.test_xero_client import make_client

Xero = tuple[XeroSandbox, XeroClient]


@pytest.fixture
def xero() -> Iterator[Xero]:
    sandbox = XeroSandbox()
    server = LoopbackServer(sandbox.app).start()
    yield sandbox, make_client(sandbox, server)
    server.stop()


def listed(elements: list[dict[str, object]]) -> list[XeroTaxRate]:
    """Tax rates as the client lists them, from Xero's elements."""
    return [XeroTaxRate.from_wire(element) for element in elements]


def key(text: str) -> TaxKey:
    return TaxKey.parse(text)


def rate_calls(sandbox: XeroSandbox) -> list[str]:
    return [f"{c.method} {c.path.rsplit('/', 1)[-1]}" for c in sandbox.api_calls()]


def test_keys_have_a_stable_string_form() -> None:
    oss = TaxKey("PL", Decimal("23.00"), TaxScheme.OSS)
    assert str(oss) == "PL:23:oss"
    assert str(TaxKey("FR", Decimal("0.055") * 100, TaxScheme.DOMESTIC)) == "FR:5.5:domestic"
    assert str(TaxKey(None, Decimal("0.0"), TaxScheme.EXPORT)) == ":0:export"
    assert str(TaxKey("DE", Decimal("-0.00") * 100, TaxScheme.DOMESTIC)) == "DE:0:domestic"
    assert TaxKey.parse("pl:23.0:OSS") == oss
    assert hash(TaxKey.parse("PL:23:oss")) == hash(oss)
    assert TaxKey.parse(":0:export") == TaxKey(None, Decimal(0), TaxScheme.EXPORT)
    for bad in ("DE:19", "DE:abc:domestic", "DE:19:vat", "DEU:19:domestic", "DE:-1:domestic"):
        with pytest.raises(ValueError, match="COUNTRY:RATE:SCHEME"):
            TaxKey.parse(bad)


def test_the_uk_organisations_own_rates_are_found() -> None:
    rates = TaxMap(listed(default_tax_rates()))
    assert {text: rates.resolve(key(text)) for text in [
        "GB:20:domestic",
        ":20:domestic",
        "GB:5:domestic",
        "GB:0:domestic",
        "GB:0:export",
        "GB:0:reverse_charge",
        "US:0:facilitator",
        "CA:0:facilitator",
    ]} == {
        "GB:20:domestic": "OUTPUT2",
        ":20:domestic": "OUTPUT2",
        "GB:5:domestic": "RROUTPUT",
        "GB:0:domestic": "ZERORATEDOUTPUT",
        "GB:0:export": "ZERORATEDOUTPUT",
        "GB:0:reverse_charge": "ECZROUTPUT",
        "US:0:facilitator": "NONE",
        "CA:0:facilitator": "NONE",
    }  # fmt: skip
    # Never a purchase rate, a rate for another country or scheme, or a rate of another size.
    for text in ("GB:19:domestic", "DE:20:domestic", "DE:0:export", "FR:20:oss", "GB:20:oss"):
        assert rates.resolve(key(text)) is None, text


def test_rates_named_for_a_country_and_scheme_match_only_that() -> None:
    def rate(
        tax_type: str, name: str, percent: str, report: str, **extra: str
    ) -> dict[str, object]:
        return {
            "TaxType": tax_type,
            "Name": name,
            "ReportTaxType": report,
            "EffectiveRate": Decimal(percent),
            "Status": "ACTIVE",
            **extra,
        }

    rates = TaxMap(
        listed(
            [
                *default_tax_rates(),
                rate("TAX002", "Germany VAT 19%", "19.0000", "MOSSSALES"),
                rate("TAX001", "DE 19% (Amazon)", "19.0000", "MOSSSALES"),
                rate("TAX003", "20% FR", "20.0000", "OUTPUT"),
                rate("TAX004", "FR 20% OSS", "20.0000", "MOSSSALES"),
                rate("TAX005", "DE reverse charge", "0.0000", "NONE"),
                rate("TAX006", "Old IT 22%", "22.0000", "MOSSSALES", Status="ARCHIVED"),
                rate("TAX007", "ES 21% purchases", "21.0000", "INPUT"),
            ]
        ),
        home_country="GB",
    )
    assert rates.resolve(key("DE:19:domestic")) == "TAX001"  # the lowest of two that fit
    assert rates.resolve(key("FR:20:domestic")) == "TAX003"
    assert rates.resolve(key("FR:20:oss")) == "TAX004"
    assert rates.resolve(key("DE:0:reverse_charge")) == "TAX005"
    # "20% FR" names France, so it is never taken for British sales.
    assert rates.resolve(key("GB:20:domestic")) == "OUTPUT2"
    for text in ("DE:19:oss", "DE:0:export", "IT:22:domestic", "ES:21:domestic"):
        assert rates.resolve(key(text)) is None, text


def test_home_is_the_organisations_country() -> None:
    german = TaxMap(listed(default_tax_rates()), home_country="de")
    assert german.resolve(key("GB:20:domestic")) is None
    assert german.resolve(key("DE:20:domestic")) == "OUTPUT2"
    assert german.planned_name(key("DE:19:domestic")) == "Amazon DE 19%"
    assert german.planned_name(key(":19:domestic")) == "Amazon DE 19%"
    assert german.planned_name(key("US:0:facilitator")) == "Amazon marketplace facilitator 0%"


def test_missing_rates_are_created_once(xero: Xero) -> None:
    sandbox, client = xero
    rates = TaxMap.from_xero(client.tax_rates())
    wanted = [
        key("GB:20:domestic"),
        key("DE:19:domestic"),
        key("PL:23:oss"),
        key("DE:0:reverse_charge"),
        key("DE:0:export"),
        key("GB:5:domestic"),
        key("DE:19:domestic"),
    ]
    mapping = rates.ensure(wanted, client)

    created = {r["Name"]: r for r in sandbox.org().tax_rates if r["TaxType"].startswith("TAX")}
    assert {
        name: (r["EffectiveRate"], r["ReportTaxType"], len(r["TaxComponents"]))
        for name, r in created.items()
    } == {
        "Amazon DE 19%": (Decimal("19.0000"), "MOSSSALES", 1),
        "Amazon PL 23% OSS": (Decimal("23.0000"), "MOSSSALES", 1),
        "Amazon DE 0% reverse charge": (Decimal("0.0000"), "MOSSSALES", 1),
        "Amazon DE 0% export": (Decimal("0.0000"), "MOSSSALES", 1),
    }
    assert mapping == {
        key("GB:20:domestic"): "OUTPUT2",
        key("GB:5:domestic"): "RROUTPUT",
        **{key(t): created[n]["TaxType"] for t, n in [
            ("DE:19:domestic", "Amazon DE 19%"),
            ("PL:23:oss", "Amazon PL 23% OSS"),
            ("DE:0:reverse_charge", "Amazon DE 0% reverse charge"),
            ("DE:0:export", "Amazon DE 0% export"),
        ]},
    }  # fmt: skip
    assert rate_calls(sandbox) == ["GET TaxRates", "PUT TaxRates"]  # all four in one call
    keys = {c.idempotency_key for c in sandbox.api_calls() if c.method == "PUT"}
    assert len(keys) == 1 and None not in keys

    # Asking again, on this map or on one loaded afresh, creates nothing.
    assert rates.ensure(wanted, client) == mapping
    assert len(sandbox.api_calls()) == 2
    again = TaxMap.from_xero(client.tax_rates())
    assert again.ensure(wanted, client) == mapping
    assert rate_calls(sandbox)[2:] == ["GET TaxRates"]


def test_a_repeated_creation_is_answered_not_duplicated(xero: Xero) -> None:
    """Two runs working from the same list (the first crashed after Xero made the rate) send
    the same Idempotency-Key and get the same rate back."""
    sandbox, client = xero
    stale = client.tax_rates()
    first = TaxMap(stale).ensure([key("DE:7:domestic")], client)
    second = TaxMap(stale).ensure([key("DE:7:domestic")], client)
    assert first == second
    assert [r["Name"] for r in sandbox.org().tax_rates].count("Amazon DE 7%") == 1


def test_facilitator_keys_share_one_non_reporting_rate(xero: Xero) -> None:
    sandbox, client = xero
    sandbox.org().tax_rates = [r for r in sandbox.org().tax_rates if r["TaxType"] != "NONE"]
    rates = TaxMap.from_xero(client.tax_rates())
    mapping = rates.ensure([key("US:0:facilitator"), key("CA:0:facilitator")], client)
    made = [r for r in sandbox.org().tax_rates if r["Name"] == "Amazon marketplace facilitator 0%"]
    assert len(made) == 1
    assert made[0]["ReportTaxType"] == "NONE" and made[0]["EffectiveRate"] == 0
    assert set(mapping.values()) == {made[0]["TaxType"]}


def test_overrides_win_and_are_checked(xero: Xero) -> None:
    sandbox, client = xero
    overrides = {"GB:20:domestic": "RROUTPUT", "de:19:Domestic": " OUTPUT2 "}
    rates = TaxMap.from_xero(client.tax_rates(), overrides)
    assert rates.resolve(key("GB:20:domestic")) == "RROUTPUT"
    mapping = rates.ensure([key("DE:19:domestic"), key("GB:20:domestic")], client)
    assert mapping == {key("DE:19:domestic"): "OUTPUT2", key("GB:20:domestic"): "RROUTPUT"}
    assert rate_calls(sandbox) == ["GET TaxRates"]  # nothing created
    assert rates.as_dict() == {"DE:19:domestic": "OUTPUT2", "GB:20:domestic": "RROUTPUT"}

    with pytest.raises(ServiceError, match="COUNTRY:RATE:SCHEME") as bad_key:
        TaxMap(listed(default_tax_rates()), {"DE:19": "OUTPUT2"})
    assert bad_key.value.kind == ErrorKind.VALIDATION
    with pytest.raises(ServiceError, match="DE:19:domestic names tax type 'TAX999'"):
        TaxMap(listed(default_tax_rates()), {"DE:19:domestic": "TAX999"})


def test_a_name_taken_by_a_rate_that_does_not_fit_is_reported_before_any_call(
    xero: Xero,
) -> None:
    sandbox, client = xero
    client.create_tax_rates([NewTaxRate("Amazon DE 19%", Decimal("16"), "MOSSSALES")])
    rates = TaxMap.from_xero(client.tax_rates())
    calls = len(sandbox.api_calls())
    with pytest.raises(ServiceError, match=r"named 'Amazon DE 19%'.*16\.0000%") as taken:
        rates.ensure([key("DE:19:domestic")], client)
    assert taken.value.kind == ErrorKind.VALIDATION
    assert len(sandbox.api_calls()) == calls
