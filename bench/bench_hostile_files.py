"""Hostile report files: wall time and peak memory of reading each one, and of parsing it.

Each input is read in its own child process, so a peak belongs to one case: first
`read_report_file` alone (every line), then `parse_report` over it (what an import does).
The outcome is the number of lines, or the one error a user would see.

    .venv/bin/python bench/bench_hostile_files.py
"""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

MiB = 1 << 20
MAIN = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE = "http://schemas.openxmlformats.org/package/2006/relationships"


def long_line(path: Path) -> None:
    with path.open("wb") as file:
        for _ in range(128):
            file.write(b"a" * MiB)


def gzip_of(byte: bytes, packed_size: int) -> Callable[[Path], None]:
    """A gzip of one repeated byte, about packed_size bytes long (~1,000 times as much)."""

    def write(path: Path) -> None:
        packer = zlib.compressobj(9, zlib.DEFLATED, 31)
        block = byte * (16 * MiB)
        with path.open("wb") as file:
            while file.tell() < packed_size:
                file.write(packer.compress(block))
            file.write(packer.flush())

    return write


def random_bytes(path: Path) -> None:
    source = random.Random(50)
    with path.open("wb") as file:
        for _ in range(50):
            file.write(source.randbytes(MiB))


def workbook(sheet_data: str, *, padding: int = 0) -> Callable[[Path], None]:
    """A minimal .xlsx whose first sheet holds sheet_data (and `padding` spaces after it)."""

    def write(path: Path) -> None:
        parts = {
            "_rels/.rels": f'<Relationships xmlns="{PACKAGE}"><Relationship Id="r1" '
            f'Type="{RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
            "xl/workbook.xml": f'<workbook {MAIN} xmlns:r="{RELS}"><sheets>'
            '<sheet name="S" sheetId="1" r:id="r1"/></sheets></workbook>',
            "xl/_rels/workbook.xml.rels": f'<Relationships xmlns="{PACKAGE}"><Relationship '
            f'Id="r1" Type="{RELS}/worksheet" Target="sheet.xml"/></Relationships>',
        }
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for name, xml in parts.items():
                archive.writestr(name, xml)
            with archive.open("xl/sheet.xml", "w", force_zip64=True) as sheet:
                sheet.write(f"<worksheet {MAIN}><sheetData>{sheet_data}".encode())
                for _ in range(padding // (16 * MiB)):
                    sheet.write(b" " * (16 * MiB))
                sheet.write(b"</sheetData></worksheet>")

    return write


HEADER = '<row r="1"><c r="A1" t="inlineStr"><is><t>settlement-id</t></is></c></row>'
CASES: dict[str, Callable[[Path], None]] = {
    "long-line.txt (128 MiB, no line break)": long_line,
    "zeros.txt.gz (1 MB gzip of zeros)": gzip_of(b"\x00", MiB),
    "newlines.txt.gz (1 MB gzip of line breaks)": gzip_of(b"\n", MiB),
    "random.txt (50 MB of random bytes)": random_bytes,
    "far-cell.xlsx (XFD1048576)": workbook(
        HEADER + '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'
    ),
    "far-row.xlsx (r=99999999)": workbook(HEADER + '<row r="99999999"><c><v>1</v></c></row>'),
    "gap.xlsx (row 1,048,576 after row 1)": workbook(
        HEADER + '<row r="1048576"><c r="A1048576"><v>1</v></c></row>'
    ),
    "exponent.xlsx (1E999999999, date serial 1E9)": workbook(
        HEADER + '<row r="2"><c><v>1E999999999</v></c><c s="0"><v>1E9</v></c></row>'
    ),
    "whitespace.xlsx (1 MB zip, 1 GiB of spaces)": workbook(HEADER, padding=1024 * MiB),
}


def child(path: Path, parse: bool) -> None:
    from services.errors import ServiceError
    from services.report_files import read_report_file
    from services.reports import parse_report

    started = time.perf_counter()
    try:
        lines = read_report_file(path)
        items = parse_report(lines, file_name=path.name) if parse else lines
        outcome = f"{sum(1 for _ in items):,} {'items' if parse else 'lines'}"
    except ServiceError as error:
        outcome = f"{error.kind.value}: {error.message}"
    elapsed = time.perf_counter() - started
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would be the parent's.
    status = Path("/proc/self/status").read_text()
    peak = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    peak //= 1024
    print(f"{elapsed:.2f}\t{peak:.0f}\t{outcome}")


def main() -> None:
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"# {python}, {os.cpu_count()} CPUs")
    print("| input | size | read: s | read: peak MB | + parse: s | + parse: peak MB | outcome |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for label, write in CASES.items():
            path = Path(folder) / label.split(" ")[0]
            write(path)
            figures = []
            for parse in (False, True):
                run = subprocess.run(
                    [sys.executable, __file__, str(path), "parse" if parse else "read"],
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=True,
                )
                figures.append(run.stdout.strip().split("\t"))
            size = path.stat().st_size
            (read_s, read_mb, outcome), (parse_s, parse_mb, parsed) = figures
            shown = outcome if outcome == parsed else f"read: {outcome[:40]}; parse: {parsed}"
            print(
                f"| {label} | {size / MiB:,.2f} MiB | {read_s} | {read_mb} | {parse_s} | "
                f"{parse_mb} | {shown[:140]} |"
            )
            path.unlink()


if __name__ == "__main__":
    if len(sys.argv) == 3:
        child(Path(sys.argv[1]), sys.argv[2] == "parse")
    else:
        main()
