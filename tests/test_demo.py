from __future__ import annotations

from pathlib import Path

from bot.demo import run_demo


def test_demo_connects_a_sandbox_integration_end_to_end(tmp_path: Path) -> None:
    lines: list[str] = []
    assert run_demo(database=tmp_path / "demo.sqlite3", out=lines.append) == 0
    text = "\n".join(lines)
    assert "Amazon Seller Central is connected to Acme EU. Next, connect Xero." in text
    assert "The integration is active." in text
    assert "status              active" in text
    assert "encrypted at rest (gAAAAA" in text
    assert "xero.connected" in text
