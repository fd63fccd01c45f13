"""What a run keeps in its `summary` column, typed: the engine's state between invocations, the
result it last came to, and where Slack showed its failures. Stored flat, as it always was."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from services.notifications import PostedMessage
from services.results import CurrencyTotals


@dataclass
class EngineState:
    ingested: bool = False  # the period's rows are all in the ledger
    tax_keys: list[str] = field(default_factory=list)  # every rate its documents need
    held_by: str | None = None  # the user whose sync or retry holds it, if a user's
    # Rates are only known from the documents themselves: kept across invocations.
    country_rates: dict[str, list[str]] = field(default_factory=dict)
    # Amazon's figures of the documents not in Xero, per currency, as of the last end.
    left_out: dict[str, CurrencyTotals] = field(default_factory=dict)

    def add_rates(self, seen: dict[str, set[Decimal]]) -> None:
        for code, rates in seen.items():
            known = set(self.country_rates.get(code, []))
            known |= {f"{rate.normalize():f}" for rate in rates}
            self.country_rates[code] = sorted(known, key=Decimal)


@dataclass
class RunSummary:
    state: EngineState = field(default_factory=EngineState)
    result: dict[str, Any] | None = None  # RunResult.to_json() of the last end
    shown: PostedMessage | None = None  # the error report's Slack message

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RunSummary:
        data = data or {}
        shown = data.get("error_report")
        return cls(
            state=EngineState(
                ingested=bool(data.get("ingested")),
                tax_keys=list(data.get("tax_keys", [])),
                held_by=data.get("held_by"),
                country_rates={k: list(v) for k, v in data.get("country_rates", {}).items()},
                left_out={
                    currency: CurrencyTotals.from_json(figures)
                    for currency, figures in data.get("left_out", {}).items()
                },
            ),
            result=data.get("result"),
            shown=PostedMessage(**shown) if shown else None,
        )

    def to_json(self) -> dict[str, Any]:
        state = self.state
        data: dict[str, Any] = {
            "ingested": state.ingested,
            "tax_keys": state.tax_keys,
            "held_by": state.held_by,
            "country_rates": state.country_rates,
            "left_out": {c: t.to_json() for c, t in sorted(state.left_out.items())},
        }
        if self.result is not None:
            data["result"] = self.result
        if self.shown is not None:
            data["error_report"] = {"channel": self.shown.channel, "ts": self.shown.ts}
        return data
