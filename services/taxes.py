"""Which Xero tax type each TaxKey posts under, read from the organisation's tax rates and
created there when missing.

Matching rules (ACTIVE sales-side rates whose effective rate equals the key's):
- The organisation's own country (or no country): Xero's standard types by report type:
  OUTPUT for a positive rate, ZERORATEDOUTPUT for 0% goods and exports, ECOUTPUT for reverse
  charge (in a UK organisation "20% (VAT on Income)", "Zero Rated Income", "Zero Rated EC Goods
  Income"), or a rate whose name says "export" / "reverse charge". Rates naming another country
  never match.
- Another country, or any OSS sale: a rate whose name names that country (ISO code or English
  name, e.g. "Amazon DE 19%", "Germany 19%"), and says "OSS" exactly when the sale is OSS,
  "reverse charge" or "export" exactly when it is one.
- Marketplace facilitator: a 0% rate that is not reported (ReportTaxType NONE, "No VAT").
Built-in rates win over ones users made (TAX001...), then the lowest TaxType, so the choice
does not depend on the order Xero lists them in.

Rates created (one TaxComponent) are named "Amazon DE 19%", "Amazon PL 23% OSS",
"Amazon DE 0% reverse charge", "Amazon DE 0% export". Their report type keeps foreign VAT off
the organisation's own VAT return: MOSSSALES (Xero UK's type for VAT due in other EU countries)
for other countries and OSS, OUTPUT / ZERORATEDOUTPUT / ECOUTPUT at home, NONE for facilitator.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from babel import Locale

from services.documents import TaxKey
from services.errors import ErrorKind, ServiceError
from services.transactions import TaxScheme
from services.xero import NewTaxRate, XeroClient, XeroTaxRate

HOME_COUNTRY = "GB"
SALES_REPORT_TYPES = frozenset({"OUTPUT", "ZERORATEDOUTPUT", "ECOUTPUT", "MOSSSALES", "NONE"})

# Two-letter words in rate names that are not countries: "EC" in Xero's own UK names is the
# European Community, not Ecuador; the rest are babel's groupings.
_NOT_COUNTRIES = frozenset({"EC", "EU", "EZ", "UN", "QO", "XA", "XB"})
_COUNTRIES = {
    code: name
    for code, name in Locale("en").territories.items()
    if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES
}
_ALIASES = {"UK": "GB", "EL": "GR"}  # as VAT numbers and people write them
_CODE_WORD = re.compile(r"\b[A-Z]{2}\b")
_BY_NAME = {name.casefold(): code for code, name in _COUNTRIES.items()}
_NAME_WORD = re.compile(
    r"\b(" + "|".join(re.escape(n) for n in sorted(_BY_NAME, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
_MARKERS = {
    TaxScheme.OSS: re.compile(r"\bm?oss\b", re.IGNORECASE),
    TaxScheme.IOSS: re.compile(r"\bioss\b", re.IGNORECASE),
    TaxScheme.REVERSE_CHARGE: re.compile(r"\breverse", re.IGNORECASE),
    TaxScheme.EXPORT: re.compile(r"\bexport", re.IGNORECASE),
}
_SUFFIXES = {
    TaxScheme.DOMESTIC: "",
    TaxScheme.OSS: " OSS",
    TaxScheme.IOSS: " IOSS",
    TaxScheme.REVERSE_CHARGE: " reverse charge",
    TaxScheme.EXPORT: " export",
}
FACILITATOR_RATE_NAME = "Amazon marketplace facilitator 0%"


def _countries_named(text: str) -> set[str]:
    """The countries a rate's name mentions, by ISO code (upper case) or English name."""
    codes = {_ALIASES.get(word, word) for word in _CODE_WORD.findall(text)}
    named = {code for match in _NAME_WORD.findall(text) if (code := _BY_NAME.get(match.casefold()))}
    return (codes & _COUNTRIES.keys()) | named


@dataclass(frozen=True)
class _Rate:
    tax_type: str
    name: str
    report_type: str
    percent: Decimal | None
    active: bool
    revenue: bool  # CanApplyToRevenue: may be used on sales documents
    countries: frozenset[str]
    markers: frozenset[TaxScheme]

    @classmethod
    def read(cls, rate: XeroTaxRate) -> _Rate:
        return cls(
            tax_type=rate.tax_type,
            name=rate.name,
            report_type=rate.report_tax_type,
            percent=rate.effective_rate,
            active=rate.active,
            revenue=rate.can_apply_to_revenue,
            countries=frozenset(_countries_named(rate.name)),
            markers=frozenset(s for s, marker in _MARKERS.items() if marker.search(rate.name)),
        )

    @property
    def rank(self) -> tuple[bool, str]:
        # Xero numbers the rates users make TAX001, TAX002...; its own have named types.
        return (self.tax_type.startswith("TAX"), self.tax_type)


class TaxMap:
    """The organisation's tax rates (its GET /TaxRates answer) plus the integration's overrides
    ("DE:19:domestic" -> TaxType). `home_country` is the organisation's country
    (Organisation.CountryCode); the report types used are Xero UK's, hence GB by default."""

    def __init__(
        self,
        rates: Iterable[XeroTaxRate],
        overrides: Mapping[str, str] | None = None,
        *,
        home_country: str = HOME_COUNTRY,
    ) -> None:
        self.home_country = home_country.upper()
        self._rates = [_Rate.read(r) for r in rates]
        self._created: dict[TaxKey, str] = {}
        self._given: dict[TaxKey, str] = {}
        active = {r.tax_type for r in self._rates if r.active}
        self._overrides: dict[TaxKey, str] = {}
        for text, tax_type in (overrides or {}).items():
            try:
                key = TaxKey.parse(text)
            except ValueError as error:
                raise ServiceError(
                    ErrorKind.VALIDATION, f"Tax override: {error}.", retryable=False
                ) from None
            if tax_type.strip() not in active:
                raise ServiceError(
                    ErrorKind.VALIDATION,
                    f"The tax override for {key} names tax type {tax_type!r}, which is not an "
                    "active tax rate in this Xero organisation.",
                    retryable=False,
                )
            self._overrides[key] = tax_type.strip()

    @classmethod
    def from_xero(
        cls,
        rates: Iterable[XeroTaxRate],
        overrides: Mapping[str, str] | None = None,
        *,
        home_country: str = HOME_COUNTRY,
    ) -> TaxMap:
        """The map for `XeroClient.tax_rates()`: read once a run, then kept up to date here."""
        return cls(rates, overrides, home_country=home_country)

    def sales_tax_types(self) -> list[tuple[str, str]]:
        """The active rates that apply to sales, as (TaxType, Name) sorted by name: what an
        override may name (the settings modal offers them)."""
        named = {r.tax_type: r.name or r.tax_type for r in self._rates if r.active and r.revenue}
        return sorted(named.items(), key=lambda item: (item[1].lower(), item[0]))

    def resolve(self, key: TaxKey) -> str | None:
        if key in self._overrides:
            return self._overrides[key]
        if key in self._created:
            return self._created[key]
        fitting = [rate for rate in self._rates if self._fits(rate, key)]
        return min(fitting, key=lambda rate: rate.rank).tax_type if fitting else None

    def ensure(self, keys: Iterable[TaxKey], client: XeroClient) -> dict[TaxKey, str]:
        """Every key's tax type, creating in Xero the rates no override or existing rate covers
        (all in one call; keys sharing a planned name share the rate)."""
        mapping: dict[TaxKey, str] = {}
        missing: dict[str, list[TaxKey]] = {}
        for key in dict.fromkeys(keys):
            tax_type = self.resolve(key)
            if tax_type is None:
                missing.setdefault(self.planned_name(key), []).append(key)
            else:
                mapping[key] = tax_type
        if missing:
            created = self._create(client, {name: group[0] for name, group in missing.items()})
            for name, group in missing.items():
                for key in group:
                    self._created[key] = mapping[key] = created[name]
        self._given.update(mapping)
        return mapping

    def as_dict(self) -> dict[str, str]:
        """Every key ensure() has answered, as "DE:19:domestic" -> TaxType, to store and show."""
        return {str(key): self._given[key] for key in sorted(self._given, key=str)}

    # --- matching ---------------------------------------------------------------------------

    def _foreign(self, key: TaxKey) -> bool:
        return (key.country or self.home_country) != self.home_country or (
            key.scheme in (TaxScheme.OSS, TaxScheme.IOSS)
        )

    def _fits(self, rate: _Rate, key: TaxKey) -> bool:
        if not rate.active or rate.report_type not in SALES_REPORT_TYPES:
            return False
        if rate.percent != key.rate:
            return False
        if key.scheme == TaxScheme.FACILITATOR:
            return rate.report_type == "NONE"
        others = rate.markers - {key.scheme}
        if others:
            return False
        if self._foreign(key):
            country = key.country or self.home_country
            return country in rate.countries and (
                key.scheme == TaxScheme.DOMESTIC or key.scheme in rate.markers
            )
        if rate.countries - {self.home_country}:
            return False
        if key.scheme == TaxScheme.DOMESTIC:
            return rate.report_type == ("OUTPUT" if key.rate else "ZERORATEDOUTPUT")
        standard = "ECOUTPUT" if key.scheme == TaxScheme.REVERSE_CHARGE else "ZERORATEDOUTPUT"
        return key.scheme in rate.markers or rate.report_type == standard

    # --- creating ---------------------------------------------------------------------------

    def planned_name(self, key: TaxKey) -> str:
        """The name a missing rate is created under."""
        if key.scheme == TaxScheme.FACILITATOR:
            return FACILITATOR_RATE_NAME
        country = key.country or self.home_country
        rate = format(key.rate.normalize(), "f")
        return f"Amazon {country} {rate}%{_SUFFIXES[key.scheme]}"

    def _report_type(self, key: TaxKey) -> str:
        if key.scheme == TaxScheme.FACILITATOR:
            return "NONE"
        if self._foreign(key):
            return "MOSSSALES"
        if key.scheme == TaxScheme.REVERSE_CHARGE:
            return "ECOUTPUT"
        return "OUTPUT" if key.rate else "ZERORATEDOUTPUT"

    def _create(self, client: XeroClient, wanted: dict[str, TaxKey]) -> dict[str, str]:
        """Create the named rates in one call; returns name -> TaxType."""
        for name, key in wanted.items():
            taken = next((r for r in self._rates if r.name.casefold() == name.casefold()), None)
            if taken is not None:
                # Xero would refuse a second rate of this name: say what to do instead.
                raise ServiceError(
                    ErrorKind.VALIDATION,
                    f"Xero already has a tax rate named {name!r} ({taken.tax_type}, "
                    f"{'active' if taken.active else 'not active'}, {taken.report_type}, "
                    f"{taken.percent}%) that cannot be used for {key}. Rename or restore it in "
                    f"Xero, or map {key} to a tax type in the integration's tax overrides.",
                    retryable=False,
                )
        names = sorted(wanted)
        created = client.create_tax_rates(
            [
                NewTaxRate(
                    name,
                    wanted[name].rate,
                    report_tax_type=self._report_type(wanted[name]),
                    component_name=(
                        "Sales tax" if wanted[name].scheme == TaxScheme.FACILITATOR else "VAT"
                    ),
                )
                for name in names
            ],
            # The same rates asked for again (a retry, a crashed run) are answered, not re-made.
            idempotency_key="tax-rates-"
            + hashlib.sha256("|".join(names).encode()).hexdigest()[:40],
        )
        self._rates.extend(_Rate.read(rate) for rate in created)
        return {name: rate.tax_type for name, rate in zip(names, created, strict=True)}
