"""Xero's list parameters: the `where` parser, `order`, flags, If-Modified-Since, summaryOnly."""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sandbox.xero_wire import JSON, parse_xero_date

_WHERE_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?)'
    r"|(?P<op>==|!=|>=|<=|&&|\|\||[><().,!])|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
)
Predicate = Callable[[JSON], bool]


class QueryError(ValueError):
    """A query the sandbox cannot answer faithfully: Xero's 400 QueryParseException."""


class WhereError(QueryError):
    pass


def _field(document: JSON, path: Sequence[str]) -> object:
    value: object = document
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if isinstance(value, str):
        return parse_xero_date(value) or value
    return value


def _compare(left: object, op: str, right: object) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        # Xero's filters match text case-insensitively, as its database collation does.
        left, right = left.casefold(), right.casefold()
    elif isinstance(left, bool) or isinstance(right, bool) or left is None or right is None:
        if op in ("==", "!="):
            return (left == right) == (op == "==")
        return False
    elif not (
        (isinstance(left, Decimal | int) and isinstance(right, Decimal | int))
        or (isinstance(left, datetime) and isinstance(right, datetime))
    ):
        return op == "!="
    operations: dict[str, Callable[[Any, Any], bool]] = {
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
    }
    return operations[op](left, right)


class _WhereParser:
    """The subset of Xero's `where` syntax (Dynamic LINQ) that integrations use:
    comparisons, AND/OR/NOT, parentheses, Guid(...), DateTime(...), Contains/StartsWith/EndsWith.
    """

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text):
            match = _WHERE_TOKEN.match(text, position)
            if match is None or match.end() == position:
                if text[position:].strip() == "":
                    break
                raise WhereError(f"Unexpected text in where clause at position {position}.")
            kind = match.lastgroup
            assert kind is not None
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.index = 0

    def parse(self) -> Predicate:
        try:
            predicate = self._or()
        except ValueError as error:
            raise WhereError(str(error)) from None
        if self.index != len(self.tokens):
            raise WhereError("Unexpected text at the end of the where clause.")
        return predicate

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _take(self, value: str | None = None) -> tuple[str, str]:
        token = self._peek()
        if token is None or (value is not None and token[1].upper() != value.upper()):
            raise WhereError(f"Expected {value or 'more'} in the where clause.")
        self.index += 1
        return token

    def _at(self, *values: str) -> bool:
        token = self._peek()
        return token is not None and token[1].upper() in values

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._at("OR", "||"):
            self._take()
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else lambda doc: any(p(doc) for p in parts)

    def _and(self) -> Predicate:
        parts = [self._not()]
        while self._at("AND", "&&"):
            self._take()
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else lambda doc: all(p(doc) for p in parts)

    def _not(self) -> Predicate:
        if self._at("NOT", "!"):
            self._take()
            inner = self._not()
            return lambda doc: not inner(doc)
        if self._at("("):
            self._take("(")
            inner = self._or()
            self._take(")")
            return inner
        return self._comparison()

    def _comparison(self) -> Predicate:
        kind, name = self._take()
        if kind != "name":
            raise WhereError(f"Expected a field name, not {name!r}.")
        path = [name]
        while self._at("."):
            self._take(".")
            name = self._take()[1]
            if self._at("("):
                return self._method(path, name)
            path.append(name)
        kind, op = self._take()
        if kind != "op" or op not in ("==", "!=", ">", ">=", "<", "<="):
            raise WhereError(f"Expected a comparison after {'.'.join(path)}.")
        right = self._value()
        return lambda doc: _compare(_field(doc, path), op, right)

    def _method(self, path: list[str], name: str) -> Predicate:
        self._take("(")
        argument = self._value()
        self._take(")")
        tests: dict[str, Callable[[str, str], bool]] = {
            "CONTAINS": lambda a, b: b in a,
            "STARTSWITH": lambda a, b: a.startswith(b),
            "ENDSWITH": lambda a, b: a.endswith(b),
        }
        test = tests.get(name.upper())
        if test is None or not isinstance(argument, str):
            raise WhereError(f"{name} is not supported in where clauses.")
        needle = argument.casefold()

        def predicate(doc: JSON) -> bool:
            value = _field(doc, path)
            return isinstance(value, str) and test(value.casefold(), needle)

        return predicate

    def _value(self) -> object:
        kind, text = self._take()
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "num":
            return Decimal(text)
        upper = text.upper()
        if upper in ("TRUE", "FALSE"):
            return upper == "TRUE"
        if upper == "NULL":
            return None
        if upper == "GUID":
            self._take("(")
            value = self._value()
            self._take(")")
            return str(value).lower()
        if upper == "DATETIME":
            self._take("(")
            parts = [int(self._take()[1])]
            while self._at(","):
                self._take(",")
                parts.append(int(self._take()[1]))
            self._take(")")
            if not 3 <= len(parts) <= 6:
                raise WhereError("DateTime(...) needs a year, month and day.")
            year, month, day, hour, minute, second = (*parts, 0, 0, 0)[:6]
            try:
                return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            except ValueError:
                raise WhereError("DateTime(...) needs a valid year, month and day.") from None
        raise WhereError(f"Unexpected {text!r} in the where clause.")


def parse_where(text: str) -> Predicate:
    return _WhereParser(text).parse()


# --- the other list parameters: flags, order, If-Modified-Since, summaryOnly -------------------

# The fields each list can be ordered by: its scalar fields. Any other `order` is refused, never
# ignored, so a test cannot pass on an order the sandbox did not apply.
_ORDER_FIELDS: dict[str, tuple[str, ...]] = {
    "Invoices": (
        "InvoiceID",
        "InvoiceNumber",
        "Type",
        "Reference",
        "Date",
        "DueDate",
        "Status",
        "LineAmountTypes",
        "CurrencyCode",
        "CurrencyRate",
        "SubTotal",
        "TotalTax",
        "Total",
        "AmountDue",
        "AmountPaid",
        "AmountCredited",
        "FullyPaidOnDate",
        "UpdatedDateUTC",
        "SentToContact",
        "HasErrors",
        "Contact.ContactID",
        "Contact.Name",
    ),
    "CreditNotes": (
        "CreditNoteID",
        "CreditNoteNumber",
        "Type",
        "Reference",
        "Date",
        "DueDate",
        "Status",
        "LineAmountTypes",
        "CurrencyCode",
        "CurrencyRate",
        "SubTotal",
        "TotalTax",
        "Total",
        "RemainingCredit",
        "FullyPaidOnDate",
        "UpdatedDateUTC",
        "HasErrors",
        "Contact.ContactID",
        "Contact.Name",
    ),
    "Contacts": (
        "ContactID",
        "Name",
        "FirstName",
        "LastName",
        "EmailAddress",
        "ContactNumber",
        "AccountNumber",
        "ContactStatus",
        "TaxNumber",
        "CompanyNumber",
        "DefaultCurrency",
        "IsSupplier",
        "IsCustomer",
        "UpdatedDateUTC",
    ),
    "TaxRates": ("Name", "TaxType", "ReportTaxType", "Status", "DisplayTaxRate", "EffectiveRate"),
    "Accounts": (
        "AccountID",
        "Code",
        "Name",
        "Type",
        "Class",
        "TaxType",
        "Status",
        "BankAccountNumber",
        "CurrencyCode",
        "SystemAccount",
        "UpdatedDateUTC",
    ),
    "Currencies": ("Code", "Description"),
    "Payments": (
        "PaymentID",
        "Date",
        "Amount",
        "BankAmount",
        "Reference",
        "CurrencyRate",
        "PaymentType",
        "Status",
        "UpdatedDateUTC",
        "IsReconciled",
        "Account.AccountID",
        "Account.Code",
        "Invoice.InvoiceID",
        "Invoice.InvoiceNumber",
    ),
    "BankTransactions": (
        "BankTransactionID",
        "Type",
        "Reference",
        "Date",
        "Status",
        "LineAmountTypes",
        "CurrencyCode",
        "CurrencyRate",
        "SubTotal",
        "TotalTax",
        "Total",
        "IsReconciled",
        "UpdatedDateUTC",
        "Contact.ContactID",
        "Contact.Name",
        "BankAccount.AccountID",
        "BankAccount.Code",
    ),
    "BankTransfers": (
        "BankTransferID",
        "Date",
        "Amount",
        "Reference",
        "CurrencyRate",
        "CreatedDateUTC",
        "FromIsReconciled",
        "ToIsReconciled",
        "FromBankAccount.AccountID",
        "ToBankAccount.AccountID",
    ),
}
_ORDER_TERM = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?:\s+(ASC|DESC))?", re.IGNORECASE)
# summaryOnly=true: Xero's "lightweight fields" only; the sandbox drops the nested collections.
HEAVY_FIELDS: dict[str, tuple[str, ...]] = {
    "Invoices": ("LineItems", "Payments", "CreditNotes", "Prepayments", "Overpayments"),
    "Contacts": ("Addresses", "Phones", "ContactGroups", "ContactPersons"),
}


def flag(value: str | None, name: str, default: bool = False) -> bool:
    """A boolean query parameter, read as Xero reads it: true or false in any case (the SDKs
    send Python's True). Anything else is refused rather than taken as the default."""
    if value is None or value == "":
        return default
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise QueryError(f"'{value}' is not a valid value for {name}: use true or false.")


def modified_since(header: str | None) -> datetime | None:
    """If-Modified-Since as Xero's SDKs send it (ISO 8601, naive meaning UTC) or as an HTTP date."""
    if not header:
        return None
    try:
        moment = datetime.fromisoformat(header.strip())
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            raise QueryError(f"If-Modified-Since '{header}' is not a valid date.") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def updated_since(documents: list[JSON], since: datetime) -> list[JSON]:
    """Records created or modified at or after `since` (Xero: "since this timestamp")."""
    return [
        d
        for d in documents
        if (moment := parse_xero_date(str(d.get("UpdatedDateUTC", "")))) is not None
        and moment >= since
    ]


def _sort_key(value: object) -> tuple[int, Any]:
    # Missing values first, as SQL orders NULLs; each type compares only with its own kind.
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, int | Decimal):
        return (2, Decimal(value))
    if isinstance(value, datetime):
        return (3, value)
    return (4, str(value).casefold())


def ordered(documents: list[JSON], text: str | None, endpoint: str) -> list[JSON]:
    """Xero's `order`: comma-separated fields, each optionally followed by ASC or DESC."""
    if not text or not text.strip():
        return documents
    fields = {name.casefold(): name for name in _ORDER_FIELDS.get(endpoint, ())}
    terms: list[tuple[list[str], bool]] = []
    for term in text.split(","):
        match = _ORDER_TERM.fullmatch(term.strip())
        if match is None:
            raise QueryError(
                f"'{term.strip()}' is not a valid order: name a field, then ASC or DESC."
            )
        name = fields.get(match.group(1).casefold())
        if name is None:
            raise QueryError(f"{endpoint} cannot be ordered by '{match.group(1)}'.")
        terms.append((name.split("."), (match.group(2) or "ASC").upper() == "DESC"))
    # Sorting by the last key first, stably, gives the order of all the keys together.
    for path, descending in reversed(terms):
        documents = sorted(documents, key=_sort_by(path), reverse=descending)
    return documents


def _sort_by(path: Sequence[str]) -> Callable[[JSON], tuple[int, Any]]:
    return lambda document: _sort_key(_field(document, path))


def csv_values(value: str | None) -> list[str]:
    """Xero's list parameters: comma-separated, each item optionally double-quoted."""
    if not value:
        return []
    return [item.strip().strip('"') for item in value.split(",") if item.strip()]
