"""A payout as finance people match it to the bank deposit: one line with Amazon's figures and
the clearing account's balance, then whatever did not reconcile."""

from __future__ import annotations

from decimal import Decimal

from slack_sdk.models.blocks import Block

from handlers.blocks import ids
from handlers.blocks.common import (
    Json,
    actions,
    button,
    context,
    day,
    escape,
    message,
    packed_sections,
    retrying,
    section,
    user,
)
from services.results import SettlementReport


def _amount(value: Decimal) -> str:
    return f"{value:,.2f}"


def settlement_message(
    report: SettlementReport,
    *,
    retry: bool = False,
    retrying_by: str | None = None,
    retried_by: str | None = None,
) -> Json:
    """The payout's figures; with `retry` (its copy in the errors channel), a Retry button
    while items failed, and who retried it."""
    figures = (
        f"Payout {_amount(report.payout)} {report.currency} on {day(report.deposit_date)} "
        f"(settlement {report.settlement_id}): sales {_amount(report.sales)}, "
        f"refunds {_amount(report.refunds)}, fees {_amount(report.fees)}, "
        f"reserve {_amount(report.reserve)}"
        + (f", other {_amount(report.other)}" if report.other else "")
        + f"; clearing balance {_amount(report.clearing_balance)}"
    )
    blocks: list[Block] = [section(escape(figures))]
    if report.by_allocation:
        blocks.append(
            context(
                f"{_amount(abs(report.by_allocation))} of it was settled in Xero by credit notes "
                "allocated to their invoices: the clearing account evens out when Amazon "
                "settles the other side."
            )
        )
    if report.reconciled:
        blocks.append(context("Reconciled: every payment, fee and the payout are in Xero."))
    else:
        blocks += packed_sections(
            ["*Not reconciled yet*", *(f"• {escape(problem)}" for problem in report.problems)],
            max_blocks=3,
        )
    if retry and retrying_by:
        blocks.append(retrying(retrying_by))
    elif retry and report.failed:
        blocks.append(
            actions(button("Retry", ids.RETRY_SETTLEMENT, str(report.row_id), style="primary"))
        )
    if retry and retried_by and not retrying_by:
        outcome = (
            "it failed again"
            if report.failed
            else "reconciled"
            if report.reconciled
            else "sent; what still waits is listed above"
        )
        blocks.append(context(f"Retried by {user(retried_by)}: {outcome}."))
    return message(figures, blocks)
