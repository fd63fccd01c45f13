"""Shared by the Xero client and sandbox tests: token stores, the consent dance, documents."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests

REDIRECT_URI = "http://127.0.0.1:9/oauth/xero/callback"


class MemoryTokenStore:
    """Keeps the refresh token in memory and notes every save in `events`."""

    def __init__(self, token: str, events: list[str] | None = None) -> None:
        self.token = token
        self.saved: list[str] = []
        self.events = events if events is not None else []

    def rotate(self, exchange: Callable[[str], str]) -> None:
        self.save_refresh_token(exchange(self.token))

    def save_refresh_token(self, token: str) -> None:
        self.events.append("save")
        self.saved.append(token)
        self.token = token


class BrokenTokenStore(MemoryTokenStore):
    """A store whose database write fails."""

    def save_refresh_token(self, token: str) -> None:
        raise RuntimeError("database is read-only")


class RecordingSession(requests.Session):
    """Notes each Accounting API call in `events`, so tests can see what came first."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if "/api.xro/2.0/" in str(url):
            self.events.append("api")
        return super().request(method, url, *args, **kwargs)


class _Form(HTMLParser):
    """The first form of a page: where it posts and its hidden, select and button values."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        name = attributes.get("name", "")
        if tag == "form" and not self.action:
            self.action = attributes.get("action", "")
        elif tag in ("input", "button") and name:
            self.fields.setdefault(name, attributes.get("value", ""))
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in attributes:
            self.fields[self._select] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def consent(authorize_url: str, **overrides: str) -> requests.Response:
    """Open the consent page, press "Allow access", and return the redirect (not followed)."""
    page = requests.get(authorize_url, timeout=10)
    page.raise_for_status()
    form = _Form()
    form.feed(page.text)
    assert form.action, "the consent page has no form"
    return requests.post(
        urljoin(page.url, form.action),
        data=form.fields | overrides,
        allow_redirects=False,
        timeout=10,
    )


def redirect_params(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def invoice(
    number: str | None = "AMZ-0001",
    *,
    contact: str = "Amazon.co.uk customers",
    amount: str = "10.00",
    account: str = "200",
    tax_type: str = "OUTPUT2",
    currency: str = "GBP",
    status: str = "AUTHORISED",
    **extra: Any,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "Type": "ACCREC",
        "Contact": {"Name": contact},
        "Date": "2026-03-01",
        "DueDate": "2026-03-01",
        "Status": status,
        "CurrencyCode": currency,
        "LineAmountTypes": "Exclusive",
        "LineItems": [
            {
                "Description": "Order 202-1234567-1234567",
                "Quantity": Decimal("1"),
                "UnitAmount": Decimal(amount),
                "AccountCode": account,
                "TaxType": tax_type,
            }
        ],
        **extra,
    }
    if number is not None:
        document["InvoiceNumber"] = number
    return document


def credit_note(
    number: str = "AMZ-R-0001",
    *,
    contact: str = "Amazon.co.uk customers",
    amount: str = "5.00",
    currency: str = "GBP",
    status: str = "AUTHORISED",
) -> dict[str, Any]:
    return {
        "Type": "ACCRECCREDIT",
        "CreditNoteNumber": number,
        "Contact": {"Name": contact},
        "Date": "2026-03-02",
        "Status": status,
        "CurrencyCode": currency,
        "LineAmountTypes": "Exclusive",
        "LineItems": [
            {
                "Description": "Refund 202-1234567-1234567",
                "Quantity": Decimal("1"),
                "UnitAmount": Decimal(amount),
                "AccountCode": "200",
                "TaxType": "OUTPUT2",
            }
        ],
    }
