"""A minimal scripted browser: open a consent page and press its button (demo and tests)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import requests

from services.connect import ConnectService
from services.models import Integration


def _is_form_value(tag: str, attributes: dict[str, str]) -> bool:
    if tag == "button":
        return True
    return tag == "input" and attributes.get("type", "text") in ("hidden", "submit", "text")


class _FirstForm(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.fields: dict[str, str] = {}
        self._inside = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form" and not self._done and self.action is None:
            self.action = attributes.get("action", "")
            self.method = attributes.get("method", "get").lower()
            self._inside = True
        elif self._inside and attributes.get("name") and _is_form_value(tag, attributes):
            self.fields.setdefault(attributes["name"], attributes.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._inside:
            self._inside = False
            self._done = True


def submit_consent(
    browser: requests.Session, url: str, *, choose: dict[str, str | list[str]] | None = None
) -> requests.Response:
    """GET the consent page, submit its form, follow redirects to wherever it leads.

    `choose` sets form fields as a person would pick them (a list selects several options).
    """
    page = browser.get(url, timeout=10)
    page.raise_for_status()
    form = _FirstForm()
    form.feed(page.text)
    if form.action is None:
        raise RuntimeError(f"no form on the consent page {page.url}")
    target = urljoin(page.url, form.action)
    fields: dict[str, str | list[str]] = {**form.fields, **(choose or {})}
    if form.method == "post":
        return browser.post(target, data=fields, timeout=10)
    return browser.get(target, params=fields, timeout=10)


def consent_to_both(connect: ConnectService, integration: Integration, *, actor: str) -> None:
    """The seller consents at Amazon, then at Xero, through the links the bot made for
    `actor`: afterwards the integration is active (tests, benches)."""
    browser = requests.Session()
    submit_consent(browser, connect.amazon_consent_url(integration, actor=actor))
    submit_consent(browser, connect.xero_consent_url(integration, actor=actor))
