"""Posting a settlement to Xero: its payments, its bank transaction and its payout, each once.

The phases are posting.py's: what Xero may already have (an item a crash left in flight, or
one whose request failed without an answer) is looked for by its Reference first; the items to
send are marked in flight and committed; they are sent with an Idempotency-Key made from their
keys and attempts; what became of each is recorded. A payment whose invoice or credit note is
not in Xero yet waits, and is sent by a later posting of the settlement.

The accounts (`SettlementAccounts`) are found by name in Xero, or made once: the clearing
account per currency (a bank account), and the accounts the bank transaction's lines go to.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from services.errors import UNCERTAIN, ErrorKind, ServiceError
from services.integrations import line_account_choices
from services.ledger import Ledger
from services.ledger_rows import chunks
from services.models import (
    AmazonSettlement,
    DocumentKind,
    Integration,
    LedgerItem,
    SettlementItem,
    SettlementItemKind,
    SettlementItemStatus,
)
from services.money import cents, from_cents
from services.results import SettlementReport
from services.settlement_ledger import (
    BANK_TRANSACTION_IN_KEY,
    BANK_TRANSACTION_KEY,
    TRANSFER_KEY,
    SettlementLedger,
    moved,
    sold_before,
)
from services.settlement_plan import FEE_LINES, LineKind
from services.settlements import FeeKind
from services.xero import (
    ItemResult,
    NewAccount,
    NewBankTransaction,
    NewBankTransfer,
    NewLine,
    NewPayment,
    XeroAccount,
    XeroClient,
    idempotency_key,
)

PAGE = 50  # Xero's batch
CONTACT = "Amazon"
NO_TAX = "NONE"  # Xero's tax type of a line that carries no tax


@dataclass(frozen=True)
class LineAccount:
    """An account a bank transaction line is coded to, made with this code if missing."""

    name: str
    code: str
    type: str  # Xero's AccountType


FEES = LineAccount("Amazon fees", "AMZFEES", "EXPENSE")
ADVERTISING = LineAccount("Amazon advertising", "AMZADS", "EXPENSE")
REIMBURSEMENTS = LineAccount("Amazon reimbursements", "AMZREIMB", "OTHERINCOME")
RESERVE = LineAccount("Amazon reserve", "AMZRES", "CURRENT")
LENDING = LineAccount("Amazon lending", "AMZLOAN", "CURRLIAB")
# What no mapping knows yet: kept out of income and expenses, and listed for someone to move.
SUSPENSE = LineAccount("Amazon suspense", "AMZSUSP", "CURRLIAB")

LINE_ACCOUNTS: dict[str, LineAccount] = {
    **{kind.value: FEES for kind in FeeKind},
    FeeKind.ADVERTISING.value: ADVERTISING,
    FeeKind.REIMBURSEMENT.value: REIMBURSEMENTS,
    LineKind.RESERVE.value: RESERVE,
    LineKind.LOAN.value: LENDING,
    LineKind.RETURNED_PAYOUT.value: SUSPENSE,
    LineKind.UNMAPPED.value: SUSPENSE,
    LineKind.NO_ORDER.value: SUSPENSE,
}


def clearing_name(currency: str) -> str:
    return f"Amazon {currency} clearing"


@dataclass(frozen=True)
class SettlementAccounts:
    clearing: XeroAccount
    payout: XeroAccount | None  # the seller's bank account in the settlement's currency
    no_payout: str  # why there is none, said in the transfer's failure
    lines: LineCoding


@dataclass(frozen=True)
class LineCoding:
    """Where each kind of a bank transaction's lines goes: its account code, and its tax type
    when the seller chose one."""

    codes: Mapping[str, str]
    tax_types: Mapping[str, str]


@dataclass
class SettlementCounters:
    payments: int = 0
    bank_transactions: int = 0
    transfers: int = 0
    failed: int = 0
    already_posted: int = 0


class PostingContext(Protocol):
    """What posting a settlement needs: a month's run (RunContext) or a payout's own Retry."""

    @property
    def integration(self) -> Integration: ...
    @property
    def integration_id(self) -> int: ...
    @property
    def xero(self) -> XeroClient: ...
    @property
    def ledger(self) -> Ledger: ...
    def confirm_claim(self) -> None: ...


@dataclass(frozen=True)
class PayoutRetry:
    """A payout's Retry, outside any run: the settlement's own claim is held around it."""

    integration: Integration
    xero: XeroClient
    ledger: Ledger

    @property
    def integration_id(self) -> int:
        return self.integration.id

    def confirm_claim(self) -> None:
        return None


def post_settlement(
    ctx: PostingContext,
    ledger: SettlementLedger,
    row_id: int,
    accounts_by_currency: dict[str, SettlementAccounts],
) -> SettlementCounters:
    """Send what the settlement still has to send. `accounts_by_currency` keeps the accounts
    found (or made) for the settlements an invocation posts: looked up once per currency."""
    settlement = ledger.settlement(row_id)
    if settlement is None:
        raise ValueError(f"no settlement {row_id}")
    counters = SettlementCounters()
    ledger.reopen_in_flight(row_id)
    try:
        accounts = _accounts_of(ctx, settlement, accounts_by_currency)
    except ServiceError as error:
        if error.stops_the_run:
            raise
        # A currency the organisation does not have, say: this settlement fails alone.
        pending = ledger.items(row_id, SettlementItemStatus.PENDING)
        ledger.record_outcomes([_failed(item.id, error) for item in pending])
        counters.failed += len(pending)
        return counters
    _payments(ctx, ledger, settlement, accounts, counters)
    _bank_transaction(ctx, ledger, settlement, accounts, counters)
    _transfer(ctx, ledger, settlement, accounts, counters)
    if settlement.clearing_account_id is None and (
        counters.payments or counters.bank_transactions or counters.transfers
    ):
        ledger.record_clearing(row_id, accounts.clearing.account_id)
    return counters


def _accounts_of(
    ctx: PostingContext,
    settlement: AmazonSettlement,
    accounts_by_currency: dict[str, SettlementAccounts],
) -> SettlementAccounts:
    """The currency's accounts (looked up once an invocation), with the clearing account the
    settlement's first items went through when the settings name another since."""
    accounts = accounts_by_currency.get(settlement.currency)
    if accounts is None:
        accounts = accounts_by_currency[settlement.currency] = ensure_accounts(
            ctx, settlement.currency
        )
    recorded = settlement.clearing_account_id
    if recorded is None or recorded == accounts.clearing.account_id:
        return accounts
    earlier = next((a for a in ctx.xero.accounts() if a.account_id == recorded), None)
    if earlier is None:
        raise ServiceError(
            ErrorKind.VALIDATION,
            f"This payout's first items went through a clearing account Xero no longer has "
            f"({recorded}); the rest would not net it to zero. Book them by hand.",
            retryable=False,
        )
    return replace(accounts, clearing=earlier)


def reference(settlement_id: str, item_key: str) -> str:
    """What an item carries in Xero, and is found again by: one per item of a settlement
    ("Amazon settlement 1234 Order 302-...", "... Chargeback Refund 302-...", "... fees",
    "... payout")."""
    base = f"Amazon settlement {settlement_id}"
    if item_key == BANK_TRANSACTION_KEY:
        return f"{base} fees"
    if item_key == BANK_TRANSACTION_IN_KEY:
        return f"{base} fees, money in"
    if item_key == TRANSFER_KEY:
        return f"{base} payout"
    _, transaction_type, order_id = item_key.split(":", 2)
    return f"{base} {transaction_type} {order_id}"


def item_reference(settlement: AmazonSettlement, item: SettlementItem) -> str:
    return reference(settlement.settlement_id, item.item_key)


# --- what each item sends: the same for posting and for the dry run ---------------------------


def payment(
    refund: bool, document_id: str, clearing_id: str, amount: Decimal, day: date, ref: str
) -> NewPayment:
    """Into clearing on an invoice, or out of it on a credit note (`amount` signed as it
    moves clearing)."""
    return NewPayment(
        "CreditNote" if refund else "Invoice", document_id, clearing_id, abs(amount), day, ref
    )


def bank_transaction(
    lines: Sequence[tuple[str, Decimal, Sequence[str]]],
    clearing_id: str,
    day: date,
    ref: str,
    coding: LineCoding,
) -> NewBankTransaction:
    """Spend money when the lines take money out of clearing, receive money otherwise; each
    line keeps its sign relative to that (a released reserve lowers a spend). Amazon's amounts
    include the tax it charged: with a tax type chosen for any line, the amounts are read as
    tax inclusive and the other lines say they carry none ("NONE")."""
    sign = -1 if sum((amount for _, amount, _ in lines), Decimal(0)) < 0 else 1
    taxed = any(kind in coding.tax_types for kind, _, _ in lines)
    return NewBankTransaction(
        "SPEND" if sign < 0 else "RECEIVE",
        clearing_id,
        CONTACT,
        tuple(
            NewLine(
                coding.codes[kind],
                sign * amount,
                f"Amazon {kind.replace('_', ' ')}: {', '.join(words)}"[:4000],
                tax_type=coding.tax_types.get(kind, NO_TAX) if taxed else None,
            )
            for kind, amount, words in lines
        ),
        day,
        ref,
        line_amount_types="Inclusive" if taxed else "NoTax",
    )


def transfer(
    amount: Decimal, clearing_id: str, bank_id: str, day: date, ref: str
) -> NewBankTransfer:
    """The payout: out of clearing to the bank (`amount` negative, as it moves clearing), or
    from the bank into clearing for a negative settlement."""
    out = amount < 0
    return NewBankTransfer(
        clearing_id if out else bank_id, bank_id if out else clearing_id, abs(amount), day, ref
    )


def ensure_accounts(ctx: PostingContext, currency: str) -> SettlementAccounts:
    """The clearing account of this currency and the lines' accounts: those chosen in the
    settings, which must be in Xero; else the defaults, found by code, else by name (an
    account someone renamed or recoded keeps being used), else made. And the bank account
    Amazon pays into (_payout_account)."""
    accounts = ctx.xero.accounts()
    # Keys of this look-up's own: Xero replays a key's first answer, so a refusal (a currency
    # not enabled yet) would come back for ever under a fixed key. A made account is found
    # by its code before the next look-up would make it again.
    attempt = uuid.uuid4().hex
    by_name = {account.name: account for account in accounts}
    by_code = {account.code: account for account in accounts if account.code}
    base = ctx.xero.organisation().base_currency

    def made(account: NewAccount) -> XeroAccount:
        key = idempotency_key(ctx.integration_id, "Accounts", f"{account.code}@{attempt}")
        return ctx.xero.create_account(account, idempotency_key=key)

    chosen_clearing = (ctx.integration.clearing_accounts or {}).get(currency)
    if chosen_clearing is not None:
        clearing = by_code.get(chosen_clearing)
        if clearing is None or clearing.type != "BANK" or (clearing.currency or base) != currency:
            raise ServiceError(
                ErrorKind.VALIDATION,
                f"The account {chosen_clearing} chosen in the settings as the {currency} "
                f"clearing account is not a bank account in {currency} in Xero. Choose another "
                "in `/amazon settings`, or add it in Xero.",
            )
    else:
        name, code = clearing_name(currency), f"AMZ{currency}"
        clearing = (
            by_code.get(code)
            or by_name.get(name)
            or made(
                NewAccount(
                    name,
                    "BANK",
                    code=code,
                    bank_account_number=f"AMAZON-{currency}",
                    currency=currency,
                )
            )
        )
    chosen = line_account_choices(ctx.integration)
    missing = sorted({choice.code for choice in chosen.values()} - set(by_code))
    if missing:
        raise ServiceError(
            ErrorKind.VALIDATION,
            f"The fee accounts {', '.join(missing)} chosen in the settings are not in Xero's "
            "chart of accounts. Add them in Xero, or choose others in `/amazon settings`.",
        )
    codes: dict[LineAccount, str] = {}
    for line_account in dict.fromkeys(
        account for kind, account in LINE_ACCOUNTS.items() if kind not in chosen
    ):
        found = (
            by_code.get(line_account.code)
            or by_name.get(line_account.name)
            or made(NewAccount(line_account.name, line_account.type, code=line_account.code))
        )
        codes[line_account] = found.code or line_account.code
    payout, no_payout = _payout_account(ctx, accounts, base, currency, clearing)
    return SettlementAccounts(clearing, payout, no_payout, line_coding(ctx.integration, codes))


def _payout_account(
    ctx: PostingContext,
    accounts: Sequence[XeroAccount],
    base: str | None,
    currency: str,
    clearing: XeroAccount,
) -> tuple[XeroAccount | None, str]:
    """The bank account chosen in the settings for this currency's payouts, else the
    organisation's one other bank account in it (`base` being the organisation's currency);
    else None and why."""
    banks = [
        account
        for account in accounts
        if account.type == "BANK"
        and account.account_id != clearing.account_id
        and (account.currency or base) == currency
    ]
    chosen = (ctx.integration.payout_accounts or {}).get(currency)
    if chosen is not None:
        found = [account for account in banks if account.code == chosen]
        if found:
            return found[0], ""
        return None, (
            f"the account {chosen} chosen in the settings is not a bank account in {currency} "
            "in Xero. Choose another in `/amazon settings`, or add it in Xero."
        )
    banks = [account for account in banks if not account.name.startswith("Amazon ")]
    if len(banks) == 1:
        return banks[0], ""
    return None, (
        f"this Xero organisation has {'no' if not banks else len(banks)} bank accounts in "
        f"{currency} besides {clearing.name}. Name the one Amazon pays into in "
        "`/amazon settings` (payout bank accounts)."
    )


def line_coding(
    integration: Integration, codes: Mapping[LineAccount, str] | None = None
) -> LineCoding:
    """Each line kind's account code and tax type: the seller's choice, else the default
    account's code (`codes`, as found in Xero); withheld tax to the sales account, where the
    invoices booked it."""
    found = codes or {}
    chosen = line_account_choices(integration)
    defaults = {kind: found.get(account, account.code) for kind, account in LINE_ACCOUNTS.items()}
    return LineCoding(
        defaults
        | {kind: choice.code for kind, choice in chosen.items()}
        | {LineKind.WITHHELD_TAX.value: integration.sales_account_code},
        {kind: choice.tax_type for kind, choice in chosen.items() if choice.tax_type},
    )


# --- payments and refunds ------------------------------------------------------------------


def _payments(
    ctx: PostingContext,
    ledger: SettlementLedger,
    settlement: AmazonSettlement,
    accounts: SettlementAccounts,
    counters: SettlementCounters,
) -> None:
    """Each order's payment (or refund) on its documents: one payment when one document is
    of the settled amount or the order has one, one per document when the order's documents
    add up to it (two shipments settled together)."""
    items = ledger.to_send(
        settlement.id,
        [SettlementItemKind.PAYMENT, SettlementItemKind.REFUND],
        uncertain=UNCERTAIN,
    )
    for page in chunks(items, PAGE):
        outcomes: list[dict[str, Any]] = []
        documents, left_due = _documents(ctx, page)
        targets: dict[int, list[tuple[str, str, int]]] = {}
        for item in page:
            target = documents.get(item.id)
            if target is None:
                outcomes.append(_waiting(item.id, _why_waiting(item, ctx.integration.start_date)))
            elif isinstance(target, ServiceError):
                outcomes.append(_failed(item.id, target))
                counters.failed += 1
            else:
                targets[item.id] = _references(settlement, item, target)
        # What an earlier attempt may have made is looked for by its Reference first: our own
        # payment lowers what Xero has left due, so only then is the rest capped.
        tried = [ref for item in page if item.attempts for ref, _, _ in targets.get(item.id, [])]
        found = (
            {
                p.reference: p
                for p in ctx.xero.find_payments_by_reference(tried)
                if p.status != "DELETED"
            }
            if tried
            else {}
        )
        sendable: list[tuple[SettlementItem, list[tuple[str, NewPayment]]]] = []
        moved: dict[int, int] = {}
        for item in page:
            if item.id not in targets:
                continue
            made = [found[ref] for ref, _, _ in targets[item.id] if ref in found]
            left = [
                (ref, document, due)
                for ref, document, amount in targets[item.id]
                if ref not in found and (due := _capped(amount, left_due.get(document))) > 0
            ]
            if left:
                sendable.append((item, _payments_of(settlement, item, left, accounts)))
            else:
                outcomes.append(
                    _posted(item.id, made[0].payment_id) if made else _moved_nothing(item.id)
                )
                counters.already_posted += 1
            paid = cents(sum((p.amount for p in made), Decimal(0))) + sum(d for _, _, d in left)
            if paid != abs(item.amount_cents):
                moved[item.id] = paid if item.amount_cents > 0 else -paid
        ledger.record_outcomes(
            [o | ({"moved_cents": moved[o["id"]]} if o["id"] in moved else {}) for o in outcomes]
        )
        _send(
            ctx,
            ledger,
            [(item, [sent for _, sent in parts]) for item, parts in sendable],
            "Payments",
            lambda batch, key: ctx.xero.create_payments(batch, idempotency_key=key),
            lambda made: made.payment_id,
            counters,
            moved,
        )


def _capped(amount: int, document: tuple[int, int] | None) -> int:
    """What to pay on a document of (gross, left due) cents: never more than Xero has left
    due on it, when a credit note allocated to the invoice settled part of it (the clearing
    account lacks that part until the refund settles). More than its whole gross is sent as
    it is, for Xero to refuse: Amazon settled another amount than the document's."""
    if document is None or amount > document[0]:
        return amount
    return min(amount, document[1])


def _references(
    settlement: AmazonSettlement, item: SettlementItem, documents: list[tuple[str, int]]
) -> list[tuple[str, str, int]]:
    """(Reference, document id, cents) for each document the item pays: the references are
    the same at every attempt, whatever is left due."""
    base = item_reference(settlement, item)
    if len(documents) == 1:
        return [(base, documents[0][0], documents[0][1])]
    return [
        (f"{base} ({number} of {len(documents)})", document, amount)
        for number, (document, amount) in enumerate(documents, start=1)
    ]


def _payments_of(
    settlement: AmazonSettlement,
    item: SettlementItem,
    parts: list[tuple[str, str, int]],
    accounts: SettlementAccounts,
) -> list[tuple[str, NewPayment]]:
    refund = item.kind == SettlementItemKind.REFUND
    sign = -1 if item.amount_cents < 0 else 1
    day = settlement.deposit_at.date()
    return [
        (
            ref,
            payment(
                refund,
                document,
                accounts.clearing.account_id,
                from_cents(sign * amount),
                day,
                ref,
            ),
        )
        for ref, document, amount in parts
    ]


def _documents(
    ctx: PostingContext, items: Sequence[SettlementItem]
) -> tuple[dict[int, list[tuple[str, int]] | ServiceError], dict[str, tuple[int, int]]]:
    """Item id -> the documents it pays, each with the cents it pays there, for those whose
    documents are in Xero (else why they cannot be paid); and each of those documents' gross
    and what Xero has left due on it, in cents, by Xero id."""
    targets: dict[int, list[tuple[str, int]] | ServiceError] = {}
    dues: dict[str, tuple[int, int]] = {}
    for kind, payment_kind in (
        (DocumentKind.INVOICE, SettlementItemKind.PAYMENT),
        (DocumentKind.CREDIT_NOTE, SettlementItemKind.REFUND),
    ):
        mine = [item for item in items if item.kind == payment_kind]
        if not mine:
            continue
        posted = ctx.ledger.posted_documents(
            ctx.integration_id, kind, {item.amazon_order_id for item in mine}
        )
        mine_posted = [d for ds in posted.values() for d in ds if d.xero_id]
        left = _left_due(ctx, kind, mine_posted)
        dues |= {
            d.xero_id: (abs(d.gross_cents), left[d.xero_id])
            for d in mine_posted
            if d.xero_id in left
        }
        for item in mine:
            documents = [
                (d.xero_id, abs(d.gross_cents))
                for d in posted.get(item.amazon_order_id, [])
                if d.xero_id
            ]
            amount = abs(item.amount_cents)
            # Of equal documents (shipments of one order settled apart), the one Xero has
            # most left due on: an earlier settlement paid the other.
            fitting = sorted(
                (d for d in documents if d[1] == amount), key=lambda d: -left.get(d[0], -1)
            )
            if fitting or len(documents) == 1:
                chosen = [((fitting or documents)[0][0], amount)]
            elif documents and sum(cents for _, cents in documents) == amount:
                chosen = documents
            elif documents:
                targets[item.id] = ServiceError(
                    ErrorKind.VALIDATION,
                    f"Order {item.amazon_order_id}: Amazon settled {from_cents(amount)} for "
                    f"it, which is neither one of its {len(documents)} documents in Xero nor "
                    "all of them. Pay it by hand in Xero.",
                )
                continue
            else:
                continue
            targets[item.id] = chosen
    return targets, dues


def _left_due(
    ctx: PostingContext, kind: DocumentKind, documents: Sequence[LedgerItem]
) -> dict[str, int]:
    """Xero id -> the cents Xero has left due on each document (an invoice's AmountDue, a
    credit note's RemainingCredit): one look-up for a page of them."""
    numbers = sorted({d.document_number for d in documents if d.document_number})
    if not numbers:
        return {}
    find = (
        ctx.xero.find_invoices_by_number
        if kind == DocumentKind.INVOICE
        else ctx.xero.find_credit_notes_by_number
    )
    return {
        found.xero_id: cents(found.amount_due)
        for found in find(numbers)
        if found.amount_due is not None and found.live
    }


def _why_waiting(item: SettlementItem, start_date: date) -> str:
    word = "credit note" if item.kind == SettlementItemKind.REFUND else "invoice"
    if sold_before(item, start_date):
        return (
            f"Order {item.amazon_order_id} was sold before the integration's start date "
            f"({start_date.isoformat()}): the bot makes no {word} for it. Pay it by hand from "
            "the clearing account, or move the start date back and sync that month."
        )
    return (
        f"Order {item.amazon_order_id}: its {word} is not in Xero yet (Amazon's VAT report "
        "comes after the payout): the payment waits and is made when it is posted."
    )


# --- the bank transaction and the payout ---------------------------------------------------


def _bank_transaction(
    ctx: PostingContext,
    ledger: SettlementLedger,
    settlement: AmazonSettlement,
    accounts: SettlementAccounts,
    counters: SettlementCounters,
) -> None:
    items = ledger.to_send(
        settlement.id, [SettlementItemKind.BANK_TRANSACTION], uncertain=UNCERTAIN
    )
    if not items:
        return
    found = _found(
        items,
        lambda refs: {
            t.reference: t.bank_transaction_id
            for t in ctx.xero.find_bank_transactions_by_reference(refs)
            if t.status != "DELETED" and t.bank_account_id == accounts.clearing.account_id
        },
        settlement,
    )
    outcomes, sendable = _adopted(items, found, counters)
    ledger.record_outcomes(outcomes)
    transactions = [
        (
            item,
            bank_transaction(
                [(kind, from_cents(amount), words) for kind, amount, words in item.lines or []],
                accounts.clearing.account_id,
                settlement.deposit_at.date(),
                item_reference(settlement, item),
                accounts.lines,
            ),
        )
        for item in sendable
    ]
    _send(
        ctx,
        ledger,
        [(item, [sent]) for item, sent in transactions],
        "BankTransactions",
        lambda batch, key: ctx.xero.create_bank_transactions(batch, idempotency_key=key),
        lambda made: made.bank_transaction_id,
        counters,
    )


def _transfer(
    ctx: PostingContext,
    ledger: SettlementLedger,
    settlement: AmazonSettlement,
    accounts: SettlementAccounts,
    counters: SettlementCounters,
) -> None:
    items = ledger.to_send(settlement.id, [SettlementItemKind.TRANSFER], uncertain=UNCERTAIN)
    if not items:
        return
    found = _found(
        items,
        lambda refs: {
            t.reference: t.bank_transfer_id for t in ctx.xero.find_bank_transfers_by_reference(refs)
        },
        settlement,
    )
    outcomes, sendable = _adopted(items, found, counters)
    ledger.record_outcomes(outcomes)
    for item in sendable:
        if accounts.payout is None:
            error = ServiceError(
                ErrorKind.VALIDATION,
                f"The payout of settlement {settlement.settlement_id} needs the bank account "
                f"Amazon pays {settlement.currency} into: {accounts.no_payout} Then retry.",
                retryable=True,
            )
            ledger.record_outcomes([_failed(item.id, error)])
            counters.failed += 1
            continue
        payout = transfer(
            from_cents(item.amount_cents),
            accounts.clearing.account_id,
            accounts.payout.account_id,
            settlement.deposit_at.date(),
            item_reference(settlement, item),
        )
        _send(
            ctx,
            ledger,
            [(item, [payout])],
            "BankTransfers",
            lambda batch, key: [_one_transfer(ctx, batch[0], key)],
            lambda made: made.bank_transfer_id,
            counters,
        )


def _one_transfer(ctx: PostingContext, payout: NewBankTransfer, key: str) -> ItemResult[Any]:
    """A transfer as a batch of one: Xero refuses it with a VALIDATION error, not per item."""
    try:
        made = ctx.xero.create_bank_transfer(payout, idempotency_key=key)
    except ServiceError as error:
        if error.kind != ErrorKind.VALIDATION:
            raise
        return ItemResult(False, None, [error.message], payout.payload())
    return ItemResult(True, made, [], payout.payload())


# --- the phases every item goes through -----------------------------------------------------


def _found(
    items: Sequence[SettlementItem],
    look_up: Callable[[list[str]], dict[str, str]],
    settlement: AmazonSettlement,
) -> dict[int, str]:
    """Item id -> its Xero id, for the items an earlier attempt may have made (looked up by
    Reference only for those: a first attempt costs no call)."""
    tried = {item_reference(settlement, item): item.id for item in items if item.attempts}
    if not tried:
        return {}
    return {tried[ref]: xero_id for ref, xero_id in look_up(sorted(tried)).items() if ref in tried}


def _adopted(
    items: Sequence[SettlementItem], found: dict[int, str], counters: SettlementCounters
) -> tuple[list[dict[str, Any]], list[SettlementItem]]:
    outcomes = [_posted(item.id, found[item.id]) for item in items if item.id in found]
    counters.already_posted += len(outcomes)
    return outcomes, [item for item in items if item.id not in found]


Sent = TypeVar("Sent")


def _send(
    ctx: PostingContext,
    ledger: SettlementLedger,
    items: Sequence[tuple[SettlementItem, Sequence[Sent]]],
    endpoint: str,
    create: Callable[[list[Sent], str], Sequence[ItemResult[Any]]],
    xero_id: Callable[[Any], str],
    counters: SettlementCounters,
    moved: Mapping[int, int] | None = None,
) -> None:
    """Marked in flight (committed), then sent 50 elements a request; what became of each
    recorded, also when a request stops the posting. An item of several elements (a payment
    split over an order's invoices) is posted when all are made; one refused fails it, and a
    retry makes only those its Reference look-up does not find."""
    for batch in _batches(items):
        ctx.confirm_claim()
        attempts = ledger.mark_in_flight([item for item, _ in batch])
        material = ",".join(
            f"{item.item_key}@{item.settlement_id}#{attempts[item.id]}" for item, _ in batch
        )
        outcomes: list[dict[str, Any]] = []
        try:
            results = iter(
                create(
                    [sent for _, elements in batch for sent in elements],
                    idempotency_key(ctx.integration_id, endpoint, material),
                )
            )
        except ServiceError as error:
            if error.stops_the_run:
                raise
            outcomes = [_failed(item.id, error) for item, _ in batch]
            counters.failed += len(batch)
        else:
            for item, elements in batch:
                answers = [next(results) for _ in elements]
                refused = [" ".join(a.errors) for a in answers if not (a.ok and a.made)]
                if refused:
                    refusal = ServiceError(
                        ErrorKind.VALIDATION, "Xero: " + " ".join(refused), retryable=True
                    )
                    outcomes.append(_failed(item.id, refusal))
                    counters.failed += 1
                    continue
                outcome = _posted(item.id, xero_id(answers[0].made))
                if moved and item.id in moved:
                    outcome["moved_cents"] = moved[item.id]
                outcomes.append(outcome)
                _count(item, counters)
        finally:
            ledger.record_outcomes(outcomes)


def _batches(
    items: Sequence[tuple[SettlementItem, Sequence[Sent]]],
) -> Iterator[list[tuple[SettlementItem, Sequence[Sent]]]]:
    """Items together, at most PAGE elements a request (Xero's batch)."""
    batch: list[tuple[SettlementItem, Sequence[Sent]]] = []
    size = 0
    for item, elements in items:
        if batch and size + len(elements) > PAGE:
            yield batch
            batch, size = [], 0
        batch.append((item, elements))
        size += len(elements)
    if batch:
        yield batch


def _count(item: SettlementItem, counters: SettlementCounters) -> None:
    if item.kind == SettlementItemKind.BANK_TRANSACTION:
        counters.bank_transactions += 1
    elif item.kind == SettlementItemKind.TRANSFER:
        counters.transfers += 1
    else:
        counters.payments += 1


def _posted(item_id: int, xero_id: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "status": SettlementItemStatus.POSTED,
        "xero_id": xero_id,
        "error_kind": None,
        "error_message": None,
        "retryable": False,
    }


def _moved_nothing(item_id: int) -> dict[str, Any]:
    return {
        "id": item_id,
        "status": SettlementItemStatus.POSTED,
        "error_kind": None,
        "error_message": "Settled in Xero by a credit note's allocation to its invoice.",
        "retryable": False,
    }


def _waiting(item_id: int, why: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "status": SettlementItemStatus.WAITING,
        "error_kind": None,
        "error_message": why,
        "retryable": False,
    }


def _failed(item_id: int, error: ServiceError) -> dict[str, Any]:
    return {
        "id": item_id,
        # An answer never seen may have been acted on: looked for before it is sent again.
        "status": SettlementItemStatus.FAILED,
        "error_kind": error.kind.value,
        "error_message": error.message,
        "retryable": error.retryable or error.kind in UNCERTAIN,
    }


def settlement_report(ledger: SettlementLedger, row_id: int, start_date: date) -> SettlementReport:
    """The settlement's figures from its items, and what is not in Xero yet (`start_date`:
    the integration's; orders sold before it have no invoice of the bot's)."""
    settlement = ledger.settlement(row_id)
    if settlement is None:
        raise ValueError(f"no settlement {row_id}")
    items = ledger.items(row_id)
    by_kind: dict[str, Decimal] = defaultdict(Decimal)
    for item in items:
        if item.kind == SettlementItemKind.BANK_TRANSACTION:
            for kind, amount, _ in item.lines or []:
                by_kind[_report_side(kind)] += from_cents(amount)
        elif item.kind != SettlementItemKind.TRANSFER:
            by_kind[item.kind] += from_cents(item.amount_cents)
    failed = [item for item in items if item.status == SettlementItemStatus.FAILED]
    problems = [f"{_item_label(item)}: {item.error_message or 'failed'}" for item in failed]
    waiting = [item for item in items if item.status == SettlementItemStatus.WAITING]
    before = [item for item in waiting if sold_before(item, start_date)]
    if before:
        problems.append(
            f"{len(before)} payments are for orders sold before the integration's start date "
            f"({start_date.isoformat()}): the bot makes no invoices for them. Pay them by hand "
            "from the clearing account, or move the start date back and sync those months."
        )
    waiting = [item for item in waiting if item not in before]
    if waiting:
        problems.append(
            f"{len(waiting)} payments wait for their invoices or credit notes in Xero "
            "(Amazon's VAT report comes after the payout); they are made once those are posted."
        )
    zero = Decimal("0.00")
    posted = [item for item in items if item.status == SettlementItemStatus.POSTED]
    return SettlementReport(
        row_id=row_id,
        settlement_id=settlement.settlement_id,
        currency=settlement.currency,
        deposit_date=settlement.deposit_at.date(),
        payout=from_cents(settlement.total_cents),
        sales=by_kind.get(SettlementItemKind.PAYMENT, zero),
        refunds=by_kind.get(SettlementItemKind.REFUND, zero),
        fees=by_kind.get("fees", zero),
        reserve=by_kind.get(LineKind.RESERVE, zero),
        other=by_kind.get("other", zero),
        clearing_balance=from_cents(sum(moved(i) for i in posted)),
        problems=tuple(problems),
        by_allocation=from_cents(sum(i.amount_cents - moved(i) for i in posted)),
        failed=len(failed),
    )


def _report_side(line_kind: str) -> str:
    if line_kind in FEE_LINES:
        return "fees"
    return LineKind.RESERVE if line_kind == LineKind.RESERVE else "other"


def _item_label(item: SettlementItem) -> str:
    if item.kind == SettlementItemKind.BANK_TRANSACTION:
        return "Fees and charges"
    if item.kind == SettlementItemKind.TRANSFER:
        return "Payout transfer"
    word = "Refund" if item.kind == SettlementItemKind.REFUND else "Payment"
    return f"{word} of order {item.amazon_order_id}"
