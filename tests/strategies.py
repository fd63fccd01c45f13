"""Amazon VAT transaction months (GET_VAT_TRANSACTION_DATA) drawn by hypothesis, written here from
Amazon's layout and real files, independently of the sandbox's generator, so that a blind spot
the two share cannot hide a defect.

`months()` draws a `Month`: abstract orders, shipments, items and refunds. `render()` writes it as
Amazon writes the report (one or two files: the month, and the month before when some of its
refunds are of sales made then) and says, from the rows alone, what Xero must end up with.
"""

from __future__ import annotations

import csv
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from hypothesis import strategies as st
from stdnum.eu import vat as eu_vat
from stdnum.iso7064 import mod_11_10

from services.vat_rates import rates_in_force
from tests.conftest import SHARED

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

# The 92 columns of the 2020 layout, as Amazon named them in a real report (its misspelt
# DEPATURE_CITY included), then the two that reports since July 2021 append.
with (SHARED / "samples/amazon/vat-transactions-row/sheet_with_strict_ooxml.derived.csv").open(
    encoding="utf-8"
) as _sample:
    HEADER: tuple[str, ...] = (
        *next(csv.reader(_sample)),
        "TAX_REPORTING_SCHEME",
        "TAX_COLLECTION_RESPONSIBILITY",
    )
assert len(HEADER) == 94, len(HEADER)

# TAXABLE_JURISDICTION as Amazon spells it.
JURISDICTIONS = {
    "AT": "AUSTRIA", "BE": "BELGIUM", "CZ": "CZECH REPUBLIC", "DE": "GERMANY", "ES": "SPAIN",
    "FR": "FRANCE", "GB": "UNITED KINGDOM", "IE": "IRELAND", "IT": "ITALY", "NL": "NETHERLANDS",
    "PL": "POLAND", "SE": "SWEDEN",
}  # fmt: skip
MARKETPLACES = {  # domain: (country, currency)
    "amazon.de": ("DE", "EUR"), "amazon.fr": ("FR", "EUR"), "amazon.it": ("IT", "EUR"),
    "amazon.es": ("ES", "EUR"), "amazon.nl": ("NL", "EUR"), "amazon.pl": ("PL", "PLN"),
    "amazon.se": ("SE", "SEK"), "amazon.co.uk": ("GB", "GBP"),
}  # fmt: skip
EU_MARKETPLACES = tuple(domain for domain in MARKETPLACES if domain != "amazon.co.uk")
WAREHOUSES = ("DE", "PL", "CZ", "FR", "IT", "ES")  # Pan-EU fulfilment centres
EU_ARRIVALS = ("DE", "AT", "FR", "IT", "ES", "NL", "BE", "PL", "SE", "CZ", "IE")
CITIES = {
    "AT": ("Wien", "1010"), "BE": ("Bruxelles", "1000"), "CZ": ("Praha", "110 00"),
    "DE": ("Berlin", "10115"), "ES": ("Madrid", "28001"), "FR": ("Paris", "75001"),
    "GB": ("London", "SW1A 1AA"), "IE": ("Dublin", "D02 X285"), "IT": ("Roma", "00184"),
    "NL": ("Amsterdam", "1012 AB"), "PL": ("Kraków", "31-042"), "SE": ("Stockholm", "111 22"),
}  # fmt: skip
NAMES = ("Anna Schmidt", "Jan Kowalski", "Marie Dubois", "Lars van der Berg", "Zoë Müller")
COMPANIES = ("Müller Bürobedarf GmbH", "Rossi S.r.l.", "Nordlicht AB", "Atelier Blanc SARL")
# Valid VAT numbers of real companies (check digits and all), and more made with DE's checksum.
KNOWN_VAT_NUMBERS = ("DE136695976", "FR40303265045", "ATU13585627")

Kind = Literal["domestic", "oss", "pan_eu", "reverse_charge", "uk_voec", "ioss"]
Sale = Literal["here", "earlier", "split", "absent"]
MARKETPLACE_COLLECTED = {"uk_voec": "UK_VOEC-DOMESTIC", "ioss": "DEEMED_RESELLER-IOSS"}


@dataclass(frozen=True)
class Buyer:
    name: str | None  # None: Amazon gives no name (no invoice data for this buyer)
    country: str
    vat_number: str | None = None

    def who(self, marketplace: str) -> str:
        """The buyer's identity: VAT number, else name + postcode + country folded, else the
        marketplace's anonymous buyers."""
        if self.vat_number:
            return f"vat:{self.vat_number}"
        if self.name:
            postcode = "".join(CITIES[self.country][1].split()).upper()
            return f"consumer:{' '.join(self.name.casefold().split())}|{postcode}|{self.country}"
        return f"anonymous:{MARKETPLACES[marketplace][0]}"


@dataclass(frozen=True)
class Item:
    qty: int
    rate: Decimal  # percent, one the taxing country has on the sale's date
    gross: Decimal  # VAT-inclusive price of the row's items
    promo: Decimal  # VAT-inclusive promotion, <= 0
    shipping: Decimal  # VAT-inclusive shipping charge, >= 0


@dataclass(frozen=True)
class Shipment:
    day: int
    earlier: bool  # shipped last month: in last month's file
    items: tuple[Item, ...]
    spelling: int  # how this shipment's rows write the buyer's name and postcode (see _spelt)


@dataclass(frozen=True)
class Refund:
    day: int
    items: tuple[tuple[int, int, Decimal, bool], ...]  # shipment, item, price back, shipping too
    negative_qty: bool  # Amazon writes a refund's QTY with either sign


@dataclass(frozen=True)
class Order:
    marketplace: str
    kind: Kind
    depart: str
    arrive: str
    jurisdiction: str
    imputation: str
    buyer: Buyer
    sale: Sale  # its sale rows: in this month's file, last month's, both, or neither
    shipments: tuple[Shipment, ...]
    refunds: tuple[Refund, ...]


@dataclass(frozen=True)
class Month:
    first: date
    orders: tuple[Order, ...]
    transfers: int  # FC_TRANSFER rows: stock moved between fulfilment centres, not posted
    returns: tuple[int, ...]  # orders whose goods came back (RETURN rows, not posted)
    unreadable: tuple[int, int, int] | None  # order, shipment, item whose row has a bad date
    short_amounts: bool  # "215.0" rather than "215.00", as some real files write them
    # Amazon issues the VAT invoices (VCS): VAT_INV_NUMBER is filled; else it is blank.
    amazon_invoices: bool


def _vat(gross: Decimal, percent: Decimal) -> Decimal:
    """Amazon's VAT in a VAT-inclusive figure: half-up to the cent, figure by figure."""
    return (gross * percent / (100 + percent)).quantize(CENT, ROUND_HALF_UP)


def _spelt(name: str, spelling: int) -> str:
    """A buyer's name as one of their orders writes it: case, spacing, Unicode form."""
    return (
        name,
        name.upper(),
        name.lower(),
        name.replace(" ", "  "),
        f" {name} ",
        unicodedata.normalize("NFD", name),  # ü as u + combining diaeresis
    )[spelling % 6]


def _spelt_postcode(postcode: str, spelling: int) -> str:
    return (postcode, postcode.replace(" ", ""), postcode.lower(), f"{postcode} ")[spelling % 4]


def _de_vat_number(digits: int) -> str:
    body = str(digits)
    number = f"DE{body}{mod_11_10.calc_check_digit(body)}"
    assert eu_vat.is_valid(number), number
    return number


def _money(low: int, high: int) -> st.SearchStrategy[Decimal]:
    return st.integers(low, high).map(lambda cents: Decimal(cents) / 100)


@st.composite
def _buyers(draw: st.DrawFn) -> Buyer:
    kind = draw(st.sampled_from(["consumer", "consumer", "business", "anonymous"]))
    if kind == "business":
        number = draw(
            st.sampled_from(KNOWN_VAT_NUMBERS)
            | st.integers(10_000_000, 99_999_999).map(_de_vat_number)
        )
        country = {"AT": "AT", "FR": "FR"}.get(number[:2], "DE")
        return Buyer(draw(st.sampled_from(COMPANIES)), country, number)
    country = draw(st.sampled_from(("GB", *EU_ARRIVALS)))
    return Buyer(draw(st.sampled_from(NAMES)) if kind == "consumer" else None, country)


@st.composite
def _items(draw: st.DrawFn, rates: list[Decimal]) -> Item:
    gross = draw(_money(1, 25_000))
    promo = -draw(st.sampled_from([ZERO, ZERO, gross]) | _money(0, int(gross * 100)))
    shipping = draw(st.sampled_from([ZERO, ZERO]) | _money(1, 999))
    return Item(draw(st.integers(1, 3)), draw(st.sampled_from(rates)), gross, promo, shipping)


@st.composite
def _orders(draw: st.DrawFn, first: date, buyers: list[Buyer]) -> Order:
    buyer = draw(st.sampled_from(buyers))
    arrive = buyer.country
    if buyer.vat_number:
        kinds: list[Kind] = ["reverse_charge"]
        if arrive in WAREHOUSES:
            kinds.append("domestic")
    elif arrive == "GB":
        kinds = ["domestic", "uk_voec"]
    else:
        kinds = ["oss", "pan_eu", "ioss"]
        if arrive in WAREHOUSES:
            kinds.append("domestic")
    kind = draw(st.sampled_from(kinds))
    if kind in ("domestic", "uk_voec"):
        depart = arrive
    elif kind == "ioss":
        depart = "CN"  # a low-value consignment from outside the EU
    else:
        depart = draw(st.sampled_from([w for w in WAREHOUSES if w != arrive]))
    jurisdiction = depart if kind in ("pan_eu", "reverse_charge") else arrive
    # Amazon imputes a Pan-EU sale's calculation to another country than the taxing one.
    imputation = arrive if kind == "pan_eu" else jurisdiction
    marketplace = "amazon.co.uk" if arrive == "GB" else draw(st.sampled_from(EU_MARKETPLACES))
    sale: Sale = draw(st.sampled_from(["here", "here", "here", "earlier", "split", "absent"]))
    last_month = (first - timedelta(days=1)).replace(day=1)
    days = draw(st.lists(st.integers(1, 28), min_size=1, max_size=2))
    shipments = []
    for s, day in enumerate(days):
        # An order placed late in a month may ship part then and part the month after.
        earlier = sale == "earlier" or (sale == "split" and s == 0)
        on = (last_month if earlier else first).replace(day=day)
        rates = (
            [Decimal(0)]
            if kind == "reverse_charge"
            else sorted(rates_in_force(jurisdiction, on) or ())
        )
        items = tuple(draw(st.lists(_items(rates), min_size=1, max_size=3)))
        shipments.append(Shipment(day, earlier, items, draw(st.integers(0, 11))))
    # What the buyer paid for an item, in cents: at most that comes back.
    paid = {
        (s, i): int((item.gross + item.promo) * 100)
        for s, shipment in enumerate(shipments)
        for i, item in enumerate(shipment.items)
        if item.gross + item.promo > 0
    }
    refunds = []
    # A sale in no file is only seen through its refunds.
    counts = [1, 1, 2] if sale == "absent" else [0, 0, 0, 1, 1, 2]
    for _ in range(draw(st.sampled_from(counts)) if paid else 0):
        picked = draw(st.lists(st.sampled_from(sorted(paid)), min_size=1, max_size=2, unique=True))
        lines = tuple((s, i, draw(_money(1, paid[(s, i)])), draw(st.booleans())) for s, i in picked)
        earliest = max([1, *(shipment.day for shipment in shipments if not shipment.earlier)])
        refunds.append(Refund(draw(st.integers(earliest, 28)), lines, draw(st.booleans())))
    return Order(
        marketplace, kind, depart, arrive, jurisdiction, imputation, buyer, sale,
        tuple(shipments), tuple(refunds),
    )  # fmt: skip


@st.composite
def months(draw: st.DrawFn) -> Month:
    """A month of an EU/UK seller's VAT transactions report with the quirks of real ones:

    - orders of one or several shipments, each with its own VAT invoice number and one to
      three item rows, with promotions (down to the whole price) and shipping charges;
    - refunds of one or two items of an order, each a credit note number of its own, whose
      rows carry no BUYER_NAME, ARRIVAL_ADDRESS, ARRIVAL_CITY, ARRIVAL_POST_CODE or
      ARRIVAL_COUNTRY, and a QTY of either sign; some refund a sale of this month's file,
      some a sale of last month's (imported first), some a sale in no file at all;
    - named consumers who order again under another spelling (case, spacing), two consumers
      with one name in different countries, businesses with valid VAT numbers (intra-EU
      supplies at 0%, domestic ones with VAT), and anonymous buyers;
    - marketplaces in EUR, GBP, PLN and SEK; rates that exist in the taxing country on the
      sale's date (services.vat_rates); TAXABLE_JURISDICTION spelt out (GERMANY, POLAND);
      Pan-EU sales taxed where they leave but imputed to the arrival country; REGULAR and
      UNION-OSS schemes; UK_VOEC-DOMESTIC and DEEMED_RESELLER-IOSS rows whose VAT Amazon
      collects (TAX_COLLECTION_RESPONSIBILITY MARKETPLACE);
    - VAT rounded half-up per figure, net = VAT-inclusive - VAT; decimal points, written as
      "19.90" or, in some files, "19.9"; dates DD-MM-YYYY;
    - FC_TRANSFER and RETURN rows, which are not posted;
    - sometimes one row of a multi-row shipment with an impossible date (31-02).
    """
    first = draw(st.sampled_from([date(2024, 9, 1), date(2025, 7, 1), date(2025, 8, 1),
                                  date(2026, 1, 1), date(2026, 3, 1)]))  # fmt: skip
    buyers = draw(st.lists(_buyers(), min_size=1, max_size=4))
    orders = tuple(draw(st.lists(_orders(first, buyers), min_size=1, max_size=6)))
    readable = [
        (o, s, i)
        for o, order in enumerate(orders)
        if order.sale != "absent"
        for s, shipment in enumerate(order.shipments)
        if len(shipment.items) > 1 and not shipment.earlier
        for i in range(len(shipment.items))
    ]
    unreadable = draw(st.none() | st.sampled_from(readable)) if readable else None
    returns = draw(st.lists(st.integers(0, len(orders) - 1), max_size=2, unique=True))
    return Month(
        first,
        orders,
        draw(st.integers(0, 2)),
        tuple(returns),
        unreadable,
        short_amounts=draw(st.booleans()),
        amazon_invoices=draw(st.booleans()),
    )


# --- the report as Amazon writes it, and what Xero must then hold -----------------------------


@dataclass(frozen=True)
class Expected:
    """One Xero document, as Amazon's rows define it."""

    kind: str  # the Xero endpoint: Invoices or CreditNotes
    number: str
    order_id: str
    currency: str
    gross: Decimal  # Amazon's VAT-inclusive total, positive on credit notes too
    tax: Decimal  # the seller's VAT in it (none where the marketplace collects it)
    who: str  # the buyer as the engine can know it (see Buyer.who)
    posted: bool  # False: a row of its order could not be read, so it must not be in Xero
    file: str  # the report file its rows are in


@dataclass
class ReportFile:
    name: str
    rows: list[dict[str, str]] = field(default_factory=list)
    orders: list[int | None] = field(default_factory=list)  # each row's order
    unreadable_line: int | None = None

    def text(self) -> str:
        lines = ["\t".join(HEADER), *("\t".join(r.get(c, "") for c in HEADER) for r in self.rows)]
        return "\n".join(lines) + "\n"

    def add(self, row: dict[str, str], order: int | None) -> None:
        self.rows.append(row)
        self.orders.append(order)


@dataclass
class Rendered:
    earlier: ReportFile
    month: ReportFile
    order_ids: list[str]
    failing_order: str | None
    documents: dict[tuple[str, str], Expected]  # (kind, number)

    def files(self) -> Iterator[ReportFile]:
        if self.earlier.rows:
            yield self.earlier
        yield self.month


def render(month: Month, tag: int) -> Rendered:
    """The month's files; `tag` makes its order ids and document numbers its own, so months
    imported into one organisation one after another do not meet by chance."""
    earlier_first = (month.first - timedelta(days=1)).replace(day=1)
    label = f"{month.first:%Y-%m}-{tag}"
    rendered = Rendered(
        ReportFile(f"VAT_TRANSACTIONS_{earlier_first:%Y-%m}-{tag}.txt"),
        ReportFile(f"VAT_TRANSACTIONS_{label}.txt"),
        [f"{300 + tag % 700:03d}-{tag:07d}-{o:07d}" for o in range(len(month.orders))],
        None,
        {},
    )
    number = 0
    pending: list[tuple[int, dict[str, str], ReportFile]] = []
    for o, order in enumerate(month.orders):
        order_id = rendered.order_ids[o]
        currency = MARKETPLACES[order.marketplace][1]
        base = _order_columns(order, order_id, currency)
        for s, shipment in enumerate(order.shipments):
            number += 1
            target = rendered.earlier if shipment.earlier else rendered.month
            day = (earlier_first if shipment.earlier else month.first).replace(day=shipment.day)
            buyer = order.buyer
            for i, item in enumerate(shipment.items):
                row = base | _dates(day, sale=True) | _amounts(item, month)
                row |= {
                    "TRANSACTION_TYPE": "SALE",
                    "ACTIVITY_TRANSACTION_ID": f"Sh{tag}x{o}x{s}",
                    "VAT_INV_NUMBER": _invoice_number(month, order, tag, number),
                    "SELLER_SKU": f"SKU-{i}",
                    "QTY": str(item.qty),
                    "BUYER_NAME": _spelt(buyer.name, shipment.spelling) if buyer.name else "",
                    "ARRIVAL_ADDRESS": f"Hauptstraße {s + 1}" if buyer.name else "",
                    "ARRIVAL_CITY": CITIES[order.arrive][0],
                    "ARRIVAL_POST_CODE": _spelt_postcode(
                        CITIES[order.arrive][1], shipment.spelling
                    ),
                    "ARRIVAL_COUNTRY": order.arrive,
                }
                if month.unreadable == (o, s, i):
                    row["TRANSACTION_COMPLETE_DATE"] = f"31-02-{day.year}"
                    rendered.failing_order = order_id
                if order.sale != "absent":
                    pending.append((shipment.day, row, target))
        for r, refund in enumerate(order.refunds):
            number += 1
            for s, i, price, shipping in refund.items:
                item = order.shipments[s].items[i]
                back = Item(item.qty, item.rate, -price, ZERO, -item.shipping if shipping else ZERO)
                row = base | _dates(month.first.replace(day=refund.day), sale=False)
                row |= _amounts(back, month)
                row |= {
                    "TRANSACTION_TYPE": "REFUND",
                    "ACTIVITY_TRANSACTION_ID": f"amzn1:crow:{tag}x{o}x{r}",
                    "VAT_INV_NUMBER": _invoice_number(month, order, tag, number),
                    "SELLER_SKU": f"SKU-{i}",
                    "QTY": str(-item.qty if refund.negative_qty else item.qty),
                }
                pending.append((refund.day, row, rendered.month))
    for o in month.returns:
        order = month.orders[o]
        row = _order_columns(order, rendered.order_ids[o], MARKETPLACES[order.marketplace][1])
        row |= {"TRANSACTION_TYPE": "RETURN", "ACTIVITY_TRANSACTION_ID": f"Rt{tag}x{o}",
                "QTY": "1", "DEPARTURE_COUNTRY": order.arrive, "ARRIVAL_COUNTRY": order.depart,
                "TRANSACTION_ARRIVAL_DATE": _day(month.first.replace(day=28)),
                "TRANSACTION_COMPLETE_DATE": _day(month.first.replace(day=28))}  # fmt: skip
        pending.append((28, row, rendered.month))
    for t in range(month.transfers):
        pending.append((14, _transfer(month.first, tag, t), rendered.month))
    # Amazon's file is in date order; the rows of one shipment stay together.
    for _day_of, row, target in sorted(pending, key=lambda entry: entry[0]):
        order_index = (
            rendered.order_ids.index(row["TRANSACTION_EVENT_ID"])
            if row["TRANSACTION_EVENT_ID"] in rendered.order_ids
            else None
        )
        target.add(row, order_index)
        if row.get("TRANSACTION_COMPLETE_DATE", "").startswith("31-02"):
            target.unreadable_line = len(target.rows) + 1  # the header is line 1
    rendered.documents = _expected(month, rendered)
    return rendered


def _invoice_number(month: Month, order: Order, tag: int, number: int) -> str:
    return f"{order.jurisdiction}-{tag}-{number:05d}" if month.amazon_invoices else ""


def _day(day: date) -> str:
    return f"{day:%d-%m-%Y}"


def _dates(day: date, *, sale: bool) -> dict[str, str]:
    dates = {"TAX_CALCULATION_DATE": _day(day), "TRANSACTION_COMPLETE_DATE": _day(day)}
    if sale:
        dates["TRANSACTION_DEPART_DATE"] = _day(day)
    return dates


def _order_columns(order: Order, order_id: str, currency: str) -> dict[str, str]:
    """What every row of an order says, refunds included (they leave the buyer's address out)."""
    vat_number = order.buyer.vat_number or ""
    return {
        "UNIQUE_ACCOUNT_IDENTIFIER": "A2Z34NJA7N2ESJ",
        "SALES_CHANNEL": "MFN" if order.kind == "ioss" else "AFN",
        "MARKETPLACE": order.marketplace,
        "TRANSACTION_EVENT_ID": order_id,
        "ITEM_DESCRIPTION": "Küchenwaage 5 kg",
        "TRANSACTION_CURRENCY_CODE": currency,
        "DEPATURE_CITY": CITIES.get(order.depart, ("Shenzhen", ""))[0],
        "DEPARTURE_COUNTRY": order.depart,
        "SALE_DEPART_COUNTRY": order.depart,
        "SALE_ARRIVAL_COUNTRY": order.arrive,
        "TRANSPORTATION_MODE": "CONSIGNMENT_BY_POST",
        "DELIVERY_CONDITIONS": "DAP",
        "BUYER_VAT_NUMBER_COUNTRY": vat_number[:2],
        "BUYER_VAT_NUMBER": vat_number,
        "VAT_CALCULATION_IMPUTATION_COUNTRY": order.imputation,
        "TAXABLE_JURISDICTION": JURISDICTIONS[order.jurisdiction],
        "TAXABLE_JURISDICTION_LEVEL": "COUNTRY",
        "EXPORT_OUTSIDE_EU": "NO",
        "TAX_REPORTING_SCHEME": MARKETPLACE_COLLECTED.get(
            order.kind, "UNION-OSS" if order.kind == "oss" else "REGULAR"
        ),
        "TAX_COLLECTION_RESPONSIBILITY": (
            "MARKETPLACE" if order.kind in MARKETPLACE_COLLECTED else "SELLER"
        ),
    }


def _amounts(item: Item, month: Month) -> dict[str, str]:
    """The price, promotion and shipping columns of one row, with their totals."""
    percent = item.rate
    rate = format((percent / 100).normalize(), "f")

    def money(amount: Decimal) -> str:
        amount += ZERO  # never "-0.00"
        short = month.short_amounts and amount == amount.quantize(Decimal("0.1"))
        return format(amount, ".1f" if short else ".2f")

    columns: dict[str, str] = {}
    totals = [ZERO, ZERO, ZERO]
    for family, pairs in (
        ("PRICE_OF_ITEMS", (("", item.gross), ("PROMO_", item.promo))),
        ("SHIP_CHARGE", (("", item.shipping), ("PROMO_", ZERO))),
        ("GIFT_WRAP", (("", ZERO), ("PROMO_", ZERO))),
    ):
        columns[f"{family}_VAT_RATE_PERCENT"] = rate
        family_totals = [ZERO, ZERO, ZERO]
        for promo, gross in pairs:
            vat = _vat(gross, percent)
            figures = (gross - vat, vat, gross)
            for position, suffix in enumerate(("AMT_VAT_EXCL", "VAT_AMT", "AMT_VAT_INCL")):
                columns[f"{promo}{family}_{suffix}"] = money(figures[position])
                family_totals[position] += figures[position]
        for position, suffix in enumerate(("AMT_VAT_EXCL", "VAT_AMT", "AMT_VAT_INCL")):
            columns[f"TOTAL_{family}_{suffix}"] = money(family_totals[position])
            totals[position] += family_totals[position]
    for position, suffix in enumerate(("AMT_VAT_EXCL", "VAT_AMT", "AMT_VAT_INCL")):
        columns[f"TOTAL_ACTIVITY_VALUE_{suffix}"] = money(totals[position])
    return columns


def _transfer(first: date, tag: int, t: int) -> dict[str, str]:
    return {
        "UNIQUE_ACCOUNT_IDENTIFIER": "A2Z34NJA7N2ESJ",
        "SALES_CHANNEL": "AFN",
        "MARKETPLACE": "N/A",
        "TRANSACTION_TYPE": "FC_TRANSFER",
        "TRANSACTION_EVENT_ID": f"{tag}{t:04d}",
        "ACTIVITY_TRANSACTION_ID": f"Tr{tag}x{t}",
        "TRANSACTION_DEPART_DATE": _day(first.replace(day=10)),
        "TRANSACTION_ARRIVAL_DATE": _day(first.replace(day=14)),
        "TRANSACTION_COMPLETE_DATE": _day(first.replace(day=14)),
        "SELLER_SKU": "SKU-0",
        "QTY": "1",
        "DEPARTURE_COUNTRY": "CZ",
        "ARRIVAL_COUNTRY": "DE",
        "TRANSPORTATION_MODE": "TRANSPORT_BY_ROAD",
    }


def _document_number(row: dict[str, str]) -> str:
    """Amazon's VAT invoice number, else the one documents.py makes from the activity id."""
    made = "AMZ-" if row["TRANSACTION_TYPE"] == "SALE" else "AMZ-CN-"
    return row["VAT_INV_NUMBER"] or made + row["ACTIVITY_TRANSACTION_ID"]


def _expected(month: Month, rendered: Rendered) -> dict[tuple[str, str], Expected]:
    """Each document from its rows: the VAT-inclusive and VAT totals as Amazon wrote them."""
    gross: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    tax: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    owner: dict[tuple[str, str], tuple[int, str]] = {}
    for file in rendered.files():
        for row, index in zip(file.rows, file.orders, strict=True):
            kind = {"SALE": "Invoices", "REFUND": "CreditNotes"}.get(row["TRANSACTION_TYPE"])
            if kind is None or index is None:
                continue
            key = (kind, _document_number(row))
            sign = 1 if kind == "Invoices" else -1
            if not row["TRANSACTION_COMPLETE_DATE"].startswith("31-02"):
                gross[key] += sign * Decimal(row["TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL"])
                if row["TAX_COLLECTION_RESPONSIBILITY"] == "SELLER":
                    tax[key] += sign * Decimal(row["TOTAL_ACTIVITY_VALUE_VAT_AMT"])
            owner[key] = (index, file.name)
    documents = {}
    for (kind, number), (o, file_name) in owner.items():
        order = month.orders[o]
        order_id = rendered.order_ids[o]
        # A refund's rows name no buyer: the engine knows the buyer only from the order's sale,
        # or from a VAT number (refund rows keep it).
        known = kind == "Invoices" or order.sale != "absent" or order.buyer.vat_number
        who = (
            order.buyer.who(order.marketplace) if known else Buyer(None, "").who(order.marketplace)
        )
        documents[(kind, number)] = Expected(
            kind,
            number,
            order_id,
            MARKETPLACES[order.marketplace][1],
            gross[(kind, number)],
            tax[(kind, number)],
            who,
            posted=not (order_id == rendered.failing_order and file_name == rendered.month.name),
            file=file_name,
        )
    return documents
