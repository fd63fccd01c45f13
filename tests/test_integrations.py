from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bot import db
from services.crypto import TokenCipher
from services.errors import ErrorKind, ServiceError
from services.integrations import (
    LOCAL_WORKSPACE,
    IntegrationService,
    IntegrationSpec,
    InvalidInput,
    PostingSettings,
)
from services.marketplaces import Region
from services.models import Integration, IntegrationStatus
from services.transactions import TaxScheme
from services.vat_rates import own_rate_key

DE, FR, US = "A1PA6795UKMFR9", "A13V1IB3VIYZZH", "ATVPDKIKX0DER"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(database_url: str, clock: Clock) -> Iterator[IntegrationService]:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    yield IntegrationService(
        db.make_sessions(engine), TokenCipher(Fernet.generate_key()), clock=clock
    )
    engine.dispose()


ACME = IntegrationSpec("Acme EU", Region.EU, (DE, FR), date(2026, 1, 1))


def spec(name: str = "Acme EU", **changes: Any) -> IntegrationSpec:
    return replace(ACME, name=name, **changes)


def connect(service: IntegrationService, integration: Integration) -> Integration:
    service.record_amazon_authorization(
        integration.id, selling_partner_id="A2SELLER", refresh_token="Atzr|amazon", actor="U1"
    )
    return service.record_xero_connection(
        integration.id, tenant_id="t-1", tenant_name="Acme Ltd", refresh_token="xero-1", actor="U1"
    )


def test_setup_then_both_consents_make_it_active(service: IntegrationService) -> None:
    integration = service.create(spec(), actor="U1")
    assert integration.status == IntegrationStatus.PENDING_AUTHORIZATION
    service.record_amazon_authorization(
        integration.id, selling_partner_id="A2SELLER", refresh_token="Atzr|amazon", actor="U1"
    )
    assert service.get("Acme EU").status == IntegrationStatus.PENDING_AUTHORIZATION
    active = service.record_xero_connection(
        integration.id, tenant_id="t-1", tenant_name="Acme Ltd", refresh_token="xero-1", actor="U1"
    )
    assert active.status == IntegrationStatus.ACTIVE
    assert service.amazon_refresh_token(active) == "Atzr|amazon"
    assert service.xero_refresh_token(active.id) == "xero-1"
    # Stored encrypted: the plaintext is nowhere in the row.
    assert b"Atzr|amazon" not in (active.amazon_refresh_token_encrypted or b"")
    assert b"xero-1" not in (active.xero_refresh_token_encrypted or b"")
    actions = [entry.action for entry in service.audit_log(integration.id)]
    assert actions == ["integration.created", "amazon.authorized", "xero.connected"]


def test_two_processes_refreshing_xero_at_once_never_spend_the_same_token(
    service: IntegrationService,
) -> None:
    integration = connect(service, service.create(spec(), actor="U1"))
    spent: list[str] = []
    first_inside = threading.Event()

    def exchange(token: str) -> str:
        # Xero's refresh: the token given dies, a new one comes back (slowly, for the other
        # rotation to arrive meanwhile).
        spent.append(token)
        first_inside.set()
        time.sleep(0.3)
        return f"{token}+"

    def rotate() -> None:
        service.rotate_xero_refresh_token(integration.id, exchange)

    # Each thread has its own database connection, as each process does.
    first = threading.Thread(target=rotate)
    first.start()
    assert first_inside.wait(5)
    rotate()
    first.join()

    assert spent == ["xero-1", "xero-1+"]  # the second waited, then spent the new token
    assert service.xero_refresh_token(integration.id) == "xero-1++"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "1 to 50 characters"),
        ({"name": "x" * 51}, "name", "1 to 50 characters"),
        ({"marketplaces": ()}, "marketplaces", "at least one"),
        ({"marketplaces": ("NOPE",)}, "marketplaces", "not an Amazon marketplace id"),
        ({"marketplaces": (DE, US)}, "marketplaces", "amazon.com belongs to the NA region"),
        ({"start_date": date(2026, 11, 23)}, "start_date", "cannot be in the future"),
    ],
)
def test_bad_setup_is_reported_on_its_field(
    service: IntegrationService, changes: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        service.create(spec(**changes), actor="U1")
    assert message in raised.value.errors[field]
    assert raised.value.kind == ErrorKind.VALIDATION
    assert service.list() == []


def test_names_are_unique_per_workspace_and_tidied(service: IntegrationService) -> None:
    service.create(spec("  Acme   EU "), actor="U1")
    assert service.get("Acme EU").name == "Acme EU"
    with pytest.raises(InvalidInput, match="already exists"):
        service.create(spec("Acme EU"), actor="U1")
    other = service.create(spec("Acme EU"), actor="U1", workspace_id="T2")
    assert other.workspace_id == "T2"


def test_unknown_name_lists_the_known_ones(service: IntegrationService) -> None:
    service.create(spec("Acme EU"), actor="U1")
    service.create(spec("Beta DE"), actor="U1")
    with pytest.raises(ServiceError) as raised:
        service.get("Acme")
    assert raised.value.kind == ErrorKind.NOT_FOUND
    assert "Integrations: Acme EU, Beta DE." in raised.value.message


def test_stop_and_activate(service: IntegrationService) -> None:
    integration = service.create(spec(), actor="U1")
    with pytest.raises(ServiceError, match="only an active integration can be stopped"):
        service.stop(integration.id, actor="U1", workspace_id=LOCAL_WORKSPACE)
    connect(service, integration)
    stopped = service.stop(integration.id, actor="U2", workspace_id=LOCAL_WORKSPACE)
    assert stopped.status == IntegrationStatus.STOPPED
    with pytest.raises(ServiceError, match="already stopped"):
        service.stop(integration.id, actor="U2", workspace_id=LOCAL_WORKSPACE)
    activated = service.activate(integration.id, actor="U3", workspace_id=LOCAL_WORKSPACE)
    assert activated.status == IntegrationStatus.ACTIVE
    with pytest.raises(ServiceError, match="already active"):
        service.activate(integration.id, actor="U3", workspace_id=LOCAL_WORKSPACE)
    entries = service.audit_log(integration.id)
    assert [(e.actor, e.action) for e in entries[-2:]] == [
        ("U2", "integration.stopped"),
        ("U3", "integration.activated"),
    ]


def test_changes_by_id_reach_only_the_requests_workspace(service: IntegrationService) -> None:
    theirs = connect(service, service.create(spec(), actor="U1", workspace_id="T1"))
    service.create(spec("Beta DE"), actor="U1", workspace_id="T1")
    changes: list[Callable[[str | None], object]] = [
        lambda workspace: service.stop(theirs.id, actor="U9", workspace_id=workspace),
        lambda workspace: service.update_settings(
            theirs.id, actor="U9", workspace_id=workspace, name="Beta DE"
        ),
        lambda workspace: service.set_vat_rate(
            theirs.id, "DE", "domestic", "19", actor="U9", workspace_id=workspace
        ),
    ]
    for change in changes:
        with pytest.raises(ServiceError, match=f"No integration with id {theirs.id}") as raised:
            change("T2")
        assert raised.value.kind == ErrorKind.NOT_FOUND
    unchanged = service.get_by_id(theirs.id, workspace_id=None)
    assert (unchanged.status, unchanged.name, unchanged.vat_rates) == ("active", "Acme EU", {})
    refused = [e for e in service.audit_log(theirs.id) if e.action == "workspace.access_refused"]
    assert [(e.actor, e.details["workspace_id"]) for e in refused] == [("U9", "T2")] * 3

    # A rename is checked against the names of the integration's own workspace.
    with pytest.raises(InvalidInput, match="named 'Beta DE' already exists"):
        changes[1]("T1")
    # The operator's CLI (no workspace) reaches every workspace's.
    assert changes[0](None) is not None
    assert service.get_by_id(theirs.id, workspace_id=None).status == IntegrationStatus.STOPPED


def test_update_settings_validates_and_audits_the_change(service: IntegrationService) -> None:
    created = service.create(spec(), actor="U1")
    updated = service.update_settings(
        created.id,
        actor="U2",
        workspace_id=LOCAL_WORKSPACE,
        sales_account_code="4000",
        marketplaces=(DE,),
    )
    assert (updated.sales_account_code, updated.marketplaces) == ("4000", [DE])
    with pytest.raises(InvalidInput):
        service.update_settings(
            created.id, actor="U2", workspace_id=LOCAL_WORKSPACE, start_date=date(2030, 1, 1)
        )
    last = service.audit_log(updated.id)[-1]
    assert last.action == "integration.settings_updated"
    assert last.details == {
        "marketplaces": {"from": [DE, FR], "to": [DE]},
        "sales_account_code": {"from": "200", "to": "4000"},
    }


def test_own_vat_rates_are_stored_normalized_as_the_mapping_reads_them_and_audited(
    service: IntegrationService,
) -> None:
    created = service.create(
        spec(posting=PostingSettings(vat_rates={"fr:OSS": "20.0"})), actor="U1"
    )
    assert created.vat_rates == {"FR:oss": "20"}
    updated = service.update_settings(
        created.id,
        actor="U2",
        workspace_id=LOCAL_WORKSPACE,
        vat_rates={" de : Domestic": "19 %", "FR:oss": "20", "FR:ioss": "5,5"},
    )
    key = own_rate_key("DE", TaxScheme.DOMESTIC.value)
    assert updated.vat_rates == {key: "19", "FR:oss": "20", "FR:ioss": "5.5"}
    assert service.get("Acme EU").vat_rates == updated.vat_rates
    assert service.audit_log(updated.id)[-1].details == {
        "vat_rates": {
            "from": {"FR:oss": "20"},
            "to": {"DE:domestic": "19", "FR:oss": "20", "FR:ioss": "5.5"},
        }
    }
    removed = service.set_vat_rate(
        created.id, "fr", "IOSS", None, actor="U3", workspace_id=LOCAL_WORKSPACE
    )
    assert removed.vat_rates == {"DE:domestic": "19", "FR:oss": "20"}
    added = service.set_vat_rate(
        created.id, "AT", "oss", "20", actor="U3", workspace_id=LOCAL_WORKSPACE
    )
    assert added.vat_rates["AT:oss"] == "20"
    assert service.audit_log(updated.id)[-1].actor == "U3"
    with pytest.raises(InvalidInput, match="Acme EU has no VAT rate set for PL:oss"):
        service.set_vat_rate(
            created.id, "PL", "oss", None, actor="U3", workspace_id=LOCAL_WORKSPACE
        )


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        # Austria has 20, 19 (Jungholz, Mittelberg), 13 and 10: 23 is Poland's or Ireland's.
        ({"AT:domestic": "23"}, "AT:domestic 23: Austria has no 23% VAT rate today"),
        ({"XX:domestic": "5"}, "XX:domestic 5: XX is not an ISO country code"),
        ({"UK:domestic": "20"}, "UK:domestic 20: UK is not an ISO country code"),
        ({"US:domestic": "5"}, "US:domestic 5: no VAT rates are known for United States"),
        ({"DE:export": "0"}, "DE:export 0: the scheme is one of domestic, oss, ioss"),
        ({"DE:domestic": "nineteen"}, "DE:domestic nineteen: the rate is a percentage"),
        ({"DE:domestic": "100"}, "the rate is a percentage from 0 to under 100"),
        ({"DE:domestic": "-19"}, "the rate is a percentage from 0 to under 100"),
        ({"DE:domestic": "Infinity"}, "the rate is a percentage from 0 to under 100"),
        ({"DE:domestic": "19", "de:DOMESTIC": "7"}, "DE:domestic is set twice"),
        ({"DE": "19"}, "DE 19: the scheme is one of"),
    ],
)
def test_a_bad_own_vat_rate_is_refused_naming_the_entry(
    service: IntegrationService, rates: dict[str, str], message: str
) -> None:
    created = service.create(spec(), actor="U1")
    good = {"FR:oss": "20"}
    with pytest.raises(InvalidInput) as raised:
        service.update_settings(
            created.id, actor="U2", workspace_id=LOCAL_WORKSPACE, vat_rates=good | rates
        )
    assert raised.value.kind == ErrorKind.VALIDATION
    assert list(raised.value.errors) == ["vat_rates"]
    assert message in raised.value.errors["vat_rates"]
    assert "FR:oss" not in raised.value.errors["vat_rates"]
    assert service.get("Acme EU").vat_rates == {}


def test_a_stored_rate_since_abolished_does_not_block_other_settings(
    service: IntegrationService, clock: Clock
) -> None:
    # Germany's 16% held from July to December 2020 only.
    clock.now = datetime(2020, 8, 1, tzinfo=UTC)
    shop = service.create(spec(start_date=date(2020, 7, 1)), actor="U1").id
    service.update_settings(
        shop, actor="U1", workspace_id=LOCAL_WORKSPACE, vat_rates={"DE:domestic": "16"}
    )
    clock.now = datetime(2026, 11, 22, tzinfo=UTC)
    kept = service.update_settings(
        shop, actor="U1", workspace_id=LOCAL_WORKSPACE, sales_account_code="4000"
    )
    assert kept.vat_rates == {"DE:domestic": "16"}
    added = service.set_vat_rate(
        shop, "AT", "domestic", "20", actor="U1", workspace_id=LOCAL_WORKSPACE
    )
    assert added.vat_rates == {"DE:domestic": "16", "AT:domestic": "20"}
    # A new rate is judged by today's law.
    with pytest.raises(InvalidInput, match="Germany has no 17% VAT rate today"):
        service.set_vat_rate(shop, "DE", "domestic", "17", actor="U1", workspace_id=LOCAL_WORKSPACE)


def test_authorization_lapses_after_365_days_and_refresh_restarts_the_clock(
    service: IntegrationService, clock: Clock
) -> None:
    integration = connect(service, service.create(spec(), actor="U1"))
    authorized_at = clock.now
    assert service.authorization_expires_at(integration) == authorized_at + timedelta(days=365)

    clock.now += timedelta(days=364)
    assert service.expire_lapsed_authorizations() == []
    clock.now += timedelta(days=1)
    assert [i.name for i in service.expire_lapsed_authorizations()] == ["Acme EU"]
    assert service.get("Acme EU").status == IntegrationStatus.AUTHORIZATION_EXPIRED
    with pytest.raises(ServiceError, match="refresh it"):
        service.activate(integration.id, actor="U1", workspace_id=LOCAL_WORKSPACE)

    refreshed = service.record_amazon_authorization(
        integration.id, selling_partner_id="A2SELLER", refresh_token="Atzr|new", actor="U1"
    )
    assert refreshed.status == IntegrationStatus.ACTIVE
    assert refreshed.amazon_authorized_at == clock.now
    assert service.amazon_refresh_token(refreshed) == "Atzr|new"
    assert service.audit_log(integration.id)[-1].action == "amazon.reauthorized"


def test_a_consent_from_another_seller_is_refused(service: IntegrationService) -> None:
    integration = connect(service, service.create(spec(), actor="U1"))
    with pytest.raises(ServiceError, match="seller A2SELLER"):
        service.record_amazon_authorization(
            integration.id, selling_partner_id="A9OTHER", refresh_token="Atzr|x", actor="U1"
        )
    assert service.amazon_refresh_token(service.get("Acme EU")) == "Atzr|amazon"


def test_a_changed_key_is_an_auth_error_not_a_crash(service: IntegrationService) -> None:
    integration = connect(service, service.create(spec(), actor="U1"))
    other = TokenCipher(Fernet.generate_key())
    with pytest.raises(ServiceError, match="TOKEN_ENCRYPTION_KEY changed") as raised:
        other.decrypt(integration.amazon_refresh_token_encrypted or b"")
    assert raised.value.kind == ErrorKind.AUTH


def test_datetimes_come_back_timezone_aware(service: IntegrationService) -> None:
    integration = connect(service, service.create(spec(), actor="U1"))
    stored = service.get(integration.name)
    assert stored.amazon_authorized_at is not None
    assert stored.amazon_authorized_at.tzinfo is not None
    assert stored.created_at.utcoffset() == timedelta(0)


def test_a_week_before_lapsing_the_expiry_is_warned_of_once(
    service: IntegrationService, clock: Clock
) -> None:
    integration = connect(service, service.create(spec(), actor="U1"))
    clock.now += timedelta(days=357)
    assert service.due_expiry_warnings() == []
    clock.now += timedelta(days=1)
    assert [i.name for i in service.due_expiry_warnings()] == ["Acme EU"]
    service.record_expiry_warning(integration.id)
    assert service.due_expiry_warnings() == []
    # A refresh (the next day) restarts the clock; the next warning comes a year later.
    clock.now += timedelta(days=1)
    service.record_amazon_authorization(
        integration.id, selling_partner_id="A2SELLER", refresh_token="Atzr|new", actor="U1"
    )
    clock.now += timedelta(days=358)
    assert [i.name for i in service.due_expiry_warnings()] == ["Acme EU"]
