"""One Amazon settlement report (flat file V2) -> one `Settlement`: every amount classified by what
it is to the books, and their sum checked against the payout to the cent.

This is what closing the books needs (issue 11): each order's share (what the buyer paid or got
back, the tax Amazon withheld, the fees charged on it), the settlement's own fees and charges,
reimbursements and adjustments, reserve moves, and the payout (`total`) on `deposit_date`.
`services/reports.py` reads the same file for its customer refunds only; this module reads all
of it, with that module's header detection, row reading and value parsers.

Decisions callers should know:
- Nothing is dropped. Every row after the summary row becomes part of an `Amount`; a row whose
  description this module does not know is kept as `AmountKind.UNKNOWN` (and listed, with its
  line, in `Settlement.unknown`) so that a later step can flag it instead of guessing an account.
- The sum of every amount must equal the summary row's total-amount exactly, or reading fails
  with a BAD_DATA error naming the file, the settlement and the difference. One settlement, one
  currency: the summary row's (detail rows usually leave it blank); a row that says another is
  refused, as is a row of another settlement.
- Marketplace-facilitator and low-value-goods tax Amazon withholds (`WITHHELD_TAX`) is neither
  the seller's income nor a fee: it nets off the tax the buyer paid on the same order.
- Promotions are the seller's discounts (`PROMOTION`), kept apart from the price so that they
  can be posted as the invoice posts them; they are part of what the buyer paid.
- Reserves: "Previous Reserve Amount Balance" (`RESERVE_RELEASED`, positive) comes back from
  the reserve account, "Current Reserve Amount" (`RESERVE_HELD`, negative) goes to it; neither
  is income or expense.
- Rows with an order-id are grouped per order and transaction-type (`OrderAmounts`, as Amazon
  spells the type: "Order", "Refund", ...); rows without one are the settlement's own.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from services.errors import ErrorKind, ServiceError

# The header detection, row reading and value parsers shared with the other reports.
from services.reports import (
    BadValue,
    ReportKind,
    ReportRow,
    read_header,
    report_rows,
    row_value,
    to_currency,
    to_moment,
    to_money,
)
from services.transactions import RowError

ZERO = Decimal("0.00")


class FeeKind(StrEnum):
    """The lines of a settlement's fee transaction: the categories a finance team maps to
    accounts (A2X's and Link My Books' defaults group Amazon's codes much the same way)."""

    REFERRAL = "referral"  # referral commission, its refund credit and RefundCommission
    FBA_FULFILMENT = "fba_fulfilment"  # pick, pack, ship, returns processing, inbound freight
    FBA_STORAGE = "fba_storage"  # monthly and long-term storage, inventory-level fees
    SHIPPING_CHARGEBACK = "shipping_chargeback"  # shipping and gift wrap the buyer paid Amazon
    ADVERTISING = "advertising"  # sponsored ads, lightning deals, coupons, Vine
    SUBSCRIPTION = "subscription"  # the Professional selling plan
    DIGITAL_SERVICES = "digital_services"  # digital services tax Amazon passes on
    OTHER = "other"  # every other Amazon fee (disposal, removal, labels, manual processing ...)
    REIMBURSEMENT = "reimbursement"  # lost or damaged stock, refunds Amazon takes on itself
    ADJUSTMENT = "adjustment"  # balance and fee corrections


class AmountKind(StrEnum):
    """What an amount is to the books, which decides where it is posted."""

    SALE = "sale"  # what the buyer paid or got back, before tax: principal, shipping, gift wrap
    SALES_TAX = "sales_tax"  # the tax in what the buyer paid
    PROMOTION = "promotion"  # the seller's discount off what the buyer paid
    WITHHELD_TAX = "withheld_tax"  # tax Amazon collects and remits itself: nets off SALES_TAX
    FEE = "fee"  # a line of the fee transaction, under its FeeKind
    RESERVE_RELEASED = "reserve_released"  # the reserve of the settlement before, paid out
    RESERVE_HELD = "reserve_held"  # held back from this settlement's payout
    LOAN = "loan"  # Amazon Lending (Amazon Capital Services) repayments: a liability
    PAYOUT = "payout"  # an earlier payout the bank refused, back in this settlement
    UNKNOWN = "unknown"  # not in this module's table: kept, and listed on the Settlement

    @property
    def buyer(self) -> bool:
        """Part of what the buyer paid or got back for an order."""
        return self in (AmountKind.SALE, AmountKind.SALES_TAX, AmountKind.PROMOTION)


@dataclass(frozen=True, slots=True)
class Classification:
    kind: AmountKind
    fee: FeeKind | None = None  # set exactly when kind is FEE


@dataclass(frozen=True, slots=True)
class Amount:
    """The sum of the rows that share a classification and Amazon's words for them."""

    kind: AmountKind
    fee: FeeKind | None
    transaction_type: str  # as Amazon writes them
    amount_type: str
    description: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class OrderAmounts:
    """What one transaction-type of one order settled: an Order's payment, a Refund's."""

    order_id: str
    transaction_type: str  # as Amazon writes it: "Order", "Refund", "Chargeback Refund", ...
    marketplace: str | None  # e.g. amazon.com
    posted: datetime | None  # of its first row
    amounts: tuple[Amount, ...]  # in the order the file first gives each

    @property
    def buyer(self) -> Decimal:
        """What the buyer paid (an Order) or got back (a Refund, negative), tax included."""
        return _sum(a.amount for a in self.amounts if a.kind.buyer)

    @property
    def withheld_tax(self) -> Decimal:
        return self.total_of(AmountKind.WITHHELD_TAX)

    @property
    def total(self) -> Decimal:
        """What this order's rows add to the payout."""
        return _sum(a.amount for a in self.amounts)

    def total_of(self, kind: AmountKind) -> Decimal:
        return _sum(a.amount for a in self.amounts if a.kind == kind)

    def fees(self) -> dict[FeeKind, Decimal]:
        return _fees(self.amounts)


@dataclass(frozen=True, slots=True)
class UnknownAmount:
    """A row whose description this module does not know, where the file has it."""

    line: int
    order_id: str | None
    transaction_type: str
    amount_type: str
    description: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Settlement:
    settlement_id: str
    start: datetime
    end: datetime
    deposit_date: datetime
    total: Decimal  # the payout: total-amount, negative when the seller owes Amazon
    currency: str
    orders: tuple[OrderAmounts, ...]  # in the order the file first gives each
    amounts: tuple[Amount, ...]  # rows without an order-id: the settlement's own
    unknown: tuple[UnknownAmount, ...]  # every row classified UNKNOWN, orders' included

    def sum_of_amounts(self) -> Decimal:
        """Every amount of the file; equal to `total` (checked when read)."""
        return _sum(order.total for order in self.orders) + _sum(a.amount for a in self.amounts)

    def total_of(self, kind: AmountKind) -> Decimal:
        """Of every order and the settlement's own amounts."""
        in_orders = _sum(order.total_of(kind) for order in self.orders)
        return in_orders + _sum(a.amount for a in self.amounts if a.kind == kind)

    def fees(self) -> dict[FeeKind, Decimal]:
        """Each fee kind's total, of every order and the settlement's own amounts."""
        totals = _fees(self.amounts)
        for order in self.orders:
            for kind, amount in order.fees().items():
                totals[kind] = totals.get(kind, ZERO) + amount
        return {kind: totals[kind] for kind in FeeKind if kind in totals}


def read_settlement(lines: Iterable[str], *, file_name: str) -> Settlement:
    """The settlement a flat file V2 report holds, read line by line (its lines as
    `report_files.read_report_file` yields them). Raises ServiceError (BAD_DATA) for a file that
    is not a settlement report, a row that cannot be read, or amounts that do not add up to
    the summary row's total-amount."""
    iterator = iter(lines)
    header, consumed = read_header(iterator, file_name)
    if header.kind != ReportKind.SETTLEMENT_V2:
        raise _bad(
            f"{file_name} is not a settlement report (flat file V2): its header is one of "
            f"Amazon's {header.kind.value} report."
        )
    reader = _Reader(file_name)
    for record in report_rows(iterator, header, file_name, consumed):
        if isinstance(record, RowError):
            raise _bad(f"{record.describe()} (without this row the settlement cannot add up)")
        row = ReportRow(header, *record)
        try:
            reader.add(row)
        except BadValue as bad:
            raise _bad(
                f"{file_name}, line {row.line}, column {bad.column}: {bad.message}"
            ) from None
    return reader.settlement()


@functools.lru_cache(maxsize=1024)
def classify(transaction_type: str, amount_type: str, description: str) -> Classification:
    """What a row is, from Amazon's three words for it (any case and spacing): its description,
    or for a row whose description says nothing of its own (blank, TransactionTotalAmount) its
    amount-type, then its transaction-type. Never a guess: UNKNOWN when none is known."""
    kind_of_type, amount_kind, what = (
        _word(transaction_type),
        _word(amount_type),
        _word(description),
    )
    found = _BY_AMOUNT_TYPE_ALWAYS.get(amount_kind) or _BY_PLACEMENT.get((amount_kind, what))
    if found is None and what.startswith(_WITHHELD_TAX_PREFIXES):
        found = _WITHHELD
    if found is None and what not in _SAYS_NOTHING:
        found = _BY_DESCRIPTION.get(what)
    found = found or _BY_TYPE.get(amount_kind) or _BY_TYPE.get(kind_of_type)
    return found or _BY_DESCRIPTION.get(what) or _UNKNOWN


# --- the table ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _word(text: str) -> str:
    """Amazon's words as compared: "Storage Fee", "StorageFee" and "storage-fee" are one."""
    return re.sub(r"[^0-9a-z]+", "", text.lower())


def _fee(kind: FeeKind) -> Classification:
    return Classification(AmountKind.FEE, kind)


_SALE = Classification(AmountKind.SALE)
_SALES_TAX = Classification(AmountKind.SALES_TAX)
_PROMOTION = Classification(AmountKind.PROMOTION)
_WITHHELD = Classification(AmountKind.WITHHELD_TAX)
_UNKNOWN = Classification(AmountKind.UNKNOWN)
_REFERRAL = _fee(FeeKind.REFERRAL)
_FBA = _fee(FeeKind.FBA_FULFILMENT)
_STORAGE = _fee(FeeKind.FBA_STORAGE)
_CHARGEBACK = _fee(FeeKind.SHIPPING_CHARGEBACK)
_ADVERTISING = _fee(FeeKind.ADVERTISING)
_OTHER_FEE = _fee(FeeKind.OTHER)
_REIMBURSEMENT = _fee(FeeKind.REIMBURSEMENT)
_ADJUSTMENT = _fee(FeeKind.ADJUSTMENT)

# Amount-types whose every row is one thing, whatever its description.
_BY_AMOUNT_TYPE_ALWAYS = {
    "promotion": _PROMOTION,
    "itemwithheldtax": _WITHHELD,
}
# Descriptions Amazon writes under several amount-types with different meanings.
_BY_PLACEMENT = {
    ("shipmentfees", "shipping"): _FBA,  # a shipment's fee, not the buyer's shipping
    ("othertransaction", "tax"): _OTHER_FEE,  # tax on Amazon's own charges
}
# MarketplaceFacilitatorTax-Principal, MarketplaceFacilitatorVAT-Shipping, LowValueGoodsTax-...
_WITHHELD_TAX_PREFIXES = ("marketplacefacilitator", "lowvaluegoodstax")
# Descriptions that leave the meaning to the amount-type or transaction-type.
_SAYS_NOTHING = frozenset({"", "transactiontotalamount"})

# By description: every value of ../shared/samples/amazon/settlement-v2/fee-codes.json (the
# test checks that none is UNKNOWN), the sample's LowInventoryLevelFee and a few more Amazon
# writes (A2X, Link My Books, SellingPilot and Amazon's help pages name them).
# fmt: off
_DESCRIPTIONS: dict[Classification, tuple[str, ...]] = {
    _SALE: (
        "Principal", "Shipping", "GiftWrap", "RegulatoryFee",
        # What the seller gives back beyond the price, or keeps of it, on a refund.
        "Goodwill", "RestockingFee",
    ),
    _SALES_TAX: ("Tax", "ShippingTax", "GiftWrapTax", "RegulatoryFeeTax"),
    _REFERRAL: ("Commission", "RefundCommission", "VariableClosingFee"),
    _FBA: (
        "FBAPerUnitFulfillmentFee", "FBAPerOrderFulfillmentFee", "FBAWeightBasedFee",
        "FBATransportationFee", "FBAInboundTransportationFee",
        "FBACustomerReturnPerOrderFee", "FBACustomerReturnPerUnitFee",
        "FBACustomerReturnWeightBasedFee",
        "Multi-Channel Fulfillment Brand-Neutral Box Fee",
    ),
    _STORAGE: (
        "Storage Fee", "StorageRenewalBilling",
        # Amazon bills it with its FBA inventory fees, beside storage.
        "LowInventoryLevelFee",
    ),
    _CHARGEBACK: ("ShippingChargeback", "GiftwrapChargeback", "ShippingHB"),
    _ADVERTISING: (
        "Cost of Advertising", "LightningDealFee Special",
        # The total of an advertising invoice; Amazon writes it under "Cost of Advertising",
        # which says so when it is there.
        "TransactionTotalAmount",
    ),
    _fee(FeeKind.SUBSCRIPTION): ("Subscription Fee",),
    _fee(FeeKind.DIGITAL_SERVICES): ("DigitalServicesFee",),
    _OTHER_FEE: (
        "DisposalComplete", "RemovalComplete", "Manual Processing Fee", "SalesTaxServiceFee",
        "Shipping label purchase", "ShippingServices", "ShippingServicesRefund",
        "ReturnShipping", "Additional Other Expenses",
    ),
    _REIMBURSEMENT: (
        "Refund Reimbursal", "FBA Inventory Reimbursement - Customer Return",
        "WAREHOUSE_DAMAGE", "WAREHOUSE_DAMAGE_EXCEPTION", "WAREHOUSE_LOST",
        "MISSING_FROM_INBOUND", "REMOVAL_ORDER_DAMAGED", "MULTICHANNEL_ORDER_DAMAGED",
        "MULTICHANNEL_ORDER_LATE", "MULTICHANNEL_ORDER_LOST", "CS_ERROR_ITEMS",
        "INCORRECT_FEES_ITEMS", "INCORRECT_FEES_NON_ITEMIZED",
        "Manual Processing Fee Reimbursement",
        "REVERSAL_REIMBURSEMENT",  # Amazon taking a reimbursement back: negative
    ),
    _ADJUSTMENT: ("Adjustment", "BalanceAdjustment", "NonSubscriptionFeeAdj", "Merchant Bad Debt"),
    _WITHHELD: ("MarketplaceFacilitatorVAT-Principal", "MarketplaceFacilitatorVAT-Shipping"),
    Classification(AmountKind.RESERVE_RELEASED): ("Previous Reserve Amount Balance",),
    Classification(AmountKind.RESERVE_HELD): ("Current Reserve Amount",),
    Classification(AmountKind.LOAN): ("Amazon Capital Services",),
    Classification(AmountKind.PAYOUT): ("Failed Disbursement",),
}
# Amount-types and transaction-types that say what a row is when its description does not.
_TYPES: dict[Classification, tuple[str, ...]] = {
    _ADVERTISING: (
        "Cost of Advertising", "Refund for Advertiser", "LightningDealFee",
        "CouponRedemptionFee", "Vine Enrollment Fee", "Review Enrollment Fee",
    ),
    _REIMBURSEMENT: ("FBA Inventory Reimbursement",),
    _ADJUSTMENT: ("Item Fee Adjustment", "Fee Adjustment"),
    Classification(AmountKind.RESERVE_RELEASED): ("Previous Reserve Amount Balance",),
    Classification(AmountKind.RESERVE_HELD): ("Current Reserve Amount",),
}
# fmt: on
_BY_DESCRIPTION = {_word(text): found for found, texts in _DESCRIPTIONS.items() for text in texts}
_BY_TYPE = {_word(text): found for found, texts in _TYPES.items() for text in texts}


# --- reading ------------------------------------------------------------------------------------


def _bad(message: str) -> ServiceError:
    return ServiceError(ErrorKind.BAD_DATA, message, retryable=False)


def _sum(amounts: Iterable[Decimal]) -> Decimal:
    return sum(amounts, ZERO)


def _fees(amounts: Iterable[Amount]) -> dict[FeeKind, Decimal]:
    totals: dict[FeeKind, Decimal] = {}
    for each in amounts:
        if each.fee is not None:
            totals[each.fee] = totals.get(each.fee, ZERO) + each.amount
    return totals


# An amount's identity within its order, or the settlement: what Amount holds but the figure.
_AmountKey = tuple[Classification, str, str, str]


class _Order:
    """An order's amounts while the file is read."""

    __slots__ = ("amounts", "marketplace", "posted")

    def __init__(self, marketplace: str | None, posted: datetime | None) -> None:
        self.marketplace = marketplace
        self.posted = posted
        self.amounts: dict[_AmountKey, Decimal] = {}


class _Reader:
    """The summary row, then every row's amount added where it belongs."""

    def __init__(self, file_name: str) -> None:
        self.file_name = file_name
        self.summary: tuple[str, datetime, datetime, datetime, Decimal] | None = None
        self.currency = ""
        self.orders: dict[tuple[str, str], _Order] = {}
        self.own: dict[_AmountKey, Decimal] = {}
        self.unknown: list[UnknownAmount] = []

    def add(self, row: ReportRow) -> None:
        if self.summary is None:
            self._read_summary(row)
            return
        if row.text("total-amount"):
            raise BadValue(
                row.label("total-amount"),
                "a second summary row: a file must hold one settlement (its first data row "
                "alone carries total-amount)",
            )
        self._check_settlement(row)
        amount = row_value(row, "amount", to_money)
        if amount is None:
            raise BadValue(row.label("amount"), "empty, but every row after the summary needs it")
        # Interned: a few dozen distinct texts repeat on every row, and each order keeps them.
        transaction_type = sys.intern(row.text("transaction-type"))
        amount_type = sys.intern(row.text("amount-type"))
        description = sys.intern(row.text("amount-description"))
        found = classify(transaction_type, amount_type, description)
        order_id = row.text("order-id")
        if found.kind == AmountKind.UNKNOWN:
            self.unknown.append(
                UnknownAmount(
                    row.line, order_id or None, transaction_type, amount_type, description, amount
                )
            )
        key = (found, transaction_type, amount_type, description)
        if order_id:
            order = self.orders.get((order_id, transaction_type))
            if order is None:
                order = self.orders[order_id, transaction_type] = _Order(
                    sys.intern(row.text("marketplace-name").lower()) or None, _posted(row)
                )
            amounts = order.amounts
        else:
            amounts = self.own
        amounts[key] = amounts.get(key, ZERO) + amount

    def _read_summary(self, row: ReportRow) -> None:
        if not row.text("total-amount"):
            raise BadValue(
                row.label("total-amount"),
                "empty on the first data row, which is the settlement's summary row",
            )
        total = row_value(row, "total-amount", to_money)
        settlement_id = row.text("settlement-id")
        if not settlement_id or total is None:
            raise BadValue(row.label("settlement-id"), "empty on the summary row")
        start, end, deposit = (
            _moment(row, column)
            for column in ("settlement-start-date", "settlement-end-date", "deposit-date")
        )
        self.summary = (settlement_id, start, end, deposit, total)
        self.currency = row_value(row, "currency", to_currency) or ""

    def _check_settlement(self, row: ReportRow) -> None:
        assert self.summary is not None
        settlement_id = row.text("settlement-id")
        if settlement_id and settlement_id != self.summary[0]:
            raise BadValue(
                row.label("settlement-id"),
                f"{settlement_id}, but the summary row is of settlement {self.summary[0]}: a "
                "file must hold one settlement",
            )
        currency = row_value(row, "currency", to_currency)
        if currency and not self.currency:
            self.currency = currency  # a summary row without one: the rows say it
        elif currency and currency != self.currency:
            raise BadValue(
                row.label("currency"),
                f"{currency}, but the settlement is in {self.currency}: one settlement is paid "
                "in one currency",
            )

    def settlement(self) -> Settlement:
        if self.summary is None:
            raise _bad(f"{self.file_name} has a header but no rows: no settlement in it.")
        settlement_id, start, end, deposit, total = self.summary
        if not self.currency:
            raise _bad(f"{self.file_name}: settlement {settlement_id} names no currency.")
        orders = tuple(
            OrderAmounts(order_id, kind, order.marketplace, order.posted, _amounts(order.amounts))
            for (order_id, kind), order in self.orders.items()
        )
        settlement = Settlement(
            settlement_id,
            start,
            end,
            deposit,
            total,
            self.currency,
            orders,
            _amounts(self.own),
            tuple(self.unknown),
        )
        added = settlement.sum_of_amounts()
        if added != total:
            raise _bad(
                f"{self.file_name}: settlement {settlement_id}'s amounts add up to {added} "
                f"{self.currency}, but its total-amount is {total}: {added - total} "
                f"{self.currency} apart. The file may be cut short or edited; download it "
                "again from Seller Central."
            )
        return settlement


def _amounts(amounts: dict[_AmountKey, Decimal]) -> tuple[Amount, ...]:
    return tuple(
        Amount(found.kind, found.fee, transaction_type, amount_type, description, amount)
        for (found, transaction_type, amount_type, description), amount in amounts.items()
    )


def _posted(row: ReportRow) -> datetime | None:
    for column in ("posted-date-time", "posted-date"):
        if row.text(column):
            return _moment(row, column)
    return None


def _moment(row: ReportRow, column: str) -> datetime:
    moment = row_value(row, column, to_moment)
    if moment is None:
        raise BadValue(row.label(column), "empty, but the settlement needs it")
    return moment
