"""What may be posted, decided from Amazon's report alone: shared by the engine and the dry run."""

from __future__ import annotations

from services.errors import ErrorKind, ServiceError
from services.models import DocumentKind


def document_label(kind: DocumentKind) -> str:
    return "invoice" if kind == DocumentKind.INVOICE else "credit note"


def posting_verdict(
    order: str, label: str, number: str, unreadable: str | None, others: list[str]
) -> ServiceError | None:
    """Why a document must not be posted: one of its order's rows could not be read, so it is
    not posted partly; or its number is another document's, and Xero would overwrite one with
    the other."""
    if unreadable is not None:
        return ServiceError(
            ErrorKind.BAD_DATA,
            f"Order {order}: a row of this order could not be read ({unreadable}), so its "
            f"{label} is not posted without it. Correct the report and import it again.",
            retryable=False,
        )
    if others:
        return ServiceError(
            ErrorKind.BAD_DATA,
            f"Order {order}: its {label} number {number} is also the number of order "
            f"{', '.join(others)}'s {label}, and Xero would overwrite one with the other, so "
            "neither is posted. Amazon's data is broken or masked here: correct the report and "
            "import it again.",
            retryable=False,
        )
    return None
