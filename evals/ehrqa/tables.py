"""Read an EHR tool's text back into rows: what the oracle sees, nothing more.

The tools print a first line ('Observation: 12 found, newest first (...)', 'No Condition
found (...)', '2 patient(s) found:'), an optional 'all rows: col value; col value' line of
constant columns, a pipe-table header and one row per resource. Columns are read by their
header names, so new columns (the requester 'by', the 'reason') are picked up as they come.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tools.ehr.results import COLUMNS

#: Column names the all-rows line may use (the table's own, find_patient's, and coming ones).
KNOWN_COLUMNS = tuple(sorted({*COLUMNS, "by", "reason", "name", "birth date", "gender", "MRN", "type/id"},
                             key=len, reverse=True))
_HEADER_CELL = re.compile(r"^[A-Za-z][A-Za-z /]{0,20}$")
_TOTAL = re.compile(r"^(?:(\w+): (\d+) found|(\d+) patient\(s\) found)")
# An empty result starts with "No ...": whatever it shows next (records outside the filter,
# closest names) is not a match.
_NONE = re.compile(r"^No\b(?: (\w+))?")


@dataclass
class Table:
    resource_type: str = ""
    total: int | None = None
    rows: list[dict[str, str]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    def cite(self, row: dict[str, str]) -> str:
        rid = row.get("id", "")
        return f" ({self.resource_type}/{rid})" if rid and self.resource_type else ""


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.split("|")]


def _all_rows(line: str) -> dict[str, str]:
    """'all rows: code 39156-5; display Body mass index; unit kg/m2' -> {column: value}."""
    body = line.split(":", 1)[1].strip()
    names = "|".join(re.escape(c) for c in KNOWN_COLUMNS)
    out = {}
    for part in re.split(rf"; (?=(?:{names}) )", body):
        for name in KNOWN_COLUMNS:
            if part.startswith(name + " "):
                out[name] = part[len(name) + 1:].strip()
                break
    return out


def parse(text: str) -> Table:
    lines = (text or "").strip().splitlines()
    table = Table()
    if not lines:
        return table
    first = lines[0]
    m = _TOTAL.match(first)
    if m:
        table.resource_type = m.group(1) or "Patient"
        table.total = int(m.group(2) or m.group(3))
        if table.total == 0:  # '0 found': any rows shown next lie outside the filter
            return table
    elif _NONE.match(first):
        table.resource_type = _NONE.match(first).group(1) or ""
        table.total = 0
        return table
    constants: dict[str, str] = {}
    i = 1 if (m or first.startswith("ERROR")) else 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("all rows:"):
            constants = _all_rows(line)
        elif "|" in line and all(_HEADER_CELL.match(c) for c in _cells(line)):
            table.columns = _cells(line)
            break
        i += 1
    for line in lines[i + 1:]:
        cells = _cells(line)
        if not table.columns or len(cells) != len(table.columns):
            break
        table.rows.append({**constants, **dict(zip(table.columns, cells))})
    table.columns = list(dict.fromkeys([*table.columns, *constants]))
    if table.total is None:
        table.total = len(table.rows)
    return table
