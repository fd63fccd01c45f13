"""A settlement closes the books (issue 11): each invoice paid from the clearing account, the
fees booked in one bank transaction, the payout transferred to the seller's bank, the clearing
account back at 0.00; exactly once, and a payout arriving before its invoices waits for them.
Through the sandbox Xero, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from bot.container import Container
from handlers.blocks import ids
from sandbox.slack_driver import TEAM, SlackDriver
from sandbox.world import SandboxWorld
from sandbox.xero_books import bank_account
from services.dry_run import WouldFail, WouldSend, dry_run
from services.models import Integration, RunStatus, SettlementItem, SettlementItemStatus
from services.reconcile import DifferenceKind, reconcile
from services.results import RunResult
from services.xero import ATTEMPTS
from tests.test_customer_ledger import REFUND, import_rows
from tests.test_documents import assert_writable
from tests.test_reports import SALE
from tests.test_settlements import HEADER, line, summary
from tests.test_slack_app import setup_values, texts, wait_for

D = Decimal
SECOND = {
    **SALE,
    "TRANSACTION_EVENT_ID": "302-7654321-1234567",
    "ACTIVITY_TRANSACTION_ID": "Zz98Yy76X",
    "VAT_INV_NUMBER": "DE-AEU-2026-2",
    "BUYER_NAME": "Jonas Weber",
}
SETTLEMENT_ROWS = [
    # Each order's buyer paid its invoice's 19.99; Amazon took its fees out of the payout.
    *(
        line(transaction_type="Order", order_id=order, amount_type=kind, amount_description=what,
             amount=amount, marketplace_name="Amazon.de")
        for order in (SALE["TRANSACTION_EVENT_ID"], SECOND["TRANSACTION_EVENT_ID"])
        for kind, what, amount in (
            ("ItemPrice", "Principal", "19,99"),
            ("ItemFees", "Commission", "-3,00"),
            ("ItemFees", "FBAPerUnitFulfillmentFee", "-2,50"),
        )
    ),
    line(transaction_type="ServiceFee", amount_type="other-transaction",
         amount_description="Storage Fee", amount="-1,20"),
    line(transaction_type="Transfer", amount_type="other-transaction",
         amount_description="Current Reserve Amount", amount="-5,00"),
]  # fmt: skip
PARTIAL_REFUND = {
    **REFUND,
    "PRICE_OF_ITEMS_AMT_VAT_EXCL": "-8.40",
    "PRICE_OF_ITEMS_VAT_AMT": "-1.60",
    "PRICE_OF_ITEMS_AMT_VAT_INCL": "-10.00",
    "TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL": "-10.00",
}
PAYOUT = D("19.99") * 2 - D("5.50") * 2 - D("1.20") - D("5.00")  # 22.78
# The order of SALE shipped a second time: another invoice of the same 19.99.
LATER_SHIPMENT = {**SALE, "ACTIVITY_TRANSACTION_ID": "Ship2X", "VAT_INV_NUMBER": "DE-AEU-2026-9"}


def shipment_row(shipment: str, **values: str) -> str:
    """A settlement row paying 19.99 for one shipment of SALE's order."""
    return line(
        transaction_type="Order", order_id=SALE["TRANSACTION_EVENT_ID"], shipment_id=shipment,
        amount_type="ItemPrice", amount_description="Principal", amount="19,99", **values,
    )  # fmt: skip


def dated_sale(day: str) -> dict[str, str]:
    """Another order, sold on `day` (DD-MM-YYYY)."""
    columns = ("TAX_CALCULATION_DATE", "TRANSACTION_DEPART_DATE", "TRANSACTION_COMPLETE_DATE")
    return {
        **SALE,
        **dict.fromkeys(columns, day),
        "TRANSACTION_EVENT_ID": "302-5555555-5555555",
        "ACTIVITY_TRANSACTION_ID": "Late5555",
        "VAT_INV_NUMBER": "DE-AEU-2026-5",
    }


def settlement_file(path: Path, newline: str = "\n") -> Path:
    path.write_text(newline.join([HEADER, summary("22,78"), *SETTLEMENT_ROWS]) + newline)
    return path


def seller_bank(world: SandboxWorld, currency: str = "EUR", code: str = "091") -> None:
    """The account Amazon pays into: the organisation's one bank account in that currency
    (the `shop` fixture's organisation has one in EUR, PLN and SEK already)."""
    accounts = world.xero.org().accounts
    if not any(account["Code"] == code for account in accounts):
        accounts.append(bank_account(code, currency))


def without_seller_bank(world: SandboxWorld, code: str = "091") -> None:
    org = world.xero.org()
    org.accounts = [account for account in org.accounts if account["Code"] != code]


def assert_books_closed(world: SandboxWorld, invoices: int = 2) -> None:
    paid = world.xero.documents("Invoices")[:2]  # the settlement's orders
    assert [(i["Status"], D(str(i["AmountDue"]))) for i in paid] == [("PAID", 0)] * 2
    assert len(world.xero.documents("Invoices")) == invoices
    [transfer] = world.xero.documents("BankTransfers")
    assert D(str(transfer["Amount"])) == PAYOUT
    assert transfer["ToBankAccount"]["Code"] == "091"
    assert world.xero.balance("AMZEUR") == 0  # the clearing account nets to zero
    assert world.xero.balance("091") == PAYOUT  # the deposit the bank feed will show
    assert world.xero.balance("AMZRES") == D("5.00")  # held back by Amazon
    # Besides the transfer's own two sides, one spend money: fees 12.20 and the reserve 5.00.
    [fees] = [t for t in world.xero.documents("BankTransactions") if "TRANSFER" not in t["Type"]]
    assert fees["Type"] == "SPEND" and D(str(fees["Total"])) == D("17.20")


def summary_channel(container: Container, shop: Integration) -> str:
    with container.sessions.begin() as session:
        session.execute(
            update(Integration).where(Integration.id == shop.id).values(summary_channel="C0FINANCE")
        )
    return "C0FINANCE"


def payouts(world: SandboxWorld, channel: str) -> list[dict[str, Any]]:
    return [m for m in world.slack.messages(channel) if m["text"].startswith("Payout")]


def test_a_settlement_pays_its_invoices_books_its_fees_and_transfers_its_payout(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    seller_bank(world)
    channel = summary_channel(container, shop)
    import_rows(container, shop, tmp_path / "vat.txt", SALE, SECOND)

    result = container.sync.import_report(shop, settlement_file(tmp_path / "settlement.txt"))

    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    assert (result.payments_created, result.bank_transactions_created) == (2, 1)
    assert result.transfers_created == 1
    assert result.settlements == [
        {"settlement_id": "1234567890", "currency": "EUR", "payout": "22.78",
         "deposit_date": "2026-06-17"}
    ]  # fmt: skip
    assert_books_closed(world)
    [posted] = payouts(world, channel)
    assert posted["text"] == (
        "Payout 22.78 EUR on 17 Jun 2026 (settlement 1234567890): sales 39.98, refunds 0.00, "
        "fees -12.20, reserve -5.00; clearing balance 0.00"
    )
    assert "Reconciled" in str(posted["blocks"])
    # The same settlement again, saved by another program (other bytes, another import run):
    # it is recorded once, and nothing is made twice.
    copy = settlement_file(tmp_path / "copy.txt", newline="\r\n")
    again = container.sync.import_report(shop, copy)
    assert again.run_id != result.run_id
    assert again.payments_created == again.transfers_created == 0, again.to_json()
    assert len(world.xero.documents("Payments")) == 2
    assert_books_closed(world)


def test_items_a_crash_left_in_flight_are_found_in_xero_not_made_again(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    seller_bank(world)
    import_rows(container, shop, tmp_path / "vat.txt", SALE, SECOND)
    container.sync.import_report(shop, settlement_file(tmp_path / "settlement.txt"))
    # As if the process died after sending each item, before recording Xero's answer.
    with container.sessions.begin() as session:
        session.execute(
            update(SettlementItem).values(status=SettlementItemStatus.IN_FLIGHT, xero_id=None)
        )

    again = container.sync.import_report(
        shop, settlement_file(tmp_path / "copy.txt", newline="\r\n")
    )

    assert again.status == RunStatus.SUCCEEDED, again.to_json()
    assert again.already_posted == 4 and again.payments_created == 0  # 2 payments, fees, payout
    assert len(world.xero.documents("Payments")) == 2
    assert_books_closed(world)
    with container.sessions() as session:
        items = session.scalars(select(SettlementItem)).all()
    assert {(item.status, bool(item.xero_id)) for item in items} == {
        (SettlementItemStatus.POSTED, True)
    }


def test_a_payout_before_its_invoices_pays_them_when_they_are_posted(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    seller_bank(world)
    channel = summary_channel(container, shop)
    early: RunResult = container.sync.import_report(
        shop, settlement_file(tmp_path / "settlement.txt")
    )
    assert early.payments_created == 0 and early.transfers_created == 1, early.to_json()
    assert world.xero.balance("AMZEUR") == D("-39.98")  # the payout left before the sales came
    [waiting] = payouts(world, channel)
    assert waiting["text"].endswith("clearing balance -39.98")
    assert "2 payments wait for their invoices" in str(waiting["blocks"])

    later = import_rows(container, shop, tmp_path / "vat.txt", SALE, SECOND)

    assert later.payments_created == 2, later.to_json()
    assert_books_closed(world)
    assert payouts(world, channel)[-1]["text"].endswith("clearing balance 0.00")


def test_the_dry_run_of_a_settlement_shows_what_would_be_sent_as_xero_takes_it(
    container: Container, shop: Integration, tmp_path: Path
) -> None:
    outcomes = list(dry_run(shop, settlement_file(tmp_path / "settlement.txt")))

    assert not [o for o in outcomes if isinstance(o, WouldFail)]
    sent = [o for o in outcomes if isinstance(o, WouldSend)]
    assert [o.endpoint for o in sent] == ["Payments"] * 2 + ["BankTransactions", "BankTransfers"]
    schemas = {"Payments": "Payment", "BankTransactions": "BankTransaction"}
    for outcome in sent:
        assert_writable(outcome.payload, schemas.get(outcome.endpoint, "BankTransfer"))
    first, _, fees, payout = (o.payload for o in sent)
    assert first["Invoice"] == {"InvoiceID": f"<invoice of order {SALE['TRANSACTION_EVENT_ID']}>"}
    assert first["Amount"] == D("19.99") and first["Account"] == {
        "AccountID": "<Amazon EUR clearing>"
    }
    assert (fees["Type"], sum(line["LineAmount"] for line in fees["LineItems"])) == (
        "SPEND",
        D("17.20"),
    )
    assert payout["Amount"] == PAYOUT
    assert payout["ToBankAccount"] == {"AccountID": "<the bank account Amazon pays EUR into>"}


def test_an_order_shipped_twice_and_settled_at_once_pays_each_invoice_once(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    seller_bank(world)
    order = SALE["TRANSACTION_EVENT_ID"]
    import_rows(container, shop, tmp_path / "vat.txt", SALE, LATER_SHIPMENT)
    rows = [shipment_row(shipment) for shipment in ("S1", "S2")]
    path = tmp_path / "settlement.txt"
    path.write_text("\n".join([HEADER, summary("39,98"), *rows]) + "\n")

    result = container.sync.import_report(shop, path)

    assert result.status == RunStatus.SUCCEEDED and result.payments_created == 1, result.to_json()
    invoices = world.xero.documents("Invoices")
    assert [(i["Status"], D(str(i["AmountDue"]))) for i in invoices] == [("PAID", 0)] * 2
    references = sorted(p["Reference"] for p in world.xero.documents("Payments"))
    assert references == [
        f"Amazon settlement 1234567890 Order {order} (1 of 2)",
        f"Amazon settlement 1234567890 Order {order} (2 of 2)",
    ]
    assert world.xero.balance("AMZEUR") == 0
    # A crash after both were sent, before the answer was recorded: both are found, none resent.
    with container.sessions.begin() as session:
        session.execute(
            update(SettlementItem).values(status=SettlementItemStatus.IN_FLIGHT, xero_id=None)
        )
    copy = tmp_path / "copy.txt"
    copy.write_text("\r\n".join([HEADER, summary("39,98"), *rows]) + "\r\n")
    again = container.sync.import_report(shop, copy)
    assert again.already_posted == 2 and again.payments_created == 0, again.to_json()  # + payout
    assert len(world.xero.documents("Payments")) == 2


def test_an_order_shipped_twice_and_settled_apart_pays_the_invoice_still_due(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    seller_bank(world)
    import_rows(container, shop, tmp_path / "vat.txt", SALE, LATER_SHIPMENT)
    # Each shipment settled in a settlement of its own, for the same 19.99.
    for settlement_id, shipment in (("1111111111", "S1"), ("2222222222", "S2")):
        path = tmp_path / f"{settlement_id}.txt"
        rows = [
            summary("19,99", settlement_id=settlement_id),
            shipment_row(shipment, settlement_id=settlement_id),
        ]
        path.write_text("\n".join([HEADER, *rows]) + "\n")
        result = container.sync.import_report(shop, path)
        assert result.status == RunStatus.SUCCEEDED, result.to_json()
        assert result.payments_created == 1, result.to_json()

    invoices = world.xero.documents("Invoices")
    assert [(i["Status"], D(str(i["AmountDue"]))) for i in invoices] == [("PAID", 0)] * 2
    assert world.xero.balance("AMZEUR") == 0


def test_amazon_status_shows_the_last_payout_and_the_clearing_balance(
    container: Container, world: SandboxWorld, shop: Integration, slack: SlackDriver, tmp_path: Path
) -> None:
    with container.sessions.begin() as session:  # the integration is the Slack workspace's
        session.execute(
            update(Integration).where(Integration.id == shop.id).values(workspace_id=TEAM)
        )
    slack.command("status Acme EU", key="before")
    [before] = wait_for(lambda: slack.slack.responses("before"))
    assert "Last payout" in texts(before) and "none yet" in texts(before)
    seller_bank(world)
    container.sync.import_report(shop, settlement_file(tmp_path / "settlement.txt"))

    slack.command("status Acme EU", key="waiting")

    [waiting] = wait_for(lambda: slack.slack.responses("waiting"))
    assert "€22.78 on 17 Jun 2026 (settlement 1234567890), 1 open point" in texts(waiting)
    assert "clearing balance -€39.98" in texts(waiting)
    import_rows(container, shop, tmp_path / "vat.txt", SALE, SECOND)
    slack.command("status Acme EU", key="after")
    [after] = wait_for(lambda: slack.slack.responses("after"))
    assert "(settlement 1234567890), reconciled; clearing balance €0.00" in texts(after)


def test_a_refund_settled_after_its_sale_was_paid_is_paid_out_on_its_credit_note(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    seller_bank(world)
    order = SALE["TRANSACTION_EVENT_ID"]
    import_rows(container, shop, tmp_path / "sale.txt", SALE)
    sold = tmp_path / "sold.txt"
    sold.write_text(
        "\n".join(
            [HEADER, summary("19,99"), line(transaction_type="Order", order_id=order,
             amount_type="ItemPrice", amount_description="Principal", amount="19,99")]
        ) + "\n"
    )  # fmt: skip
    container.sync.import_report(shop, sold)
    # The refund comes in the next month's report: the invoice is paid, so the credit note
    # cannot be allocated to it, and stays open until Amazon's refund is settled.
    import_rows(container, shop, tmp_path / "refund.txt", REFUND)
    [credit_note] = world.xero.documents("CreditNotes")
    assert D(str(credit_note["RemainingCredit"])) == D("19.99")
    refunded = tmp_path / "refunded.txt"
    refunded.write_text(
        "\n".join(
            [HEADER, summary("-21,99", settlement_id="2222"),
             line(settlement_id="2222", transaction_type="Refund", order_id=order,
                  amount_type="ItemPrice", amount_description="Principal", amount="-19,99"),
             line(settlement_id="2222", transaction_type="Refund", order_id=order,
                  amount_type="ItemFees", amount_description="RefundCommission", amount="-2,00")]
        ) + "\n"
    )  # fmt: skip

    result = container.sync.import_report(shop, refunded)

    assert result.status == RunStatus.SUCCEEDED and result.payments_created == 1, result.to_json()
    [credit_note] = world.xero.documents("CreditNotes")
    assert credit_note["Status"] == "PAID" and D(str(credit_note["RemainingCredit"])) == 0
    # Amazon took the refund and its fee from the seller's bank: a transfer into clearing.
    transfers = world.xero.documents("BankTransfers")
    assert [D(str(t["Amount"])) for t in transfers] == [D("19.99"), D("21.99")]
    assert transfers[1]["FromBankAccount"]["Code"] == "091"
    assert world.xero.balance("AMZEUR") == 0
    assert world.xero.balance("091") == D("-2.00")  # 19.99 in, 21.99 out


def test_a_payout_whose_answer_was_lost_is_looked_for_and_sent_by_the_next_run(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    seller_bank(world)
    import_rows(container, shop, tmp_path / "vat.txt", SALE, SECOND)
    # Xero stays unavailable for the payout's every attempt: the run cannot know whether the
    # transfer was made, so the item fails as uncertain.
    world.xero.faults.add("/api.xro/2.0/BankTransfers", 503, method="PUT", times=ATTEMPTS)

    first = container.sync.import_report(shop, settlement_file(tmp_path / "settlement.txt"))

    assert first.status == RunStatus.PARTIAL and first.transfers_created == 0, first.to_json()
    assert world.xero.documents("BankTransfers") == []
    # The next run of anything (here the month's next report) sends it, once.
    later = import_rows(container, shop, tmp_path / "more.txt", dated_sale("15-04-2026"))
    assert later.transfers_created == 1, later.to_json()
    assert_books_closed(world, invoices=3)


def test_a_sale_and_its_refund_settled_together_move_only_what_is_left_due(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    """The refund's credit note was allocated to the open invoice when both were posted: Xero
    settled the refund, so the payout pays the invoice only what is left due on it."""
    seller_bank(world)
    order = SALE["TRANSACTION_EVENT_ID"]
    import_rows(container, shop, tmp_path / "vat.txt", SALE, PARTIAL_REFUND)
    [invoice] = world.xero.documents("Invoices")
    assert D(str(invoice["AmountDue"])) == D("9.99")  # the credit note is allocated to it
    rows = [
        line(transaction_type=kind, order_id=order, amount_type="ItemPrice",
             amount_description="Principal", amount=amount)
        for kind, amount in (("Order", "19,99"), ("Refund", "-10,00"))
    ]  # fmt: skip
    path = tmp_path / "settlement.txt"
    path.write_text("\n".join([HEADER, summary("9,99"), *rows]) + "\n")

    result = container.sync.import_report(shop, path)

    assert result.status == RunStatus.SUCCEEDED, result.to_json()
    [payment] = world.xero.documents("Payments")
    assert D(str(payment["Amount"])) == D("9.99")
    [invoice] = world.xero.documents("Invoices")
    assert invoice["Status"] == "PAID"
    assert world.xero.balance("AMZEUR") == 0 and world.xero.balance("091") == D("9.99")


def test_a_sale_settled_after_its_refund_was_allocated_pays_what_is_left_due(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    """The VAT report brings the sale and a partial refund together: the credit note is
    allocated to the open invoice. The sale is settled first, the refund two weeks later:
    the first payout pays the invoice what is left due, the second moves nothing in Xero for
    the refund; over both, the clearing account is at 0.00."""
    seller_bank(world)
    order = SALE["TRANSACTION_EVENT_ID"]
    import_rows(container, shop, tmp_path / "vat.txt", SALE, PARTIAL_REFUND)
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text(
        "\n".join([HEADER, summary("19,99"), line(transaction_type="Order", order_id=order,
                   amount_type="ItemPrice", amount_description="Principal", amount="19,99")])
        + "\n"
    )  # fmt: skip
    second.write_text(
        "\n".join([HEADER, summary("-10,00", settlement_id="2222"),
                   line(settlement_id="2222", transaction_type="Refund", order_id=order,
                        amount_type="ItemPrice", amount_description="Principal",
                        amount="-10,00")])
        + "\n"
    )  # fmt: skip

    sold = container.sync.import_report(shop, first)

    assert sold.status == RunStatus.SUCCEEDED, sold.to_json()
    [payment] = world.xero.documents("Payments")
    assert D(str(payment["Amount"])) == D("9.99")
    # Amazon paid out 19.99 for it: clearing lacks the 10.00 the allocation settled until
    # Amazon takes the refund back.
    assert world.xero.balance("AMZEUR") == D("-10.00")
    refunded = container.sync.import_report(shop, second)
    assert refunded.status == RunStatus.SUCCEEDED, refunded.to_json()
    assert len(world.xero.documents("Payments")) == 1
    assert world.xero.balance("AMZEUR") == 0
    assert world.xero.balance("091") == D("9.99")  # 19.99 paid out, 10.00 taken back


def test_a_failed_payout_is_in_the_errors_channel_and_its_retry_button_sends_it(
    container: Container, world: SandboxWorld, shop: Integration, slack: SlackDriver, tmp_path: Path
) -> None:
    without_seller_bank(world)
    with container.sessions.begin() as session:  # the integration is the Slack workspace's
        session.execute(
            update(Integration)
            .where(Integration.id == shop.id)
            .values(workspace_id=TEAM, errors_channel="C0ERRORS", summary_channel="C0FINANCE")
        )
    import_rows(container, shop, tmp_path / "vat.txt", SALE, SECOND)
    first = container.sync.import_report(shop, settlement_file(tmp_path / "settlement.txt"))
    assert first.transfers_created == 0 and first.failed == 1, first.to_json()

    [posted] = wait_for(lambda: payouts(world, "C0ERRORS"))
    assert "Payout transfer" in texts(posted) and "bank account" in texts(posted)
    [button] = [
        element
        for block in posted["blocks"]
        for element in block.get("elements", [])
        if element.get("action_id") == "retry_settlement"
    ]
    seller_bank(world)  # finance adds the euro account Amazon pays into
    # Only admins retry: a viewer's click is refused and sends nothing.
    slack.click("retry_settlement", button["value"], user="U0VIEWER", key="viewer")
    [refusal] = wait_for(lambda: slack.slack.responses("viewer"))
    assert "Only admins can retry failed items." in texts(refusal)
    assert world.xero.documents("BankTransfers") == []

    slack.click("retry_settlement", button["value"], channel="C0ERRORS", message=posted)

    def retried() -> list[dict[str, Any]]:
        [now] = [m for m in world.slack.messages("C0ERRORS") if m["ts"] == posted["ts"]]
        return [now] if "Retried by" in texts(now) else []

    [updated] = wait_for(retried, timeout=30)
    assert "Reconciled" in texts(updated) and "U0ADMIN" in texts(updated)
    assert "retry_settlement" not in texts(updated)  # nothing left to retry
    assert_books_closed(world)
    # A second click (on a stale copy of the message) sends nothing twice.
    updates = len([c for c in world.slack.calls if c[0] == "chat.update"])
    slack.click("retry_settlement", button["value"], channel="C0ERRORS", message=posted)
    wait_for(lambda: [c for c in world.slack.calls if c[0] == "chat.update"][updates + 1 :])
    assert len(world.xero.documents("BankTransfers")) == 1
    assert "Reconciled" in texts(world.slack.messages("C0ERRORS")[-1])


def test_with_two_euro_bank_accounts_the_one_chosen_in_the_settings_gets_the_payout(
    container: Container, world: SandboxWorld, shop: Integration, slack: SlackDriver, tmp_path: Path
) -> None:
    world.xero.org().accounts.append(bank_account("095", "EUR"))  # a second euro account
    with container.sessions.begin() as session:  # the integration is the Slack workspace's
        session.execute(
            update(Integration).where(Integration.id == shop.id).values(workspace_id=TEAM)
        )
    import_rows(container, shop, tmp_path / "vat.txt", SALE, SECOND)
    first = container.sync.import_report(shop, settlement_file(tmp_path / "settlement.txt"))
    assert first.transfers_created == 0, first.to_json()
    last = container.sync.payouts(shop.id, workspace_id=None).last
    assert last is not None
    [problem] = last.problems
    assert "has 2 bank accounts in EUR" in problem and "/amazon settings" in problem

    slack.command("settings Acme EU")
    [(_, opened)] = wait_for(lambda: [c for c in world.slack.calls if c[0] == "views.open"])
    view = opened["view"] | {"id": "V", "private_metadata": str(shop.id)}
    values = setup_values("Acme EU", marketplaces=list(shop.marketplaces))

    def payout_accounts(text: str) -> dict[str, Any]:
        field = ids.PAYOUT_ACCOUNTS
        return {field.block: {field.action: {"type": "plain_text_input", "value": text}}}

    for text, message in [
        ("EUR", "Line 1 (EUR): write the currency and the account code"),
        ("XYZ 095", "XYZ is not an ISO currency code"),
        ("EUR 095\neur 091", "Line 2: EUR is set twice."),
    ]:
        refused = slack.submit(view, values | payout_accounts(text)).json()
        assert list(refused["errors"]) == [ids.PAYOUT_ACCOUNTS.block], text
        assert message in refused["errors"][ids.PAYOUT_ACCOUNTS.block]
    assert slack.submit(view, values | payout_accounts("eur 095")).status_code == 200
    chosen = container.integrations.get_by_id(shop.id, workspace_id=None)
    assert chosen.payout_accounts == {"EUR": "095"}

    report = container.sync.retry_settlement(last.row_id, workspace_id=TEAM, actor="U0ADMIN")

    assert report.reconciled, report
    [transfer] = world.xero.documents("BankTransfers")
    assert transfer["ToBankAccount"]["Code"] == "095"


def test_an_order_sold_before_the_start_date_is_left_to_finance_and_said_so(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    # Amazon pays out a December order in the first settlement after the start date (1 Jan).
    old_order = line(
        transaction_type="Order",
        order_id="305-0000000-0000001",
        amount_type="ItemPrice",
        amount_description="Principal",
        amount="10,00",
        marketplace_name="Amazon.de",
        posted_date="20.12.2025 10:00:00 UTC",
    )
    path = tmp_path / "settlement.txt"
    path.write_text("\n".join([HEADER, summary("32,78"), *SETTLEMENT_ROWS, old_order]) + "\n")
    import_rows(container, shop, tmp_path / "vat.txt", SALE, SECOND)

    result = container.sync.import_report(shop, path)

    assert (result.payments_created, result.transfers_created) == (2, 1), result.to_json()
    last = container.sync.payouts(shop.id, workspace_id=None).last
    assert last is not None and not last.reconciled
    [problem] = last.problems
    assert "1 payments are for orders sold before the integration's start date (2026-01-01)" in (
        problem
    )
    check = reconcile(container.sessions, shop, "2026-06")
    [before] = [d for d in check.differences if d.kind == DifferenceKind.SOLD_BEFORE_START]
    assert (before.amazon_order_id, before.amount, before.explained) == (
        "305-0000000-0000001",
        Decimal("10.00"),
        False,
    )
    assert "Pay it by hand from the clearing account" in before.explanation


def test_retrying_the_run_sends_a_payout_that_failed_for_want_of_its_bank_account(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    without_seller_bank(world)
    import_rows(container, shop, tmp_path / "vat.txt", SALE, SECOND)
    first = container.sync.import_report(shop, settlement_file(tmp_path / "settlement.txt"))
    assert first.status == RunStatus.PARTIAL and first.transfers_created == 0, first.to_json()
    assert world.xero.documents("BankTransfers") == []
    seller_bank(world)  # finance adds the euro account Amazon pays into

    again = container.sync.retry_run(first.run_id, workspace_id=None)

    assert again.status == RunStatus.SUCCEEDED and again.transfers_created == 1, again.to_json()
    assert again.payments_created == 0  # the payments were made the first time
    assert_books_closed(world)


def test_the_clearing_and_fee_accounts_chosen_in_the_settings_are_used_with_their_tax(
    container: Container, world: SandboxWorld, shop: Integration, slack: SlackDriver, tmp_path: Path
) -> None:
    seller_bank(world)
    with container.sessions.begin() as session:  # the integration is the Slack workspace's
        session.execute(
            update(Integration).where(Integration.id == shop.id).values(workspace_id=TEAM)
        )
    slack.command("settings Acme EU")
    [(_, opened)] = wait_for(lambda: [c for c in world.slack.calls if c[0] == "views.open"])
    view = opened["view"] | {"id": "V", "private_metadata": str(shop.id)}
    values = setup_values("Acme EU", marketplaces=list(shop.marketplaces))

    def lines(field: ids.Field, text: str) -> dict[str, Any]:
        return {field.block: {field.action: {"type": "plain_text_input", "value": text}}}

    def accounts(clearing: str, fees: str, payout: str = "") -> dict[str, Any]:
        return (
            lines(ids.CLEARING_ACCOUNTS, clearing)
            | lines(ids.LINE_ACCOUNTS, fees)
            | lines(ids.PAYOUT_ACCOUNTS, payout)
        )

    for chosen, field, message in [
        (accounts("EUR 091", "", "EUR 091"), ids.CLEARING_ACCOUNTS, "is the payout account too"),
        (accounts("EUR", ""), ids.CLEARING_ACCOUNTS, "Line 1 (EUR): write the currency"),
        (accounts("", "postage 429"), ids.LINE_ACCOUNTS, "postage is not a kind of Amazon fee"),
        (accounts("", "referral 429 INPUT-2"), ids.LINE_ACCOUNTS, "a tax type is Xero's code"),
        (accounts("", "referral 429\nReferral 404"), ids.LINE_ACCOUNTS, "referral is set twice"),
    ]:
        refused = slack.submit(view, values | chosen).json()
        assert list(refused["errors"]) == [field.block], chosen
        assert message in refused["errors"][field.block]
    chosen = accounts("eur 610", "referral 429 input2\nfba_storage 404")
    folded = {
        ids.CONTACT_POLICY.block: {
            ids.CONTACT_POLICY.action: {
                "type": "radio_buttons", "selected_option": {"value": "marketplace"}
            }
        }
    }  # fmt: skip
    assert slack.submit(view, values | chosen | folded).status_code == 200
    saved = container.integrations.get_by_id(shop.id, workspace_id=None)
    assert saved.contact_policy == "marketplace"  # the same form: customers per marketplace
    assert saved.clearing_accounts == {"EUR": "610"}
    assert saved.line_accounts == {
        "referral": {"code": "429", "tax_type": "INPUT2"},
        "fba_storage": {"code": "404"},
    }
    import_rows(container, shop, tmp_path / "vat.txt", SALE, SECOND)

    # 610 is not in Xero yet: the settlement fails, saying so, and nothing is sent.
    first = container.sync.import_report(shop, settlement_file(tmp_path / "settlement.txt"))
    assert first.payments_created == first.transfers_created == 0, first.to_json()
    last = container.sync.payouts(shop.id, workspace_id=None).last
    assert last is not None and not last.reconciled
    assert any("610 chosen in the settings as the EUR clearing account" in p for p in last.problems)
    world.xero.org().accounts.append(bank_account("610", "EUR"))

    report = container.sync.retry_settlement(last.row_id, workspace_id=TEAM, actor="U0ADMIN")

    assert report.reconciled, report
    assert world.xero.balance("610") == 0  # the chosen clearing account nets to zero
    assert world.xero.balance("091") == PAYOUT
    assert not any(a.get("Code") == "AMZEUR" for a in world.xero.org().accounts)
    [fees] = [t for t in world.xero.documents("BankTransactions") if "TRANSFER" not in t["Type"]]
    assert fees["LineAmountTypes"] == "Inclusive" and D(str(fees["Total"])) == D("17.20")
    coded = {line["AccountCode"]: line for line in fees["LineItems"]}
    # Amazon's 6.00 of commission includes the 20% it charged: 1.00 of it is reclaimable.
    assert (coded["429"]["TaxType"], D(str(coded["429"]["TaxAmount"]))) == ("INPUT2", D("1.00"))
    assert (coded["404"]["TaxType"], D(str(coded["404"]["TaxAmount"]))) == ("NONE", 0)
    assert coded["AMZFEES"]["TaxType"] == "NONE"  # FBA fulfilment: not chosen, the default
    assert D(str(fees["TotalTax"])) == D("1.00")


def test_a_payout_keeps_the_clearing_account_its_first_items_went_through(
    container: Container, world: SandboxWorld, shop: Integration, tmp_path: Path
) -> None:
    without_seller_bank(world)
    import_rows(container, shop, tmp_path / "vat.txt", SALE, SECOND)
    first = container.sync.import_report(shop, settlement_file(tmp_path / "settlement.txt"))
    assert first.payments_created == 2 and first.transfers_created == 0, first.to_json()
    # Finance adds the bank account, and names another clearing account meanwhile.
    seller_bank(world)
    world.xero.org().accounts.append(bank_account("610", "EUR"))
    container.integrations.update_settings(
        shop.id, actor="U0ADMIN", workspace_id=None, clearing_accounts={"EUR": "610"}
    )

    again = container.sync.retry_run(first.run_id, workspace_id=None)

    assert again.transfers_created == 1, again.to_json()
    # The payout left the account its payments went into: both accounts end where they began.
    assert_books_closed(world)
    assert world.xero.balance("610") == 0
