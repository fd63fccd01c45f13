"""Money as the ledger keeps it: integer cents, exact on every database (SQLite has no decimal)."""

from __future__ import annotations

from decimal import Decimal

_CENT = Decimal("0.01")


def cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def from_cents(value: int) -> Decimal:
    return (Decimal(value) / 100).quantize(_CENT)
