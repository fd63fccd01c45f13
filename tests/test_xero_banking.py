"""Banking in Xero through our client, over real HTTP to the sandbox: clearing accounts, payments
on invoices and credit notes, spend money, transfers, lock dates and idempotent batches. What
the client sends is checked against Xero's spec; what the sandbox answers too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest

from sandbox.server import LoopbackServer
from sandbox.xero import XeroSandbox
from services.errors import ErrorKind, ServiceError
from services.xero import (
    NewAccount,
    NewBankTransaction,
    NewBankTransfer,
    NewLine,
    NewPayment,
    XeroAccount,
    XeroClient,
)
from tests.test_documents import assert_writable
from tests.test_sandbox_xero import assert_matches
from tests.test_xero_client import make_client
from tests.xero_helpers import credit_note, invoice

Xero = tuple[XeroSandbox, XeroClient]
MARCH_9 = date(2026, 3, 9)
CLEARING = NewAccount(
    "Amazon GBP clearing", "BANK", code="AMZGBP", bank_account_number="AMZ-GBP", currency="GBP"
)
OVERPAID = "Payment amount exceeds the amount outstanding on this document"


@pytest.fixture
def xero() -> Iterator[Xero]:
    sandbox = XeroSandbox()
    server = LoopbackServer(sandbox.app).start()
    yield sandbox, make_client(sandbox, server)
    server.stop()


def clearing(client: XeroClient) -> XeroAccount:
    return client.create_account(CLEARING, idempotency_key="account-clearing")


def sale(client: XeroClient, number: str = "AMZ-1", **fields: str) -> str:
    """An authorised sales invoice of 12.00 (10.00 plus 20% VAT); its InvoiceID."""
    (made,) = client.create_documents(
        "Invoices", [invoice(number, **fields)], idempotency_key=number
    )
    assert made.ok and made.xero_id, made.errors
    return made.xero_id


def pay(document_id: str, account_id: str, amount: str, **fields: object) -> NewPayment:
    values: dict[str, object] = {
        "applies_to": "Invoice",
        "document_id": document_id,
        "account_id": account_id,
        "amount": Decimal(amount),
        "date": MARCH_9,
        "reference": "settlement 1234",
    }
    return NewPayment(**(values | fields))  # type: ignore[arg-type]


def fees(account: XeroAccount, *lines: NewLine, reference: str = "fees 1234") -> NewBankTransaction:
    return NewBankTransaction(
        type="SPEND",
        bank_account_id=account.account_id,
        contact_name="Amazon",
        lines=lines,
        date=MARCH_9,
        reference=reference,
        line_amount_types="NoTax",
    )


def the_invoice(sandbox: XeroSandbox, invoice_id: str) -> dict[str, object]:
    return next(i for i in sandbox.documents("Invoices") if i["InvoiceID"] == invoice_id)


# --- accounts ---------------------------------------------------------------------------------


def test_bank_and_reserve_accounts_are_created_and_listed(xero: Xero) -> None:
    sandbox, client = xero
    reserve = NewAccount("Amazon reserve", "CURRENT", code="AMZRES")
    for account in (
        CLEARING,
        reserve,
        NewAccount("Amazon EUR clearing", "BANK", None, "E1", "EUR"),
    ):
        assert_writable(account.payload(), "Account")

    made = clearing(client)
    held = client.create_account(reserve, idempotency_key="account-reserve")
    no_code = client.create_account(
        NewAccount("Amazon EUR clearing", "BANK", bank_account_number="E1", currency="EUR"),
        idempotency_key="account-eur",
    )

    assert (made.type, made.code, made.currency, made.payments_enabled) == (
        "BANK",
        "AMZGBP",
        "GBP",
        True,
    )
    assert (held.type, held.currency, held.payments_enabled) == ("CURRENT", None, False)
    assert no_code.code is None and no_code.currency == "EUR"
    listed = [a for a in client.accounts() if a.type == "BANK"]
    assert {a.name for a in listed} == {
        "Business Bank Account",
        "Amazon GBP clearing",
        "Amazon EUR clearing",
    }
    assert_matches(client.request("GET", "Accounts"), "Accounts")
    refusals = [
        (CLEARING, "Please enter a unique Name."),
        (NewAccount("Other", "CURRENT", code="AMZRES"), "Please enter a unique Code."),
        (NewAccount("Zloty", "BANK", bank_account_number="P1", currency="PLN"), "currency PLN"),
        (NewAccount("No code", "CURRENT"), "Please enter a Code."),
    ]
    for index, (account, message) in enumerate(refusals):
        with pytest.raises(ServiceError) as raised:
            client.create_account(account, idempotency_key=f"refused-{index}")
        assert raised.value.kind is ErrorKind.VALIDATION
        assert message in raised.value.message
    assert len(sandbox.org().accounts) == 12  # the nine of the demo chart and three made


# --- payments ---------------------------------------------------------------------------------


def test_an_invoice_paid_in_full_becomes_paid_once(xero: Xero) -> None:
    sandbox, client = xero
    account = clearing(client)
    invoice_id = sale(client)
    payment = pay(invoice_id, account.account_id, "12.00")
    assert_writable({"Payments": [payment.payload()]}, "Payments")

    (paid,) = client.create_payments([payment], idempotency_key="pay-1")

    assert paid.ok and paid.made is not None, paid.errors
    assert_matches({"Payments": [paid.element]}, "Payments")
    assert (paid.made.document_id, paid.made.amount, paid.made.date) == (
        invoice_id,
        Decimal("12.00"),
        MARCH_9,
    )
    assert paid.made.payment_type == "ACCRECPAYMENT"
    after = the_invoice(sandbox, invoice_id)
    assert (after["Status"], after["AmountDue"], after["AmountPaid"]) == (
        "PAID",
        Decimal("0.00"),
        Decimal("12.00"),
    )
    assert sandbox.balance("AMZGBP") == Decimal("12.00")

    # Paying it again (another key: a new request) is an overpayment, and changes nothing.
    (again,) = client.create_payments([payment], idempotency_key="pay-2")
    assert not again.ok and again.made is None
    assert again.errors == [OVERPAID]
    assert [p.payment_id for p in client.find_payments_by_reference(["settlement 1234"])] == [
        paid.made.payment_id
    ]
    assert sandbox.balance("AMZGBP") == Decimal("12.00")

    # Xero's GET by id, and where on the invoice and status, find the one payment.
    by_id = client.request("GET", f"Payments/{paid.made.payment_id}")
    assert_matches(by_id, "Payments")
    where = f'Invoice.InvoiceID==Guid("{invoice_id}") AND Status=="AUTHORISED"'
    listed = client.request("GET", "Payments", params={"where": where})["Payments"]
    assert [p["PaymentID"] for p in listed] == [paid.made.payment_id]


def test_an_overpayment_is_refused_and_a_part_payment_leaves_the_rest_due(xero: Xero) -> None:
    sandbox, client = xero
    account = clearing(client)
    invoice_id = sale(client)

    part, over = client.create_payments(
        [pay(invoice_id, account.account_id, "5.00"), pay(invoice_id, account.account_id, "7.01")],
        idempotency_key="pay-1",
    )

    assert part.ok and not over.ok
    assert over.errors == [OVERPAID]
    after = the_invoice(sandbox, invoice_id)
    assert (after["Status"], after["AmountDue"]) == ("AUTHORISED", Decimal("7.00"))
    assert len(sandbox.documents("Payments")) == 1


def test_payments_xero_refuses(xero: Xero) -> None:
    sandbox, client = xero
    account = clearing(client)
    draft = sale(client, "AMZ-D", status="DRAFT")
    euros = sale(client, "AMZ-E", currency="EUR")
    dollars = client.create_account(
        NewAccount("Amazon USD clearing", "BANK", bank_account_number="U1", currency="USD"),
        idempotency_key="usd",
    )
    sales = next(a["AccountID"] for a in sandbox.org().accounts if a.get("Code") == "200")

    results = client.create_payments(
        [
            pay(draft, account.account_id, "1.00"),
            pay(sale(client, "AMZ-2"), sales, "1.00"),
            pay(euros, dollars.account_id, "1.00"),
            pay(euros, account.account_id, "11.50"),  # from the base currency: Xero's rate applies
        ],
        idempotency_key="pay-refused",
    )

    assert [r.ok for r in results] == [False, False, False, True]
    assert results[0].errors == [
        "Payments can only be made on AUTHORISED documents, not on DRAFT ones."
    ]
    assert results[1].errors == [
        "The account needs to be either an account of type BANK or have enable payments to "
        "this account switched on."
    ]
    assert results[2].errors == [
        "A EUR document can be paid from a EUR or GBP account, not from a USD one."
    ]
    assert sandbox.documents("Payments")[0]["BankAmount"] == Decimal("10.00")  # 11.50 / 1.15
    assert the_invoice(sandbox, draft)["AmountDue"] == Decimal("12.00")


def test_a_refund_on_a_credit_note(xero: Xero) -> None:
    sandbox, client = xero
    account = clearing(client)
    (note,) = client.create_documents("CreditNotes", [credit_note("R-1")], idempotency_key="n")
    assert note.xero_id

    (refund,) = client.create_payments(
        [
            pay(
                note.xero_id,
                account.account_id,
                "6.00",
                applies_to="CreditNote",
                reference="refund R-1",
            )
        ],
        idempotency_key="refund-1",
    )

    assert refund.ok and refund.made is not None, refund.errors
    assert refund.made.payment_type == "ARCREDITPAYMENT"
    assert refund.made.document_id == note.xero_id
    assert refund.element["CreditNote"]["CreditNoteID"] == note.xero_id
    assert_matches({"Payments": [refund.element]}, "Payments")
    (after,) = sandbox.documents("CreditNotes")
    assert (after["Status"], after["RemainingCredit"]) == ("PAID", Decimal("0.00"))
    assert sandbox.balance("AMZGBP") == Decimal("-6.00")
    # Listed, a refund names its credit note under Invoice, as Xero's GET does.
    (found,) = client.find_payments_by_reference(["refund R-1"])
    assert found.document_id == note.xero_id


def test_deleting_a_payment_restores_what_is_due(xero: Xero) -> None:
    sandbox, client = xero
    invoice_id = sale(client)
    (paid,) = client.create_payments(
        [pay(invoice_id, clearing(client).account_id, "12.00")], idempotency_key="p"
    )
    assert paid.made is not None

    reply = client.request(
        "POST",
        f"Payments/{paid.made.payment_id}",
        json={"Status": "DELETED"},
        idempotency_key="delete-1",
    )

    assert reply["Payments"][0]["Status"] == "DELETED"
    after = the_invoice(sandbox, invoice_id)
    assert (after["Status"], after["AmountDue"], after["Payments"]) == (
        "AUTHORISED",
        Decimal("12.00"),
        [],
    )
    assert sandbox.balance("AMZGBP") == Decimal("0.00")
    (listed,) = client.find_payments_by_reference(["settlement 1234"])
    assert listed.status == "DELETED"


# --- spend money and transfers ----------------------------------------------------------------


def test_a_spend_with_two_fee_lines_moves_the_clearing_balance(xero: Xero) -> None:
    sandbox, client = xero
    account = clearing(client)
    client.create_payments([pay(sale(client), account.account_id, "12.00")], idempotency_key="p")
    client.create_account(
        NewAccount("Amazon reserve", "CURRENT", code="AMZRES"), idempotency_key="r"
    )
    spend = fees(
        account,
        NewLine("404", Decimal("2.50"), "Referral fees"),
        NewLine("429", Decimal("1.20"), "FBA fees"),
    )
    reserve = fees(account, NewLine("AMZRES", Decimal("3.00"), "Reserve held"), reference="reserve")
    assert_writable({"BankTransactions": [spend.payload()]}, "BankTransactions")

    made, held = client.create_bank_transactions([spend, reserve], idempotency_key="bt-1")

    assert made.ok and made.made is not None, made.errors
    assert held.ok, held.errors
    assert_matches({"BankTransactions": [made.element, held.element]}, "BankTransactions")
    assert (made.made.type, made.made.total, made.made.currency) == (
        "SPEND",
        Decimal("3.70"),
        "GBP",
    )
    assert sandbox.balance("AMZGBP") == Decimal("5.30")  # 12.00 - 3.70 - 3.00
    assert sandbox.balance("AMZRES") == Decimal("3.00")
    assert sandbox.balance("404") == Decimal("2.50")
    (found,) = client.find_bank_transactions_by_reference(["fees 1234"])
    assert found.bank_transaction_id == made.made.bank_transaction_id
    (contact,) = [c for c in sandbox.documents("Contacts") if c["Name"] == "Amazon"]
    assert contact["IsSupplier"]


def test_bank_transactions_xero_refuses(xero: Xero) -> None:
    sandbox, client = xero
    account = clearing(client)
    sales_id = next(a["AccountID"] for a in sandbox.org().accounts if a.get("Code") == "200")
    line = NewLine("404", Decimal("1.00"), "Fees")

    results = client.create_bank_transactions(
        [
            fees(account, NewLine("999", Decimal("1.00"), "Fees")),
            NewBankTransaction("SPEND", sales_id, "Amazon", (line,), MARCH_9, "r"),
            fees(account, NewLine("090", Decimal("1.00"), "To the bank")),
            fees(account, NewLine("404", Decimal("-1.00"), "A refund of fees")),
        ],
        idempotency_key="bt-refused",
    )

    assert [r.errors for r in results] == [
        ["Account code '999' is not a valid code for this document."],
        ["BankAccount must be an account of type BANK."],
        ["Account code '090' is not a valid code for this document."],
        ["The total of a bank transaction must be greater than zero."],
    ]
    assert sandbox.documents("BankTransactions") == []
    assert sandbox.documents("Contacts") == []  # not even the contact a refused one named


def test_a_transfer_moves_money_between_two_bank_accounts(xero: Xero) -> None:
    sandbox, client = xero
    account = clearing(client)
    bank = next(a for a in [a for a in client.accounts() if a.type == "BANK"] if a.code == "090")
    payout = NewBankTransfer(
        account.account_id, bank.account_id, Decimal("50.00"), MARCH_9, "payout 1234"
    )
    assert_writable({"BankTransfers": [payout.payload()]}, "BankTransfers")

    made = client.create_bank_transfer(payout, idempotency_key="transfer-1")

    assert (made.from_account_id, made.to_account_id, made.amount, made.date) == (
        account.account_id,
        bank.account_id,
        Decimal("50.00"),
        MARCH_9,
    )
    assert sandbox.balance("AMZGBP") == Decimal("-50.00")
    assert sandbox.balance("090") == Decimal("50.00")
    assert client.find_bank_transfers_by_reference(["payout 1234"]) == [made]
    assert_matches(client.request("GET", f"BankTransfers/{made.bank_transfer_id}"), "BankTransfers")
    listed = client.request("GET", "BankTransactions", params={"page": "1"})
    assert_matches(listed, "BankTransactions")
    sides = {t["Type"] for t in listed["BankTransactions"]}
    assert sides == {"SPEND-TRANSFER", "RECEIVE-TRANSFER"}  # Xero lists a transfer's two sides

    euros = client.create_account(
        NewAccount("Amazon EUR clearing", "BANK", bank_account_number="E1", currency="EUR"),
        idempotency_key="eur",
    )
    refusals = [
        (
            NewBankTransfer(account.account_id, account.account_id, Decimal("1"), MARCH_9, "x"),
            "must be different",
        ),
        (
            NewBankTransfer(account.account_id, bank.account_id, Decimal("0"), MARCH_9, "x"),
            "greater than zero",
        ),
        (
            NewBankTransfer(euros.account_id, bank.account_id, Decimal("1"), MARCH_9, "x"),
            "different currencies",
        ),
    ]
    for index, (transfer, message) in enumerate(refusals):
        with pytest.raises(ServiceError) as raised:
            client.create_bank_transfer(transfer, idempotency_key=f"refused-{index}")
        assert raised.value.kind is ErrorKind.VALIDATION
        assert message in raised.value.message
    assert len(sandbox.documents("BankTransfers")) == 1


# --- lock dates and idempotency ---------------------------------------------------------------


def test_nothing_is_booked_in_a_closed_period(xero: Xero) -> None:
    sandbox, client = xero
    account = clearing(client)
    invoice_id = sale(client)
    sandbox.org().end_of_year_lock_date = date(2026, 3, 31)
    closed = (
        "The document date cannot be before the end of year lock date, currently set at 31-Mar-2026"
    )

    (payment,) = client.create_payments(
        [pay(invoice_id, account.account_id, "12.00")], idempotency_key="p"
    )
    (spend,) = client.create_bank_transactions(
        [fees(account, NewLine("404", Decimal("1.00"), "Fees"))], idempotency_key="b"
    )
    bank = next(a for a in [a for a in client.accounts() if a.type == "BANK"] if a.code == "090")
    with pytest.raises(ServiceError) as raised:
        client.create_bank_transfer(
            NewBankTransfer(account.account_id, bank.account_id, Decimal("1"), MARCH_9, "x"),
            idempotency_key="t",
        )
    open_day = client.create_payments(
        [pay(invoice_id, account.account_id, "12.00", date=date(2026, 4, 1))],
        idempotency_key="p-april",
    )

    assert payment.errors == [closed]
    assert spend.errors == [closed]
    assert closed in raised.value.message
    assert open_day[0].ok  # the day after the lock date is open
    organisation = client.request("GET", "Organisation")
    assert_matches(organisation, "Organisations")
    assert organisation["Organisations"][0]["EndOfYearLockDate"] == "/Date(1774915200000+0000)/"


def test_the_same_batch_sent_twice_with_its_key_makes_nothing_twice(xero: Xero) -> None:
    sandbox, client = xero
    account = clearing(client)
    payments = [
        pay(sale(client), account.account_id, "12.00"),
        pay(sale(client, "AMZ-2"), account.account_id, "99.00"),
    ]
    spends = [fees(account, NewLine("404", Decimal("2.50"), "Referral fees"))]

    first = client.create_payments(payments, idempotency_key="settlement-1234-payments")
    spent = client.create_bank_transactions(spends, idempotency_key="settlement-1234-fees")
    # The answers were lost and the engine sends the same requests again with the same keys.
    again = client.create_payments(payments, idempotency_key="settlement-1234-payments")
    spent_again = client.create_bank_transactions(spends, idempotency_key="settlement-1234-fees")

    assert [r.ok for r in first] == [True, False]
    assert again == first and spent_again == spent
    assert len(sandbox.documents("Payments")) == 1
    assert len(sandbox.documents("BankTransactions")) == 1
    assert sandbox.balance("AMZGBP") == Decimal("9.50")
    with pytest.raises(ValueError, match="at most 50"):
        client.create_payments(payments * 26, idempotency_key="too-many")
