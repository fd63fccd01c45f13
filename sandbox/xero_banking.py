"""Xero's rules for money through bank accounts (`Banking`): creating accounts, payments on
invoices and credit notes (and deleting them), spend and receive money, transfers between bank
accounts, and the balance each leaves an account with, for tests to read.

Messages quoted from Xero (its OpenAPI spec, its API docs, or integrators' reports) say so where
they are made; the others are the sandbox's own words for a refusal Xero documents.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

from sandbox.xero_books import LINE_AMOUNT_TYPES, Books, SandboxOrg, answer, chart_account
from sandbox.xero_wire import (
    JSON,
    Invalid,
    as_decimal,
    money,
    new_id,
    parse_input_date,
    xero_date,
)

BANKING_ENDPOINTS = ("Accounts", "Payments", "BankTransactions", "BankTransfers")
# Each account type's class (Xero's Account Types table).
ACCOUNT_CLASSES = {
    "BANK": "ASSET",
    "CURRENT": "ASSET",
    "FIXED": "ASSET",
    "INVENTORY": "ASSET",
    "NONCURRENT": "ASSET",
    "PREPAYMENT": "ASSET",
    "CURRLIAB": "LIABILITY",
    "LIABILITY": "LIABILITY",
    "TERMLIAB": "LIABILITY",
    "PAYG": "LIABILITY",
    "EQUITY": "EQUITY",
    "DEPRECIATN": "EXPENSE",
    "DIRECTCOSTS": "EXPENSE",
    "EXPENSE": "EXPENSE",
    "OVERHEADS": "EXPENSE",
    "OTHERINCOME": "REVENUE",
    "REVENUE": "REVENUE",
    "SALES": "REVENUE",
}
_PAYMENT_TYPES = {
    "ACCREC": "ACCRECPAYMENT",
    "ACCPAY": "ACCPAYPAYMENT",
    "ACCRECCREDIT": "ARCREDITPAYMENT",
    "ACCPAYCREDIT": "APCREDITPAYMENT",
}
# Payments that bring money into the bank account; the others take it out.
_MONEY_IN = ("ACCRECPAYMENT", "APCREDITPAYMENT")
_OVERPAID = "Payment amount exceeds the amount outstanding on this document"  # Xero's spec
_NO_CONTACT = (  # Xero's spec, the BankTransactions example
    "The Contact must contain at least 1 of the following elements to identify the contact: "
    "Name, ContactID, ContactNumber"
)
_ZERO = Decimal("0.00")

Handler = Callable[[SandboxOrg, str, JSON, JSON, list[str], int], None]


def _account_ref(account: JSON) -> JSON:
    """How a payment, bank transaction or transfer names its account."""
    keys = ("AccountID", "Code", "Name")
    return {key: account[key] for key in keys if key in account}


def _currency(org: SandboxOrg, account: JSON) -> str:
    # Only bank accounts carry a currency; any other account is in the base currency.
    return str(account.get("CurrencyCode") or org.base_currency)


class Banking:
    """Validates each element as Xero does and, if it is valid, saves it in the organisation."""

    def __init__(self, books: Books, clock: Callable[[], datetime]) -> None:
        self._books = books
        self._clock = clock
        self._handlers: dict[str, Handler] = {
            "Accounts": self._account,
            "Payments": self._payment,
            "BankTransactions": self._bank_transaction,
            "BankTransfers": self._bank_transfer,
        }

    def apply(
        self, org: SandboxOrg, endpoint: str, method: str, element: JSON, unit_dp: int
    ) -> JSON:
        handler = self._handlers[endpoint]
        return answer(
            org, endpoint, lambda out, errors: handler(org, method, element, out, errors, unit_dp)
        )

    def balance(self, org: SandboxOrg, code: str) -> Decimal:
        """What payments, bank transactions and transfers leave the account with `code`, as a
        debit balance: a bank account's money, or the net of spend (+) and receive (-) money
        lines coded to any other account. Invoices and credit notes are not counted."""
        account = next((a for a in org.accounts if a.get("Code") == code), None)
        if account is None:
            raise KeyError(code)
        total = _ZERO
        for transaction in org.bank_transactions.values():
            if transaction["Status"] != "AUTHORISED":
                continue
            sign = 1 if transaction["Type"].startswith("RECEIVE") else -1
            if transaction["BankAccount"]["AccountID"] == account["AccountID"]:
                total += sign * transaction["Total"]
            for line in transaction["LineItems"]:
                if line.get("AccountCode") == code:
                    inclusive = transaction["LineAmountTypes"] == "Inclusive"
                    net = line["LineAmount"] - (line["TaxAmount"] if inclusive else _ZERO)
                    total -= sign * net
        for payment in org.payments.values():
            if (
                payment["Status"] == "AUTHORISED"
                and payment["Account"]["AccountID"] == account["AccountID"]
            ):
                sign = 1 if payment["PaymentType"] in _MONEY_IN else -1
                total += sign * payment["BankAmount"]
        return total

    # --- shared checks ----------------------------------------------------------------------

    def _now(self) -> datetime:
        return self._clock()

    @staticmethod
    def _find_account(org: SandboxOrg, given: object, label: str, errors: list[str]) -> JSON | None:
        """The active account an element names by AccountID or Code."""
        if not isinstance(given, dict) or not (given.get("AccountID") or given.get("Code")):
            errors.append(f"{label} must be given with an AccountID or a Code.")
            return None
        if given.get("AccountID"):
            wanted = str(given["AccountID"]).lower()
            found = next((a for a in org.accounts if a["AccountID"] == wanted), None)
        else:
            found = next((a for a in org.accounts if a.get("Code") == str(given["Code"])), None)
        if found is None or found["Status"] != "ACTIVE":
            errors.append(f"{label} could not be found.")
            return None
        return found

    def _date(self, org: SandboxOrg, element: JSON, errors: list[str]) -> date | None:
        """The element's Date (today when it has none), refused inside a locked period."""
        try:
            day = (
                parse_input_date(element["Date"], "Date")
                if element.get("Date") is not None
                else self._now().date()
            )
        except Invalid as invalid:
            errors.append(str(invalid))
            return None
        locked = org.lock_error(day)
        if locked is not None:
            errors.append(locked)
        return day

    @staticmethod
    def _amount(value: object, label: str, errors: list[str]) -> Decimal | None:
        try:
            amount = money(as_decimal(value, label))
        except Invalid as invalid:
            errors.append(str(invalid))
            return None
        if amount <= 0:
            errors.append(f"{label} must be greater than zero.")
        return amount

    # --- accounts ---------------------------------------------------------------------------

    def _account(
        self,
        org: SandboxOrg,
        method: str,
        element: JSON,
        out: JSON,
        errors: list[str],
        _unit_dp: int,
    ) -> None:
        """PUT Accounts: one new account (Xero's spec takes a single Account)."""
        name = element.get("Name")
        type_ = element.get("Type")
        code = element.get("Code")
        if not isinstance(name, str) or not name.strip():
            errors.append("Please enter a Name.")
        elif len(name) > 150:
            errors.append("The account name must be 150 characters or fewer.")
        elif any(a["Name"].casefold() == name.strip().casefold() for a in org.accounts):
            errors.append("Please enter a unique Name.")  # Xero's spec, the Accounts example
        if type_ not in ACCOUNT_CLASSES:
            errors.append(f"'{type_}' is not a valid account Type.")
        if code is None and type_ != "BANK":
            errors.append("Please enter a Code.")  # only bank accounts may go without one
        elif code is not None and (not isinstance(code, str) or not 0 < len(code) <= 10):
            errors.append("The account code must be 1 to 10 characters.")
        elif code is not None and any(a.get("Code") == code for a in org.accounts):
            errors.append("Please enter a unique Code.")
        tax_type = element.get("TaxType", "NONE")
        if not any(t["TaxType"] == tax_type for t in org.tax_rates):
            errors.append(f"The TaxType code '{tax_type}' does not exist.")
        bank: dict[str, object] = {}
        if type_ == "BANK":
            number = element.get("BankAccountNumber")
            currency = element.get("CurrencyCode", org.base_currency)
            if not isinstance(number, str) or not number.strip():
                errors.append("A bank account needs a BankAccountNumber.")
            if currency not in org.currencies:
                errors.append(f"Organisation is not subscribed to currency {currency}")
            bank = {
                "BankAccountNumber": number,
                "BankAccountType": element.get("BankAccountType", "BANK"),
                "CurrencyCode": currency,
            }
        elif "BankAccountNumber" in element or "CurrencyCode" in element:
            errors.append("Only bank accounts have a BankAccountNumber and a CurrencyCode.")
        if errors:
            out.update({k: element[k] for k in ("Code", "Name", "Type") if k in element})
            return
        assert isinstance(name, str) and isinstance(type_, str)
        account = chart_account(
            code,
            name.strip(),
            type_,
            ACCOUNT_CLASSES[type_],
            str(tax_type),
            EnablePaymentsToAccount=bool(element.get("EnablePaymentsToAccount", False)),
            UpdatedDateUTC=xero_date(self._now()),
            **bank,
        )
        org.accounts = [*org.accounts, account]
        out.update(copy.deepcopy(account))

    # --- payments ---------------------------------------------------------------------------

    def _document(self, org: SandboxOrg, element: JSON, errors: list[str]) -> JSON | None:
        """The invoice or credit note a payment is for, by id or number."""
        invoice = element.get("Invoice") or {}
        credit_note = element.get("CreditNote") or {}
        if not isinstance(invoice, dict) or not isinstance(credit_note, dict):
            errors.append("Invoice and CreditNote must be objects.")
            return None
        searches = (
            ("Invoice", org.invoices, "InvoiceID", "InvoiceNumber", invoice),
            ("Credit note", org.credit_notes, "CreditNoteID", "CreditNoteNumber", credit_note),
        )
        for noun, store, id_field, number_field, given in searches:
            number = given.get(number_field) or element.get(number_field)
            if given.get(id_field):
                found = store.get(str(given[id_field]).lower())
            elif number:
                found = next((d for d in store.values() if d.get(number_field) == number), None)
            else:
                continue
            if found is None:
                errors.append(f"{noun} could not be found.")
            return found
        errors.append("A payment must name the Invoice or CreditNote it pays.")
        return None

    def _payment(
        self,
        org: SandboxOrg,
        method: str,
        element: JSON,
        out: JSON,
        errors: list[str],
        _unit_dp: int,
    ) -> None:
        if element.get("PaymentID"):
            self._delete_payment(org, element, out, errors)
            return
        status = element.get("Status", "AUTHORISED")
        if status != "AUTHORISED":
            errors.append(f"A new payment is AUTHORISED, not {status}.")
        document = self._document(org, element, errors)
        given_account = element.get("Account") or (
            {"Code": element["Code"]} if element.get("Code") else None
        )
        account = self._find_account(org, given_account, "Account", errors)
        if account is not None and not (
            account["Type"] == "BANK" or account["EnablePaymentsToAccount"]
        ):
            # Xero's Payments docs: the account "needs to be either an account of type BANK or
            # have enable payments to this account switched on".
            errors.append(
                "The account needs to be either an account of type BANK or have enable "
                "payments to this account switched on."
            )
        amount = self._amount(element.get("Amount"), "Amount", errors)
        day = self._date(org, element, errors)
        reference = element.get("Reference", "")
        if not isinstance(reference, str):
            errors.append("Reference must be text.")
        # A refused payment is answered with what identifies it to the caller.
        out.update({k: element[k] for k in ("Amount", "Reference") if k in element})
        if document is None or account is None or amount is None or day is None:
            return
        is_invoice = "InvoiceID" in document
        if document["Status"] not in ("AUTHORISED", "PAID"):
            # Xero's Payments docs: payments apply to approved invoices and credit notes.
            errors.append(
                f"Payments can only be made on AUTHORISED documents, not on {document['Status']} "
                "ones."
            )
        outstanding = document["AmountDue"] if is_invoice else document["RemainingCredit"]
        if amount > outstanding:
            errors.append(_OVERPAID)
        currency, bank_currency = document["CurrencyCode"], _currency(org, account)
        if bank_currency not in (currency, org.base_currency):
            errors.append(
                f"A {currency} document can be paid from a {currency} or "
                f"{org.base_currency} account, not from a {bank_currency} one."
            )
        rate = document["CurrencyRate"]
        if element.get("CurrencyRate") is not None:
            try:
                rate = as_decimal(element["CurrencyRate"], "CurrencyRate").quantize(
                    Decimal("0.000001")
                )
            except Invalid as invalid:
                errors.append(str(invalid))
            else:
                if rate <= 0:
                    errors.append("CurrencyRate must be greater than zero.")
        if errors:
            return
        out.clear()
        stamp = xero_date(self._now())
        payment_id = new_id()
        number_field = "InvoiceNumber" if is_invoice else "CreditNoteNumber"
        id_field = "InvoiceID" if is_invoice else "CreditNoteID"
        payment: JSON = {
            "PaymentID": payment_id,
            "Date": xero_date(day),
            "BankAmount": amount if bank_currency == currency else money(amount / rate),
            "Amount": amount,
            "Reference": reference,
            "CurrencyRate": rate,
            "PaymentType": _PAYMENT_TYPES[document["Type"]],
            "Status": "AUTHORISED",
            "UpdatedDateUTC": stamp,
            "HasAccount": True,
            "IsReconciled": bool(element.get("IsReconciled", False)),
            "Account": _account_ref(account),
            # GET Payments lists a credit note's refund under Invoice too (XeroAPI/xero-ruby#48).
            "Invoice": {
                "Type": document["Type"],
                "InvoiceID": document[id_field],
                "InvoiceNumber": document.get(number_field, ""),
                "Contact": document["Contact"],
            },
            "HasValidationErrors": False,
        }
        org.payments[payment_id] = payment
        self._settle(org, document, payment, amount, stamp)
        out.update(copy.deepcopy(payment))
        if not is_invoice:
            # ...while the answer to creating one names it as the CreditNote (same report).
            named = out.pop("Invoice")
            out["CreditNote"] = {
                "Type": named["Type"],
                "CreditNoteID": named["InvoiceID"],
                "CreditNoteNumber": named["InvoiceNumber"],
                "Contact": named["Contact"],
            }

    @staticmethod
    def _settle(
        org: SandboxOrg, document: JSON, payment: JSON, amount: Decimal, stamp: str
    ) -> None:
        """Apply a payment (positive `amount`) or its deletion (negative) to its document."""
        is_invoice = "InvoiceID" in document
        if amount > 0:
            applied = {
                key: payment[key]
                for key in ("PaymentID", "Date", "Amount", "Reference", "CurrencyRate")
            }
            payments = [*document["Payments"], {**applied, "HasAccount": True}]
        else:
            payments = [p for p in document["Payments"] if p["PaymentID"] != payment["PaymentID"]]
        changed: JSON = {**document, "Payments": payments, "UpdatedDateUTC": stamp}
        if is_invoice:
            changed["AmountDue"] = document["AmountDue"] - amount
            changed["AmountPaid"] = document["AmountPaid"] + amount
            left = changed["AmountDue"]
        else:
            changed["RemainingCredit"] = document["RemainingCredit"] - amount
            left = changed["RemainingCredit"]
        if left == 0:
            changed.update(Status="PAID", FullyPaidOnDate=payment["Date"])
        elif document["Status"] == "PAID":
            changed["Status"] = "AUTHORISED"
            changed.pop("FullyPaidOnDate", None)
        store = org.invoices if is_invoice else org.credit_notes
        store[document["InvoiceID" if is_invoice else "CreditNoteID"]] = changed

    def _delete_payment(self, org: SandboxOrg, element: JSON, out: JSON, errors: list[str]) -> None:
        """POST Payments/{id} with Status DELETED reverses a payment; nothing else may change
        (payments are only created and deleted: Xero's Payments docs)."""
        payment = org.payments.get(str(element["PaymentID"]).lower())
        if payment is None:
            errors.append("Payment could not be found.")
            return
        out["PaymentID"] = payment["PaymentID"]
        if element.get("Status") != "DELETED":
            errors.append("Payments cannot be modified, only deleted: send Status DELETED.")
        elif payment["Status"] == "DELETED":
            errors.append("This payment has already been deleted.")
        locked = org.lock_error(parse_input_date(payment["Date"], "Date"))
        if locked is not None:
            errors.append(locked)
        if errors:
            return
        stamp = xero_date(self._now())
        deleted = {**payment, "Status": "DELETED", "UpdatedDateUTC": stamp}
        org.payments[payment["PaymentID"]] = deleted
        document_id = payment["Invoice"]["InvoiceID"]
        document = org.invoices.get(document_id) or org.credit_notes[document_id]
        self._settle(org, document, payment, -payment["Amount"], stamp)
        out.update(copy.deepcopy(deleted))

    # --- spend and receive money ------------------------------------------------------------

    def _bank_transaction(
        self,
        org: SandboxOrg,
        method: str,
        element: JSON,
        out: JSON,
        errors: list[str],
        unit_dp: int,
    ) -> None:
        if element.get("BankTransactionID"):
            self._delete_bank_transaction(org, method, element, out, errors)
            return
        type_ = element.get("Type")
        if type_ not in ("SPEND", "RECEIVE"):
            errors.append(f"The sandbox makes SPEND and RECEIVE bank transactions, not {type_}.")
            return
        status = element.get("Status", "AUTHORISED")
        if status != "AUTHORISED":
            errors.append(f"A new bank transaction is AUTHORISED, not {status}.")
        amount_types = element.get("LineAmountTypes", "Exclusive")
        if amount_types not in LINE_AMOUNT_TYPES:
            errors.append(
                f"'{amount_types}' is not a valid LineAmountTypes value. "
                f"Use one of {', '.join(LINE_AMOUNT_TYPES)}."
            )
        given_contact = element.get("Contact")
        contact = None
        if not isinstance(given_contact, dict) or not any(
            given_contact.get(k) for k in ("ContactID", "Name", "ContactNumber")
        ):
            errors.append(_NO_CONTACT)
        else:
            role = "IsSupplier" if type_ == "SPEND" else "IsCustomer"
            contact = self._books.resolve_contact(org, given_contact, role, errors)
        account = self._find_account(org, element.get("BankAccount"), "BankAccount", errors)
        if account is not None and account["Type"] != "BANK":
            errors.append("BankAccount must be an account of type BANK.")
        currency = _currency(org, account) if account is not None else org.base_currency
        if element.get("CurrencyCode", currency) != currency:
            errors.append(
                f"A bank transaction is in its bank account's currency ({currency}), "
                f"not {element['CurrencyCode']}."
            )
        day = self._date(org, element, errors)
        out.update(Type=type_, Status="AUTHORISED", LineAmountTypes=amount_types)
        self._books.lines(org, element.get("LineItems", []), out, errors, unit_dp)
        banks = {a.get("Code") for a in org.accounts if a["Type"] == "BANK"}
        for line in out.get("LineItems", []):
            if line.get("AccountCode") in banks:
                errors.append(
                    f"Account code '{line['AccountCode']}' is not a valid code for this document."
                )
        if "Total" in out and out["Total"] <= 0:
            errors.append("The total of a bank transaction must be greater than zero.")
        if errors or contact is None or account is None or day is None:
            return
        transaction = {
            "BankTransactionID": new_id(),
            "Type": type_,
            "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
            "BankAccount": _account_ref(account),
            "IsReconciled": bool(element.get("IsReconciled", False)),
            "Date": xero_date(day),
            "Reference": str(element.get("Reference", "")),
            "CurrencyCode": currency,
            "CurrencyRate": org.currency_rate(currency),
            **{k: out[k] for k in ("Status", "LineAmountTypes", "LineItems")},
            **{k: out[k] for k in ("SubTotal", "TotalTax", "Total")},
            "UpdatedDateUTC": xero_date(self._now()),
            "HasAttachments": False,
        }
        if isinstance(element.get("Url"), str):
            transaction["Url"] = element["Url"]
        org.bank_transactions[transaction["BankTransactionID"]] = transaction
        out.clear()
        out.update(copy.deepcopy(transaction))

    def _delete_bank_transaction(
        self, org: SandboxOrg, method: str, element: JSON, out: JSON, errors: list[str]
    ) -> None:
        """POST with a BankTransactionID and Status DELETED deletes one; the sandbox edits
        nothing else, so any other change is refused rather than ignored."""
        found = org.bank_transactions.get(str(element["BankTransactionID"]).lower())
        out["BankTransactionID"] = element["BankTransactionID"]
        if found is None or method == "PUT":
            state = "already exists; use POST to change it" if found else "does not exist"
            errors.append(f"Bank transaction {element['BankTransactionID']} {state}.")
            return
        if found["Type"] not in ("SPEND", "RECEIVE"):
            errors.append("Only SPEND and RECEIVE bank transactions can be deleted here.")
        if set(element) - {"BankTransactionID", "Status"} or element.get("Status") != "DELETED":
            errors.append("The sandbox only deletes bank transactions (Status DELETED).")
        locked = org.lock_error(parse_input_date(found["Date"], "Date"))
        if locked is not None:
            errors.append(locked)
        if errors:
            return
        deleted = {**found, "Status": "DELETED", "UpdatedDateUTC": xero_date(self._now())}
        org.bank_transactions[found["BankTransactionID"]] = deleted
        out.update(copy.deepcopy(deleted))

    # --- transfers --------------------------------------------------------------------------

    def _bank_transfer(
        self,
        org: SandboxOrg,
        method: str,
        element: JSON,
        out: JSON,
        errors: list[str],
        _unit_dp: int,
    ) -> None:
        accounts = []
        for label in ("FromBankAccount", "ToBankAccount"):
            account = self._find_account(org, element.get(label), label, errors)
            if account is not None and account["Type"] != "BANK":
                errors.append(f"{label} must be an account of type BANK.")
            accounts.append(account)
        source, target = accounts
        if source is not None and target is not None:
            if source["AccountID"] == target["AccountID"]:
                errors.append("FromBankAccount and ToBankAccount must be different accounts.")
            elif _currency(org, source) != _currency(org, target):
                # Xero's BankTransfers docs: not supported through the API.
                errors.append("You cannot transfer between accounts in different currencies.")
        if "CurrencyRate" in element:
            errors.append("CurrencyRate is read-only on bank transfers.")  # Xero's spec
        amount = self._amount(element.get("Amount"), "Amount", errors)
        day = self._date(org, element, errors)
        reference = element.get("Reference")
        if reference is not None and not isinstance(reference, str):
            errors.append("Reference must be text.")
        if errors or source is None or target is None or amount is None or day is None:
            return
        stamp = xero_date(self._now())
        currency = _currency(org, source)
        sides = []
        # Xero records each side as a bank transaction of its own (Xero's BankTransfers docs).
        for type_, account, reconciled in (
            ("SPEND-TRANSFER", source, element.get("FromIsReconciled", False)),
            ("RECEIVE-TRANSFER", target, element.get("ToIsReconciled", False)),
        ):
            side: JSON = {
                "BankTransactionID": new_id(),
                "Type": type_,
                "BankAccount": _account_ref(account),
                "IsReconciled": bool(reconciled),
                "Date": xero_date(day),
                "CurrencyCode": currency,
                "CurrencyRate": org.currency_rate(currency),
                "Status": "AUTHORISED",
                "LineAmountTypes": "NoTax",
                "LineItems": [],
                "SubTotal": amount,
                "TotalTax": _ZERO,
                "Total": amount,
                "UpdatedDateUTC": stamp,
                "HasAttachments": False,
            }
            org.bank_transactions[side["BankTransactionID"]] = side
            sides.append(side)
        transfer: JSON = {
            "BankTransferID": new_id(),
            "CreatedDateUTC": stamp,
            "Date": xero_date(day),
            "Status": "AUTHORISED",
            "FromBankAccount": _account_ref(source),
            "ToBankAccount": _account_ref(target),
            "Amount": amount,
            "FromBankTransactionID": sides[0]["BankTransactionID"],
            "ToBankTransactionID": sides[1]["BankTransactionID"],
            "FromIsReconciled": sides[0]["IsReconciled"],
            "ToIsReconciled": sides[1]["IsReconciled"],
            "CurrencyRate": Decimal("1.000000"),
            "HasAttachments": False,
        }
        if reference is not None:
            transfer["Reference"] = reference
        org.bank_transfers[transfer["BankTransferID"]] = transfer
        out.update(copy.deepcopy(transfer))
