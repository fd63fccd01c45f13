"""Normalized Amazon transactions: what the report parsers produce and the mapping consumes.

One `Transaction` is one report row, whatever report it came from (VAT transactions,
settlement V2, all-orders). Amounts are Decimal in the transaction currency, signed as Amazon
signs them (refunds negative). A row that cannot be read becomes a `RowError` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

CENT = Decimal("0.01")


class TransactionType(StrEnum):
    SALE = "SALE"
    REFUND = "REFUND"
    RETURN = "RETURN"
    FC_TRANSFER = "FC_TRANSFER"
    INBOUND = "INBOUND"


# Only these become Xero documents; every other type is counted as skipped, by type.
POSTED_TYPES = frozenset({TransactionType.SALE, TransactionType.REFUND})


class TaxScheme(StrEnum):
    DOMESTIC = "domestic"  # taxed where the goods are sold from and to (same country)
    OSS = "oss"  # EU distance sale, taxed in the arrival country (Union One-Stop Shop)
    IOSS = "ioss"  # EU import of a low-value consignment the seller declares (Import OSS)
    REVERSE_CHARGE = "reverse_charge"  # B2B intra-EU supply: the buyer accounts for VAT
    EXPORT = "export"  # zero-rated export outside the EU/UK
    # Tax Amazon collects and remits itself, as marketplace facilitator (US, CA, AU...) or
    # deemed reseller (UK VOEC, EU IOSS): never the seller's own VAT.
    FACILITATOR = "facilitator"


class ChargeKind(StrEnum):
    ITEM = "item"
    ITEM_PROMOTION = "item_promotion"
    SHIPPING = "shipping"
    SHIPPING_PROMOTION = "shipping_promotion"
    GIFT_WRAP = "gift_wrap"
    GIFT_WRAP_PROMOTION = "gift_wrap_promotion"


# Members by their values, as rows are stored: one dict look-up, where calling the enum
# (TaxScheme("oss")) goes through Enum.__call__ at 15 times the cost, once a row.
SCHEME_BY_VALUE: dict[str, TaxScheme] = {scheme.value: scheme for scheme in TaxScheme}
CHARGE_KIND_BY_VALUE: dict[str, ChargeKind] = {kind.value: kind for kind in ChargeKind}


@dataclass(frozen=True, slots=True)
class Charge:
    """One priced component of a row. net + tax == gross exactly (the parser checks)."""

    kind: ChargeKind
    net: Decimal
    tax: Decimal
    gross: Decimal
    rate: Decimal  # a fraction, as Amazon writes it: 0.19


@dataclass(frozen=True, slots=True)
class Buyer:
    name: str | None = None
    vat_number: str | None = None  # with its country prefix, e.g. DE123456789
    vat_country: str | None = None
    address: str | None = None
    city: str | None = None
    postcode: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2 of the arrival address


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a row came from, for messages a person can act on."""

    file: str
    line: int


@dataclass(frozen=True, slots=True)
class Transaction:
    source: SourceRef
    type: str  # a TransactionType value, or Amazon's own word for types we do not post
    marketplace: str | None  # e.g. amazon.de
    order_id: str  # TRANSACTION_EVENT_ID / order-id
    activity_id: str  # ACTIVITY_TRANSACTION_ID / adjustment or order item id
    invoice_number: str | None  # VAT_INV_NUMBER when Amazon issued the invoice
    date: date  # transaction complete date, else tax calculation date
    currency: str
    sku: str | None
    description: str | None
    quantity: int
    charges: tuple[Charge, ...]
    tax_country: str | None  # ISO alpha-2 of the taxable jurisdiction
    scheme: TaxScheme
    buyer: Buyer
    # False when Amazon did not calculate the VAT (a seller without Amazon's VAT calculation,
    # or a report from before it): charges then hold VAT-inclusive amounts with no VAT split,
    # and the rate comes from the integration's own settings for tax_country and scheme.
    amazon_vat: bool = True

    @property
    def gross(self) -> Decimal:
        return sum((c.gross for c in self.charges), Decimal(0))

    @property
    def tax(self) -> Decimal:
        return sum((c.tax for c in self.charges), Decimal(0))

    @property
    def net(self) -> Decimal:
        return sum((c.net for c in self.charges), Decimal(0))


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that could not be read: precise enough to find and fix it in the file."""

    source: SourceRef
    column: str | None
    message: str
    order_id: str | None = None

    def describe(self) -> str:
        where = f"{self.source.file}, line {self.source.line}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message}"
