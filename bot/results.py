"""A sync result as lines a person reads (the CLI and the demo print them)."""

from __future__ import annotations

from handlers.blocks.common import money
from services.results import RunResult


def describe_result(result: RunResult) -> list[str]:
    rows = [
        ("invoices created", str(result.invoices_created)),
        ("credit notes created", str(result.credit_notes_created)),
        ("contacts created / updated", f"{result.contacts_created} / {result.contacts_updated}"),
        ("credit notes allocated", str(result.allocations_made)),
        ("already in Xero", str(result.already_posted)),
        ("skipped", ", ".join(f"{k} {v}" for k, v in sorted(result.skipped.items())) or "0"),
        ("failed", str(result.failed)),
    ]
    for currency, totals in sorted(result.totals.items()):
        rows.append(
            (
                f"{currency} totals",
                f"sales {money(totals.sales_gross, currency)}, "
                f"refunds {money(totals.refunds_gross, currency)}, "
                f"VAT {money(totals.tax, currency)}",
            )
        )
    rows.append(
        (
            "API calls",
            f"Amazon {result.amazon_api_calls}, Xero {result.xero_api_calls} "
            f"in {result.duration_seconds:.1f} s",
        )
    )
    width = max(len(label) for label, _ in rows)
    lines = [result.message, *(f"  {label:<{width}}  {value}" for label, value in rows)]
    if result.failed:
        lines.append(f"  Retry the failed items with: amazon-xero-bot retry --run {result.run_id}")
    return lines
