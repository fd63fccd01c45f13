"""Realistic Amazon report files for the sandbox, deterministic from a seed and streamed by line.

Three report types, in the formats Amazon delivers them, quirks included:
- GET_VAT_TRANSACTION_DATA: the VAT transactions report (EU and UK marketplaces), in the layout
  of its period (90 columns before 2020, 92 to June 2021, 94 from July 2021, 95 from 2025), for
  sellers with or without Amazon's VAT calculation (VCS);
- GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2: the settlement flat file, V2, with the summary row
  alone carrying currency and totals, and the decimal commas and dotted dates of EU marketplaces;
- GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL: the all-orders flat file (NA marketplaces).

Each generator yields lines without their line terminator, header first, and keeps only a
bounded amount of state (refunds waiting for their date), so a million-row file streams in
constant memory. The same arguments always give the same bytes: tests and the demo can compare.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path

from stdnum.util import get_cc_module

from services.marketplaces import Marketplace, Region, marketplace

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

VAT_REPORT = "GET_VAT_TRANSACTION_DATA"
SETTLEMENT_REPORT = "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2"
ALL_ORDERS_REPORT = "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL"

# The 2020 header (92 columns), byte for byte as in the real sample, including Amazon's own
# misspelling DEPATURE_CITY.
# fmt: off
VAT_HEADER_2020: tuple[str, ...] = (
    "UNIQUE_ACCOUNT_IDENTIFIER", "ACTIVITY_PERIOD", "SALES_CHANNEL", "MARKETPLACE",
    "TRANSACTION_TYPE", "TRANSACTION_EVENT_ID", "ACTIVITY_TRANSACTION_ID", "TAX_CALCULATION_DATE",
    "TRANSACTION_DEPART_DATE", "TRANSACTION_ARRIVAL_DATE", "TRANSACTION_COMPLETE_DATE",
    "SELLER_SKU", "ASIN", "ITEM_DESCRIPTION", "ITEM_MANUFACTURE_COUNTRY", "QTY", "ITEM_WEIGHT",
    "TOTAL_ACTIVITY_WEIGHT", "COST_PRICE_OF_ITEMS", "PRICE_OF_ITEMS_AMT_VAT_EXCL",
    "PROMO_PRICE_OF_ITEMS_AMT_VAT_EXCL", "TOTAL_PRICE_OF_ITEMS_AMT_VAT_EXCL",
    "SHIP_CHARGE_AMT_VAT_EXCL", "PROMO_SHIP_CHARGE_AMT_VAT_EXCL", "TOTAL_SHIP_CHARGE_AMT_VAT_EXCL",
    "GIFT_WRAP_AMT_VAT_EXCL", "PROMO_GIFT_WRAP_AMT_VAT_EXCL", "TOTAL_GIFT_WRAP_AMT_VAT_EXCL",
    "TOTAL_ACTIVITY_VALUE_AMT_VAT_EXCL", "PRICE_OF_ITEMS_VAT_RATE_PERCENT",
    "PRICE_OF_ITEMS_VAT_AMT",
    "PROMO_PRICE_OF_ITEMS_VAT_AMT", "TOTAL_PRICE_OF_ITEMS_VAT_AMT", "SHIP_CHARGE_VAT_RATE_PERCENT",
    "SHIP_CHARGE_VAT_AMT", "PROMO_SHIP_CHARGE_VAT_AMT", "TOTAL_SHIP_CHARGE_VAT_AMT",
    "GIFT_WRAP_VAT_RATE_PERCENT", "GIFT_WRAP_VAT_AMT", "PROMO_GIFT_WRAP_VAT_AMT",
    "TOTAL_GIFT_WRAP_VAT_AMT", "TOTAL_ACTIVITY_VALUE_VAT_AMT", "PRICE_OF_ITEMS_AMT_VAT_INCL",
    "PROMO_PRICE_OF_ITEMS_AMT_VAT_INCL", "TOTAL_PRICE_OF_ITEMS_AMT_VAT_INCL",
    "SHIP_CHARGE_AMT_VAT_INCL", "PROMO_SHIP_CHARGE_AMT_VAT_INCL", "TOTAL_SHIP_CHARGE_AMT_VAT_INCL",
    "GIFT_WRAP_AMT_VAT_INCL", "PROMO_GIFT_WRAP_AMT_VAT_INCL", "TOTAL_GIFT_WRAP_AMT_VAT_INCL",
    "TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL", "TRANSACTION_CURRENCY_CODE", "COMMODITY_CODE",
    "STATISTICAL_CODE_DEPART", "STATISTICAL_CODE_ARRIVAL", "COMMODITY_CODE_SUPPLEMENTARY_UNIT",
    "ITEM_QTY_SUPPLEMENTARY_UNIT", "TOTAL_ACTIVITY_SUPPLEMENTARY_UNIT", "PRODUCT_TAX_CODE",
    "DEPATURE_CITY", "DEPARTURE_COUNTRY", "DEPARTURE_POST_CODE", "ARRIVAL_CITY", "ARRIVAL_COUNTRY",
    "ARRIVAL_POST_CODE", "SALE_DEPART_COUNTRY", "SALE_ARRIVAL_COUNTRY", "TRANSPORTATION_MODE",
    "DELIVERY_CONDITIONS", "SELLER_DEPART_VAT_NUMBER_COUNTRY", "SELLER_DEPART_COUNTRY_VAT_NUMBER",
    "SELLER_ARRIVAL_VAT_NUMBER_COUNTRY", "SELLER_ARRIVAL_COUNTRY_VAT_NUMBER",
    "TRANSACTION_SELLER_VAT_NUMBER_COUNTRY", "TRANSACTION_SELLER_VAT_NUMBER",
    "BUYER_VAT_NUMBER_COUNTRY", "BUYER_VAT_NUMBER", "VAT_CALCULATION_IMPUTATION_COUNTRY",
    "TAXABLE_JURISDICTION", "TAXABLE_JURISDICTION_LEVEL", "VAT_INV_NUMBER",
    "VAT_INV_CONVERTED_AMT", "VAT_INV_CURRENCY_CODE", "VAT_INV_EXCHANGE_RATE",
    "VAT_INV_EXCHANGE_RATE_DATE", "EXPORT_OUTSIDE_EU", "INVOICE_URL", "BUYER_NAME",
    "ARRIVAL_ADDRESS", "SUPPLIER_NAME", "SUPPLIER_VAT_NUMBER",
)
# fmt: on
# Before 2020 (the 2018 bookwork sample): no supplier columns.
VAT_HEADER_2018 = VAT_HEADER_2020[:-2]
# From July 2021 (the EU e-commerce package: OSS, IOSS, deemed suppliers) two columns follow.
VAT_HEADER_2021 = (*VAT_HEADER_2020, "TAX_REPORTING_SCHEME", "TAX_COLLECTION_RESPONSIBILITY")
# Today's reports also carry PROGRAM_TYPE after MARKETPLACE (Amazon's field definitions; public
# parsers count 95 columns). Reports seen with it are from 2025 on, where this layout starts.
_AT_PROGRAM_TYPE = VAT_HEADER_2021.index("MARKETPLACE") + 1
VAT_HEADER_2025 = (
    *VAT_HEADER_2021[:_AT_PROGRAM_TYPE],
    "PROGRAM_TYPE",
    *VAT_HEADER_2021[_AT_PROGRAM_TYPE:],
)
# The layout Amazon writes for recent periods.
VAT_HEADER = VAT_HEADER_2025

# The three amount families of the VAT report; each has base, PROMO_ and TOTAL_ columns.
VAT_FAMILIES: tuple[str, ...] = ("PRICE_OF_ITEMS", "SHIP_CHARGE", "GIFT_WRAP")

# fmt: off
SETTLEMENT_HEADER: tuple[str, ...] = (
    "settlement-id", "settlement-start-date", "settlement-end-date", "deposit-date",
    "total-amount", "currency", "transaction-type", "order-id", "merchant-order-id",
    "adjustment-id", "shipment-id", "marketplace-name", "amount-type", "amount-description",
    "amount", "fulfillment-id", "posted-date", "posted-date-time", "order-item-code",
    "merchant-order-item-id", "merchant-adjustment-item-id", "sku", "quantity-purchased",
    "promotion-id",
)
# fmt: on

# fmt: off
ALL_ORDERS_HEADER: tuple[str, ...] = (
    "amazon-order-id", "merchant-order-id", "purchase-date", "last-updated-date", "order-status",
    "fulfillment-channel", "sales-channel", "order-channel", "ship-service-level", "product-name",
    "sku", "asin", "item-status", "quantity", "currency", "item-price", "item-tax",
    "shipping-price", "shipping-tax", "gift-wrap-price", "gift-wrap-tax",
    "item-promotion-discount", "ship-promotion-discount", "ship-city", "ship-state",
    "ship-postal-code", "ship-country", "promotion-ids", "cpf", "is-business-order",
    "purchase-order-number", "price-designation", "signature-confirmation-recommended",
)
# fmt: on

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


# --- reference data -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Country:
    name: str  # as TAXABLE_JURISDICTION spells it
    currency: str
    standard: Decimal
    books: Decimal


_COUNTRIES: dict[str, _Country] = {
    "DE": _Country("GERMANY", "EUR", Decimal("0.19"), Decimal("0.07")),
    "FR": _Country("FRANCE", "EUR", Decimal("0.20"), Decimal("0.055")),
    "IT": _Country("ITALY", "EUR", Decimal("0.22"), Decimal("0.04")),
    "ES": _Country("SPAIN", "EUR", Decimal("0.21"), Decimal("0.04")),
    "NL": _Country("NETHERLANDS", "EUR", Decimal("0.21"), Decimal("0.09")),
    "BE": _Country("BELGIUM", "EUR", Decimal("0.21"), Decimal("0.06")),
    "AT": _Country("AUSTRIA", "EUR", Decimal("0.20"), Decimal("0.10")),
    "IE": _Country("IRELAND", "EUR", Decimal("0.23"), Decimal("0.0")),
    "PL": _Country("POLAND", "PLN", Decimal("0.23"), Decimal("0.05")),
    "SE": _Country("SWEDEN", "SEK", Decimal("0.25"), Decimal("0.06")),
    "GB": _Country("UNITED KINGDOM", "GBP", Decimal("0.20"), Decimal("0.0")),
}
_EU = frozenset(_COUNTRIES) - {"GB"}

# Reference exchange rates: units of each currency one euro buys.
# fmt: off
_PER_EUR: dict[str, Decimal] = {
    "EUR": Decimal("1"), "GBP": Decimal("0.8612"), "PLN": Decimal("4.2750"),
    "SEK": Decimal("11.1840"), "USD": Decimal("1.0830"), "CAD": Decimal("1.4790"),
    "MXN": Decimal("19.6200"),
}
# fmt: on

# The seller's Pan-European stock: fulfilment centres (city, post code) per country.
_FCS: dict[str, tuple[tuple[str, str], ...]] = {
    "DE": (("Leipzig", "04347"), ("Bad Hersfeld", "36251"), ("Werne", "59368")),
    "PL": (("Sady", "62-080"), ("Kołbaskowo", "72-001")),
    "FR": (("Saran", "45770"),),
    "IT": (("Castel San Giovanni", "29015"),),
    "ES": (("San Fernando de Henares", "28830"),),
    "GB": (("Dunfermline", "KY11 8ST"), ("Rugeley", "WS15 1LX")),
}


@dataclass(frozen=True)
class _Product:
    sku: str
    asin: str
    description: str
    weight: Decimal  # kg
    price_eur: Decimal  # VAT-inclusive shelf price
    cost_eur: Decimal
    made_in: str
    commodity: str
    books: bool = False


def _product(
    sku: str,
    asin: str,
    description: str,
    weight: str,
    price: str,
    cost: str,
    made_in: str,
    commodity: str,
    *,
    books: bool = False,
) -> _Product:
    return _Product(
        sku,
        asin,
        description,
        Decimal(weight),
        Decimal(price),
        Decimal(cost),
        made_in,
        commodity,
        books,
    )


# fmt: off
_PRODUCTS: tuple[_Product, ...] = (
    _product("HC-CG-UK", "B0778WD88W",
             "Oliver James Kaffeemühle manuell | Edelstahl, Keramikmahlwerk",
             "0.31", "19.99", "6.40", "CN", "82100000"),
    _product("NX-FR-PRESS", "B07F1QX8KZ", "Cafetière à piston 1 L – verre borosilicaté",
             "0.62", "24.90", "8.10", "CN", "70133700"),
    _product("NX-TEA-SET", "B08ZJH1L2M", "Teeservice Porzellan 6-teilig, spülmaschinenfest",
             "1.85", "49.95", "17.20", "PL", "69111000"),
    _product("NX-MILL-PL", "B0B4R8N2C1", "Młynek do kawy żarnowy, regulacja grubości mielenia",
             "0.48", "34.99", "11.30", "CN", "82100000"),
    _product("NX-SCALE", "B07ZPQ3V4T", "Balance de cuisine numérique 5 kg, précision 1 g",
             "0.40", "15.99", "4.20", "CN", "84231000"),
    _product("NX-CUPS-4", "B08QW7M3R2", "Tazze da caffè in ceramica, set da 4",
             "0.95", "22.50", "7.60", "IT", "69120023"),
    _product("NX-FILTER-100", "B01N5IB20Q", "Kaffeefilter Größe 4, 100 Stück, ungebleicht",
             "0.20", "4.99", "1.10", "DE", "48236990"),
    _product("NX-THERMO", "B0C2X9YV7K", "Termo de acero inoxidable 500 ml, sin BPA",
             "0.35", "18.99", "5.90", "CN", "96170000"),
    _product("NX-GRINDER-PRO", "B0D1K2L3M4",
             "Elektrische Kaffeemühle „Präzision“ mit 40 Mahlstufen",
             "1.40", "129.00", "48.00", "DE", "85094000"),
    _product("NX-BOOK-BARISTA", "3833889212", "Das Barista-Buch: Espresso, Milchschaum & Latte Art",
             "0.72", "24.00", "9.00", "DE", "49019900", books=True),
    _product("NX-BOOK-CAFE", "2035993479", "Le café : l'art de la préparation (broché)",
             "0.55", "19.90", "7.40", "FR", "49019900", books=True),
)
# fmt: on


@dataclass(frozen=True)
class _Buyer:
    name: str
    country: str
    city: str
    post_code: str
    street: str
    show_name: bool  # B2C buyers who asked for an invoice appear by name
    company: bool = False
    vat_number: str = ""


def _b2c(country: str, name: str, city: str, post_code: str, street: str, shown: bool) -> _Buyer:
    return _Buyer(name, country, city, post_code, street, shown)


# Two different buyers called Anna Schmidt (Berlin and Hamburg): only the address tells them apart.
_CONSUMERS: tuple[_Buyer, ...] = (
    _b2c("DE", "Anna Schmidt", "Berlin", "10115", "Invalidenstraße 12", True),
    _b2c("DE", "Anna Schmidt", "Hamburg", "20095", "Mönckebergstraße 7", True),
    _b2c("DE", "Jürgen Weiß", "München", "80331", "Sendlinger Straße 3", False),
    _b2c("DE", "Lena Fischer", "Köln", "50667", "Hohe Straße 41", False),
    _b2c("DE", "Maximilian Bauer", "Leipzig", "04109", "Petersstraße 20", True),
    _b2c("DE", "Emma Hoffmann", "Frankfurt am Main", "60311", "Zeil 90", False),
    _b2c("DE", "Felix Wagner", "Stuttgart", "70173", "Königstraße 28", False),
    _b2c("DE", "Mia Becker", "Düsseldorf", "40212", "Königsallee 60", False),
    _b2c("FR", "Chloé Lefèvre", "Lyon", "69002", "12 rue de la République", True),
    _b2c("FR", "Étienne Dubois", "Paris", "75011", "8 boulevard Voltaire", False),
    _b2c("IT", "Giulia Rossi", "Milano", "20121", "Via Alessandro Manzoni 5", False),
    _b2c("IT", "Niccolò Bianchi", "Roma", "00186", "Via del Corso 101", True),
    _b2c("ES", "Lucía García", "Madrid", "28013", "Calle Mayor 10", False),
    _b2c("ES", "José Martínez", "Málaga", "29005", "Calle Larios 4", True),
    _b2c("NL", "Sanne de Vries", "Utrecht", "3511 LN", "Oudegracht 120", False),
    _b2c("BE", "Lotte Peeters", "Gent", "9000", "Veldstraat 18", False),
    _b2c("AT", "Sophie Gruber", "Wien", "1010", "Kärntner Straße 19", True),
    _b2c("IE", "Aoife Murphy", "Dublin", "D02 X285", "14 Grafton Street", False),
    _b2c("PL", "Łukasz Nowak", "Kraków", "31-042", "ul. Floriańska 14", True),
    _b2c("PL", "Zofia Wójcik", "Warszawa", "00-001", "ul. Nowy Świat 22", False),
    _b2c("SE", "Elin Johansson", "Göteborg", "411 06", "Kungsgatan 30", False),
    _b2c("SE", "Oskar Lindqvist", "Stockholm", "111 57", "Drottninggatan 5", True),
    _b2c("GB", "Oliver Smith", "Manchester", "M1 1AE", "12 Market Street", True),
    _b2c("GB", "Amelia Jones", "Leeds", "LS1 5AE", "3 Briggate", False),
    _b2c("GB", "Harry O'Brien", "Bristol", "BS1 4DJ", "45 Corn Street", False),
)
_EXPORT_BUYERS: tuple[_Buyer, ...] = (
    _b2c("CH", "Noah Keller", "Zürich", "8001", "Bahnhofstrasse 21", False),
    _b2c("NO", "Ingrid Hansen", "Oslo", "0150", "Karl Johans gate 7", True),
)
_COMPANIES: tuple[tuple[str, str, str, str, str], ...] = (
    ("DE", "Kaffeerösterei Nord GmbH", "Bremen", "28195", "Am Wall 140"),
    ("IT", "Caffè Milano S.r.l.", "Milano", "20124", "Via Vittor Pisani 16"),
    ("FR", "Brûlerie Lumière SARL", "Nantes", "44000", "3 quai de la Fosse"),
    ("ES", "Tostadores del Sur S.L.", "Sevilla", "41004", "Avenida de la Constitución 20"),
    ("PL", "Palarnia Kawy Sp. z o.o.", "Gdańsk", "80-831", "ul. Długa 45"),
    ("NL", "Koffiebranderij Dijkstra B.V.", "Amsterdam", "1012 AB", "Damrak 70"),
    ("AT", "Wiener Kaffeehaus GmbH", "Wien", "1010", "Herrengasse 14"),
    ("SE", "Kafferosteriet AB", "Malmö", "211 20", "Stortorget 9"),
    ("GB", "Northern Roast Ltd", "York", "YO1 7HH", "22 Stonegate"),
)

# Order id prefixes Amazon uses per marketplace country (first block of 302-1234567-1234567).
# fmt: off
_ORDER_PREFIXES: dict[str, tuple[str, ...]] = {
    "DE": ("302", "303", "304", "305", "306"), "GB": ("202", "203", "204", "205", "206"),
    "FR": ("402", "403", "171"), "IT": ("402", "403", "404", "171"),
    "ES": ("402", "403", "404", "408"), "NL": ("404", "405"), "BE": ("405", "406"),
    "SE": ("406", "407"), "PL": ("407", "408"), "IE": ("408",),
    "US": ("111", "112", "113", "114"), "CA": ("701", "702"), "MX": ("701", "702"),
}
# fmt: on

_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


# --- small helpers ----------------------------------------------------------------------------


def _money(value: Decimal) -> str:
    """Two decimals, half-up, never "-0.00" (Amazon writes 0.00)."""
    rounded = value.quantize(CENT, ROUND_HALF_UP)
    return f"{rounded if rounded else ZERO:.2f}"


def _rate(rate: Decimal) -> str:
    return "0.0" if not rate else str(rate)


def _split(gross: Decimal, rate: Decimal) -> tuple[Decimal, Decimal]:
    """VAT-inclusive amount -> (exclusive, VAT), so that the two always add up exactly."""
    vat = (gross * rate / (1 + rate)).quantize(CENT, ROUND_HALF_UP)
    return gross - vat, vat


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _token(rng: random.Random, length: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def _order_id(rng: random.Random, country: str) -> str:
    prefix = rng.choice(_ORDER_PREFIXES.get(country, ("171",)))
    return f"{prefix}-{rng.randrange(10**7):07d}-{rng.randrange(10**7):07d}"


def _local_price(eur: Decimal, currency: str) -> Decimal:
    """Shelf prices end in .99 (or .00 for round prices) in every currency, as sellers set them."""
    converted = eur * _PER_EUR[currency]
    if eur == eur.to_integral_value():
        return converted.to_integral_value()
    return converted.to_integral_value(rounding=ROUND_FLOOR) + Decimal("0.99")


def _valid_vat_number(rng: random.Random, country: str) -> str:
    """A VAT number with a correct check digit, found by drawing candidates until one passes."""
    shapes: dict[str, Callable[[], str]] = {
        "DE": lambda: f"DE{rng.randint(1, 9)}{rng.randrange(10**8):08d}",
        "FR": lambda: f"FR{rng.randrange(100):02d}{rng.randint(1, 9)}{rng.randrange(10**8):08d}",
        "IT": lambda: f"IT{rng.randrange(10**7):07d}{rng.randint(1, 100):03d}{rng.randrange(10)}",
        "ES": lambda: f"ESB{rng.randrange(10**7):07d}{rng.randrange(10)}",
        "PL": lambda: f"PL{rng.randint(1, 9)}{rng.randrange(10**9):09d}",
        "NL": lambda: f"NL{rng.randint(1, 9)}{rng.randrange(10**8):08d}B01",
        "AT": lambda: f"ATU{rng.randrange(10**8):08d}",
        "SE": lambda: f"SE{rng.randint(1, 9)}{rng.randrange(10**9):09d}01",
        "BE": lambda: f"BE0{rng.randint(1, 9)}{rng.randrange(10**8):08d}",
        "GB": lambda: f"GB{rng.randint(1, 9)}{rng.randrange(10**8):08d}",
    }
    module = get_cc_module(country.lower(), "vat")
    if module is None:
        raise ValueError(f"python-stdnum has no VAT number check for {country}")
    while True:
        candidate = shapes[country]()
        if module.is_valid(candidate):
            return candidate


# --- VAT transactions report --------------------------------------------------------------


@dataclass
class _Seller:
    account: str
    vat: dict[str, str]  # country -> the seller's VAT number there
    companies: tuple[_Buyer, ...]


def _seller(seed: int) -> _Seller:
    """The seller and its B2B customers stay the same from one report period to the next."""
    rng = random.Random(f"seller:{seed}")
    account = "A" + _token(rng, 13, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    vat = {country: _valid_vat_number(rng, country) for country in _FCS}
    companies = tuple(
        _Buyer(name, country, city, post_code, street, True, True, _valid_vat_number(rng, country))
        for country, name, city, post_code, street in _COMPANIES
    )
    return _Seller(account, vat, companies)


@dataclass(frozen=True)
class _Line:
    """One item row of a shipment: VAT-inclusive amounts and the rates that apply to them."""

    product: _Product
    qty: int
    price: Decimal
    price_promo: Decimal
    ship: Decimal
    ship_promo: Decimal
    wrap: Decimal
    wrap_promo: Decimal
    item_rate: Decimal
    ship_rate: Decimal
    wrap_rate: Decimal

    def amounts(self, sign: int = 1, *, goods_only: bool = False) -> dict[str, str]:
        """The line's amount columns; sign -1 for a refund, which may give back goods only."""
        columns: dict[str, str] = {}
        totals = [ZERO, ZERO, ZERO]
        parts = {
            "PRICE_OF_ITEMS": (self.price, self.price_promo, self.item_rate),
            "SHIP_CHARGE": (self.ship, self.ship_promo, self.ship_rate),
            "GIFT_WRAP": (self.wrap, self.wrap_promo, self.wrap_rate),
        }
        for family, (base, promo, rate) in parts.items():
            if goods_only and family != "PRICE_OF_ITEMS":
                base = promo = ZERO
            base_excl, base_vat = _split(sign * base, rate)
            promo_excl, promo_vat = _split(sign * promo, rate)
            total_excl, total_vat = base_excl + promo_excl, base_vat + promo_vat
            total_incl = sign * (base + promo)
            columns.update(
                {
                    f"{family}_AMT_VAT_EXCL": _money(base_excl),
                    f"PROMO_{family}_AMT_VAT_EXCL": _money(promo_excl),
                    f"TOTAL_{family}_AMT_VAT_EXCL": _money(total_excl),
                    f"{family}_VAT_RATE_PERCENT": _rate(rate),
                    f"{family}_VAT_AMT": _money(base_vat),
                    f"PROMO_{family}_VAT_AMT": _money(promo_vat),
                    f"TOTAL_{family}_VAT_AMT": _money(total_vat),
                    f"{family}_AMT_VAT_INCL": _money(sign * base),
                    f"PROMO_{family}_AMT_VAT_INCL": _money(sign * promo),
                    f"TOTAL_{family}_AMT_VAT_INCL": _money(total_incl),
                }
            )
            totals = [totals[0] + total_excl, totals[1] + total_vat, totals[2] + total_incl]
        columns["TOTAL_ACTIVITY_VALUE_AMT_VAT_EXCL"] = _money(totals[0])
        columns["TOTAL_ACTIVITY_VALUE_VAT_AMT"] = _money(totals[1])
        columns["TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL"] = _money(totals[2])
        return columns


# Kinds of sale; the last two are taxed by Amazon as deemed supplier, not by the seller:
# domestic | oss (intra-EU distance sale) | pan_eu (Pan-EU stock taxed where it leaves) |
# b2b_reverse_charge | b2b_domestic | export | uk_import (EU stock to a UK consumer, UK VAT on
# eCommerce) | eu_ioss (UK stock to an EU consumer, import OSS)
_MARKETPLACE_KINDS = frozenset({"uk_import", "eu_ioss"})
_SCHEMES = {
    "oss": "UNION-OSS",
    "uk_import": "UK_VOEC-IMPORT",
    "eu_ioss": "DEEMED_RESELLER-IOSS",
}
# What a seller without Amazon's VAT calculation gets: only VAT-inclusive amounts and where the
# goods went (the 2018 bookwork sample; the 2020 sample likewise).
_VCS_COLUMNS = frozenset(
    {
        column
        for column in VAT_HEADER_2020
        if column.endswith(("_AMT_VAT_EXCL", "_VAT_AMT", "_VAT_RATE_PERCENT"))
    }
    | {
        "TAX_CALCULATION_DATE",
        "ITEM_MANUFACTURE_COUNTRY",
        "PRODUCT_TAX_CODE",
        "SELLER_DEPART_VAT_NUMBER_COUNTRY",
        "SELLER_DEPART_COUNTRY_VAT_NUMBER",
        "SELLER_ARRIVAL_VAT_NUMBER_COUNTRY",
        "SELLER_ARRIVAL_COUNTRY_VAT_NUMBER",
        "TRANSACTION_SELLER_VAT_NUMBER_COUNTRY",
        "TRANSACTION_SELLER_VAT_NUMBER",
        "VAT_CALCULATION_IMPUTATION_COUNTRY",
        "TAXABLE_JURISDICTION",
        "TAXABLE_JURISDICTION_LEVEL",
        "VAT_INV_NUMBER",
        "VAT_INV_CONVERTED_AMT",
        "VAT_INV_CURRENCY_CODE",
        "VAT_INV_EXCHANGE_RATE",
        "VAT_INV_EXCHANGE_RATE_DATE",
        "EXPORT_OUTSIDE_EU",
        "INVOICE_URL",
        "BUYER_NAME",
        "ARRIVAL_ADDRESS",
        "TAX_REPORTING_SCHEME",
    }
)
# A refund row says less than its sale: no buyer, no addresses, no weights (bookwork sample).
_REFUND_BLANK = frozenset(
    {
        "BUYER_NAME",
        "ARRIVAL_ADDRESS",
        "ARRIVAL_CITY",
        "ARRIVAL_POST_CODE",
        "ARRIVAL_COUNTRY",
        "DEPATURE_CITY",
        "DEPARTURE_COUNTRY",
        "ITEM_WEIGHT",
        "TOTAL_ACTIVITY_WEIGHT",
    }
)
# The amount columns of the VAT report, in header order.
_VAT_AMOUNTS = tuple(
    column
    for column in VAT_HEADER_2020
    if column.endswith(("_AMT_VAT_EXCL", "_VAT_AMT", "_VAT_RATE_PERCENT", "_AMT_VAT_INCL"))
)


@dataclass(frozen=True)
class _Layout:
    """What a period's report looks like: its header, its dates, the law it reports under."""

    header: tuple[str, ...]
    date_format: str
    union_oss: bool  # July 2021 on: OSS, IOSS, deemed suppliers and the two scheme columns

    def date(self, moment: datetime) -> str:
        return moment.strftime(self.date_format)


def _layout(start: datetime) -> _Layout:
    if start < datetime(2020, 1, 1, tzinfo=UTC):
        return _Layout(VAT_HEADER_2018, "%d-%m-%Y", union_oss=False)
    if start < datetime(2021, 7, 1, tzinfo=UTC):
        return _Layout(VAT_HEADER_2020, "%d-%m-%Y", union_oss=False)
    if start < datetime(2025, 1, 1, tzinfo=UTC):
        return _Layout(VAT_HEADER_2021, "%d.%m.%Y", union_oss=True)
    return _Layout(VAT_HEADER_2025, "%d.%m.%Y", union_oss=True)


def vat_header(period: str) -> tuple[str, ...]:
    """The header of the VAT transactions report for a month ("YYYY-MM")."""
    return _layout(_month_bounds(period)[0]).header


def _short(value: Decimal) -> str:
    """An amount as reports without Amazon's VAT calculation write it: 215.0, 139.99, -124.99."""
    text = _money(value)
    return text[:-1] if text.endswith("0") else text


@dataclass
class _Order:
    """Everything the report says about one order's shipment(s)."""

    order_id: str
    market: Marketplace
    when: datetime
    depart: str
    fc: tuple[str, str]
    buyer: _Buyer
    kind: str  # one of the kinds above
    channel: str
    shipments: list[tuple[str, datetime, list[_Line]]] = field(default_factory=list)
    invoiced: bool = True


@dataclass(frozen=True)
class _Activity:
    """A shipment's sale or a refund, as the VAT report's rows for it say."""

    order: _Order
    activity_id: str  # ACTIVITY_TRANSACTION_ID: the shipment, or the refund
    when: datetime
    lines: tuple[_Line, ...]
    refund: bool = False
    goods_only: bool = False  # a refund that keeps the shipping charge

    def amounts(self) -> list[dict[str, str]]:
        """Each line's amount columns exactly as the report writes them."""
        sign = -1 if self.refund else 1
        return [line.amounts(sign, goods_only=self.goods_only) for line in self.lines]


@dataclass(frozen=True)
class _Plan:
    """What one order will look like; drawn at random, or fixed for the first orders."""

    kind: str  # one of the kinds above
    items: int = 1
    buyer: int | None = None  # index into the marketplace's local buyers
    promo: bool = False
    wrap: bool = False
    ship: bool = False
    split: bool = False  # items leave in two shipments, each with its own invoice
    invoiced: bool = True
    refund: bool = False
    books: bool = False
    depart: str | None = None  # the fulfilment centre's country, when not the marketplace's
    arrival: str | None = None  # the buyer's country, when it matters


# The first orders of every report walk through each case, so even a 20-order report has them all.
_SCHEDULE: tuple[_Plan, ...] = (
    _Plan("domestic", items=2, buyer=0, promo=True, ship=True, refund=True),
    _Plan("domestic", buyer=1, wrap=True),
    _Plan("oss", ship=True, refund=True),
    _Plan("b2b_reverse_charge", items=2),
    _Plan("export"),
    _Plan("domestic", invoiced=False),
    _Plan("b2b_domestic"),
    _Plan("domestic", items=3, split=True),
    _Plan("oss", items=2, books=True, refund=True),
    # Pan-EU stock: taxed in Poland at 23% (VAT_INV_NUMBER PL-...), delivered to Austria.
    _Plan("pan_eu", depart="PL", arrival="AT", refund=True),
    _Plan("b2b_reverse_charge", depart="PL"),
    _Plan("uk_import", refund=True),
    _Plan("eu_ioss"),
)


class _VatReport:
    def __init__(
        self, period: str, marketplace_ids: list[str], seed: int, orders: int, *, vcs: bool
    ) -> None:
        self.start, self.end = _month_bounds(period)
        self.layout = _layout(self.start)
        self.vcs = vcs
        self.markets = [_vat_marketplace(m) for m in marketplace_ids]
        if not self.markets:
            raise ValueError("the VAT report needs at least one marketplace")
        self.orders = orders
        self.rng = random.Random(f"vat:{seed}:{period}:{','.join(sorted(marketplace_ids))}")
        self.seller = _seller(seed)
        self.period_label = f"{self.start.year}-{_MONTHS[self.start.month - 1]}"
        # Invoice numbers run through the year per country; months take disjoint blocks.
        self.invoice_seq: dict[str, itertools.count[int]] = {
            country: itertools.count((self.start.month - 1) * 200_000 + 1) for country in _COUNTRIES
        }
        self.pending: list[tuple[datetime, int, Callable[[], list[str]]]] = []
        self.tiebreak = itertools.count()
        # What the rows just written sold or refunded, kept only while `activity` reads it.
        self.settled: deque[_Activity] | None = None

    # rows ------------------------------------------------------------------------------------

    def lines(self) -> Iterator[str]:
        yield "\t".join(self.layout.header)
        span = (self.end - self.start).total_seconds()
        for index in range(self.orders):
            when = self.start + timedelta(seconds=span * (index + self.rng.random()) / self.orders)
            while self.pending and self.pending[0][0] <= when:
                yield from heapq.heappop(self.pending)[2]()
            plan = _SCHEDULE[index] if index < len(_SCHEDULE) else self._random_plan()
            order = self._order(index, when, plan)
            for shipment_id, shipped, items in order.shipments:
                invoice = self._invoice_number(order) if order.invoiced else ""
                if self.settled is not None:
                    self.settled.append(_Activity(order, shipment_id, shipped, tuple(items)))
                for line in items:
                    yield self._row(self._sale(order, shipment_id, shipped, line, invoice))
            if plan.refund:
                self._schedule_refund(order)
            if index % 25 == 12:
                yield from self._transfer(when)
            if index % 60 == 10:
                yield from self._inbound(when)
        while self.pending:
            yield from heapq.heappop(self.pending)[2]()

    def activity(self) -> Iterator[_Activity]:
        """The report's sales (one per shipment) and refunds as they happen, in its order:
        what Amazon settles. Drawn as the rows are, so the report stays what `lines` gives."""
        self.settled = deque()
        for _ in self.lines():
            while self.settled:
                yield self.settled.popleft()

    def _row(self, values: dict[str, str]) -> str:
        return "\t".join(values.get(column, "") for column in self.layout.header)

    def _random_plan(self) -> _Plan:
        rng = self.rng
        kind = rng.choices(
            (
                "domestic",
                "oss",
                "pan_eu",
                "b2b_reverse_charge",
                "b2b_domestic",
                "export",
                "uk_import",
                "eu_ioss",
            ),
            weights=(55, 18, 5, 6, 7, 4, 3, 2),
        )[0]
        pan_eu = kind == "pan_eu" or (kind == "b2b_reverse_charge" and rng.random() < 0.3)
        return _Plan(
            kind,
            items=rng.choices((1, 2, 3), weights=(75, 20, 5))[0],
            promo=rng.random() < 0.12,
            wrap=rng.random() < 0.04,
            ship=rng.random() < 0.3,
            split=rng.random() < 0.05,
            invoiced=rng.random() < 0.85,
            refund=rng.random() < 0.07,
            books=rng.random() < 0.15,
            depart="PL" if pan_eu else None,
        )

    def _market(self, index: int, kind: str) -> tuple[Marketplace, str]:
        """Where the order was placed, and its kind as the marketplaces on hand allow."""
        eu_markets = [m for m in self.markets if m.country != "GB"]
        uk = [m for m in self.markets if m.country == "GB"]
        if kind == "uk_import":
            return (uk[0], kind) if uk else (self.markets[0], "domestic")
        if kind in ("eu_ioss", "pan_eu"):
            return (eu_markets[0], kind) if eu_markets else (self.markets[0], "domestic")
        # Scheduled cases land on the first EU marketplace; then each marketplace gets an order.
        if index < len(_SCHEDULE) and eu_markets:
            return eu_markets[0], kind
        if len(_SCHEDULE) <= index < len(_SCHEDULE) + len(self.markets):
            return self.markets[index - len(_SCHEDULE)], "domestic"
        market = self.rng.choice(self.markets)
        if market.country == "GB" and kind != "b2b_domestic":
            kind = "domestic"  # UK sales from UK stock are domestic
        return market, kind

    def _order(self, index: int, when: datetime, plan: _Plan) -> _Order:
        rng = self.rng
        market, kind = self._market(index, plan.kind)
        if kind in _MARKETPLACE_KINDS and not self.layout.union_oss:
            kind = "oss"  # before July 2021 these were distance sales like any other
        if kind == "uk_import":
            depart = "DE"
        elif kind == "eu_ioss":
            depart = "GB"
        else:
            depart = plan.depart or (market.country if market.country in _FCS else "DE")
        buyer = self._buyer(kind, market.country, depart, plan)
        if kind == "domestic" and buyer.country != depart:
            kind = "oss"  # e.g. amazon.se orders ship from Germany: a distance sale to Sweden
        channel = "MFN" if rng.random() < 0.1 else "AFN"
        order = _Order(
            _order_id(rng, market.country),
            market,
            when,
            depart,
            rng.choice(_FCS[depart]),
            buyer,
            kind,
            channel,
            # Amazon invoices what it taxes as deemed supplier; the seller has no invoice.
            invoiced=plan.invoiced and kind not in _MARKETPLACE_KINDS,
        )
        lines = [self._line(order, plan, position) for position in range(plan.items)]
        shipped = when
        if plan.split and len(lines) > 1:
            later = min(when + timedelta(hours=rng.randint(2, 48)), self.end - timedelta(seconds=1))
            order.shipments.append((_token(rng, 9), shipped, lines[:1]))
            order.shipments.append((_token(rng, 9), later, lines[1:]))
        else:
            order.shipments.append((_token(rng, 9), shipped, lines))
        return order

    def _buyer(self, kind: str, market_country: str, depart: str, plan: _Plan) -> _Buyer:
        rng = self.rng
        if kind == "export":
            return rng.choice(_EXPORT_BUYERS)
        if kind in ("b2b_reverse_charge", "b2b_domestic"):
            if kind == "b2b_domestic":
                wanted = [c for c in self.seller.companies if c.country == depart]
            else:
                wanted = [c for c in self.seller.companies if c.country not in (depart, "GB")]
            return rng.choice(wanted or list(self.seller.companies))
        if kind == "uk_import":
            return rng.choice([b for b in _CONSUMERS if b.country == "GB"])
        if kind in ("oss", "pan_eu"):
            options = [
                b
                for b in _CONSUMERS
                if b.country in _EU
                and b.country != depart
                and (plan.arrival is None or b.country == plan.arrival)
            ]
            return rng.choice(options)
        local = [b for b in _CONSUMERS if b.country == market_country]
        if plan.buyer is not None:
            return local[plan.buyer % len(local)]
        return rng.choice(local)

    def _line(self, order: _Order, plan: _Plan, position: int) -> _Line:
        rng = self.rng
        books = [p for p in _PRODUCTS if p.books]
        goods = [p for p in _PRODUCTS if not p.books]
        product = rng.choice(books if plan.books and position == 0 else goods)
        currency = order.market.currency
        qty = rng.choices((1, 2, 3), weights=(85, 12, 3))[0]
        price = _local_price(product.price_eur, currency) * qty
        promo = -(price * Decimal("0.10")).quantize(CENT, ROUND_HALF_UP) if plan.promo else ZERO
        first = position == 0
        ship = _local_price(Decimal("3.99"), currency) if first and plan.ship else ZERO
        ship_promo = -ship if ship and plan.promo else ZERO
        wrap = _local_price(Decimal("2.99"), currency) if first and plan.wrap else ZERO
        item_rate, ship_rate, wrap_rate = self._rates(order, product)
        return _Line(
            product,
            qty,
            price,
            promo,
            ship,
            ship_promo,
            wrap,
            ZERO,
            item_rate,
            ship_rate,
            wrap_rate,
        )

    def _rates(self, order: _Order, product: _Product) -> tuple[Decimal, Decimal, Decimal]:
        if order.kind in ("export", "b2b_reverse_charge"):
            return ZERO, ZERO, ZERO
        country = _COUNTRIES[self._jurisdiction(order)]
        item = country.books if product.books else country.standard
        # Shipping follows the goods it carries; gift wrap is a standard-rated service.
        return item, item, country.standard

    def _jurisdiction(self, order: _Order) -> str:
        """The country whose VAT applies (TAXABLE_JURISDICTION)."""
        if order.kind in ("uk_import", "eu_ioss"):
            return order.buyer.country
        if order.kind == "oss":
            # Before the OSS, a distance sale was taxed where it arrived only once the seller
            # was registered there (above the threshold), else where it left.
            registered = order.buyer.country in self.seller.vat
            if self.layout.union_oss or registered:
                return order.buyer.country
        return order.depart

    def _imputation(self, order: _Order) -> str:
        """VAT_CALCULATION_IMPUTATION_COUNTRY: the arrival country of a cross-border sale, which
        need not be the taxing country (Pan-EU stock, intra-EU B2B, distance sales)."""
        cross_border = ("oss", "pan_eu", "b2b_reverse_charge", "uk_import", "eu_ioss")
        return order.buyer.country if order.kind in cross_border else order.depart

    def _invoice_number(self, order: _Order) -> str:
        country = self._jurisdiction(order)
        return f"{country}-AEU-{order.when.year}-{next(self.invoice_seq[country])}"

    def _common(self, order: _Order, line: _Line) -> dict[str, str]:
        seller_vat = self.seller.vat
        jurisdiction = self._jurisdiction(order)
        marketplace_collects = order.kind in _MARKETPLACE_KINDS
        # Distance sales without a registration at arrival are declared through the OSS return
        # of the country of departure, under that country's VAT number.
        transaction_country = jurisdiction if jurisdiction in seller_vat else order.depart
        product = line.product
        buyer = order.buyer
        values = {
            "UNIQUE_ACCOUNT_IDENTIFIER": self.seller.account,
            "ACTIVITY_PERIOD": self.period_label,
            "SALES_CHANNEL": order.channel,
            "MARKETPLACE": order.market.domain,
            "PROGRAM_TYPE": "REGULAR",
            "TRANSACTION_EVENT_ID": order.order_id,
            "SELLER_SKU": product.sku,
            "ASIN": product.asin,
            "ITEM_DESCRIPTION": product.description,
            "ITEM_MANUFACTURE_COUNTRY": product.made_in,
            "QTY": str(line.qty),
            "ITEM_WEIGHT": str(product.weight),
            "TOTAL_ACTIVITY_WEIGHT": str(product.weight * line.qty),
            "TRANSACTION_CURRENCY_CODE": order.market.currency,
            "PRODUCT_TAX_CODE": "A_BOOKS_GEN" if product.books else "A_GEN_STANDARD",
            "DEPATURE_CITY": order.fc[0],
            "DEPARTURE_COUNTRY": order.depart,
            "DEPARTURE_POST_CODE": order.fc[1],
            "ARRIVAL_CITY": buyer.city,
            "ARRIVAL_COUNTRY": buyer.country,
            "ARRIVAL_POST_CODE": buyer.post_code,
            "SALE_DEPART_COUNTRY": order.depart,
            "SALE_ARRIVAL_COUNTRY": buyer.country,
            "TRANSPORTATION_MODE": "CONSIGNMENT_BY_POST",
            "DELIVERY_CONDITIONS": "DAP",
            "SELLER_DEPART_VAT_NUMBER_COUNTRY": order.depart,
            "SELLER_DEPART_COUNTRY_VAT_NUMBER": seller_vat[order.depart],
            "VAT_CALCULATION_IMPUTATION_COUNTRY": self._imputation(order),
            "TAXABLE_JURISDICTION": _COUNTRIES[jurisdiction].name,
            "TAXABLE_JURISDICTION_LEVEL": "Country",
            "EXPORT_OUTSIDE_EU": "YES" if order.kind in ("export", "uk_import") else "NO",
            "TAX_REPORTING_SCHEME": _SCHEMES.get(order.kind, "REGULAR"),
            "TAX_COLLECTION_RESPONSIBILITY": "MARKETPLACE" if marketplace_collects else "SELLER",
        }
        if not marketplace_collects:
            values["TRANSACTION_SELLER_VAT_NUMBER_COUNTRY"] = transaction_country
            values["TRANSACTION_SELLER_VAT_NUMBER"] = seller_vat[transaction_country]
        if buyer.country in seller_vat:
            values["SELLER_ARRIVAL_VAT_NUMBER_COUNTRY"] = buyer.country
            values["SELLER_ARRIVAL_COUNTRY_VAT_NUMBER"] = seller_vat[buyer.country]
        if buyer.company:
            values["BUYER_VAT_NUMBER_COUNTRY"] = buyer.country
            values["BUYER_VAT_NUMBER"] = buyer.vat_number
        if buyer.show_name or buyer.company:
            values["BUYER_NAME"] = buyer.name
            values["ARRIVAL_ADDRESS"] = buyer.street
        return values

    def _without_vcs(self, order: _Order, values: dict[str, str]) -> dict[str, str]:
        """The row as a seller without Amazon's VAT calculation gets it; Amazon still
        calculates the VAT it owes itself as deemed supplier."""
        if self.vcs or order.kind in _MARKETPLACE_KINDS:
            return values
        kept = {key: value for key, value in values.items() if key not in _VCS_COLUMNS}
        for column in _VAT_AMOUNTS:
            if column.endswith("_AMT_VAT_INCL") and column in kept:
                kept[column] = _short(Decimal(kept[column]))
        return kept

    def _sale(
        self, order: _Order, shipment_id: str, shipped: datetime, line: _Line, invoice: str
    ) -> dict[str, str]:
        values = self._common(order, line)
        amounts = line.amounts()
        values.update(amounts)
        day = self.layout.date(shipped)
        values.update(
            {
                "TRANSACTION_TYPE": "SALE",
                "ACTIVITY_TRANSACTION_ID": shipment_id,
                "TAX_CALCULATION_DATE": day,
                "TRANSACTION_DEPART_DATE": day,
                "TRANSACTION_COMPLETE_DATE": day,
            }
        )
        if invoice:
            values["VAT_INV_NUMBER"] = invoice
            values["INVOICE_URL"] = self._invoice_url(order)
            values.update(self._conversion(order, shipped, amounts))
        return self._without_vcs(order, values)

    def _invoice_url(self, order: _Order) -> str:
        document = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        return (
            f"https://www.{order.market.domain}/gp/invoice/download.html?"
            f"v=urn%3aalx%3adoc%3a{document}&t=EU_Retail_Forward"
        )

    def _conversion(
        self, order: _Order, moment: datetime, amounts: dict[str, str]
    ) -> dict[str, str]:
        """The invoice's VAT in the currency of the country that taxes it, when that differs."""
        target = _COUNTRIES[self._jurisdiction(order)].currency
        source = order.market.currency
        if target == source:
            return {}
        rate = (_PER_EUR[target] / _PER_EUR[source]).quantize(Decimal("0.0001"))
        rate += Decimal(self.rng.randint(-150, 150)) / 10_000
        return {
            "VAT_INV_CONVERTED_AMT": _money(
                Decimal(amounts["TOTAL_ACTIVITY_VALUE_VAT_AMT"]) * rate
            ),
            "VAT_INV_CURRENCY_CODE": target,
            "VAT_INV_EXCHANGE_RATE": str(rate),
            "VAT_INV_EXCHANGE_RATE_DATE": self.layout.date(moment - timedelta(days=1)),
        }

    def _schedule_refund(self, order: _Order) -> None:
        rng = self.rng
        latest = self.end - timedelta(seconds=1)
        when = min(order.when + timedelta(hours=rng.randint(6, 24 * 12)), latest)
        refund_id = "amzn1:crow:" + _token(rng, 22)
        goods_only = rng.random() < 0.5  # partial refunds keep the shipping charge
        lines = [line for _, _, items in order.shipments for line in items]

        def render() -> list[str]:
            invoice = self._invoice_number(order) if order.invoiced else ""
            if self.settled is not None:
                self.settled.append(
                    _Activity(
                        order, refund_id, when, tuple(lines), refund=True, goods_only=goods_only
                    )
                )
            rows = []
            for line in lines:
                values = self._common(order, line)
                amounts = line.amounts(-1, goods_only=goods_only)
                values.update(amounts)
                values.update(
                    {
                        "TRANSACTION_TYPE": "REFUND",
                        "ACTIVITY_TRANSACTION_ID": refund_id,
                        "TAX_CALCULATION_DATE": self.layout.date(when),
                        "TRANSACTION_COMPLETE_DATE": self.layout.date(when),
                    }
                )
                if invoice:
                    values["VAT_INV_NUMBER"] = invoice
                    values.update(self._conversion(order, when, amounts))
                for column in _REFUND_BLANK:
                    values.pop(column, None)
                rows.append(self._row(self._without_vcs(order, values)))
            if order.buyer.country != order.depart and order.kind != "export":
                rows.extend(self._return_rows(order, lines, when))
            return rows

        heapq.heappush(self.pending, (when, next(self.tiebreak), render))

    def _movement(
        self,
        kind: str,
        event_id: str,
        depart: tuple[str, str, str],
        arrive: tuple[str, str, str],
        product: _Product,
        qty: int,
        left: datetime,
        arrived: datetime,
    ) -> dict[str, str]:
        """Stock moving between countries: valued at cost, no VAT, declared on both sides."""
        seller_vat = self.seller.vat
        value = product.cost_eur * qty
        line = _Line(product, qty, value, ZERO, ZERO, ZERO, ZERO, ZERO, ZERO, ZERO, ZERO)
        values = line.amounts()
        values.update(
            {
                "UNIQUE_ACCOUNT_IDENTIFIER": self.seller.account,
                "ACTIVITY_PERIOD": self.period_label,
                "SALES_CHANNEL": "AFN",
                # Moves inside Amazon's network belong to no marketplace.
                "MARKETPLACE": "N/A",
                "TRANSACTION_TYPE": kind,
                "TRANSACTION_EVENT_ID": event_id,
                "ACTIVITY_TRANSACTION_ID": _token(self.rng, 9),
                "TRANSACTION_DEPART_DATE": self.layout.date(left),
                "TRANSACTION_ARRIVAL_DATE": self.layout.date(arrived),
                "TRANSACTION_COMPLETE_DATE": self.layout.date(arrived),
                "SELLER_SKU": product.sku,
                "ASIN": product.asin,
                "ITEM_DESCRIPTION": product.description,
                "ITEM_MANUFACTURE_COUNTRY": product.made_in,
                "QTY": str(qty),
                "ITEM_WEIGHT": str(product.weight),
                "TOTAL_ACTIVITY_WEIGHT": str(product.weight * qty),
                "COST_PRICE_OF_ITEMS": _money(product.cost_eur),
                "TRANSACTION_CURRENCY_CODE": "EUR",
                "COMMODITY_CODE": product.commodity,
                "PRODUCT_TAX_CODE": "A_BOOKS_GEN" if product.books else "A_GEN_STANDARD",
                "DEPATURE_CITY": depart[1],
                "DEPARTURE_COUNTRY": depart[0],
                "DEPARTURE_POST_CODE": depart[2],
                "ARRIVAL_CITY": arrive[1],
                "ARRIVAL_COUNTRY": arrive[0],
                "ARRIVAL_POST_CODE": arrive[2],
                "TRANSPORTATION_MODE": "TRANSPORT_BY_ROAD",
                "DELIVERY_CONDITIONS": "DAP",
                "EXPORT_OUTSIDE_EU": "NO",
            }
        )
        if depart[0] in seller_vat:
            values["SELLER_DEPART_VAT_NUMBER_COUNTRY"] = depart[0]
            values["SELLER_DEPART_COUNTRY_VAT_NUMBER"] = seller_vat[depart[0]]
        if arrive[0] in seller_vat:
            values["SELLER_ARRIVAL_VAT_NUMBER_COUNTRY"] = arrive[0]
            values["SELLER_ARRIVAL_COUNTRY_VAT_NUMBER"] = seller_vat[arrive[0]]
        if not self.vcs:
            # As the bookwork sample's FC_TRANSFER: no cost, no currency, no VAT numbers, the
            # goods' value columns empty and the others 0.0.
            values = {key: value for key, value in values.items() if key not in _VCS_COLUMNS}
            for column in ("COST_PRICE_OF_ITEMS", "TRANSACTION_CURRENCY_CODE", "COMMODITY_CODE"):
                del values[column]
            for column in _VAT_AMOUNTS:
                valued = column.startswith(("PRICE_OF_ITEMS", "TOTAL_PRICE_OF_ITEMS"))
                if not valued and not column.startswith("TOTAL_ACTIVITY_VALUE"):
                    values[column] = "0.0"
                else:
                    values.pop(column, None)
        return values

    def _transfer(self, when: datetime) -> Iterator[str]:
        rng = self.rng
        source, target = rng.choice((("DE", "PL"), ("PL", "DE"), ("DE", "FR"), ("DE", "IT")))
        src, dst = rng.choice(_FCS[source]), rng.choice(_FCS[target])
        arrived = min(when + timedelta(days=rng.randint(1, 3)), self.end - timedelta(seconds=1))
        event = str(rng.randrange(10**10, 10**11))
        for product in rng.sample(_PRODUCTS, 2):
            yield self._row(
                self._movement(
                    "FC_TRANSFER",
                    event,
                    (source, *src),
                    (target, *dst),
                    product,
                    rng.randint(5, 60),
                    when,
                    arrived,
                )
            )

    def _inbound(self, when: datetime) -> Iterator[str]:
        rng = self.rng
        fc = rng.choice(_FCS["DE"])
        event = "FBA" + _token(rng, 9, _UPPER)
        product = rng.choice(_PRODUCTS)
        arrived = min(when + timedelta(days=2), self.end - timedelta(seconds=1))
        yield self._row(
            self._movement(
                "INBOUND",
                event,
                ("DE", "Hamburg", "20457"),
                ("DE", *fc),
                product,
                rng.randint(50, 400),
                when,
                arrived,
            )
        )

    def _return_rows(self, order: _Order, lines: list[_Line], when: datetime) -> list[str]:
        """Goods sent back across a border travel again: a RETURN movement to the FC, on the
        order's marketplace and without amounts (the money is the REFUND's)."""
        buyer = order.buyer
        rows = []
        for line in lines:
            values = self._movement(
                "RETURN",
                order.order_id,
                (buyer.country, buyer.city, buyer.post_code),
                (order.depart, *order.fc),
                line.product,
                line.qty,
                when,
                when,
            )
            for column in (*_VAT_AMOUNTS, "COST_PRICE_OF_ITEMS", "TRANSACTION_CURRENCY_CODE"):
                values.pop(column, None)
            values.update(
                {
                    "MARKETPLACE": order.market.domain,
                    "PROGRAM_TYPE": "REGULAR",
                    "TRANSACTION_DEPART_DATE": "",
                    "SALE_DEPART_COUNTRY": order.depart,
                    "SALE_ARRIVAL_COUNTRY": buyer.country,
                    "TRANSPORTATION_MODE": "CONSIGNMENT_BY_POST",
                }
            )
            rows.append(self._row(values))
        return rows


def _month_bounds(period: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"period must be YYYY-MM, not {period!r}") from None
    following = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start, following


def _vat_marketplace(marketplace_id: str) -> Marketplace:
    market = marketplace(marketplace_id)
    if market.country not in _COUNTRIES:
        raise ValueError(f"the VAT transactions report does not cover {market.domain}")
    return market


def generate_vat_report(
    *,
    period: str,
    marketplace_ids: list[str],
    seed: int,
    orders: int = 200,
    vat_calculation: bool = True,
) -> Iterator[str]:
    """GET_VAT_TRANSACTION_DATA for one calendar month ("YYYY-MM", UTC), as tab-separated lines,
    in that month's layout. vat_calculation=False: a seller without Amazon's VAT calculation
    service, whose own rows carry only VAT-inclusive amounts."""
    report = _VatReport(period, marketplace_ids, seed, orders, vcs=vat_calculation)
    return report.lines()


# --- settlement report (flat file V2) --------------------------------------------------------

# fmt: off
_SUBSCRIPTION: dict[str, Decimal] = {
    "EUR": Decimal("39.00"), "GBP": Decimal("25.00"), "PLN": Decimal("169.00"),
    "SEK": Decimal("429.00"), "USD": Decimal("39.99"), "CAD": Decimal("29.99"),
    "MXN": Decimal("600.00"),
}
# fmt: on
# Marketplaces whose settlement files write 52,44 and 17.06.2026 08:14:22 UTC; amazon.co.uk,
# amazon.ie and North America write 52.44 and 2026-06-17 08:14:22 UTC.
_DECIMAL_COMMA = frozenset({"DE", "FR", "IT", "ES", "NL", "BE", "PL", "SE"})


@dataclass(frozen=True)
class _SettlementFormat:
    decimal_comma: bool

    def amount(self, value: Decimal) -> str:
        text = _money(value)
        return text.replace(".", ",") if self.decimal_comma else text

    def moment(self, value: datetime) -> str:
        pattern = "%d.%m.%Y %H:%M:%S UTC" if self.decimal_comma else "%Y-%m-%d %H:%M:%S UTC"
        return value.strftime(pattern)


@dataclass(frozen=True)
class _SettlementRow:
    values: dict[str, str]  # the text columns
    amount: Decimal
    posted: datetime


_Rows = list[_SettlementRow]
_RowMaker = Callable[..., _SettlementRow]
_REFERRAL_RATE = Decimal("0.15")
# The VAT report's amount families as a settlement names them: ItemPrice rows, their tax
# rows, and the Promotion rows of the seller's discounts on them.
_SETTLED_FAMILIES = (("PRICE_OF_ITEMS", "Principal", "Tax"), ("SHIP_CHARGE", "Shipping",
                     "ShippingTax"), ("GIFT_WRAP", "GiftWrap", "GiftWrapTax"))  # fmt: skip


def _row_maker(market: Marketplace) -> _RowMaker:
    def row(
        kind: str, when: datetime, amount_type: str, description: str, amount: Decimal, **extra: str
    ) -> _SettlementRow:
        values = {
            "transaction-type": kind,
            "marketplace-name": market.domain,
            "amount-type": amount_type,
            "amount-description": description,
        }
        values.update(extra)
        return _SettlementRow(values, amount.quantize(CENT, ROUND_HALF_UP), when)

    return row


def _settlement_rows(
    rng: random.Random,
    start: datetime,
    end: datetime,
    market: Marketplace,
    activity: Iterable[tuple[datetime, _Rows]],
) -> Iterator[_SettlementRow]:
    """Rows after the summary line: the reserve released, what the orders settled (`activity`,
    drawing from the same `rng`), the settlement's own charges, the reserve held. Drawing from
    `rng` in a fixed order keeps two passes equal."""
    currency = market.currency
    row = _row_maker(market)
    running = ZERO

    def emit(rows: Iterable[_SettlementRow]) -> Iterator[_SettlementRow]:
        nonlocal running
        for each in rows:
            running += each.amount
            yield each

    reserve_before = Decimal(rng.randint(20_000, 90_000)) / 100
    yield from emit(
        [
            row(
                "Transfer",
                start,
                "other-transaction",
                "Previous Reserve Amount Balance",
                reserve_before,
            )
        ]
    )
    for index, (when, rows) in enumerate(activity):
        yield from emit(rows)
        if index % 40 == 20:
            damaged = {
                "adjustment-id": "ADJ-" + str(rng.randrange(10**7, 10**8)),
                "sku": rng.choice(_PRODUCTS).sku,
                "quantity-purchased": "1",
            }
            amount = _local_price(Decimal(rng.randint(5, 60)), currency) * Decimal("0.6")
            yield from emit(
                [
                    row(
                        "Adjustment",
                        when,
                        "other-transaction",
                        "WAREHOUSE_DAMAGE",
                        amount,
                        **damaged,
                    )
                ]
            )
    fees_day = end - timedelta(hours=rng.randint(2, 20))
    storage = -Decimal(rng.randint(500, 9_000)) / 100
    charges = [
        row(
            "ServiceFee",
            fees_day,
            "other-transaction",
            "Subscription Fee",
            -_SUBSCRIPTION[currency],
        ),
        row("ServiceFee", fees_day, "other-transaction", "Storage Fee", storage),
    ]
    outcome = rng.random()
    advertising = -Decimal(rng.randint(1_000, 20_000)) / 100
    if outcome < 0.2:
        # A campaign billed at once: the fees exceed the sales, the seller owes Amazon.
        advertising = -(max(running, ZERO) + Decimal(rng.randint(2_000, 30_000)) / 100)
    if outcome < 0.6:
        charges.append(
            row(
                "Cost of Advertising",
                fees_day,
                "Cost of Advertising",
                "TransactionTotalAmount",
                advertising,
            )
        )
    yield from emit(charges)
    if outcome < 0.2 or running <= 0:
        return  # Amazon holds no reserve back from a balance the seller owes
    reserve = -min(Decimal(rng.randint(10_000, 60_000)) / 100, running)
    if market.country in _DECIMAL_COMMA and outcome < 0.45:
        # Some EU settlements pay nothing out: the reserve holds the whole balance (0,00).
        reserve = -running
    yield row("Transfer", end, "other-transaction", "Current Reserve Amount", reserve)


def vat_periods(start: datetime, end: datetime) -> list[str]:
    """The months ("YYYY-MM") a VAT transactions report from `start` to `end` spans."""
    months: list[str] = []
    month = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while month < end or not months:
        months.append(month.strftime("%Y-%m"))
        month = (month + timedelta(days=32)).replace(day=1)
    return months


def _settled_from_vat(
    rng: random.Random,
    start: datetime,
    end: datetime,
    market: Marketplace,
    vat: _VatSource,
) -> Iterator[tuple[datetime, _Rows]]:
    """The marketplace's shipments and refunds between `start` and `end` in the VAT reports
    the sandbox serves for those months, with what Amazon settled for each."""
    row = _row_maker(market)
    for period in vat_periods(start, end):
        report = _VatReport(period, list(vat.marketplace_ids), vat.seed, vat.orders, vcs=vat.vcs)
        for activity in report.activity():
            if activity.order.market.id == market.id and start <= activity.when <= end:
                yield activity.when, _activity_rows(rng, row, activity, split_tax=vat.vcs)


def _activity_rows(
    rng: random.Random, row: _RowMaker, activity: _Activity, *, split_tax: bool
) -> _Rows:
    """A shipment's or a refund's settlement rows, item by item, of the amounts its VAT rows
    carry. Amazon states the tax it calculated (with VCS, or as deemed supplier) apart from
    the price, else the price is VAT-inclusive; promotions are rows of their own."""
    order, refund, when = activity.order, activity.refund, activity.when
    kind = "Refund" if refund else "Order"
    collected = order.kind in _MARKETPLACE_KINDS
    split = split_tax or collected
    # A sale's shipment is the VAT report's; a refund's is Amazon's return shipment.
    shipment = _token(rng, 9, _UPPER) if refund else activity.activity_id
    every_line = [line for _, _, items in order.shipments for line in items]
    rows: _Rows = []
    for line, amounts in zip(activity.lines, activity.amounts(), strict=True):
        position = next(i for i, each in enumerate(every_line) if each is line)
        item = {
            "order-id": order.order_id,
            "shipment-id": shipment,
            "fulfillment-id": order.channel,
            "order-item-code": str(
                random.Random(f"{order.order_id}:{position}").randrange(10**13, 10**14)
            ),
            "sku": line.product.sku,
            "quantity-purchased": str(line.qty),
        }
        price: _Rows = []
        promotions: _Rows = []
        withheld: _Rows = []
        for family, word, tax_word in _SETTLED_FAMILIES:
            written = "_AMT_VAT_EXCL" if split else "_AMT_VAT_INCL"
            base = Decimal(amounts[family + written])
            promo = Decimal(amounts[f"PROMO_{family}{written}"])
            tax = Decimal(amounts[f"TOTAL_{family}_VAT_AMT"]) if split else ZERO
            if base:
                price.append(row(kind, when, "ItemPrice", word, base, **item))
            if tax:
                price.append(row(kind, when, "ItemPrice", tax_word, tax, **item))
            if promo:
                promotion = {"promotion-id": "A" + _token(rng, 13, _UPPER)}
                promotions.append(row(kind, when, "Promotion", word, promo, **item, **promotion))
            if collected and tax:
                withheld.append(
                    row(kind, when, "ItemFees", f"MarketplaceFacilitatorVAT-{word}", -tax, **item)
                )
        if refund and len(price) > 1 and rng.random() < 0.5:
            price[:2] = price[1::-1]  # real refunds often list the Tax row first
        rows += price + promotions
        commission = -(Decimal(amounts["TOTAL_ACTIVITY_VALUE_AMT_VAT_INCL"]) * _REFERRAL_RATE)
        if commission.quantize(CENT, ROUND_HALF_UP):
            rows.append(row(kind, when, "ItemFees", "Commission", commission, **item))
        if refund and commission:
            admin_fee = max(-Decimal("5.00"), -abs(commission) * Decimal("0.2"))
            rows.append(row(kind, when, "ItemFees", "RefundCommission", admin_fee, **item))
        rows += withheld
        if order.channel == "AFN" and not refund:
            currency = order.market.currency
            unit = (Decimal("2.70") + line.product.weight * 2) * _PER_EUR[currency]
            fee = -unit.quantize(CENT) * line.qty
            rows.append(row(kind, when, "ItemFees", "FBAPerUnitFulfillmentFee", fee, **item))
            shipping = sum(
                (r.amount for r in price if r.values["amount-description"] == "Shipping"), ZERO
            )
            if shipping:
                rows.append(row(kind, when, "ItemFees", "ShippingChargeback", -shipping, **item))
    return rows


def _random_orders(
    rng: random.Random, start: datetime, end: datetime, market: Marketplace, orders: int
) -> Iterator[tuple[datetime, _Rows]]:
    """Orders and refunds drawn at random, for marketplaces without a VAT report (North
    America), their refunds after them."""
    row = _row_maker(market)
    currency = market.currency
    sales_tax = market.region == Region.NA  # Amazon collects and remits US sales tax itself
    country = _COUNTRIES.get(market.country, _COUNTRIES["DE"])
    rate = Decimal("0.0825") if sales_tax else country.standard
    span = (end - start).total_seconds()
    pending: list[tuple[datetime, int, _Rows]] = []
    tiebreak = itertools.count()
    for index in range(orders):
        when = start + timedelta(seconds=span * (index + rng.random()) / orders)
        while pending and pending[0][0] <= when:
            refunded, _, refund_rows = heapq.heappop(pending)
            yield refunded, refund_rows
        order_id = _order_id(rng, market.country)
        shipment = _token(rng, 9, _UPPER)
        channel = "MFN" if rng.random() < 0.1 else "AFN"
        product = rng.choice(_PRODUCTS)
        qty = rng.choices((1, 2, 3), weights=(85, 12, 3))[0]
        gross = _local_price(product.price_eur, currency) * qty
        item = {
            "order-id": order_id,
            "shipment-id": shipment,
            "fulfillment-id": channel,
            "order-item-code": str(rng.randrange(10**13, 10**14)),
            "sku": product.sku,
            "quantity-purchased": str(qty),
        }
        if sales_tax:
            principal, tax = gross, (gross * rate).quantize(CENT, ROUND_HALF_UP)
        else:
            principal, tax = _split(gross, rate)
        commission = -(principal * _REFERRAL_RATE).quantize(CENT, ROUND_HALF_UP)
        rows = [
            row("Order", when, "ItemPrice", "Principal", principal, **item),
            row("Order", when, "ItemPrice", "Tax", tax, **item),
        ]
        shipping = shipping_tax = ZERO
        if rng.random() < 0.25:
            shipping = _local_price(Decimal("3.99"), currency)
            rows.append(row("Order", when, "ItemPrice", "Shipping", shipping, **item))
            if sales_tax:
                shipping_tax = (shipping * rate).quantize(CENT, ROUND_HALF_UP)
                rows.append(row("Order", when, "ItemPrice", "ShippingTax", shipping_tax, **item))
        promotion = ZERO
        if rng.random() < 0.1:
            promotion = -(principal * Decimal("0.10")).quantize(CENT, ROUND_HALF_UP)
            promo_id = "A" + _token(rng, 13, _UPPER)
            rows.append(
                row(
                    "Order",
                    when,
                    "Promotion",
                    "Principal",
                    promotion,
                    **item,
                    **{"promotion-id": promo_id},
                )
            )
        rows.append(row("Order", when, "ItemFees", "Commission", commission, **item))
        if sales_tax:
            rows.extend(_withheld(row, "Order", when, tax, shipping_tax, item, -1))
        if channel == "AFN":
            fee = -(Decimal("2.70") + product.weight * 2).quantize(CENT) * qty
            rows.append(row("Order", when, "ItemFees", "FBAPerUnitFulfillmentFee", fee, **item))
            if shipping:
                rows.append(row("Order", when, "ItemFees", "ShippingChargeback", -shipping, **item))
        yield when, rows
        if rng.random() < 0.08:
            refunded = min(when + timedelta(hours=rng.randint(6, 24 * 7)), end)
            refund = {**item, "shipment-id": _token(rng, 9, _UPPER)}
            admin_fee = max(-Decimal("5.00"), (commission * Decimal("0.2")).quantize(CENT))
            price_rows = [
                row("Refund", refunded, "ItemPrice", "Principal", -principal, **refund),
                row("Refund", refunded, "ItemPrice", "Tax", -tax, **refund),
            ]
            if rng.random() < 0.5:
                price_rows.reverse()  # real refunds often list the Tax row first
            refund_rows = [
                *price_rows,
                row("Refund", refunded, "ItemFees", "Commission", -commission, **refund),
                row("Refund", refunded, "ItemFees", "RefundCommission", admin_fee, **refund),
            ]
            if sales_tax:
                refund_rows.extend(_withheld(row, "Refund", refunded, tax, ZERO, refund, 1))
            if promotion:
                refund_rows.append(
                    row("Refund", refunded, "Promotion", "Principal", -promotion, **refund)
                )
            heapq.heappush(pending, (refunded, next(tiebreak), refund_rows))
    while pending:
        refunded, _, refund_rows = heapq.heappop(pending)
        yield refunded, refund_rows


def _withheld(
    row: _RowMaker,
    kind: str,
    when: datetime,
    tax: Decimal,
    shipping_tax: Decimal,
    item: dict[str, str],
    sign: int,
) -> _Rows:
    """The US sales tax Amazon keeps as marketplace facilitator, under ItemWithheldTax."""
    amount_type, prefix = "ItemWithheldTax", "MarketplaceFacilitatorTax"
    rows = [row(kind, when, amount_type, f"{prefix}-Principal", sign * tax, **item)]
    if shipping_tax:
        rows.append(row(kind, when, amount_type, f"{prefix}-Shipping", sign * shipping_tax, **item))
    return rows


@dataclass(frozen=True)
class _VatSource:
    """Which VAT transactions reports a settlement settles the orders of."""

    marketplace_ids: tuple[str, ...]
    seed: int
    orders: int
    vcs: bool


def generate_settlement_report(
    *,
    period: tuple[datetime, datetime],
    marketplace_id: str,
    seed: int,
    orders: int = 60,
    settlement_id: str | None = None,
    vat_marketplace_ids: Sequence[str] | None = None,
    vat_calculation: bool = True,
) -> Iterator[str]:
    """GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2 for one settlement period (start, end).

    An EU or UK marketplace settles the orders and refunds of its VAT transactions reports
    (generate_vat_report with `vat_marketplace_ids`, by default this marketplace alone, the
    same seed, `orders` a month and `vat_calculation`): the same order ids, shipments, dates
    and amounts. Elsewhere `orders` orders are drawn for the period.

    As Amazon writes it: the summary line alone carries the dates, total-amount and currency;
    amounts and dates are written the marketplace's way (decimal commas and dotted dates in
    continental Europe). The summary line's total-amount is the exact sum of every other row's
    amount, which needs the rows before they are written: they are drawn twice from the same
    seed instead of kept.
    """
    start, end = (moment.astimezone(UTC) for moment in period)
    market = marketplace(marketplace_id)
    style = _SettlementFormat(market.country in _DECIMAL_COMMA)
    key = f"settlement:{seed}:{marketplace_id}:{start.isoformat()}"
    if settlement_id is None:
        settlement_id = str(random.Random(key + ":id").randrange(10**10, 10**11))
    vat = None
    if market.country in _COUNTRIES:
        vat_ids = tuple(vat_marketplace_ids or (marketplace_id,))
        if marketplace_id not in vat_ids:
            raise ValueError(f"the VAT reports of {vat_ids} do not cover {market.domain}")
        vat = _VatSource(vat_ids, seed, orders, vat_calculation)

    def rows() -> Iterator[_SettlementRow]:
        rng = random.Random(key)
        activity = (
            _settled_from_vat(rng, start, end, market, vat)
            if vat is not None
            else _random_orders(rng, start, end, market, orders)
        )
        return _settlement_rows(rng, start, end, market, activity)

    total = sum((each.amount for each in rows()), ZERO)

    def line(values: dict[str, str]) -> str:
        values = {"settlement-id": settlement_id, **values}
        return "\t".join(values.get(column, "") for column in SETTLEMENT_HEADER)

    yield "\t".join(SETTLEMENT_HEADER)
    yield line(
        {
            "settlement-start-date": style.moment(start),
            "settlement-end-date": style.moment(end),
            "deposit-date": style.moment(end + timedelta(days=2, seconds=1)),
            "total-amount": style.amount(total),
            "currency": market.currency,
        }
    )
    for each in rows():
        yield line(
            {
                **each.values,
                "amount": style.amount(each.amount),
                "posted-date": style.moment(each.posted.replace(hour=0, minute=0, second=0)),
                "posted-date-time": style.moment(each.posted),
            }
        )


# --- all orders report (NA) ------------------------------------------------------------------

# fmt: off
_NA_ADDRESSES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "US": (("KERRVILLE", "TX", "78028-6411"), ("SUNNY ISLES BEACH", "FL", "33160-2404"),
           ("Winnebago", "IL", "61088"), ("Portland", "OR", "97205"), ("Brooklyn", "NY", "11201")),
    "CA": (("Toronto", "ON", "M5V 2T6"), ("Montréal", "QC", "H2X 1Y4"),
           ("Calgary", "AB", "T2P 1J9")),
    "MX": (("Ciudad de México", "CDMX", "06600"), ("Guadalajara", "JAL", "44100")),
}
# fmt: on
_NA_TAX = {"US": Decimal("0.0825"), "CA": Decimal("0.13"), "MX": Decimal("0.16")}


def generate_all_orders_report(
    *, period: tuple[datetime, datetime], marketplace_id: str, seed: int, orders: int = 200
) -> Iterator[str]:
    """GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL for a North American marketplace."""
    start, end = (moment.astimezone(UTC) for moment in period)
    market = marketplace(marketplace_id)
    if market.country not in _NA_ADDRESSES:
        raise ValueError(f"the all-orders sandbox report covers US, CA and MX, not {market.domain}")
    rng = random.Random(f"orders:{seed}:{marketplace_id}:{start.isoformat()}:{end.isoformat()}")
    span = (end - start).total_seconds()
    channel = "Amazon." + market.domain.removeprefix("amazon.")
    yield "\t".join(ALL_ORDERS_HEADER)
    for index in range(orders):
        purchased = start + timedelta(seconds=span * (index + rng.random()) / orders)
        status = rng.choices(("Shipped", "Pending", "Cancelled"), weights=(85, 8, 7))[0]
        merchant = rng.random() < 0.3
        order_id = _order_id(rng, market.country)
        business = rng.random() < 0.06
        city, state, post_code = rng.choice(_NA_ADDRESSES[market.country])
        for _ in range(rng.choices((1, 2), weights=(85, 15))[0]):
            product = rng.choice(_PRODUCTS)
            qty = 0 if status == "Cancelled" else rng.choices((1, 2, 3), weights=(85, 12, 3))[0]
            price = _local_price(product.price_eur, market.currency) * max(qty, 1)
            shipped = rng.random() < 0.2
            shipping = _local_price(Decimal("4.99"), market.currency) if shipped else None
            promo = -(price * Decimal("0.1")).quantize(CENT) if rng.random() < 0.1 else None
            taxed = status != "Cancelled"
            tax_rate = _NA_TAX[market.country]
            values = {
                "amazon-order-id": order_id,
                "purchase-date": _iso(purchased),
                "last-updated-date": _iso(purchased + timedelta(hours=rng.randint(1, 240))),
                "order-status": status,
                "fulfillment-channel": "Merchant" if merchant else "Amazon",
                "sales-channel": channel,
                "order-channel": "WebsiteOrderChannel" if merchant else "",
                "ship-service-level": rng.choice(("Standard", "Expedited", "SecondDay")),
                "product-name": product.description,
                "sku": product.sku,
                "asin": product.asin,
                "item-status": {"Shipped": "Shipped", "Pending": "Unshipped"}.get(status, ""),
                "quantity": str(qty),
                "currency": market.currency,
                "item-price": _money(price),
                "item-tax": _money(price * tax_rate) if taxed else "",
                "shipping-price": _money(shipping) if shipping else "",
                "shipping-tax": _money(shipping * tax_rate) if shipping and taxed else "",
                "item-promotion-discount": _money(promo) if promo else "",
                "ship-city": city,
                "ship-state": state,
                "ship-postal-code": post_code,
                "ship-country": market.country,
                "promotion-ids": "Core Free Shipping Promotion" if promo else "",
                "is-business-order": "true" if business else "false",
                "purchase-order-number": f"PO-{rng.randrange(10**5, 10**6)}" if business else "",
                "price-designation": "BusinessPrice" if business else "",
                "signature-confirmation-recommended": "false",
            }
            yield "\t".join(values.get(column, "") for column in ALL_ORDERS_HEADER)


VAT_ROWS_PER_ORDER = 1.51  # what generate_vat_report makes, measured


def write_vat_report(path: Path, *, rows: int, marketplace_ids: list[str], seed: int = 11) -> Path:
    """A VAT transactions report of about `rows` rows for October 2026 written to `path`: what
    the benches import."""
    orders = math.ceil(rows / VAT_ROWS_PER_ORDER)
    with path.open("w") as handle:
        for line in generate_vat_report(
            period="2026-10", marketplace_ids=marketplace_ids, seed=seed, orders=orders
        ):
            handle.write(line + "\n")
    return path
