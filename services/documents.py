"""Accounting documents from Amazon transactions, and the exact JSON Xero gets for each.

A SALE becomes one sales invoice per order shipment (the rows sharing the order id and Amazon's
invoice number, or the shipment's activity id when Amazon issued no invoice); a REFUND becomes
one credit note per refund activity; nothing else is posted. Every line carries Amazon's net as
its LineAmount and Amazon's VAT as its TaxAmount, so Xero's totals are Amazon's to the cent
whatever Xero's own rounding would have given. Pure functions, no I/O.

Contacts: a buyer with a valid VAT number is a business contact keyed by that number; a named
consumer gets a contact keyed by a hash of name, postcode and country (unless the integration's
ContactPolicy folds consumers into the marketplace's); everyone else goes to one
"Amazon <country> customers" contact per marketplace. The engine stores key -> ContactID and asks
`contact_name` for a name, attempt by attempt, until Xero accepts one that is not taken.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from stdnum.eu import vat as eu_vat
from stdnum.gb import vat as gb_vat

from services.errors import ErrorKind, ServiceError
from services.integrations import PostingSettings
from services.marketplaces import BY_DOMAIN
from services.models import ContactPolicy, DocumentKind
from services.transactions import (
    CENT,
    POSTED_TYPES,
    Buyer,
    Charge,
    ChargeKind,
    TaxScheme,
    Transaction,
    TransactionType,
)
from services.vat_rates import country_name, own_rate_key, percent_text, rate_exists, rates_in_force

CONTACT_NAME_MAX = 255  # Xero's limit on Contact.Name
DESCRIPTION_MAX = 4000  # Xero's limit on a line's Description
# Xero's limits on the address fields (Addresses in the Accounting API's Contact schema).
ADDRESS_MAX, CITY_MAX, POSTCODE_MAX = 500, 255, 50
STATUSES = frozenset({"DRAFT", "SUBMITTED", "AUTHORISED"})  # the ones Xero creates documents in
FACILITATOR_LINE = "Tax collected and remitted by Amazon (marketplace facilitator)"
# What a spreadsheet takes for the start of a formula when finance exports from Xero.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_VAT_NUMBER_SEPARATORS = re.compile(r"[\s.,/-]")
_NOT_POSTCODE = re.compile(r"[^0-9A-Z]")

_SHIPPING_KINDS = frozenset(
    {
        ChargeKind.SHIPPING,
        ChargeKind.SHIPPING_PROMOTION,
        ChargeKind.GIFT_WRAP,
        ChargeKind.GIFT_WRAP_PROMOTION,
    }
)
_LABELS = {
    ChargeKind.SHIPPING: "Shipping",
    ChargeKind.SHIPPING_PROMOTION: "Shipping promotion",
    ChargeKind.GIFT_WRAP: "Gift wrap",
    ChargeKind.GIFT_WRAP_PROMOTION: "Gift wrap promotion",
}
# Read once: a member read from its enum class goes through the enum's metaclass (~80 ns a
# time), and these are compared with once a charge.
_SALE, _REFUND = TransactionType.SALE, TransactionType.REFUND
_ITEM, _ITEM_PROMOTION = ChargeKind.ITEM, ChargeKind.ITEM_PROMOTION
_FACILITATOR = TaxScheme.FACILITATOR
_INVOICE, _CREDIT_NOTE = DocumentKind.INVOICE, DocumentKind.CREDIT_NOTE
# Made once (Decimals are immutable): Decimal("0.00") parses its text at every call.
_ZERO, _ONE = Decimal("0.00"), Decimal(1)


# --- which document a row belongs to ----------------------------------------------------------


def document_key(t: Transaction) -> str | None:
    """The document a row belongs to: "INV:<order>:<invoice number or activity>" for sales,
    "CN:<activity>" for refunds, None for rows that are not posted."""
    if t.type not in POSTED_TYPES:
        return None
    if t.type == _SALE:
        return f"INV:{t.order_id}:{t.invoice_number or t.activity_id}"
    return f"CN:{t.activity_id}"


def document_number(t: Transaction) -> str:
    """Amazon's invoice number when it issued one, else one made from the activity id."""
    if t.type == _SALE:
        return t.invoice_number or f"AMZ-{t.activity_id}"
    if t.type == _REFUND:
        return t.invoice_number or f"AMZ-CN-{t.activity_id}"
    raise ValueError(f"{t.type} transactions are not posted to Xero")


# --- tax keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaxKey:
    """How a line is taxed: the taxing country, the rate as a percentage (19 for 19%) and the
    scheme. Its string form, e.g. "DE:19:domestic", is what users write in tax overrides.

    Facilitator lines carry rate 0: the seller accounts for no tax on them (see build_document).
    A country of None means the organisation's own country."""

    country: str | None
    rate: Decimal
    scheme: TaxScheme

    def __post_init__(self) -> None:
        if self.rate.is_zero() and self.rate.is_signed():
            # A report's "-0.00" is 0: one key, one Xero rate, never "Amazon DE -0%".
            object.__setattr__(self, "rate", abs(self.rate))

    def __str__(self) -> str:
        return f"{self.country or ''}:{percent_text(self.rate)}:{self.scheme.value}"

    @classmethod
    def parse(cls, text: str) -> TaxKey:
        parts = [part.strip() for part in text.split(":")]
        problem = ValueError(
            f"{text!r} is not a tax key: write COUNTRY:RATE:SCHEME, e.g. DE:19:domestic, with a "
            f"scheme among {', '.join(s.value for s in TaxScheme)}"
        )
        if len(parts) != 3:
            raise problem
        country, rate_text, scheme_text = parts
        if country and not re.fullmatch(r"[A-Za-z]{2}", country):
            raise problem
        try:
            rate = Decimal(rate_text)
            scheme = TaxScheme(scheme_text.lower())
        except (InvalidOperation, ValueError):
            raise problem from None
        if not rate.is_finite() or rate < 0:
            raise problem
        return cls(country.upper() or None, rate, scheme)


# --- contacts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactSpec:
    """A Xero contact as the buyer's data defines it. `key` is the buyer's stable identity; `name`
    the plain name to try first (see contact_name)."""

    key: str
    name: str
    tax_number: str | None = None
    address: str | None = None
    city: str | None = None
    postcode: str | None = None
    country: str | None = None


def _clean(text: str | None) -> str | None:
    collapsed = " ".join((text or "").split())
    return collapsed or None


def xero_text(text: str, limit: int) -> str:
    """Text as it may go to Xero: a leading =, +, -, @ is neutralised with an apostrophe (OWASP's
    advice against CSV injection: in an export from Xero it would run as a formula), and text
    over Xero's limit is cut with an ellipsis rather than refused."""
    if text.startswith(_FORMULA_START):
        text = "'" + text
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _shown(text: str | None, limit: int) -> str | None:
    cleaned = _clean(text)
    return None if cleaned is None else xero_text(cleaned, limit)


def _fold(text: str | None) -> str:
    """Spelling variants of one buyer's data (case, spacing, Unicode forms) fold together."""
    return " ".join(unicodedata.normalize("NFKC", text or "").casefold().split())


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@functools.lru_cache(maxsize=4096)  # business buyers come back; the check digits cost
def _valid_vat_number(number: str | None, country: str | None = None) -> str | None:
    """The number in its compact form with country prefix when it is a valid EU or UK VAT
    number (check digits included), else None."""
    if not number:  # most buyers are consumers
        return None
    text = _VAT_NUMBER_SEPARATORS.sub("", number).upper()
    if not text:
        return None
    if not text[:2].isalpha() and country:
        text = country.upper() + text
    if text.startswith("GB"):
        return "GB" + gb_vat.compact(text) if gb_vat.is_valid(text) else None
    return eu_vat.compact(text) if eu_vat.is_valid(text) else None


def _marketplace_country(marketplace: str | None) -> str | None:
    domain = (marketplace or "").strip().lower().removeprefix("www.")
    known = BY_DOMAIN.get(domain)
    return known.country if known else None


def contact_for(t: Transaction, policy: ContactPolicy = ContactPolicy.BUYERS) -> ContactSpec:
    """Business buyer (valid VAT number), named consumer, or the marketplace's anonymous buyers;
    with ContactPolicy.MARKETPLACE a named consumer is one of the marketplace's buyers too.

    An invalid VAT number is ignored: the buyer is then a consumer, named or anonymous."""
    return _contact(t.buyer, t.marketplace, policy)


@functools.lru_cache(maxsize=4096)  # a buyer's shipments and refunds share one contact
def _contact(buyer: Buyer, marketplace: str | None, policy: ContactPolicy) -> ContactSpec:
    name = _clean(buyer.name)
    country = _clean(buyer.country.upper() if buyer.country else None)

    def located(key: str, name: str, tax_number: str | None = None) -> ContactSpec:
        # The key is made from the buyer's data as Amazon wrote it; only what Xero shows is
        # neutralised, so a buyer keeps one key.
        return ContactSpec(
            key=key,
            name=xero_text(name, CONTACT_NAME_MAX),
            tax_number=tax_number,
            address=_shown(buyer.address, ADDRESS_MAX),
            city=_shown(buyer.city, CITY_MAX),
            postcode=_shown(buyer.postcode, POSTCODE_MAX),
            country=country,
        )

    vat = _valid_vat_number(buyer.vat_number, buyer.vat_country)
    if vat is not None:
        return located(f"vat:{vat}", name or vat, vat)
    if name is not None and policy == ContactPolicy.BUYERS:
        postcode = _NOT_POSTCODE.sub("", (buyer.postcode or "").upper())
        identity = "|".join((_fold(name), postcode, country or ""))
        return located(f"buyer:{_digest(identity)[:16]}", name)
    market = _marketplace_country(marketplace)
    if market is None:
        return ContactSpec(key="anon", name="Amazon customers")
    return ContactSpec(key=f"anon:{market}", name=f"Amazon {market} customers")


def _fit(name: str, extra: str) -> str:
    return name[: CONTACT_NAME_MAX - len(extra)].rstrip() + extra


def contact_name(spec: ContactSpec, attempt: int) -> str:
    """The name to try at `attempt` (0, 1, ...): the plain name, then the name qualified by the
    VAT number or the place ("Anna Schmidt (Berlin 10115)"), then that with a short tag of the
    buyer's key ("... [3fa91c]", "... [3fa91c-2]"). Deterministic, so a re-run asks for the same
    names in the same order; distinct buyers get distinct names from attempt 1 or 2 on."""
    if attempt < 0:
        raise ValueError("attempt counts from 0")
    qualifier = (
        spec.tax_number or " ".join(filter(None, (spec.city, spec.postcode))) or spec.country
    )
    forms = [_fit(spec.name, "")]
    if qualifier == spec.name:  # a business known only by its VAT number
        qualifier = None
    if qualifier:
        forms.append(_fit(spec.name, f" ({qualifier})"))
    if attempt < len(forms):
        return forms[attempt]
    tag = _digest(spec.key)[:6]
    extra = attempt - len(forms) + 1
    if extra > 1:
        tag = f"{tag}-{extra}"
    return _fit(spec.name, (f" ({qualifier})" if qualifier else "") + f" [{tag}]")


def contact_payload(spec: ContactSpec, name: str) -> dict[str, Any]:
    """A Xero Contact for PUT (create) or, with the engine's ContactID added, POST (update).

    ContactNumber holds the buyer's key so the contact can be recognised in Xero itself;
    IsCustomer is left out: Xero sets it and refuses it as input."""
    payload: dict[str, Any] = {"Name": name, "ContactNumber": spec.key}
    if spec.tax_number:
        payload["TaxNumber"] = spec.tax_number
    address = {
        field: value
        for field, value in (
            ("AddressLine1", spec.address),
            ("City", spec.city),
            ("PostalCode", spec.postcode),
            ("Country", spec.country),
        )
        if value
    }
    if address:
        payload["Addresses"] = [{"AddressType": "STREET", **address}]
    return payload


# --- documents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentLine:
    """One line as posted: net and tax already signed for the document (credit notes positive).

    quantity is Amazon's item count (1 for shipping, gift wrap and promotions)."""

    description: str
    account_code: str
    tax_key: TaxKey
    net: Decimal
    tax: Decimal
    quantity: int = 1


@dataclass(frozen=True)
class Document:
    """One Xero sales invoice or credit note.

    gross is Amazon's VAT-inclusive total (positive on credit notes) and what Xero's Total will
    be; tax is what Xero's TotalTax will be: Amazon's VAT, less any sales tax Amazon collected
    and remitted itself (collected_by_amazon, posted as a tax-free line of its own)."""

    key: str
    kind: DocumentKind
    number: str
    order_id: str
    date: date
    currency: str
    contact: ContactSpec
    lines: tuple[DocumentLine, ...]
    gross: Decimal
    tax: Decimal
    country: str | None
    marketplace: str | None
    collected_by_amazon: Decimal = Decimal("0.00")
    # Amazon calculated no VAT: lines carry Amazon's VAT-inclusive amounts and Xero is told so,
    # so its total is Amazon's gross to the cent whatever the seller's rate.
    tax_inclusive: bool = False


def _bad(message: str) -> ServiceError:
    return ServiceError(ErrorKind.BAD_DATA, message, retryable=False)


def _where(t: Transaction) -> str:
    return f"{t.source.file}, line {t.source.line}"


def _check_charge(t: Transaction, charge: Charge) -> None:
    if not _charge_is_sound(charge):
        raise _bad(f"Order {t.order_id} ({_where(t)}), {charge.kind.value}: {_flaw(charge)}")


# Rows share their charges (a product's price comes back row after row, see row_codec): each is
# checked once. Whether a charge is sound depends on its figures' values alone.
@functools.lru_cache(maxsize=4096)
def _charge_is_sound(charge: Charge) -> bool:
    return _flaw(charge) is None


def _flaw(charge: Charge) -> str | None:
    for amount in (charge.net, charge.tax, charge.gross):
        if amount != amount.quantize(CENT):
            return f"{amount} is not a whole number of cents."
    if charge.net + charge.tax != charge.gross:
        return f"net {charge.net} plus VAT {charge.tax} does not make the total {charge.gross}."
    if charge.rate == 0 and charge.tax != 0:
        return f"VAT of {charge.tax} at a 0% rate."
    return None


def _item_text(t: Transaction) -> str:
    if t.description and t.sku:
        return f"{t.description} (SKU {t.sku})"
    return t.description or t.sku or "Item"


def _signed(amount: Decimal, credit: bool) -> Decimal:
    # Unary minus, not -1 *, so that a zero stays 0.00 rather than becoming -0.00.
    return -amount if credit else amount


def _line(t: Transaction, charge: Charge, posting: PostingSettings, credit: bool) -> DocumentLine:
    tax_key = _charge_tax_key(t, charge, posting)
    net, tax = charge.net, charge.tax
    if not t.amazon_vat:
        # Amazon's amount is VAT-inclusive; the VAT in it at the seller's rate, per line, as
        # Xero works it out for an inclusive line.
        tax = (charge.gross * tax_key.rate / (100 + tax_key.rate)).quantize(CENT, ROUND_HALF_UP)
        net = charge.gross - tax
    kind, quantity = charge.kind, 1
    if kind == _ITEM:
        description = _item_text(t)
        quantity = abs(t.quantity) or 1
    elif kind == _ITEM_PROMOTION:
        description = f"Promotion on {_item_text(t)}"
    else:
        description = _LABELS[kind]
    return DocumentLine(
        description,
        posting.shipping_account_code if kind in _SHIPPING_KINDS else posting.sales_account_code,
        tax_key,
        _signed(net, credit),
        _ZERO if t.scheme == _FACILITATOR else _signed(tax, credit),
        quantity,
    )


def _one(values: set[str | None]) -> str | None:
    return next(iter(values)) if len(values) == 1 else None


def build_document(transactions: Sequence[Transaction], posting: PostingSettings) -> Document:
    """The invoice or credit note made of rows sharing one document_key.

    Marketplace-facilitator sales tax (US, CA, AU...) is collected and remitted by Amazon: the
    seller never owes it, so it must not reach Xero's tax reports or its tax liability account.
    Its lines therefore carry no tax (a 0% non-reporting tax type, see services.taxes), and the
    tax the customer paid is one line of its own, without tax, to the sales account, where
    Amazon's withholding of that tax in the settlement, booked to the same account, clears it.
    The invoice total is still exactly what the customer paid.

    Raises ValueError when the rows are not one document's, and ServiceError(BAD_DATA) when
    Amazon's figures are inconsistent (mixed currencies, amounts that do not add up)."""
    if not transactions:
        raise ValueError("a document needs at least one transaction")
    first = transactions[0]
    key = document_key(first)
    if key is None:
        raise ValueError(f"{first.type} transactions are not posted to Xero")
    credit = first.type == _REFUND
    number = document_number(first)
    # Most documents have one row, which agrees with itself.
    day, country, marketplace = first.date, first.tax_country, first.marketplace
    if len(transactions) > 1:
        _check_rows_agree(transactions, key, number)
        day = min(t.date for t in transactions)
        country = _one({t.tax_country for t in transactions})
        marketplace = _one({t.marketplace for t in transactions})

    lines: list[DocumentLine] = []
    zero_items: list[DocumentLine] = []
    collected: dict[TaxKey, Decimal] = {}
    for t in transactions:
        facilitator = t.scheme == _FACILITATOR
        for charge in t.charges:
            _check_charge(t, charge)
            line = _line(t, charge, posting, credit)
            if charge.gross or charge.net or charge.tax:
                lines.append(line)
            elif charge.kind == _ITEM:
                zero_items.append(line)
            if facilitator and charge.tax:
                amount = _signed(charge.tax, credit)
                collected[line.tax_key] = collected.get(line.tax_key, Decimal(0)) + amount
    # A document of nothing but zeros still shows what was sold or refunded.
    lines = lines or zero_items
    if collected:
        lines.extend(
            DocumentLine(FACILITATOR_LINE, posting.sales_account_code, tax_key, amount, _ZERO)
            for tax_key, amount in collected.items()
            if amount
        )
    if not lines:
        raise _bad(f"Order {first.order_id}: {number} has no amounts to post.")
    # Tax keys in line order, so the first refused is the one named. Lines share their key
    # objects (see _amazon_tax_key): a run of lines with one key checks it once, unhashed.
    checked = None
    gross = tax = _ZERO
    for line in lines:
        if line.tax_key is not checked:
            checked = line.tax_key
            _check_rate_exists(first, checked, posting)
        gross += line.net + line.tax
        tax += line.tax
    if gross < 0:
        what = "refund" if credit else "sale"
        raise _bad(
            f"Order {first.order_id}: the {what} {number} adds up to {_signed(gross, credit)} "
            f"{first.currency}; a {what} must be {'negative' if credit else 'positive'}."
        )
    return Document(
        key=key,
        kind=_CREDIT_NOTE if credit else _INVOICE,
        number=number,
        order_id=first.order_id,
        date=day,
        currency=first.currency,
        contact=contact_for(first, posting.contact_policy),
        lines=tuple(lines),
        gross=gross,
        tax=tax,
        country=country,
        marketplace=marketplace,
        collected_by_amazon=sum(collected.values(), _ZERO),
        tax_inclusive=not first.amazon_vat,
    )


def _check_rows_agree(transactions: Sequence[Transaction], key: str, number: str) -> None:
    """The rows of one document share its key, its order, its currency and whether Amazon
    calculated their VAT."""
    first = transactions[0]
    others = {other for t in transactions if (other := document_key(t)) != key}
    if others:
        raise ValueError(f"rows of {key} mixed with rows of {sorted(others, key=str)}")
    orders = {t.order_id for t in transactions}
    if len(orders) > 1:
        raise _bad(f"Refund {number} is for several orders ({', '.join(sorted(orders))}).")
    currencies = {t.currency for t in transactions}
    if len(currencies) > 1:
        raise _bad(
            f"Order {first.order_id}: the rows of {number} mix currencies "
            f"{' and '.join(sorted(currencies))}."
        )
    if len({t.amazon_vat for t in transactions}) > 1:
        raise _bad(
            f"Order {first.order_id}: Amazon calculated the VAT of some rows of {number} and "
            "not of others."
        )


def tax_keys(doc: Document) -> set[TaxKey]:
    return {line.tax_key for line in doc.lines}


def transaction_tax_keys(t: Transaction, posting: PostingSettings) -> set[TaxKey]:
    """The tax keys the document lines of this transaction use: known while reading the
    report, so that every tax rate a run needs can be made before its first document. A key
    that cannot be used (no rate set, a rate the country does not have) is left out: its
    document fails when it is built, and no tax rate is made for it."""
    try:
        keys = {_charge_tax_key(t, charge, posting) for charge in t.charges}
        for key in keys:
            _check_rate_exists(t, key, posting)
    except ServiceError:
        return set()
    return keys


_ZERO_RATED = frozenset({TaxScheme.FACILITATOR, TaxScheme.EXPORT, TaxScheme.REVERSE_CHARGE})


def _charge_tax_key(t: Transaction, charge: Charge, posting: PostingSettings) -> TaxKey:
    if t.scheme == _FACILITATOR:
        # Facilitator tax is Amazon's to pay: the seller's lines carry no rate of their own.
        return _zero_rated_key(t.tax_country, t.scheme)
    if t.amazon_vat:
        return _amazon_tax_key(t.tax_country, str(charge.rate), t.scheme)
    if t.scheme in _ZERO_RATED:
        return _zero_rated_key(t.tax_country, t.scheme)  # 0% by law, not by choice
    return TaxKey(t.tax_country, own_vat_rate(t, posting), t.scheme)


# A report has a few countries, rates and schemes, and every charge has a tax key: each is made
# once, and charges share it (keys are immutable). Amazon's rate is keyed by its text, which
# keeps it exactly as written: equal rates may print differently (0 and -0).
@functools.lru_cache(maxsize=1024)
def _amazon_tax_key(country: str | None, fraction: str, scheme: TaxScheme) -> TaxKey:
    return TaxKey(country, Decimal(fraction) * 100, scheme)


@functools.lru_cache(maxsize=1024)
def _zero_rated_key(country: str | None, scheme: TaxScheme) -> TaxKey:
    return TaxKey(country, Decimal(0), scheme)


def own_vat_rate(t: Transaction, posting: PostingSettings) -> Decimal:
    """The seller's rate for a sale Amazon calculated no VAT for; never guessed."""
    key = own_rate_key(t.tax_country or "", t.scheme.value)
    text = posting.vat_rates.get(key)
    if text is None:
        country = t.tax_country or "its country"
        raise ServiceError(
            ErrorKind.VALIDATION,
            f"Order {t.order_id}: Amazon calculated no VAT for this sale, and it needs a VAT rate "
            f"for {country} {t.scheme.value.replace('_', ' ')} sales. Set it in the "
            f"integration's settings (for example {key} 19) and retry.",
            retryable=True,
        )
    return Decimal(text)


def _check_rate_exists(t: Transaction, key: TaxKey, posting: PostingSettings) -> None:
    """A rate the taxing country does not have on that date is refused, never made in Xero:
    it means the wrong country (or a wrong report). A tax override for the key is the user
    saying it is right."""
    if not key.rate or key.country is None:
        return
    if _rate_possible(key.country, key.rate, t.date, t.type == _REFUND):
        return
    if str(key) in posting.tax_overrides:
        return
    name = country_name(key.country)
    known = sorted(rates_in_force(key.country, t.date) or (), reverse=True)
    rates = ", ".join(f"{percent_text(rate)}%" for rate in known)
    raise ServiceError(
        ErrorKind.VALIDATION,  # fixable in the settings (a tax override), then retried
        f"Order {t.order_id} ({_where(t)}): taxed in {name} at {percent_text(key.rate)}%, a rate "
        f"{name} did not have on {t.date.isoformat()} (its rates then: {rates}). Check the "
        f"report's tax country; if the rate is right, map {key} to a Xero tax rate in the "
        "integration's tax overrides and retry.",
        retryable=True,
    )


@functools.lru_cache(maxsize=4096)  # a report has a few countries, rates and a month of days
def _rate_possible(country: str, rate: Decimal, day: date, refund: bool) -> bool:
    """Whether the country may have had the rate that day, as far as the table knows. A refund
    carries the rate of the sale it corrects, which may predate a rate change: any day of the
    year before it will do."""
    months_back = 12 if refund else 0
    days = [day - timedelta(days=30 * back) for back in range(months_back + 1)]
    return any(rate_exists(country, day, rate) is not False for day in days)


def _line_payload(
    line: DocumentLine, tax_types: Mapping[TaxKey, str], *, inclusive: bool
) -> dict[str, Any]:
    tax_type = tax_types.get(line.tax_key)
    if tax_type is None:
        raise ValueError(f"no Xero tax type for {line.tax_key}")
    # Xero keeps UnitAmount to 2 decimals and LineAmount = Quantity x UnitAmount must hold: a net
    # that does not divide into whole cents is posted as one unit, the count in the text.
    amount = line.net + line.tax if inclusive else line.net
    description = line.description
    if line.quantity == 1:  # most lines: amount / 1 is the amount
        quantity, unit = _ONE, amount.quantize(CENT)
        whole = unit == amount
    else:
        quantity = Decimal(line.quantity)
        unit = (amount / quantity).quantize(CENT)
        whole = unit * quantity == amount
    if not whole:
        description = f"{line.quantity} × {description}"
        quantity, unit = _ONE, amount
    return {
        "Description": xero_text(description, DESCRIPTION_MAX),
        "Quantity": quantity,
        "UnitAmount": unit,
        "LineAmount": amount,
        "AccountCode": line.account_code,
        "TaxType": tax_type,
        "TaxAmount": line.tax,
    }


def document_payload(
    doc: Document, *, contact_id: str, tax_types: Mapping[TaxKey, str], status: str
) -> dict[str, Any]:
    """The Invoices or CreditNotes element for Xero, amounts as Decimal (XeroClient writes them
    exactly). Amounts are tax-exclusive with Amazon's tax on each line, or, where Amazon
    calculated no VAT, VAT-inclusive with the VAT at the seller's own rate."""
    status = str(status)
    if status not in STATUSES:
        raise ValueError(f"Xero creates documents as {', '.join(sorted(STATUSES))}, not {status}")
    day = doc.date.isoformat()
    contact = {"ContactID": contact_id}
    payload: dict[str, Any]
    if doc.kind == _INVOICE:
        # Amazon has already collected the money: the invoice is due the day it is issued.
        payload = {
            "Type": "ACCREC",
            "Contact": contact,
            "Date": day,
            "DueDate": day,
            "InvoiceNumber": doc.number,
        }
    else:
        payload = {
            "Type": "ACCRECCREDIT",
            "Contact": contact,
            "Date": day,
            "CreditNoteNumber": doc.number,
        }
    inclusive = doc.tax_inclusive
    payload["Reference"] = doc.order_id
    payload["CurrencyCode"] = doc.currency
    payload["Status"] = status
    payload["LineAmountTypes"] = "Inclusive" if inclusive else "Exclusive"
    payload["LineItems"] = [
        _line_payload(line, tax_types, inclusive=inclusive) for line in doc.lines
    ]
    return payload
