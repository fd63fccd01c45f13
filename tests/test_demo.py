from __future__ import annotations

from pathlib import Path

from bot.demo import run_demo


def test_demo_connects_syncs_and_retries_end_to_end(tmp_path: Path) -> None:
    lines: list[str] = []
    assert run_demo(database=tmp_path / "demo.sqlite3", out=lines.append) == 0
    text = "\n".join(lines)
    assert "Amazon Seller Central is connected to Acme EU. Next, connect Xero." in text
    assert "The integration is active." in text
    assert "encrypted at rest (gAAAAA" in text
    assert "Xero: Organisation is not subscribed to currency PLN" in text
    assert ", 0 failed." in text  # after the retry
    assert "PLN totals" in text
    assert "ACCRECCREDIT" in text
