"""Which VAT rates exist in which country on which date, from 2015 on.

A line of an Amazon report names a taxing country, a rate and a date. A rate that country did
not have on that date means the line was read against the wrong country (a 23% Polish sale
booked as Austrian) or is broken: the caller fails the item instead of creating a Xero tax rate.

What "exists" means here:
- every rate the country's VAT law had in force that day: the standard rate, the reduced,
  super-reduced and parking rates, and the rates of its regions inside the country's VAT
  (Madeira and the Azores, Corsica and the French overseas departments, the Greek islands
  with a 30% discount, Austria's Jungholz and Mittelberg), because Amazon reports all of
  them under the country's code;
- 0% always exists: zero rating and exemptions are everywhere;
- a country the table does not hold, or a date before 2015, is "not known" (None): the
  caller then does not check.
Rates are compared as numbers (19 == 19.00), exactly: pass the rate Amazon reports, not one
recomputed from amounts. A credit note carries the rate of the supply it corrects, so a
caller should ask about that supply's date where it knows it (a July 2020 refund of a June
2020 German sale is at 19%, which did not exist in Germany in July 2020).

Sources: the European Commission's "VAT rates applied in the Member States of the European
Union" (situation at 1 January 2015 onwards) and its TEDB database (the current rates, as
packaged by eu-vat-rates-data 2026.9.29), then for each change the source named beside its
country. Each country is a list of periods: a period holds from its date until the day before
the next period of that country starts; the last one is open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from babel import Locale

_TERRITORIES = Locale("en").territories  # ISO 3166 codes, and regions such as "001"


def country_name(code: str) -> str:
    """A country's English name from its ISO code (the code itself when unknown)."""
    return str(_TERRITORIES.get(code, code))


def is_country(code: str) -> bool:
    return len(code) == 2 and code.isalpha() and code in _TERRITORIES


def percent_text(percent: Decimal) -> str:
    """19 for 19.00, 5.5 for 5.50: a rate as people write it."""
    return format(percent.normalize(), "f")


def own_rate_key(country: str, scheme: str) -> str:
    """How the seller's own VAT rates are keyed: "DE:domestic"."""
    return f"{country.strip().upper()}:{scheme.strip().lower()}"


COVERED_FROM = date(2015, 1, 1)

# Codes that are taxed as another country: Greece's VAT prefix, the UK as people write it,
# Northern Ireland (UK VAT rates), the Isle of Man (UK VAT area), Monaco (French VAT area),
# Liechtenstein (Swiss VAT area).
_ALIASES = {"EL": "GR", "UK": "GB", "XI": "GB", "IM": "GB", "MC": "FR", "LI": "CH"}


@dataclass(frozen=True)
class _Period:
    start: date
    standard: Decimal
    reduced: frozenset[Decimal]  # reduced, super-reduced and parking rates
    regional: frozenset[Decimal]  # rates that hold only in a part of the country

    @property
    def rates(self) -> frozenset[Decimal]:
        return frozenset({self.standard}) | self.reduced | self.regional


def _p(start: str, standard: str, *reduced: str, regional: tuple[str, ...] = ()) -> _Period:
    return _Period(
        date.fromisoformat(start),
        Decimal(standard),
        frozenset(map(Decimal, reduced)),
        frozenset(map(Decimal, regional)),
    )


_S = "2015-01-01"  # the first day covered

_TABLE: dict[str, tuple[_Period, ...]] = {
    # AT: EC tables 2015-2026; 13% and the end of the 12% parking rate by the tax reform
    # 2015/2016; COVID 5% (UStG §28) 2020-07-01..2021-12-31; 4.9% on basic foods from
    # 2026-07-01 (in TEDB since). Jungholz and Mittelberg: 19%.
    "AT": (
        _p(_S, "20", "12", "10", regional=("19",)),
        _p("2016-01-01", "20", "13", "10", regional=("19",)),
        _p("2020-07-01", "20", "13", "10", "5", regional=("19",)),
        _p("2022-01-01", "20", "13", "10", regional=("19",)),
        _p("2026-07-01", "20", "13", "10", "4.9", regional=("19",)),
    ),
    # BE: EC tables 2015-2026 (no change).
    "BE": (_p(_S, "21", "12", "6"),),
    # BG: EC tables 2015-2026 (no change).
    "BG": (_p(_S, "20", "9"),),
    # CY: EC tables; 3% super-reduced rate from 2023-07-21 (law published that day).
    "CY": (
        _p(_S, "19", "9", "5"),
        _p("2023-07-21", "19", "9", "5", "3"),
    ),
    # CZ: EC tables (10% from 2015-01-01); 15% and 10% merged into 12% on 2024-01-01.
    "CZ": (
        _p(_S, "21", "15", "10"),
        _p("2024-01-01", "21", "12"),
    ),
    # DE: EC tables; Zweites Corona-Steuerhilfegesetz: 16% and 5% 2020-07-01..2020-12-31.
    "DE": (
        _p(_S, "19", "7"),
        _p("2020-07-01", "16", "5"),
        _p("2021-01-01", "19", "7"),
    ),
    # DK: EC tables 2015-2026 (no change).
    "DK": (_p(_S, "25"),),
    # EE: EC tables; 5% press from 2022-08-01; 22% from 2024-01-01; press 5->9% and
    # accommodation 9->13% on 2025-01-01 (Estonian Tax and Customs Board); 24% from 2025-07-01.
    "EE": (
        _p(_S, "20", "9"),
        _p("2022-08-01", "20", "9", "5"),
        _p("2024-01-01", "22", "9", "5"),
        _p("2025-01-01", "22", "13", "9"),
        _p("2025-07-01", "24", "13", "9"),
    ),
    # ES: EC tables; 5% on electricity from 2022-07-01 (RDL 11/2022), then gas (RDL 17/2022),
    # then oils and pasta (RDL 20/2022) until 2024-09-30; 2% and 7.5% 2024-10-01..2024-12-31
    # (RDL 4/2024). The 0% food rate of 2023-2024 is a zero rate. Canary Islands, Ceuta and
    # Melilla are outside Spanish VAT.
    "ES": (
        _p(_S, "21", "10", "4"),
        _p("2022-07-01", "21", "10", "5", "4"),
        _p("2024-10-01", "21", "10", "7.5", "4", "2"),
        _p("2025-01-01", "21", "10", "4"),
    ),
    # FI: EC tables; 25.5% from 2024-09-01; 14% -> 13.5% on 2026-01-01 (Vero; TEDB).
    "FI": (
        _p(_S, "24", "14", "10"),
        _p("2024-09-01", "25.5", "14", "10"),
        _p("2026-01-01", "25.5", "13.5", "10"),
    ),
    # FR: EC tables 2015-2026 (no change). Corsica 13%, 10%, 2.1%, 0.9%; Guadeloupe,
    # Martinique and Réunion 8.5%, 2.1%, 1.75%, 1.05% (CGI art. 297 and 296, BOI-TVA-GEO-20-10).
    "FR": (_p(_S, "20", "10", "5.5", "2.1", regional=("13", "0.9", "8.5", "1.75", "1.05")),),
    # GR: EC tables; L.4334/2015: 6.5% -> 6% on 2015-07-20 but hotels at 6.5% until
    # 2015-09-30; 24% from 2016-06-01. Islands with the 30% discount (Lesbos, Chios, Samos,
    # Kos, Leros throughout; more islands again from 2026): 16/9/5%, 4% once 6% came in,
    # 17% from 2016-06-01.
    "GR": (
        _p(_S, "23", "13", "6.5", regional=("16", "9", "5")),
        _p("2015-07-20", "23", "13", "6.5", "6", regional=("16", "9", "5", "4")),
        _p("2015-10-01", "23", "13", "6", regional=("16", "9", "4")),
        _p("2016-06-01", "24", "13", "6", regional=("17", "9", "4")),
    ),
    # HR: EC tables 2015-2026 (no change).
    "HR": (_p(_S, "25", "13", "5"),),
    # HU: EC tables 2015-2026 (no change).
    "HU": (_p(_S, "27", "18", "5"),),
    # IE: EC tables (4.8% livestock rate throughout); 21% 2020-09-01..2021-02-28 (Revenue).
    "IE": (
        _p(_S, "23", "13.5", "9", "4.8"),
        _p("2020-09-01", "21", "13.5", "9", "4.8"),
        _p("2021-03-01", "23", "13.5", "9", "4.8"),
    ),
    # IT: EC tables; 5% from 2016-01-01 (Legge 208/2015, comma 960).
    "IT": (
        _p(_S, "22", "10", "4"),
        _p("2016-01-01", "22", "10", "5", "4"),
    ),
    # LT: EC tables; Law XV-287: 9% abolished, 12% introduced on 2026-01-01.
    "LT": (
        _p(_S, "21", "9", "5"),
        _p("2026-01-01", "21", "12", "5"),
    ),
    # LU: EC tables (17/14/8/3 from 2015-01-01); every rate but 3% one point lower in 2023.
    "LU": (
        _p(_S, "17", "14", "8", "3"),
        _p("2023-01-01", "16", "13", "7", "3"),
        _p("2024-01-01", "17", "14", "8", "3"),
    ),
    # LV: EC tables; 5% from 2018-01-01 (fruit and vegetables to 2023, books and press
    # since 2022-01-01).
    "LV": (
        _p(_S, "21", "12"),
        _p("2018-01-01", "21", "12", "5"),
    ),
    # MT: EC tables; 12% from 2024-01-01 (Legal Notice 231 of 2023).
    "MT": (
        _p(_S, "18", "7", "5"),
        _p("2024-01-01", "18", "12", "7", "5"),
    ),
    # NL: EC tables; 6% -> 9% on 2019-01-01.
    "NL": (
        _p(_S, "21", "6"),
        _p("2019-01-01", "21", "9"),
    ),
    # PL: EC tables 2015-2026 (the 0% food rate of 2022-2024 is a zero rate).
    "PL": (_p(_S, "23", "8", "5"),),
    # PT: EC tables (mainland 23/13/6). Madeira 22/12/5%, 4% instead of 5% from 2024-10-01;
    # Azores 18/10/5%, 18/9/4% from 2015-07-01 (Lei 63-A/2015), 16/9/4% from 2021-07-01
    # (DLR 15-A/2021/A; AT Ofício Circulado 25045/2024).
    "PT": (
        _p(_S, "23", "13", "6", regional=("22", "18", "12", "10", "5")),
        _p("2015-07-01", "23", "13", "6", regional=("22", "18", "12", "9", "5", "4")),
        _p("2021-07-01", "23", "13", "6", regional=("22", "16", "12", "9", "5", "4")),
        _p("2024-10-01", "23", "13", "6", regional=("22", "16", "12", "9", "4")),
    ),
    # RO: EC tables (24% in 2015, 20% in 2016, 19% from 2017); Law 141/2025: 21% and 11%
    # from 2025-08-01, 9% kept for some housing until 2026-07-31.
    "RO": (
        _p(_S, "24", "9", "5"),
        _p("2016-01-01", "20", "9", "5"),
        _p("2017-01-01", "19", "9", "5"),
        _p("2025-08-01", "21", "11", "9"),
        _p("2026-08-01", "21", "11"),
    ),
    # SE: EC tables 2015-2026 (no change; food moving from 12% to 6% uses an existing rate).
    "SE": (_p(_S, "25", "12", "6"),),
    # SI: EC tables; 5% from 2020-01-01 (books, newspapers, e-publications).
    "SI": (
        _p(_S, "22", "9.5"),
        _p("2020-01-01", "22", "9.5", "5"),
    ),
    # SK: EC tables; 5% from 2023-01-01 (rental housing); 23%, 19% and 5% from 2025-01-01,
    # 10% abolished (VAT Act amendment signed 2024-10-18).
    "SK": (
        _p(_S, "20", "10"),
        _p("2023-01-01", "20", "10", "5"),
        _p("2025-01-01", "23", "19", "5"),
    ),
    # GB: HMRC; hospitality at 5% 2020-07-15..2021-09-30 (an existing rate), at 12.5%
    # 2021-10-01..2022-03-31.
    "GB": (
        _p(_S, "20", "5"),
        _p("2021-10-01", "20", "12.5", "5"),
        _p("2022-04-01", "20", "5"),
    ),
    # CH: ESTV; 7.7/3.7/2.5% from 2018-01-01, 8.1/3.8/2.6% from 2024-01-01.
    "CH": (
        _p(_S, "8", "3.8", "2.5"),
        _p("2018-01-01", "7.7", "3.7", "2.5"),
        _p("2024-01-01", "8.1", "3.8", "2.6"),
    ),
    # NO: Skatteetaten; low rate 8% -> 10% (2016) -> 12% (2018), 6% instead of 12%
    # 2020-04-01..2021-09-30; 11.11% on raw fish throughout.
    "NO": (
        _p(_S, "25", "15", "11.11", "8"),
        _p("2016-01-01", "25", "15", "11.11", "10"),
        _p("2018-01-01", "25", "15", "12", "11.11"),
        _p("2020-04-01", "25", "15", "11.11", "6"),
        _p("2021-10-01", "25", "15", "12", "11.11"),
    ),
}


def rates_in_force(country: str, on: date) -> frozenset[Decimal] | None:
    """The positive rates (percent) in force in `country` (ISO alpha-2) on `on`; None when the
    table does not know that country or that date."""
    periods = _TABLE.get(_ALIASES.get(country.upper(), country.upper()))
    if periods is None or on < COVERED_FROM:
        return None
    current = periods[0]
    for period in periods[1:]:
        if period.start > on:
            break
        current = period
    return current.rates


def rate_exists(country: str, on: date, percent: Decimal) -> bool | None:
    """Whether `percent` was a VAT rate of `country` on `on`: 0 always is; None when not known."""
    if percent.is_finite() and percent == 0:
        return True
    rates = rates_in_force(country, on)
    if rates is None:
        return None
    return percent.is_finite() and percent in rates
