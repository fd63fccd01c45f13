"""Domain values for tests that need no database: unsaved ORM rows with realistic fields."""

from __future__ import annotations

from typing import Any

from services.errors import ErrorKind
from services.models import LedgerItem, LedgerStatus

Json = dict[str, Any]


def failed_item(id: int, message: str, **changes: Any) -> LedgerItem:
    values: Json = {
        "id": id,
        "integration_id": 7,
        "run_id": 3,
        "source_key": f"INV:302-0000000-{id:07d}:INV-DE-{id}",
        "transaction_type": "SALE",
        "amazon_order_id": f"302-0000000-{id:07d}",
        "document_type": "invoice",
        "document_number": f"INV-DE-{id}",
        "currency": "EUR",
        "gross_cents": 11900,
        "tax_cents": 1900,
        "status": LedgerStatus.FAILED,
        "error_kind": ErrorKind.VALIDATION,
        "error_message": message,
        "retryable": True,
    }
    return LedgerItem(**(values | changes))
