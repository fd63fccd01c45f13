"""Amazon marketplaces and regions: ids, countries, currencies and hosts as Amazon publishes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Region(StrEnum):
    NA = "na"
    EU = "eu"
    FE = "fe"


SPAPI_ENDPOINTS: dict[Region, str] = {
    Region.NA: "https://sellingpartnerapi-na.amazon.com",
    Region.EU: "https://sellingpartnerapi-eu.amazon.com",
    Region.FE: "https://sellingpartnerapi-fe.amazon.com",
}


@dataclass(frozen=True)
class Marketplace:
    id: str
    country: str  # ISO 3166-1 alpha-2, as in Amazon's reports (GB, not UK)
    domain: str  # the MARKETPLACE column of the VAT report, e.g. amazon.de
    region: Region
    currency: str
    seller_central_url: str


_ALL = [
    Marketplace(
        "ATVPDKIKX0DER", "US", "amazon.com", Region.NA, "USD", "https://sellercentral.amazon.com"
    ),
    Marketplace(
        "A2EUQ1WTGCTBG2", "CA", "amazon.ca", Region.NA, "CAD", "https://sellercentral.amazon.ca"
    ),
    Marketplace(
        "A1AM78C64UM0Y8",
        "MX",
        "amazon.com.mx",
        Region.NA,
        "MXN",
        "https://sellercentral.amazon.com.mx",
    ),
    Marketplace(
        "A2Q3Y263D00KWC",
        "BR",
        "amazon.com.br",
        Region.NA,
        "BRL",
        "https://sellercentral.amazon.com.br",
    ),
    Marketplace(
        "A1F83G8C2ARO7P",
        "GB",
        "amazon.co.uk",
        Region.EU,
        "GBP",
        "https://sellercentral.amazon.co.uk",
    ),
    Marketplace(
        "A1PA6795UKMFR9", "DE", "amazon.de", Region.EU, "EUR", "https://sellercentral.amazon.de"
    ),
    Marketplace(
        "A13V1IB3VIYZZH", "FR", "amazon.fr", Region.EU, "EUR", "https://sellercentral.amazon.fr"
    ),
    Marketplace(
        "APJ6JRA9NG5V4", "IT", "amazon.it", Region.EU, "EUR", "https://sellercentral.amazon.it"
    ),
    Marketplace(
        "A1RKKUPIHCS9HS", "ES", "amazon.es", Region.EU, "EUR", "https://sellercentral.amazon.es"
    ),
    Marketplace(
        "A1805IZSGTT6HS", "NL", "amazon.nl", Region.EU, "EUR", "https://sellercentral.amazon.nl"
    ),
    Marketplace(
        "AMEN7PMS3EDWL",
        "BE",
        "amazon.com.be",
        Region.EU,
        "EUR",
        "https://sellercentral.amazon.com.be",
    ),
    Marketplace(
        "A2NODRKZP88ZB9", "SE", "amazon.se", Region.EU, "SEK", "https://sellercentral.amazon.se"
    ),
    Marketplace(
        "A1C3SOZRARQ6R3", "PL", "amazon.pl", Region.EU, "PLN", "https://sellercentral.amazon.pl"
    ),
    Marketplace(
        "A28R8C7NBKEWEA", "IE", "amazon.ie", Region.EU, "EUR", "https://sellercentral.amazon.ie"
    ),
    Marketplace(
        "A33AVAJ2PDY3EV",
        "TR",
        "amazon.com.tr",
        Region.EU,
        "TRY",
        "https://sellercentral.amazon.com.tr",
    ),
    Marketplace(
        "A2VIGQ35RCS4UG", "AE", "amazon.ae", Region.EU, "AED", "https://sellercentral.amazon.ae"
    ),
    Marketplace(
        "A17E79C6D8DWNP", "SA", "amazon.sa", Region.EU, "SAR", "https://sellercentral.amazon.sa"
    ),
    Marketplace(
        "ARBP9OOSHTCHU", "EG", "amazon.eg", Region.EU, "EGP", "https://sellercentral.amazon.eg"
    ),
    Marketplace(
        "A21TJRUUN4KGV", "IN", "amazon.in", Region.EU, "INR", "https://sellercentral.amazon.in"
    ),
    Marketplace(
        "AE08WJ6YKNBMC",
        "ZA",
        "amazon.co.za",
        Region.EU,
        "ZAR",
        "https://sellercentral.amazon.co.za",
    ),
    Marketplace(
        "A1VC38T7YXB528",
        "JP",
        "amazon.co.jp",
        Region.FE,
        "JPY",
        "https://sellercentral.amazon.co.jp",
    ),
    Marketplace(
        "A39IBJ37TRP1C6",
        "AU",
        "amazon.com.au",
        Region.FE,
        "AUD",
        "https://sellercentral.amazon.com.au",
    ),
    Marketplace(
        "A19VAU5U5O7RUS", "SG", "amazon.sg", Region.FE, "SGD", "https://sellercentral.amazon.sg"
    ),
]

MARKETPLACES: dict[str, Marketplace] = {m.id: m for m in _ALL}
BY_DOMAIN: dict[str, Marketplace] = {m.domain: m for m in _ALL}


def marketplace(marketplace_id: str) -> Marketplace:
    try:
        return MARKETPLACES[marketplace_id]
    except KeyError:
        raise ValueError(f"unknown Amazon marketplace id {marketplace_id!r}") from None
