"""The table of VAT rates by country and date: the edges of every change, and today's rates
against the European Commission's (TEDB, as eu-vat-rates-data 2026.9.29 packages them)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from services import vat_rates
from services.vat_rates import COVERED_FROM, rate_exists, rates_in_force

D = Decimal
DAY = timedelta(days=1)


# (country, rate, first day in force or None for "since 2015", last day or None for "still").
CHANGES = [
    ("DE", "16", "2020-07-01", "2020-12-31"),
    ("DE", "5", "2020-07-01", "2020-12-31"),
    ("AT", "5", "2020-07-01", "2021-12-31"),
    ("AT", "12", None, "2015-12-31"),
    ("AT", "13", "2016-01-01", None),
    ("AT", "4.9", "2026-07-01", None),
    ("IE", "21", "2020-09-01", "2021-02-28"),
    ("GB", "12.5", "2021-10-01", "2022-03-31"),
    ("NL", "6", None, "2018-12-31"),
    ("NL", "9", "2019-01-01", None),
    ("CZ", "15", None, "2023-12-31"),
    ("CZ", "10", None, "2023-12-31"),
    ("CZ", "12", "2024-01-01", None),
    ("SK", "20", None, "2024-12-31"),
    ("SK", "10", None, "2024-12-31"),
    ("SK", "5", "2023-01-01", None),
    ("SK", "23", "2025-01-01", None),
    ("SK", "19", "2025-01-01", None),
    ("FI", "24", None, "2024-08-31"),
    ("FI", "25.5", "2024-09-01", None),
    ("FI", "14", None, "2025-12-31"),
    ("FI", "13.5", "2026-01-01", None),
    ("EE", "20", None, "2023-12-31"),
    ("EE", "22", "2024-01-01", "2025-06-30"),
    ("EE", "24", "2025-07-01", None),
    ("EE", "5", "2022-08-01", "2024-12-31"),
    ("EE", "13", "2025-01-01", None),
    ("LU", "16", "2023-01-01", "2023-12-31"),
    ("LU", "13", "2023-01-01", "2023-12-31"),
    ("LU", "7", "2023-01-01", "2023-12-31"),
    ("RO", "24", None, "2015-12-31"),
    ("RO", "20", "2016-01-01", "2016-12-31"),
    ("RO", "19", "2017-01-01", "2025-07-31"),
    ("RO", "21", "2025-08-01", None),
    ("RO", "11", "2025-08-01", None),
    ("RO", "5", None, "2025-07-31"),
    ("RO", "9", None, "2026-07-31"),
    ("ES", "5", "2022-07-01", "2024-09-30"),
    ("ES", "2", "2024-10-01", "2024-12-31"),
    ("ES", "7.5", "2024-10-01", "2024-12-31"),
    ("LT", "9", None, "2025-12-31"),
    ("LT", "12", "2026-01-01", None),
    ("CY", "3", "2023-07-21", None),
    ("MT", "12", "2024-01-01", None),
    ("LV", "5", "2018-01-01", None),
    ("SI", "5", "2020-01-01", None),
    ("IT", "5", "2016-01-01", None),
    ("GR", "23", None, "2016-05-31"),
    ("GR", "24", "2016-06-01", None),
    ("GR", "6.5", None, "2015-09-30"),
    ("GR", "6", "2015-07-20", None),
    ("PT", "18", None, "2021-06-30"),
    ("PT", "16", "2021-07-01", None),
    ("PT", "5", None, "2024-09-30"),
    ("CH", "8", None, "2017-12-31"),
    ("CH", "7.7", "2018-01-01", "2023-12-31"),
    ("CH", "8.1", "2024-01-01", None),
    ("NO", "6", "2020-04-01", "2021-09-30"),
]

# Rates that stop for a while and come back: (country, rate, first day out, last day out).
GAPS = [
    ("DE", "19", "2020-07-01", "2020-12-31"),
    ("DE", "7", "2020-07-01", "2020-12-31"),
    ("IE", "23", "2020-09-01", "2021-02-28"),
    ("LU", "17", "2023-01-01", "2023-12-31"),
    ("LU", "14", "2023-01-01", "2023-12-31"),
    ("LU", "8", "2023-01-01", "2023-12-31"),
    ("NO", "12", "2020-04-01", "2021-09-30"),
]


def _day(text: str) -> date:
    return date.fromisoformat(text)


def _rates(text: str) -> frozenset[Decimal]:
    return frozenset(map(D, text.split()))


@pytest.mark.parametrize(("country", "rate", "first", "last"), CHANGES)
def test_a_changed_rate_holds_from_its_first_to_its_last_day(
    country: str, rate: str, first: str | None, last: str | None
) -> None:
    if first is None:
        assert rate_exists(country, COVERED_FROM, D(rate))
    else:
        assert not rate_exists(country, _day(first) - DAY, D(rate))
        assert rate_exists(country, _day(first), D(rate))
    if last is None:
        assert rate_exists(country, date(2026, 12, 31), D(rate))
    else:
        assert rate_exists(country, _day(last), D(rate))
        assert not rate_exists(country, _day(last) + DAY, D(rate))


@pytest.mark.parametrize(("country", "rate", "first", "last"), GAPS)
def test_a_suspended_rate_is_absent_exactly_while_suspended(
    country: str, rate: str, first: str, last: str
) -> None:
    assert rate_exists(country, _day(first) - DAY, D(rate))
    assert not rate_exists(country, _day(first), D(rate))
    assert not rate_exists(country, _day(last), D(rate))
    assert rate_exists(country, _day(last) + DAY, D(rate))


def test_the_rate_of_the_wrong_country_is_refused() -> None:
    # Issue 8: a 23% Polish sale shipped to Austria was booked as "Amazon AT 23% OSS".
    on = date(2023, 3, 15)
    assert rate_exists("PL", on, D("23")) is True
    assert rate_exists("AT", on, D("23")) is False
    assert rate_exists("DE", on, D("20")) is False
    assert rate_exists("GB", on, D("19")) is False


def test_the_rates_of_a_day_are_all_the_rates_in_force_that_day() -> None:
    assert rates_in_force("DE", date(2020, 6, 30)) == frozenset({D("19"), D("7")})
    assert rates_in_force("DE", date(2020, 7, 1)) == frozenset({D("16"), D("5")})
    assert rates_in_force("AT", date(2021, 1, 1)) == _rates("20 13 10 5 19")
    assert rates_in_force("HR", COVERED_FROM) == rates_in_force("HR", date(2026, 12, 31))
    assert rates_in_force("HR", COVERED_FROM) == _rates("25 13 5")


def test_rates_compare_as_numbers() -> None:
    assert rate_exists("DE", date(2024, 5, 1), D("19.00"))
    assert rate_exists("DE", date(2024, 5, 1), D("7.0"))
    assert rate_exists("FR", date(2024, 5, 1), D("5.50"))
    assert rate_exists("FI", date(2026, 2, 1), D("13.5"))
    assert rate_exists("CH", date(2020, 2, 1), D("7.7"))
    assert rate_exists("CH", date(2024, 2, 1), D("8.10"))
    assert not rate_exists("DE", date(2024, 5, 1), D("19.01"))
    assert not rate_exists("DE", date(2024, 5, 1), D("-19"))
    assert not rate_exists("DE", date(2024, 5, 1), D("NaN"))


def test_zero_always_exists() -> None:
    assert rate_exists("DE", date(2024, 5, 1), D("0"))
    assert rate_exists("DE", date(2024, 5, 1), D("0.00"))
    assert rate_exists("US", date(2024, 5, 1), D("0"))
    assert rate_exists("DE", date(2010, 1, 1), D("0"))


def test_a_country_or_date_outside_the_table_is_not_known() -> None:
    assert rates_in_force("US", date(2024, 5, 1)) is None
    assert rate_exists("US", date(2024, 5, 1), D("7")) is None
    assert rates_in_force("DE", COVERED_FROM - DAY) is None
    assert rate_exists("DE", COVERED_FROM - DAY, D("19")) is None


def test_codes_taxed_as_another_country() -> None:
    on = date(2024, 5, 1)
    assert rates_in_force("EL", on) == rates_in_force("GR", on)
    assert rates_in_force("XI", on) == rates_in_force("GB", on)
    assert rates_in_force("UK", on) == rates_in_force("GB", on)
    assert rates_in_force("MC", on) == rates_in_force("FR", on)
    assert rates_in_force("LI", on) == rates_in_force("CH", on)
    assert rates_in_force("de", on) == rates_in_force("DE", on)


# Standard rates in force on 2026-12-01, checked against TEDB (eu-vat-rates-data 2026.9.29),
# the national announcements named in services/vat_rates.py, and the ESTV and Skatteetaten.
STANDARD_2026 = {
    "AT": "20", "BE": "21", "BG": "20", "CY": "19", "CZ": "21", "DE": "19", "DK": "25",
    "EE": "24", "ES": "21", "FI": "25.5", "FR": "20", "GR": "24", "HR": "25", "HU": "27",
    "IE": "23", "IT": "22", "LT": "21", "LU": "17", "LV": "21", "MT": "18", "NL": "21",
    "PL": "23", "PT": "23", "RO": "21", "SE": "25", "SI": "22", "SK": "23",
    "GB": "20", "CH": "8.1", "NO": "25",
}  # fmt: skip


@pytest.mark.parametrize(("country", "standard"), sorted(STANDARD_2026.items()))
def test_todays_standard_rate_is_the_highest_rate_in_force(country: str, standard: str) -> None:
    rates = rates_in_force(country, date(2026, 12, 1))
    assert rates is not None
    assert max(rates) == D(standard)


# Every rate eu-vat-rates-data 2026.9.29 lists (standard, reduced, super-reduced, parking),
# from TEDB for the EU, as of 2026-09-29.
TEDB_2026_09_29 = {
    "AT": "20 10 13 19 4.9", "BE": "21 6 12", "BG": "20 9", "CY": "19 5 9 3", "CZ": "21 12",
    "DE": "19 7", "DK": "25", "EE": "24 9 13", "ES": "21 10 4", "FI": "25.5 10 13.5",
    "FR": "20 0.9 1.05 5.5 8.5 10 13 2.1", "GR": "24 6 13 17 4", "HR": "25 5 13",
    "HU": "27 5 18", "IE": "23 9 13.5", "IT": "22 5 10 4", "LT": "21 5 12", "LU": "17 8 14 3",
    "LV": "21 5 12", "MT": "18 5 7 12", "NL": "21 9", "PL": "23 5 8", "PT": "23 6 13 16 22",
    "RO": "21 11", "SE": "25 6 12", "SI": "22 5 9.5", "SK": "23 5 19", "GB": "20 5",
    "CH": "8.1 2.6 3.8", "NO": "25 12 15",
}  # fmt: skip
# What the table adds, each from the source named in services/vat_rates.py: Ireland's
# livestock rate, Norway's raw-fish rate, the Greek islands' 9%, Madeira's 12%, the Azores'
# 9% and the 4% both apply, and the French overseas 1.75%.
BEYOND_TEDB = {"IE": "4.8", "NO": "11.11", "GR": "9", "PT": "12 9 4", "FR": "1.75"}


@pytest.mark.parametrize(("country", "listed"), sorted(TEDB_2026_09_29.items()))
def test_todays_rates_are_tedbs_and_the_documented_additions(country: str, listed: str) -> None:
    expected = _rates(f"{listed} {BEYOND_TEDB.get(country, '')}")
    assert rates_in_force(country, date(2026, 9, 29)) == expected


def test_every_country_starts_on_the_first_day_covered_and_moves_forward() -> None:
    for country, periods in vat_rates._TABLE.items():
        starts = [period.start for period in periods]
        assert starts[0] == COVERED_FROM, country
        assert starts == sorted(set(starts)), country
        assert all(period.standard == max(period.rates - period.regional) for period in periods)
