"""Xero's daily allowance of API calls, planned: what posting a month will cost, known before
it starts, so that finance hears at the start that it takes more than a day, not at the pause.

Xero allows each organisation 5,000 calls a day, 1,000 on its free developer tier. Per-order
posting costs, per 50 documents, a look-up of their numbers and the post; per 50 credit notes
also a look-up of their orders' invoices; one call per credit note's allocation; the buyers'
contacts a batch per 50 documents at most; and a few calls for the organisation and its tax
rates. Payouts add a few calls per settlement, not counted here: the estimate is of the
documents, the bulk of a month.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

PAGE = 50  # Xero's batch
SET_UP_CALLS = 4  # the organisation, its tax rates, a tax rate made, its accounts


def posting_calls(invoices: int, credit_notes: int) -> int:
    """About how many Xero calls posting these documents takes."""
    return (
        SET_UP_CALLS
        + 2 * ceil(invoices / PAGE)
        + 3 * ceil(credit_notes / PAGE)
        + credit_notes  # each allocation is a call of its own
        + ceil((invoices + credit_notes) / PAGE)  # their contacts
    )


@dataclass(frozen=True)
class BudgetShortfall:
    """A month that needs more calls than Xero allows the organisation today."""

    period: str
    documents: int
    needed: int  # calls, estimated
    left: int  # calls Xero allows today: as it last said, else the whole day's
    daily: int  # the day's allowance, as configured


def shortfall(
    period: str, invoices: int, credit_notes: int, *, left: int | None, daily: int
) -> BudgetShortfall | None:
    """None when the month fits in what is left today (`left`, None when Xero has not said
    yet: then the whole day's `daily`)."""
    needed = posting_calls(invoices, credit_notes)
    allowed = daily if left is None else left
    if needed <= allowed:
        return None
    return BudgetShortfall(period, invoices + credit_notes, needed, allowed, daily)
