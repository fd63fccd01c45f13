from __future__ import annotations

from pathlib import Path

from bot.demo import run_demo


def test_demo_tells_the_story_through_slack(tmp_path: Path) -> None:
    lines: list[str] = []
    assert run_demo(database=tmp_path / "demo.sqlite3", out=lines.append) == 0
    text = "\n".join(lines)
    assert "Amazon Seller Central is connected to Acme EU. Next, connect Xero." in text
    assert "The integration is active." in text
    assert "#finance  bot: :link: Integration *Acme EU* is connected" in text
    assert "documents failed*" in text  # the error parent in #errors
    assert "Organisation is not subscribed to currency PLN" in text
    assert "Retried by <@U0ADMIN>" in text
    assert "== In Xero:" in text and "ACCRECCREDIT" in text
    # The month's payouts: invoices paid, fees booked, deposits transferred; the złoty one
    # once PLN and its bank account are in Xero, from its Retry button.
    assert "It also booked the " in text and " payouts Amazon deposited in the month" in text
    assert "bot: Payout " in text and "; clearing balance 0.00" in text
    assert "Reconciled: every payment, fee and the payout are in Xero." in text
    assert "Payout transfer: " in text  # the złoty payout, failed, in #errors
    assert "Retried by <@U0ADMIN>: " in text
