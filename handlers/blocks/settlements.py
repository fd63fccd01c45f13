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
    money,
    number,
    packed_sections,
    plural,
    retrying,
    section,
    user,
)
from services.periods import period_label
from services.reconcile import Reconciliation
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


MAX_DIFFERENCES_SHOWN = 10


def reconciliation_message(check: Reconciliation) -> Json:
    """The month's three-way check: per currency Amazon's report, its settlements and Xero,
    then the differences someone must look at (the explained ones are counted)."""
    flagged = [d for d in check.differences if not d.explained]
    verdict = (
        f"{plural(len(flagged), 'difference')} to look at" if flagged else "everything reconciles"
    )
    title = f"Three-way check of {period_label(check.period)} for {check.integration}: {verdict}"
    blocks: list[Block] = [section(f"*{escape(title)}*")]
    for code, f in sorted(check.currencies.items()):
        blocks.append(
            section(
                f"*{code}*\n"
                f"Amazon's report: sales {money(f.report_sales, code)}, refunds "
                f"{money(f.report_refunds, code)}\n"
                f"Settlements: sales {money(f.settled_sales, code)}, refunds "
                f"{money(f.settled_refunds, code)}, fees {money(f.fees, code)}, reserve "
                f"{money(f.reserve, code)}, payouts {money(f.payouts, code)}\n"
                f"Xero: invoiced {money(f.xero_invoiced, code)}, paid "
                f"{money(f.xero_paid, code)}, clearing balance {money(f.clearing_balance, code)}"
            )
        )
    lines = [
        f"• {escape(d.explanation)} ({money(d.amount, d.currency)})"
        for d in flagged[:MAX_DIFFERENCES_SHOWN]
    ]
    if len(flagged) > MAX_DIFFERENCES_SHOWN:
        lines.append(f"… and {number(len(flagged) - MAX_DIFFERENCES_SHOWN)} more")
    if lines:
        blocks += packed_sections(["*To look at*", *lines], max_blocks=3)
    explained = len(check.differences) - len(flagged)
    blocks.append(
        context(
            f"{plural(explained, 'difference')} explained (not settled yet, in another month, "
            "tax Amazon withheld). Each one: "
            f'`python -m bot reconcile "{escape(check.integration)}" --period {check.period}`'
        )
    )
    return message(title, blocks)
