"""`python -m bot ...` (also installed as `amazon-xero-bot`).

Exit status: 0 done; 1 the work failed (an upstream error); 2 the command could not proceed
(bad arguments, bad configuration, unknown names). Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bot.config import ConfigError, Settings, load_settings
from bot.container import Container
from bot.logs import configure_logging
from bot.progress import ProgressBar
from bot.results import describe_result
from services.dry_run import WouldFail, dry_run
from services.errors import ErrorKind, ServiceError
from services.integrations import LOCAL_WORKSPACE, OWN_VAT_SCHEMES, IntegrationSpec
from services.marketplaces import Region
from services.models import Integration
from services.periods import period_bounds, period_label, previous_period
from services.reconcile import Reconciliation, reconcile
from services.results import RunResult
from services.xero import to_json

EXIT_FAILED = 1
EXIT_CANNOT_PROCEED = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the message says what to fix.
        self.exit(EXIT_CANNOT_PROCEED, f"{self.prog}: error: {message} (see --help)\n")


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2026-01-31") from None


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def integration_json(container: Container, integration: Integration) -> dict[str, Any]:
    """What the CLI shows of an integration; never a token."""
    expires = container.integrations.authorization_expires_at(integration)
    return {
        "name": integration.name,
        "workspace": integration.workspace_id,
        "status": integration.status,
        "region": integration.region,
        "marketplaces": list(integration.marketplaces),
        "start_date": integration.start_date.isoformat(),
        "invoice_status": integration.invoice_status,
        "sales_account_code": integration.sales_account_code,
        "shipping_account_code": integration.shipping_account_code,
        "vat_rates": dict(integration.vat_rates),
        "errors_channel": integration.errors_channel,
        "summary_channel": integration.summary_channel,
        "amazon_selling_partner_id": integration.amazon_selling_partner_id,
        "amazon_authorized_at": _iso(integration.amazon_authorized_at),
        "amazon_authorization_expires_at": _iso(expires),
        "xero_tenant_id": integration.xero_tenant_id,
        "xero_tenant_name": integration.xero_tenant_name,
        "created_at": _iso(integration.created_at),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# -- commands ----------------------------------------------------------------------------------


def _cmd_db_upgrade(container: Container, _args: argparse.Namespace) -> int:
    container.migrate()
    print("Database is at the latest schema.")
    return 0


def _cmd_integration_add(container: Container, args: argparse.Namespace) -> int:
    amazon_token = args.amazon_refresh_token or os.environ.get("AMAZON_REFRESH_TOKEN", "")
    xero_token = args.xero_refresh_token or os.environ.get("XERO_REFRESH_TOKEN", "")
    for variable, value in (
        ("AMAZON_REFRESH_TOKEN", amazon_token),
        ("XERO_REFRESH_TOKEN", xero_token),
    ):
        if not value:
            raise ConfigError(variable, "is required by `integration add` (environment or flag)")
    spec = IntegrationSpec(
        name=args.name,
        region=Region(args.region),
        marketplaces=tuple(args.marketplace),
        start_date=args.start_date,
        errors_channel=args.errors_channel,
        summary_channel=args.summary_channel,
    )
    container.migrate()
    integration = container.integrations.create_connected(
        spec,
        actor=_actor(),
        workspace_id=args.workspace or LOCAL_WORKSPACE,
        selling_partner_id=args.selling_partner_id,
        amazon_refresh_token=amazon_token,
        xero_tenant_id=args.xero_tenant_id,
        xero_refresh_token=xero_token,
    )
    print(f"Integration {integration.name} is {integration.status.replace('_', ' ')}.")
    return 0


def _cmd_integration_list(container: Container, args: argparse.Namespace) -> int:
    container.migrate()
    integrations = container.integrations.list(args.workspace)
    if args.json:
        print(json.dumps([integration_json(container, i) for i in integrations], indent=2))
        return 0
    if not integrations:
        print("No integrations yet. Add one with `integration add` or /amazon setup in Slack.")
        return 0
    width = max(len(i.name) for i in integrations)
    for integration in integrations:
        print(
            f"{integration.workspace_id:<11}  "
            f"{integration.name:<{width}}  {integration.status:<21}  {integration.region}  "
            f"{','.join(integration.marketplaces)}  from {integration.start_date.isoformat()}"
        )
    return 0


def _cmd_integration_show(container: Container, args: argparse.Namespace) -> int:
    container.migrate()
    integration = container.integrations.find(args.name, args.workspace)
    shown = integration_json(container, integration)
    if args.json:
        print(json.dumps(shown, indent=2))
        return 0
    rates = shown.pop("vat_rates")
    width = max(len(key) for key in shown)
    for key, value in shown.items():
        print(f"{key:<{width}}  {value if value is not None else '-'}")
    print("\nOwn VAT rates (for sales Amazon calculated no VAT for):")
    for key, percent in sorted(rates.items()):
        print(f"  {key.replace(':', ' ')} {percent}%")
    if not rates:
        print(f"  none set (`integration vat-rate {integration.name} DE domestic 19` sets one)")
    print("\nAudit log:")
    for entry in container.integrations.audit_log(integration.id):
        print(f"  {entry.at:%Y-%m-%d %H:%M:%S}Z  {entry.actor}  {entry.action}")
    return 0


def _cmd_integration_vat_rate(container: Container, args: argparse.Namespace) -> int:
    if (args.percent is None) == (not args.remove):
        build_parser().error("integration vat-rate: give either PERCENT or --remove")
    container.migrate()
    found = container.integrations.find(args.name, args.workspace)
    integration = container.integrations.set_vat_rate(
        found.id, args.country, args.scheme, args.percent, actor=_actor(), workspace_id=None
    )
    what = f"{args.country.upper()} {args.scheme.lower()}"
    if args.remove:
        print(f"{integration.name}: no own VAT rate for {what} sales any more.")
    else:
        key = f"{args.country.upper()}:{args.scheme.lower()}"
        print(f"{integration.name}: {what} sales at {integration.vat_rates[key]}%.")
    return 0


def _cmd_integration_stop(container: Container, args: argparse.Namespace) -> int:
    container.migrate()
    found = container.integrations.find(args.name, args.workspace)
    integration = container.integrations.stop(found.id, actor=_actor(), workspace_id=None)
    print(
        f"{integration.name} is stopped: no data is pulled for the next period "
        "until it is activated again."
    )
    return 0


def _cmd_integration_activate(container: Container, args: argparse.Namespace) -> int:
    container.migrate()
    found = container.integrations.find(args.name, args.workspace)
    integration = container.integrations.activate(found.id, actor=_actor(), workspace_id=None)
    print(f"{integration.name} is active again.")
    return 0


def _cmd_integration_refresh(container: Container, args: argparse.Namespace) -> int:
    from services.connect import Purpose

    container.migrate()
    integration = container.integrations.find(args.name, args.workspace)
    url = container.connect.amazon_consent_url(integration, actor=_actor(), purpose=Purpose.REFRESH)
    print(
        "Open this link within 10 minutes, signed in to Seller Central as the seller, to renew "
        f"the Amazon authorization of {integration.name}:\n{url}"
    )
    return 0


def _print_result(result: RunResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_json()))
        return
    for line in describe_result(result):
        print(line)


def _report_run(as_json: bool, run: Callable[[Callable[[str, int, int], None]], RunResult]) -> int:
    """Run with a progress bar on stderr (none for --json), print the result, exit by it."""
    bar = None if as_json else ProgressBar()
    try:
        result = run(bar or _silent)
    finally:
        if bar:
            bar.close()
    _print_result(result, as_json)
    return result.exit_code


def _cmd_sync(container: Container, args: argparse.Namespace) -> int:
    container.migrate()
    integration = container.integrations.find(args.name, args.workspace)
    period = args.period or previous_period(datetime.now(UTC))
    return _report_run(
        args.json,
        lambda progress: container.sync.sync_period(integration, period, progress=progress),
    )


def _cmd_import_report(container: Container, args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise ServiceError(ErrorKind.VALIDATION, f"{path}: no such file.", retryable=False)
    container.migrate()
    integration = container.integrations.find(args.integration, args.workspace)
    if args.dry_run:
        counts: dict[str, int] = {}
        errors = 0
        for outcome in dry_run(integration, path):
            if isinstance(outcome, WouldFail):
                errors += 1
                print(f"would fail: {outcome.message}", file=sys.stderr)
                continue
            counts[outcome.endpoint] = counts.get(outcome.endpoint, 0) + 1
            if args.json:
                print(to_json({"_endpoint": outcome.endpoint, **outcome.payload}))
        if not args.json:
            listed = ", ".join(f"{n} {endpoint}" for endpoint, n in counts.items()) or "nothing"
            failing = f"; {errors} would fail" if errors else ""
            print(f"Dry run of {path.name}: would send {listed}{failing}. Nothing was sent.")
        return EXIT_FAILED if errors else 0
    return _report_run(
        args.json,
        lambda progress: container.sync.import_report(integration, path, progress=progress),
    )


def _cmd_retry(container: Container, args: argparse.Namespace) -> int:
    container.migrate()
    if args.run is not None:
        result = container.sync.retry_run(args.run, workspace_id=None)
        _print_result(result, as_json=False)
        return result.exit_code
    item = container.sync.retry_item(args.item_id, workspace_id=None)
    if item.status == "posted":
        print(f"Item {item.id} is in Xero: {item.document_number} ({item.xero_id}).")
        return 0
    print(f"Item {item.id} still failed: {item.error_message}")
    return EXIT_FAILED


def _cmd_reconcile(container: Container, args: argparse.Namespace) -> int:
    container.migrate()
    integration = container.integrations.find(args.name, args.workspace)
    checked = reconcile(container.sessions, integration, args.period)
    if args.json:
        print(json.dumps(checked.to_json()))
    else:
        for line in describe_reconciliation(checked):
            print(line)
    return 0 if checked.reconciled else EXIT_FAILED


def describe_reconciliation(checked: Reconciliation) -> list[str]:
    """The month's check as text: the figures per currency, then each difference, the
    unexplained ones first (marked "!")."""
    lines = [f"{checked.integration}, {period_label(checked.period)}"]
    if not checked.currencies:
        lines.append("Nothing recorded for this month: no report rows, no settlements.")
    for code, f in sorted(checked.currencies.items()):
        lines += [
            code,
            f"  Amazon's report  sales {_money(f.report_sales)}, refunds "
            f"{_money(f.report_refunds)}",
            f"  Settlements      sales {_money(f.settled_sales)}, refunds "
            f"{_money(f.settled_refunds)}, fees {_money(f.fees)}, reserve {_money(f.reserve)}, "
            f"payouts {_money(f.payouts)}",
            f"  Xero             invoiced {_money(f.xero_invoiced)}, paid {_money(f.xero_paid)}, "
            f"clearing balance {_money(f.clearing_balance)}",
        ]
    differences = checked.differences
    flagged = sum(not d.explained for d in differences)
    verdict = "the month does not reconcile" if flagged else "everything reconciles"
    lines.append(f"{len(differences)} differences, {flagged} unexplained: {verdict}.")
    for d in sorted(differences, key=lambda d: d.explained):
        ids = " ".join(
            f"{word} {value}"
            for word, value in (("order", d.amazon_order_id), ("settlement", d.settlement_id))
            if value
        )
        lines.append(
            f"  {' ' if d.explained else '!'} {d.kind.value}  {ids}  {_money(d.amount)} "
            f"{d.currency}: {d.explanation}"
        )
    return lines


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')):,}"


def _silent(_phase: str, _done: int, _total: int) -> None:
    return None


def _period(value: str) -> str:
    try:
        period_bounds(value)
    except ServiceError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a period like 2026-10") from None
    return value


def _cmd_run(container: Container, _args: argparse.Namespace) -> int:
    from bot.server import serve

    return serve(container)


def _cmd_demo(_container: Container, _args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return run_demo()


def _cmd_sandbox(_container: Container, args: argparse.Namespace) -> int:
    from sandbox.world import serve_forever

    return serve_forever(port_base=args.port_base)


def _workspace_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace",
        metavar="TEAM_ID",
        help="the Slack workspace (team id, or 'local') of the integration named; needed only "
        "when several workspaces use the name",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="amazon-xero-bot", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    commands.add_parser(
        "run", help="serve the OAuth callbacks and /healthz, and run the monthly sync schedule"
    ).set_defaults(handler=_cmd_run)
    commands.add_parser(
        "demo", help="connect a sandbox integration end to end, offline"
    ).set_defaults(handler=_cmd_demo)
    sandbox = commands.add_parser("sandbox", help="serve the Amazon, Xero and Slack stand-ins")
    sandbox.add_argument("--port-base", type=int, default=8701, help="first of three ports")
    sandbox.set_defaults(handler=_cmd_sandbox)

    sync = commands.add_parser("sync", help="sync one month of an integration (or resume it)")
    sync.add_argument("name")
    _workspace_option(sync)
    sync.add_argument("--period", type=_period, metavar="YYYY-MM", help="default: last month")
    sync.add_argument("--json", action="store_true", help="print the result as one JSON object")
    sync.set_defaults(handler=_cmd_sync)

    importing = commands.add_parser(
        "import-report", help="post a report downloaded from Seller Central"
    )
    importing.add_argument("file", metavar="FILE")
    importing.add_argument("--integration", required=True, metavar="NAME")
    _workspace_option(importing)
    importing.add_argument(
        "--dry-run", action="store_true", help="show what would be sent; call nothing"
    )
    importing.add_argument("--json", action="store_true")
    importing.set_defaults(handler=_cmd_import_report)

    reconciling = commands.add_parser(
        "reconcile",
        help="check a month: Amazon's report, the settlements and Xero, per currency",
        description="Exit 0 when every difference is explained (orders not settled yet, "
        "payments waiting for their invoices, ...), 1 when one is not.",
    )
    reconciling.add_argument("name")
    _workspace_option(reconciling)
    reconciling.add_argument("--period", type=_period, required=True, metavar="YYYY-MM")
    reconciling.add_argument("--json", action="store_true", help="print one JSON object")
    reconciling.set_defaults(handler=_cmd_reconcile)

    retry = commands.add_parser("retry", help="post failed items again")
    target = retry.add_mutually_exclusive_group(required=True)
    target.add_argument("item_id", nargs="?", type=int, metavar="ITEM_ID")
    target.add_argument("--run", type=int, metavar="RUN_ID", help="every failed item of a run")
    retry.set_defaults(handler=_cmd_retry)

    database = commands.add_parser("db", help="database maintenance")
    db_commands = database.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    db_commands.add_parser("upgrade", help="apply the migrations").set_defaults(
        handler=_cmd_db_upgrade
    )

    integration = commands.add_parser("integration", help="manage integrations")
    actions = integration.add_subparsers(dest="action", required=True, parser_class=_Parser)
    add = actions.add_parser("add", help="add an active integration from existing tokens")
    add.add_argument("--name", required=True)
    add.add_argument("--region", required=True, choices=[r.value for r in Region])
    add.add_argument("--marketplace", required=True, action="append", metavar="ID")
    add.add_argument("--start-date", required=True, type=_date, metavar="YYYY-MM-DD")
    add.add_argument("--selling-partner-id", required=True)
    add.add_argument("--xero-tenant-id", required=True)
    add.add_argument("--errors-channel")
    add.add_argument("--summary-channel")
    add.add_argument(
        "--amazon-refresh-token", help="prefer AMAZON_REFRESH_TOKEN: flags show in process lists"
    )
    add.add_argument(
        "--xero-refresh-token", help="prefer XERO_REFRESH_TOKEN: flags show in process lists"
    )
    add.add_argument(
        "--workspace", metavar="TEAM_ID", help="the Slack workspace to add it to (default: local)"
    )
    add.set_defaults(handler=_cmd_integration_add)

    listing = actions.add_parser("list", help="list integrations")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--workspace", metavar="TEAM_ID", help="default: every workspace")
    listing.set_defaults(handler=_cmd_integration_list)
    show = actions.add_parser(
        "show", help="show one integration, its own VAT rates and its audit log"
    )
    show.add_argument("name")
    _workspace_option(show)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_cmd_integration_show)
    schemes = ", ".join(scheme.value for scheme in OWN_VAT_SCHEMES)
    vat_rate = actions.add_parser(
        "vat-rate",
        help="set (or --remove) one of your own VAT rates, for sales Amazon calculated no VAT "
        "for, e.g. `vat-rate NAME DE domestic 19`",
        description="Sales Amazon calculated no VAT for are posted VAT-inclusive at your own "
        "rate for their country and scheme; without one they fail, saying which rate they need "
        "(retry them once it is set). `integration show NAME` lists the rates.",
    )
    vat_rate.add_argument("name")
    vat_rate.add_argument("country", metavar="COUNTRY", help="ISO code, e.g. DE")
    vat_rate.add_argument("scheme", metavar="SCHEME", help=f"one of: {schemes}")
    vat_rate.add_argument("percent", nargs="?", metavar="PERCENT", help="e.g. 19 or 5.5")
    vat_rate.add_argument("--remove", action="store_true", help="remove the rate instead")
    _workspace_option(vat_rate)
    vat_rate.set_defaults(handler=_cmd_integration_vat_rate)
    handlers: dict[str, tuple[str, Callable[[Container, argparse.Namespace], int]]] = {
        "stop": ("stop pulling data from the next period on", _cmd_integration_stop),
        "activate": ("resume a stopped integration", _cmd_integration_activate),
        "refresh": (
            "print a new Amazon consent link (renews the 365 days)",
            _cmd_integration_refresh,
        ),
    }
    for action, (help_text, handler) in handlers.items():
        sub = actions.add_parser(action, help=help_text)
        sub.add_argument("name")
        _workspace_option(sub)
        sub.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None, *, settings: Settings | None = None) -> int:
    args = build_parser().parse_args(argv)
    prog = "amazon-xero-bot"
    try:
        settings = settings or load_settings()
        configure_logging(settings.log_level)
        return int(args.handler(Container(settings), args))
    except ConfigError as error:
        print(f"{prog}: configuration error: {error}", file=sys.stderr)
        return EXIT_CANNOT_PROCEED
    except OperationalError as error:
        assert settings is not None  # the database is only reached once settings loaded
        url = make_url(settings.database_url).render_as_string(hide_password=True)
        reason = str(error.orig).strip().splitlines()[0] if error.orig else "no answer"
        print(f"{prog}: cannot use the database at {url}: {reason}", file=sys.stderr)
        return EXIT_CANNOT_PROCEED
    except OSError as error:
        # A port already in use, a data directory that cannot be written, and the like.
        where = f": {error.filename}" if error.filename else ""
        print(f"{prog}: {error.strerror or error}{where}", file=sys.stderr)
        return EXIT_CANNOT_PROCEED
    except ServiceError as error:
        print(f"{prog}: {error.message}", file=sys.stderr)
        # A file refused whole (a wrong report, unreadable bytes) cannot proceed either.
        refused = error.kind == ErrorKind.BAD_DATA and not error.retryable
        cannot_proceed = refused or error.kind in (
            ErrorKind.VALIDATION,
            ErrorKind.NOT_FOUND,
            ErrorKind.AUTH,
        )
        return EXIT_CANNOT_PROCEED if cannot_proceed else EXIT_FAILED
    except KeyboardInterrupt:
        return 130
