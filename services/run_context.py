"""One invocation of a run: what ingest, posting and allocations carry along."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.integrations import PostingSettings, posting_settings
from services.ledger import Ledger
from services.models import Integration, SyncRun
from services.run_claims import Claim
from services.run_summary import RunSummary
from services.xero import XeroClient

Progress = Callable[[str, int, int], None]  # phase, done, total


def no_progress(_phase: str, _done: int, _total: int) -> None:
    return None


@dataclass
class Counters:
    """What this invocation did; the ledger holds what the run as a whole did."""

    invoices: int = 0
    credit_notes: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0
    allocations: int = 0
    already_posted: int = 0
    country_rates: dict[str, set[Decimal]] = field(default_factory=dict)
    # Settlements: payments and refunds, fee transactions, payouts; their items that failed.
    payments: int = 0
    bank_transactions: int = 0
    transfers: int = 0
    settlement_items_failed: int = 0
    settlements: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what finance should know of this run


@dataclass
class RunContext:
    integration: Integration
    run: SyncRun
    summary: RunSummary
    xero: XeroClient
    ledger: Ledger
    clock: Callable[[], datetime]
    progress: Progress = no_progress
    claim: Claim | None = None
    counters: Counters = field(default_factory=Counters)
    amazon_calls: int = 0
    started: float = field(default_factory=time.monotonic)
    posting: PostingSettings = field(init=False)

    def __post_init__(self) -> None:
        self.posting = posting_settings(self.integration)

    def confirm_claim(self) -> None:
        """Before anything more is sent to Xero: this process still holds the run."""
        if self.claim is not None:
            self.claim.confirm()

    @property
    def integration_id(self) -> int:
        return self.integration.id

    @property
    def run_id(self) -> int:
        return self.run.id
