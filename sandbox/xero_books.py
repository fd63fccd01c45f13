"""Xero's accounting rules (`Books`) and an organisation's data: contacts, invoices, credit
notes, allocations, accounts and tax rates. Money moved through bank accounts (payments, bank
transactions and transfers) has its rules in sandbox.xero_banking."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sandbox.xero_wire import (
    JSON,
    Invalid,
    as_decimal,
    money,
    new_id,
    parse_input_date,
    xero_date,
)

# What Xero puts in the id of an element it did not save (a batch sent with summarizeErrors=false).
ZERO_GUID = "00000000-0000-0000-0000-000000000000"
# The id field of each kind of element a batch can create.
ELEMENT_IDS = {
    "Invoices": "InvoiceID",
    "CreditNotes": "CreditNoteID",
    "Contacts": "ContactID",
    "Allocations": "AllocationID",
    "Accounts": "AccountID",
    "Payments": "PaymentID",
    "BankTransactions": "BankTransactionID",
    "BankTransfers": "BankTransferID",
}
# Elements whose schema has no StatusAttributeString (Xero's spec): it is never added to them.
_NO_STATUS_ATTRIBUTE = ("TaxRates", "Accounts", "BankTransfers")

INVOICE_TYPES = ("ACCREC", "ACCPAY")
CREDIT_NOTE_TYPES = ("ACCRECCREDIT", "ACCPAYCREDIT")
STATUSES = ("DRAFT", "SUBMITTED", "DELETED", "AUTHORISED", "PAID", "VOIDED")
CREATABLE_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED")
_NEXT_STATUSES = {
    "DRAFT": ("DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"),
    "SUBMITTED": ("DRAFT", "SUBMITTED", "AUTHORISED", "DELETED"),
    "AUTHORISED": ("AUTHORISED", "VOIDED"),
}
LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")
REPORT_TAX_TYPES = (
    "OUTPUT",
    "INPUT",
    "ECOUTPUT",
    "ECOUTPUTSERVICES",
    "ECACQUISITIONS",
    "EXEMPTOUTPUT",
    "EXEMPTINPUT",
    "ZERORATEDOUTPUT",
    "ZERORATEDINPUT",
    "REVERSECHARGES",
    "MOSSSALES",
    "NONE",
    "CAPITALSALESOUTPUT",
    "CAPITALEXPENSESINPUT",
    "GSTONIMPORTS",
)


def chart_account(
    code: str | None, name: str, type_: str, class_: str, tax_type: str, **extra: object
) -> JSON:
    """An account as Xero lists it; bank accounts may have no code, and then carry none."""
    return {
        "AccountID": new_id(),
        **({"Code": code} if code is not None else {}),
        "Name": name,
        "Type": type_,
        "Class": class_,
        "TaxType": tax_type,
        "Status": "ACTIVE",
        "EnablePaymentsToAccount": False,
        "ShowInExpenseClaims": False,
        "HasAttachments": False,
        "AddToWatchlist": False,
        "UpdatedDateUTC": xero_date(datetime(2024, 1, 1, tzinfo=UTC)),
        **extra,
    }


def bank_account(code: str, currency: str) -> JSON:
    """The seller's own bank account in this currency, where Amazon deposits its payouts."""
    return chart_account(
        code,
        f"Business {currency} Account",
        "BANK",
        "ASSET",
        "NONE",
        BankAccountNumber=f"2000001234{code}",
        BankAccountType="BANK",
        CurrencyCode=currency,
    )


def default_accounts() -> list[JSON]:
    """A UK chart of accounts like Xero's demo company, trimmed to what Amazon postings use."""
    return [
        chart_account(
            "090",
            "Business Bank Account",
            "BANK",
            "ASSET",
            "NONE",
            BankAccountNumber="20000012345678",
            BankAccountType="BANK",
            CurrencyCode="GBP",
        ),
        chart_account("200", "Sales", "REVENUE", "REVENUE", "OUTPUT2"),
        chart_account("260", "Other Revenue", "REVENUE", "REVENUE", "OUTPUT2"),
        chart_account("310", "Cost of Goods Sold", "DIRECTCOSTS", "EXPENSE", "INPUT2"),
        chart_account("404", "Bank Fees", "EXPENSE", "EXPENSE", "NONE"),
        chart_account("429", "General Expenses", "EXPENSE", "EXPENSE", "INPUT2"),
        chart_account(
            "610", "Accounts Receivable", "CURRENT", "ASSET", "NONE", SystemAccount="DEBTORS"
        ),
        chart_account(
            "800", "Accounts Payable", "CURRLIAB", "LIABILITY", "NONE", SystemAccount="CREDITORS"
        ),
        chart_account("820", "VAT", "CURRLIAB", "LIABILITY", "NONE", SystemAccount="GST"),
    ]


def _tax_rate(tax_type: str, name: str, rate: str, report_tax_type: str) -> JSON:
    value = Decimal(rate)
    return {
        "Name": name,
        "TaxType": tax_type,
        "ReportTaxType": report_tax_type,
        "Status": "ACTIVE",
        "TaxComponents": [
            {"Name": "VAT", "Rate": value, "IsCompound": False, "IsNonRecoverable": False}
        ],
        "CanApplyToAssets": True,
        "CanApplyToEquity": True,
        "CanApplyToExpenses": True,
        "CanApplyToLiabilities": True,
        "CanApplyToRevenue": True,
        "DisplayTaxRate": value,
        "EffectiveRate": value,
    }


def default_tax_rates() -> list[JSON]:
    """The UK tax rates a new Xero organisation starts with (the ones Amazon sales need)."""
    return [
        _tax_rate("OUTPUT2", "20% (VAT on Income)", "20.0000", "OUTPUT"),
        _tax_rate("INPUT2", "20% (VAT on Expenses)", "20.0000", "INPUT"),
        _tax_rate("RROUTPUT", "5% (VAT on Income)", "5.0000", "OUTPUT"),
        _tax_rate("ZERORATEDOUTPUT", "Zero Rated Income", "0.0000", "ZERORATEDOUTPUT"),
        _tax_rate("EXEMPTOUTPUT", "Exempt Income", "0.0000", "EXEMPTOUTPUT"),
        _tax_rate("ECZROUTPUT", "Zero Rated EC Goods Income", "0.0000", "ECOUTPUT"),
        _tax_rate("NONE", "No VAT", "0.0000", "NONE"),
    ]


@dataclass
class SandboxOrg:
    """One Xero organisation (tenant): its settings, and the documents the API has made in it."""

    name: str = "Demo Company (UK)"
    tenant_id: str = field(default_factory=new_id)
    base_currency: str = "GBP"
    # Currencies enabled in Settings > Currencies; PLN and SEK are deliberately off.
    currencies: tuple[str, ...] = ("GBP", "EUR", "USD")
    country_code: str = "GB"
    accounts: list[JSON] = field(default_factory=default_accounts)
    tax_rates: list[JSON] = field(default_factory=default_tax_rates)
    contacts: dict[str, JSON] = field(default_factory=dict)
    invoices: dict[str, JSON] = field(default_factory=dict)
    credit_notes: dict[str, JSON] = field(default_factory=dict)
    payments: dict[str, JSON] = field(default_factory=dict)
    bank_transactions: dict[str, JSON] = field(default_factory=dict)
    bank_transfers: dict[str, JSON] = field(default_factory=dict)
    sequences: dict[str, int] = field(default_factory=dict)
    organisation_id: str = field(default_factory=new_id)
    # Settings > Advanced > Lock dates: "all users except advisers" and "all users". The app
    # acts for a standard user, so both stop it changing anything dated on or before them.
    period_lock_date: date | None = None
    end_of_year_lock_date: date | None = None

    def next_number(self, prefix: str, width: int = 4) -> str:
        self.sequences[prefix] = self.sequences.get(prefix, 0) + 1
        return f"{prefix}{self.sequences[prefix]:0{width}d}"

    def store(self, endpoint: str) -> dict[str, JSON]:
        return {
            "Invoices": self.invoices,
            "CreditNotes": self.credit_notes,
            "Contacts": self.contacts,
            "Payments": self.payments,
            "BankTransactions": self.bank_transactions,
            "BankTransfers": self.bank_transfers,
        }[endpoint]

    def snapshot(self) -> tuple[Any, ...]:
        # Documents are replaced, never mutated in place, so shallow copies are a full snapshot.
        return (
            dict(self.contacts),
            dict(self.invoices),
            dict(self.credit_notes),
            dict(self.payments),
            dict(self.bank_transactions),
            dict(self.bank_transfers),
            list(self.accounts),
            list(self.tax_rates),
            dict(self.sequences),
        )

    def restore(self, snapshot: tuple[Any, ...]) -> None:
        (
            self.contacts,
            self.invoices,
            self.credit_notes,
            self.payments,
            self.bank_transactions,
            self.bank_transfers,
            self.accounts,
            self.tax_rates,
            self.sequences,
        ) = snapshot

    def lock_error(self, day: date) -> str | None:
        """Xero's refusal of anything dated on or before a lock date (xeroizer#92 quotes it)."""
        for label, lock in (
            ("end of year lock date", self.end_of_year_lock_date),
            ("period lock date", self.period_lock_date),
        ):
            if lock is not None and day <= lock:
                stamp = lock.strftime("%d-%b-%Y")
                return f"The document date cannot be before the {label}, currently set at {stamp}"
        return None

    def currency_rate(self, currency: str) -> Decimal:
        # The sandbox's fixed "day rate" for a foreign currency, where Xero would use XE.com's.
        return Decimal("1.000000") if currency == self.base_currency else Decimal("1.150000")


def _blank_contact(contact_id: str) -> JSON:
    """A new active contact with the fields Xero fills in itself."""
    return {
        "ContactID": contact_id,
        "ContactStatus": "ACTIVE",
        "IsSupplier": False,
        "IsCustomer": False,
        "Addresses": [],
        "Phones": [],
        "ContactGroups": [],
        "ContactPersons": [],
        "HasAttachments": False,
        "HasValidationErrors": False,
    }


def answer(org: SandboxOrg, endpoint: str, build: Callable[[JSON, list[str]], None]) -> JSON:
    """Xero's answer for one element that `build` validates into `out` (saving it if valid) or
    refuses with messages in `errors`. A refused element leaves nothing behind (not even the
    contact it would have created) and carries the zero GUID as its id."""
    out: JSON = {}
    errors: list[str] = []
    before = org.snapshot()
    build(out, errors)
    if errors:
        org.restore(before)
        out["ValidationErrors"] = [{"Message": m} for m in errors]
        if endpoint not in _NO_STATUS_ATTRIBUTE:
            out["StatusAttributeString"] = "ERROR"
        if endpoint in ELEMENT_IDS:
            out = {ELEMENT_IDS[endpoint]: ZERO_GUID, **out}
        if endpoint in ("Invoices", "CreditNotes"):
            out["HasErrors"] = True
        elif endpoint in ("Contacts", "Payments"):
            out["HasValidationErrors"] = True
    elif endpoint not in _NO_STATUS_ATTRIBUTE:
        out["StatusAttributeString"] = "OK"
    return out


class Books:
    """Validates each element as Xero does and, if it is valid, saves it in the organisation."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock

    def _now(self) -> datetime:
        return self._clock()

    def apply(
        self, org: SandboxOrg, endpoint: str, method: str, element: JSON, unit_dp: int
    ) -> JSON:
        """Validate one element and, if it is valid, save it. Returns Xero's answer for it."""

        def build(out: JSON, errors: list[str]) -> None:
            if endpoint == "Contacts":
                self._contact(org, method, element, out, errors)
            elif endpoint == "TaxRates":
                self._tax_rate_element(org, method, element, out, errors)
            else:
                self._transaction(org, endpoint, method, element, out, errors, unit_dp)

        return answer(org, endpoint, build)

    # --- contacts -------------------------------------------------------------------------------

    @staticmethod
    def _contact_named(org: SandboxOrg, name: str, exclude: str | None = None) -> JSON | None:
        wanted = name.strip().casefold()
        return next(
            (
                c
                for c in org.contacts.values()
                if c["ContactStatus"] == "ACTIVE"
                and c["Name"].strip().casefold() == wanted
                and c["ContactID"] != exclude
            ),
            None,
        )

    def _contact(
        self, org: SandboxOrg, method: str, element: JSON, out: JSON, errors: list[str]
    ) -> None:
        existing = None
        contact_id = element.get("ContactID")
        if contact_id is not None:
            existing = org.contacts.get(str(contact_id).lower())
            if existing is None or method == "PUT":
                errors.append(
                    f"Contact with ContactID {contact_id} "
                    + ("already exists." if existing else "could not be found.")
                )
                return
        merged = {**(existing or {}), **element}
        name = merged.get("Name")
        if not isinstance(name, str) or not name.strip():
            errors.append("The contact name must be specified.")
            return
        out["Name"] = name
        if len(name) > 255:
            errors.append("The contact name must be 255 characters or fewer.")
        status = merged.get("ContactStatus", "ACTIVE")
        if status not in ("ACTIVE", "ARCHIVED"):
            errors.append(f"'{status}' is not a valid ContactStatus.")
        # Names are unique among active contacts only.
        clash = self._contact_named(org, name, exclude=existing["ContactID"] if existing else None)
        if clash is not None and status == "ACTIVE":
            errors.append(
                f"The contact name {name} is already assigned to another contact. "
                "The contact name must be unique across all active contacts."
            )
        currency = merged.get("DefaultCurrency")
        if currency is not None and currency not in org.currencies:
            errors.append(f"Organisation is not subscribed to currency {currency}")
        if errors:
            return
        contact = _blank_contact(existing["ContactID"] if existing else new_id())
        contact["ContactStatus"] = status
        for text_field in (
            "Name",
            "FirstName",
            "LastName",
            "EmailAddress",
            "ContactNumber",
            "AccountNumber",
            "TaxNumber",
            "CompanyNumber",
            "DefaultCurrency",
            "AccountsReceivableTaxType",
            "AccountsPayableTaxType",
        ):
            if isinstance(merged.get(text_field), str):
                contact[text_field] = merged[text_field]
        for list_field in ("Addresses", "Phones", "ContactPersons"):
            if isinstance(merged.get(list_field), list):
                contact[list_field] = merged[list_field]
        if existing:
            contact["IsSupplier"], contact["IsCustomer"] = (
                existing["IsSupplier"],
                existing["IsCustomer"],
            )
        contact["UpdatedDateUTC"] = xero_date(self._now())
        org.contacts[contact["ContactID"]] = contact
        out.clear()
        out.update(copy.deepcopy(contact))

    def resolve_contact(
        self, org: SandboxOrg, given: object, role: str | None, errors: list[str]
    ) -> JSON | None:
        """Find the document's contact; an unknown Name makes a new contact, as Xero does.
        `role` (IsCustomer or IsSupplier) is what the document makes of the contact."""
        if not isinstance(given, dict) or not any(
            given.get(k) for k in ("ContactID", "Name", "ContactNumber")
        ):
            errors.append("A Contact must be specified for this type of transaction")
            return None
        contact = None
        if given.get("ContactID"):
            contact = org.contacts.get(str(given["ContactID"]).lower())
            if contact is None:
                errors.append(f"Contact with ContactID {given['ContactID']} could not be found.")
                return None
        elif given.get("ContactNumber"):
            contact = next(
                (
                    c
                    for c in org.contacts.values()
                    if c.get("ContactNumber") == given["ContactNumber"]
                ),
                None,
            )
            if contact is None and not given.get("Name"):
                errors.append(
                    f"Contact with ContactNumber {given['ContactNumber']} could not be found."
                )
                return None
        if contact is None:
            name = str(given["Name"])
            contact = self._contact_named(org, name)
            if contact is None:
                contact = _blank_contact(new_id()) | {
                    "Name": name,
                    "UpdatedDateUTC": xero_date(self._now()),
                }
                if given.get("ContactNumber"):
                    contact["ContactNumber"] = str(given["ContactNumber"])
                org.contacts[contact["ContactID"]] = contact
        if role is not None and not contact[role]:
            contact = {**contact, role: True}
            org.contacts[contact["ContactID"]] = contact
        return contact

    # --- invoices and credit notes --------------------------------------------------------------

    def _transaction(
        self,
        org: SandboxOrg,
        endpoint: str,
        method: str,
        element: JSON,
        out: JSON,
        errors: list[str],
        unit_dp: int,
    ) -> None:
        is_invoice = endpoint == "Invoices"
        id_field = "InvoiceID" if is_invoice else "CreditNoteID"
        number_field = "InvoiceNumber" if is_invoice else "CreditNoteNumber"
        types = INVOICE_TYPES if is_invoice else CREDIT_NOTE_TYPES
        store = org.store(endpoint)

        existing = None
        if element.get(id_field):
            existing = store.get(str(element[id_field]).lower())
            if existing is None or method == "PUT":
                noun = "Invoice" if is_invoice else "Credit note"
                state = "already exists; use POST to update it" if existing else "does not exist"
                errors.append(f"{noun} {element[id_field]} {state}.")
                return
        elif method == "POST" and element.get(number_field):
            existing = next(
                (
                    d
                    for d in store.values()
                    if d.get(number_field) == element[number_field]
                    and d["Type"] in ("ACCREC", "ACCRECCREDIT")
                ),
                None,
            )
        if existing is not None and existing["Status"] in ("PAID", "VOIDED", "DELETED"):
            errors.append(f"This document cannot be edited as it is {existing['Status'].lower()}.")
            return
        merged = {**(existing or {}), **element}

        type_ = merged.get("Type")
        if type_ in types:
            out["Type"] = type_
        else:
            noun = "Invoice" if is_invoice else "Credit Note"
            errors.append(f"{noun} Type must be one of {', '.join(types)}.")
        status = merged.get("Status", "DRAFT")
        if status not in STATUSES:
            errors.append(f"'{status}' is not a valid Status.")
        elif existing is None and status not in CREATABLE_STATUSES:
            errors.append(
                f"{'Invoice' if is_invoice else 'Credit note'} not of valid status for creation"
            )
        elif existing is not None and status not in _NEXT_STATUSES[existing["Status"]]:
            errors.append(f"The status cannot change from {existing['Status']} to {status}.")
        elif status == "VOIDED" and existing is not None and existing.get("Payments"):
            # Payments cannot be edited, only deleted (XeroAPI/xero-php-oauth2#91), and Xero
            # voids nothing that money was paid against.
            errors.append("A document with payments cannot be voided: delete its payments first.")
        else:
            out["Status"] = status
        line_amount_types = merged.get("LineAmountTypes", "Exclusive")
        if line_amount_types in LINE_AMOUNT_TYPES:
            out["LineAmountTypes"] = line_amount_types
        else:
            errors.append(
                f"'{line_amount_types}' is not a valid LineAmountTypes value. "
                f"Use one of {', '.join(LINE_AMOUNT_TYPES)}."
            )
        currency = merged.get("CurrencyCode", org.base_currency)
        if currency in org.currencies:
            out["CurrencyCode"] = currency
        else:
            errors.append(f"Organisation is not subscribed to currency {currency}")
        for date_field in ("Date", "DueDate"):
            if date_field in merged:
                try:
                    out[date_field] = xero_date(parse_input_date(merged[date_field], date_field))
                except Invalid as invalid:
                    errors.append(str(invalid))
        out.setdefault("Date", xero_date(self._now().date()))
        locked = org.lock_error(parse_input_date(out["Date"], "Date"))
        if locked is not None:
            errors.append(locked)
        # CreditNotes have no Url in Xero's schema.
        for text_field in ("Reference", "BrandingThemeID", *(("Url",) if is_invoice else ())):
            if isinstance(merged.get(text_field), str):
                out[text_field] = merged[text_field]

        type_ = out.get("Type")
        role = (
            None
            if type_ is None
            else ("IsSupplier" if type_.startswith("ACCPAY") else "IsCustomer")
        )
        contact = self.resolve_contact(org, merged.get("Contact"), role, errors)
        if contact is not None:
            out["Contact"] = {"ContactID": contact["ContactID"], "Name": contact["Name"]}

        number = merged.get(number_field)
        sales = type_ in ("ACCREC", "ACCRECCREDIT")
        if number is None and sales:
            prefix = "INV-" if is_invoice else "CN-"
            number = org.next_number(prefix)
            while any(d.get(number_field) == number for d in store.values()):
                number = org.next_number(prefix)
        if number is not None:
            out[number_field] = str(number)
            own_id = existing[id_field] if existing else None
            # Sales numbers are unique in an organisation; bills may repeat a supplier's number.
            if sales and any(
                d.get(number_field, "").casefold() == str(number).casefold()
                and d["Type"] == type_
                and d[id_field] != own_id
                for d in store.values()
            ):
                errors.append(
                    "Invoice # must be unique." if is_invoice else "Credit Note # must be unique."
                )

        self.lines(org, merged.get("LineItems", []), out, errors, unit_dp)
        if errors:
            return

        total = out["Total"]
        document = {
            id_field: existing[id_field] if existing else new_id(),
            **out,
            "CurrencyRate": org.currency_rate(currency),
            "HasAttachments": False,
            # Payments stay with the document through edits (sandbox.xero_banking makes them).
            "Payments": existing.get("Payments", []) if existing else [],
            "UpdatedDateUTC": xero_date(self._now()),
        }
        if is_invoice:
            credited = existing["AmountCredited"] if existing else Decimal("0.00")
            paid = existing["AmountPaid"] if existing else Decimal("0.00")
            document.update(
                {
                    "AmountDue": total - credited - paid,
                    "AmountPaid": paid,
                    "AmountCredited": credited,
                    "SentToContact": False,
                    "IsDiscounted": False,
                    "HasErrors": False,
                    "CreditNotes": existing["CreditNotes"] if existing else [],
                    "Prepayments": [],
                    "Overpayments": [],
                }
            )
            if document["AmountDue"] < 0:
                errors.append(
                    "The invoice total cannot be less than the credit already allocated to it."
                )
                return
        else:
            used = (
                sum(
                    (a["Amount"] for a in [*existing["Allocations"], *existing["Payments"]]),
                    Decimal("0.00"),
                )
                if existing
                else Decimal("0.00")
            )
            document.update(
                {
                    "RemainingCredit": total - used,
                    "HasErrors": False,
                    "Allocations": existing["Allocations"] if existing else [],
                }
            )
            if document["RemainingCredit"] < 0:
                errors.append(
                    "The credit note total cannot be less than the credit already "
                    "allocated from it."
                )
                return
        store[document[id_field]] = document
        out.clear()
        out.update(copy.deepcopy(document))

    def lines(
        self, org: SandboxOrg, lines: object, out: JSON, errors: list[str], unit_dp: int
    ) -> None:
        """Line items and totals, computed and rounded as Xero does."""
        if not isinstance(lines, list):
            errors.append("LineItems must be a list.")
            return
        if not lines and out.get("Status") in ("SUBMITTED", "AUTHORISED"):
            errors.append("At least one line item is required to approve a document.")
        accounts = {a["Code"]: a for a in org.accounts if a["Status"] == "ACTIVE" and "Code" in a}
        tax_rates = {t["TaxType"]: t for t in org.tax_rates if t["Status"] == "ACTIVE"}
        amount_types = out.get("LineAmountTypes", "Exclusive")
        result: list[JSON] = []
        for line in lines:
            if not isinstance(line, dict):
                errors.append("Each line item must be an object.")
                continue
            item: JSON = {"LineItemID": str(line.get("LineItemID") or new_id())}
            if isinstance(line.get("Description"), str):
                item["Description"] = line["Description"]
            try:
                quantity = as_decimal(line.get("Quantity", 1), "Quantity").quantize(
                    Decimal("0.0001")
                )
                unit = line.get("UnitAmount")
                if unit is None and line.get("LineAmount") is not None:
                    unit = as_decimal(line["LineAmount"], "LineAmount") / (quantity or 1)
                unit_amount = as_decimal(unit if unit is not None else 0, "UnitAmount")
                unit_amount = (
                    money(unit_amount)
                    if unit_dp == 2
                    else unit_amount.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
                )
                line_amount = (
                    money(as_decimal(line["LineAmount"], "LineAmount"))
                    if line.get("LineAmount") is not None
                    else money(quantity * unit_amount)
                )
            except Invalid as invalid:
                errors.append(str(invalid))
                continue
            item.update(Quantity=quantity, UnitAmount=unit_amount, LineAmount=line_amount)
            code = line.get("AccountCode")
            account = accounts.get(str(code)) if code is not None else None
            if code is not None:
                item["AccountCode"] = str(code)
                if account is None:
                    errors.append(f"Account code '{code}' is not a valid code for this document.")
            elif out.get("Status") in ("SUBMITTED", "AUTHORISED"):
                errors.append(
                    "An account code must be specified for each line item of an approved document."
                )
            tax_type = line.get("TaxType") or (account["TaxType"] if account else "NONE")
            if amount_types == "NoTax":
                tax_type = "NONE"
            rate = tax_rates.get(str(tax_type))
            if rate is None:
                errors.append(
                    f"The TaxType code '{tax_type}' does not exist or cannot be used "
                    "for this type of transaction."
                )
                continue
            item["TaxType"] = str(tax_type)
            percent = rate["EffectiveRate"]
            if amount_types == "NoTax":
                tax = Decimal("0.00")
            elif line.get("TaxAmount") is not None:
                try:
                    tax = money(as_decimal(line["TaxAmount"], "TaxAmount"))
                except Invalid as invalid:
                    errors.append(str(invalid))
                    continue
            elif amount_types == "Inclusive":
                tax = money(line_amount * percent / (100 + percent))
            else:
                tax = money(line_amount * percent / 100)
            item["TaxAmount"] = tax
            item["Tracking"] = line["Tracking"] if isinstance(line.get("Tracking"), list) else []
            result.append(item)
        out["LineItems"] = result
        line_total = sum((i["LineAmount"] for i in result), Decimal("0.00"))
        tax_total = sum((i["TaxAmount"] for i in result), Decimal("0.00"))
        if amount_types == "Inclusive":
            out.update(SubTotal=line_total - tax_total, TotalTax=tax_total, Total=line_total)
        else:
            out.update(SubTotal=line_total, TotalTax=tax_total, Total=line_total + tax_total)

    def allocation(self, org: SandboxOrg, credit_note_id: str, element: JSON) -> JSON:
        credit_note = org.credit_notes[credit_note_id]
        out: JSON = {
            "CreditNote": {
                "CreditNoteID": credit_note_id,
                "CreditNoteNumber": credit_note.get("CreditNoteNumber", ""),
            }
        }
        errors: list[str] = []
        given = element.get("Invoice")
        invoice = None
        if isinstance(given, dict) and given.get("InvoiceID"):
            invoice = org.invoices.get(str(given["InvoiceID"]).lower())
        elif isinstance(given, dict) and given.get("InvoiceNumber"):
            invoice = next(
                (
                    i
                    for i in org.invoices.values()
                    if i.get("InvoiceNumber") == given["InvoiceNumber"]
                ),
                None,
            )
        if invoice is None:
            errors.append("Invoice could not be found.")
        else:
            out["Invoice"] = {
                "InvoiceID": invoice["InvoiceID"],
                "InvoiceNumber": invoice.get("InvoiceNumber", ""),
            }
        try:
            amount = money(as_decimal(element.get("Amount"), "Amount"))
            out["Amount"] = amount
        except Invalid as invalid:
            errors.append(str(invalid))
            amount = None
        try:
            if "Date" not in element:
                raise Invalid("A date must be specified for the allocation.")
            out["Date"] = xero_date(parse_input_date(element["Date"], "Date"))
        except Invalid as invalid:
            errors.append(str(invalid))
        if credit_note["Status"] != "AUTHORISED":
            errors.append("Only AUTHORISED credit notes can be allocated.")
        if invoice is not None:
            if invoice["Status"] != "AUTHORISED":
                errors.append("Only AUTHORISED invoices can have credit allocated to them.")
            if {invoice["Type"], credit_note["Type"]} not in (
                {"ACCREC", "ACCRECCREDIT"},
                {"ACCPAY", "ACCPAYCREDIT"},
            ):
                errors.append(
                    "Sales credit notes can only be allocated to sales invoices, "
                    "and purchase credit notes to bills."
                )
            if invoice["CurrencyCode"] != credit_note["CurrencyCode"]:
                errors.append("The invoice and credit note must be in the same currency.")
            if invoice["Contact"]["ContactID"] != credit_note["Contact"]["ContactID"]:
                errors.append("The invoice and credit note must be for the same contact.")
        if amount is not None:
            if amount <= 0:
                errors.append("Amount must be greater than zero.")
            if amount > credit_note["RemainingCredit"]:
                errors.append(
                    "The amount to allocate exceeds the remaining credit on the credit note."
                )
            if invoice is not None and amount > invoice["AmountDue"]:
                errors.append("The amount to allocate exceeds the amount due on the invoice.")
        if errors:
            out["AllocationID"] = ZERO_GUID
            out["ValidationErrors"] = [{"Message": m} for m in errors]
            out["StatusAttributeString"] = "ERROR"
            return out
        assert invoice is not None and amount is not None
        allocation_id = new_id()
        out["AllocationID"] = allocation_id
        stamp = xero_date(self._now())
        due = invoice["AmountDue"] - amount
        remaining = credit_note["RemainingCredit"] - amount
        applied = {
            "CreditNoteID": credit_note_id,
            "CreditNoteNumber": credit_note.get("CreditNoteNumber", ""),
            "AppliedAmount": amount,
            "Date": out["Date"],
        }
        org.invoices[invoice["InvoiceID"]] = {
            **invoice,
            "AmountDue": due,
            "AmountCredited": invoice["AmountCredited"] + amount,
            "CreditNotes": [*invoice["CreditNotes"], applied],
            "UpdatedDateUTC": stamp,
            **({"Status": "PAID", "FullyPaidOnDate": out["Date"]} if due == 0 else {}),
        }
        allocation = {
            "AllocationID": allocation_id,
            "Amount": amount,
            "Date": out["Date"],
            "Invoice": out["Invoice"],
        }
        org.credit_notes[credit_note_id] = {
            **credit_note,
            "RemainingCredit": remaining,
            "UpdatedDateUTC": stamp,
            "Allocations": [*credit_note["Allocations"], allocation],
            **({"Status": "PAID", "FullyPaidOnDate": out["Date"]} if remaining == 0 else {}),
        }
        out["StatusAttributeString"] = "OK"
        return out

    def _tax_rate_element(
        self, org: SandboxOrg, method: str, element: JSON, out: JSON, errors: list[str]
    ) -> None:
        existing = None
        if method == "POST":
            existing = next(
                (
                    t
                    for t in org.tax_rates
                    if t["TaxType"] == element.get("TaxType") or t["Name"] == element.get("Name")
                ),
                None,
            )
        merged = {**(existing or {}), **element}
        name = merged.get("Name")
        if not isinstance(name, str) or not name.strip():
            errors.append("The tax rate name must be specified.")
            return
        out["Name"] = name
        if any(
            t["Name"].casefold() == name.casefold() and t is not existing for t in org.tax_rates
        ):
            errors.append(f"The tax rate name '{name}' is already in use.")
        report_tax_type = merged.get("ReportTaxType", "OUTPUT")
        if report_tax_type not in REPORT_TAX_TYPES:
            errors.append(
                f"'{report_tax_type}' is not a valid ReportTaxType for this organisation."
            )
        components = merged.get("TaxComponents")
        if not isinstance(components, list) or not components:
            errors.append("A tax rate needs at least one tax component.")
            return
        parsed: list[JSON] = []
        for component in components:
            try:
                rate = as_decimal(
                    component.get("Rate") if isinstance(component, dict) else None, "Rate"
                ).quantize(Decimal("0.0001"))
            except Invalid as invalid:
                errors.append(str(invalid))
                continue
            if rate < 0:
                errors.append("A tax rate cannot be negative.")
            parsed.append(
                {
                    "Name": str(component.get("Name") or name),
                    "Rate": rate,
                    "IsCompound": bool(component.get("IsCompound", False)),
                    "IsNonRecoverable": False,
                }
            )
        if errors:
            return
        effective = sum((c["Rate"] for c in parsed), Decimal("0.0000"))
        tax_type = existing["TaxType"] if existing else org.next_number("TAX", 3)
        rate_doc = {
            **_tax_rate(tax_type, name, "0", str(report_tax_type)),
            "TaxComponents": parsed,
            "DisplayTaxRate": effective,
            "EffectiveRate": effective,
            "Status": merged.get("Status", "ACTIVE"),
        }
        org.tax_rates = [t for t in org.tax_rates if t is not existing] + [rate_doc]
        out.clear()
        out.update(copy.deepcopy(rate_doc))
