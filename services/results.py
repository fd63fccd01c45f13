"""What a run of the monthly sync came to: what the CLI prints, Slack posts and the run keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from services.models import RunStatus


@dataclass
class CurrencyTotals:
    sales_gross: Decimal = Decimal("0.00")
    refunds_gross: Decimal = Decimal("0.00")
    tax: Decimal = Decimal("0.00")

    def to_json(self) -> dict[str, str]:
        return {
            "sales_gross": str(self.sales_gross),
            "refunds_gross": str(self.refunds_gross),
            "tax": str(self.tax),
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> CurrencyTotals:
        return cls(*(Decimal(data[name]) for name in ("sales_gross", "refunds_gross", "tax")))


@dataclass
class RunResult:
    run_id: int
    integration: str
    period: str
    status: RunStatus
    message: str = ""
    invoices_created: int = 0
    credit_notes_created: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0
    allocations_made: int = 0
    payments_created: int = 0
    bank_transactions_created: int = 0
    transfers_created: int = 0
    # Each settlement posted: its id, currency and payout (a string amount).
    settlements: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what finance should know of this run
    already_posted: int = 0
    failed: int = 0
    documents: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    totals: dict[str, CurrencyTotals] = field(default_factory=dict)
    # Amazon's figures of the documents not in Xero (failed or not yet sent), per currency:
    # with `totals`, the report's own.
    left_out: dict[str, CurrencyTotals] = field(default_factory=dict)
    countries: dict[str, dict[str, Any]] = field(default_factory=dict)
    xero_api_calls: int = 0
    amazon_api_calls: int = 0
    duration_seconds: float = 0.0
    error_kind: str | None = None
    error_message: str | None = None

    @property
    def exit_code(self) -> int:
        if self.status == RunStatus.SUCCEEDED:
            return 0
        return 1 if self.status == RunStatus.PARTIAL else 2

    def to_json(self) -> dict[str, Any]:
        return {
            "integration": self.integration,
            "period": self.period,
            "run_id": self.run_id,
            "status": self.status.value,
            "message": self.message,
            "invoices_created": self.invoices_created,
            "credit_notes_created": self.credit_notes_created,
            "contacts_created": self.contacts_created,
            "contacts_updated": self.contacts_updated,
            "allocations_made": self.allocations_made,
            "payments_created": self.payments_created,
            "bank_transactions_created": self.bank_transactions_created,
            "transfers_created": self.transfers_created,
            "settlements": list(self.settlements),
            "notes": list(self.notes),
            "skipped": dict(self.skipped),
            "failed": self.failed,
            "already_posted": self.already_posted,
            "documents": self.documents,
            "xero_api_calls": self.xero_api_calls,
            "amazon_api_calls": self.amazon_api_calls,
            "duration_seconds": round(self.duration_seconds, 3),
            "totals": {currency: t.to_json() for currency, t in sorted(self.totals.items())},
            "left_out": {currency: t.to_json() for currency, t in sorted(self.left_out.items())},
            "countries": self.countries,
            "error": (
                {"kind": self.error_kind, "message": self.error_message}
                if self.error_kind
                else None
            ),
        }


@dataclass(frozen=True)
class SettlementReport:
    """One payout as it stands in Xero, for the people who match it to the bank deposit:
    Amazon's figures, what the clearing account holds of them, and what is not done yet."""

    row_id: int  # the bot's own id of the settlement, which a Retry button carries
    settlement_id: str
    currency: str
    deposit_date: date
    payout: Decimal  # Amazon's total-amount
    sales: Decimal  # orders' payments into clearing
    refunds: Decimal  # refunds out of it (negative)
    fees: Decimal  # the bank transaction's fee, reimbursement and adjustment lines
    reserve: Decimal  # held (negative) and released
    other: Decimal  # lending, returned payouts, amounts in words no mapping knows
    clearing_balance: Decimal  # of this settlement's items in Xero: 0.00 once all are
    problems: tuple[str, ...]  # failed and waiting items, said so a person can act
    # What credit notes' allocations settled in Xero instead of a payment of this settlement:
    # the clearing balance's share that evens out when Amazon settles the other side.
    by_allocation: Decimal = Decimal("0.00")
    failed: int = 0  # items Xero refused or never confirmed: a Retry sends them again

    @property
    def reconciled(self) -> bool:
        """Everything is in Xero, and the clearing account holds nothing unexplained."""
        return self.clearing_balance + self.by_allocation == 0 and not self.problems


@dataclass(frozen=True)
class Payouts:
    """An integration's payouts at a glance: the last settlement, and what each currency's
    clearing account holds of what the bot booked (0.00 when every payout reconciled)."""

    last: SettlementReport | None
    clearing_balances: dict[str, Decimal]
