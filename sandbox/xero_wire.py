"""Xero's wire formats: JSON with exact decimals, XML, /Date(ms)/ dates, money, and error bodies."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from xml.etree import ElementTree

from flask import Response, request

JSON = dict[str, Any]

CENT = Decimal("0.01")


class Invalid(Exception):
    """One validation message for the element being prepared."""


def new_id() -> str:
    return str(uuid.uuid4())


def to_json(value: object) -> str:
    """JSON with Decimals written as numbers with their exact digits (never through float)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(item) for item in value) + "]"
    return json.dumps(value)


def _singular(name: str) -> str:
    if name == "Elements":
        return "DataContractBase"
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("sses"):
        return name[:-2]
    return name[:-1] if name.endswith("s") else name


def _xml_fill(parent: ElementTree.Element, value: object) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _xml_fill(ElementTree.SubElement(parent, key), item)
    elif isinstance(value, list):
        for item in value:
            _xml_fill(ElementTree.SubElement(parent, _singular(parent.tag)), item)
    elif isinstance(value, bool):
        parent.text = "true" if value else "false"
    elif isinstance(value, Decimal):
        parent.text = format(value, "f")
    elif value is not None:
        parent.text = str(value)


def to_xml(root: str, payload: JSON) -> str:
    element = ElementTree.Element(root)
    _xml_fill(element, payload)
    return ElementTree.tostring(element, encoding="unicode")


def xero_date(moment: datetime | date) -> str:
    """Xero's JSON dates: /Date(milliseconds since the epoch+0000)/."""
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return f"/Date({int(moment.timestamp() * 1000)}+0000)/"


_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def parse_xero_date(text: str) -> datetime | None:
    match = _MS_DATE.match(text)
    if match is None:
        return None
    return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=UTC)


def parse_input_date(value: object, label: str) -> date:
    if isinstance(value, str):
        parsed = parse_xero_date(value)
        if parsed is not None:
            return parsed.date()
        for pattern in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"):
            try:
                return datetime.strptime(value, pattern).date()
            except ValueError:
                continue
    raise Invalid(f"{label} '{value}' is not a valid date. Use the format YYYY-MM-DD.")


def as_decimal(value: object, label: str) -> Decimal:
    # JSON numbers arrive as int or Decimal (bodies are parsed with parse_float=Decimal).
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise Invalid(f"{label} must be a number.")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise Invalid(f"{label} must be a number.") from None
    if not number.is_finite():
        raise Invalid(f"{label} must be a number.")
    return number


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def problem(status: int, title: str, detail: str) -> Response:
    """The problem body (Title, Status, Detail) Xero answers its 401s, 403s and 429s with."""
    body: JSON = {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": new_id(),
        "Extensions": {},
    }
    return Response(json.dumps(body), status=status, mimetype="application/json")


def render(payload: JSON, status: int = 200, root: str = "Response") -> Response:
    # Xero answers XML unless the caller asks for JSON.
    if "application/json" in request.headers.get("Accept", ""):
        return Response(to_json(payload), status=status, mimetype="application/json")
    return Response(to_xml(root, payload), status=status, mimetype="text/xml")


def api_error(
    number: int, type_: str, message: str, elements: list[JSON] | None = None
) -> Response:
    body: JSON = {"ErrorNumber": number, "Type": type_, "Message": message}
    if elements is not None:
        body["Elements"] = elements
    return render(body, 400, root="ApiException")


def validation_error(elements: list[JSON]) -> Response:
    return api_error(10, "ValidationException", "A validation exception occurred", elements)


def not_found() -> Response:
    return Response(
        "The resource you're looking for cannot be found", status=404, mimetype="text/plain"
    )
