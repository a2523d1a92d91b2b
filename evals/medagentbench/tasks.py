"""MedAgentBench's task and function files, read as they are published.

A task file is a JSON list of ``{"id": "task4_12", "instruction", "context", "eval_MRN", "sol"?}``
(``sol`` only for task1). The kind is the id's prefix (task1..task10). Everything a grader needs
beyond that is written in the task's own text: the reference time ("It's 2023-11-13T10:15:00+00:00
now"), the codes ('The code for magnesium is "MG"'), NDCs and LOINC codes, the blood pressure to
record and the referral's free text. ``TaskSpec`` reads them out once, so the grader follows the
task as the model saw it; generated tasks carry the same fields explicitly (``rules``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = tuple(f"task{i}" for i in range(1, 11))
#: Kinds whose instruction asks for an order; the others are queries and must not POST.
ACTION_KINDS = ("task3", "task5", "task8", "task9", "task10")
#: The reference time their refsol hard-codes for every task that has none in its context.
PUBLISHED_NOW = "2023-11-13T10:15:00+00:00"
SHARED_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "medagentbench"

_NOW = re.compile(r"It's (\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:\d\d)?) now")
_CODE = re.compile(r'The code for [^"]*?is "([^"]+)"')
_NDC = re.compile(r"The NDC for [^.]*? is ([\d-]+)")
_LOINC = re.compile(r"The LOINC code for [^:]*?(?:is)?:?\s*(\d+-\d)")
_SNOMED = re.compile(r"The SNOMED code for [^.]*? is (\d+)")
_FLOWSHEET = re.compile(r"The flowsheet ID for [^.]*? is ([A-Za-z0-9_-]+)")
_QUOTED = re.compile(r'"([^"]+)"')


class TaskFileError(ValueError):
    """A task or function file that does not have MedAgentBench's shape."""


@dataclass(frozen=True)
class Task:
    id: str
    kind: str
    instruction: str
    context: str
    eval_mrn: str
    sol: list[Any] | None = None
    rules: dict[str, Any] = field(default_factory=dict)   # generated tasks: codes, thresholds, gold facts

    @property
    def now(self) -> str:
        """The task's reference time: its context's "It's ... now", else the published one."""
        if self.rules.get("now"):
            return self.rules["now"]
        m = _NOW.search(self.context)
        return m.group(1) if m else PUBLISHED_NOW

    @property
    def code(self) -> str | None:
        """The search code the context names for the value asked about (MG, K, GLU, A1C...)."""
        if self.rules.get("code"):
            return self.rules["code"]
        m = _CODE.search(self.context)
        return m.group(1) if m else None

    @property
    def ndc(self) -> str | None:
        m = _NDC.search(self.context)
        return self.rules.get("ndc") or (m.group(1) if m else None)

    @property
    def order_loinc(self) -> str | None:
        m = _LOINC.search(self.context)
        return self.rules.get("order_loinc") or (m.group(1) if m else None)

    @property
    def snomed(self) -> str | None:
        m = _SNOMED.search(self.context)
        return self.rules.get("snomed") or (m.group(1) if m else None)

    @property
    def flowsheet(self) -> str:
        m = _FLOWSHEET.search(self.context)
        return self.rules.get("flowsheet") or (m.group(1) if m else "BP")

    @property
    def quoted(self) -> str | None:
        """The instruction's quoted text: the blood pressure (task3) or the referral note (task8)."""
        m = _QUOTED.search(self.instruction)
        return m.group(1) if m else None

    @property
    def is_action(self) -> bool:
        return self.kind in ACTION_KINDS

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "instruction": self.instruction, "context": self.context,
                               "eval_MRN": self.eval_mrn}
        if self.sol is not None:
            out["sol"] = self.sol
        if self.rules:
            out["rules"] = self.rules
        return out


def kind_of(task_id: str) -> str:
    kind = task_id.split("_", 1)[0]
    if kind not in KINDS:
        raise TaskFileError(f"task id {task_id!r} does not start with one of task1..task10")
    return kind


def task_from_json(item: dict[str, Any]) -> Task:
    missing = [k for k in ("id", "instruction") if k not in item]   # a not-found task1 has no eval_MRN
    if missing:
        raise TaskFileError(f"task {item.get('id', '?')!r} lacks {', '.join(missing)}")
    return Task(id=str(item["id"]), kind=kind_of(str(item["id"])), instruction=str(item["instruction"]),
                context=str(item.get("context", "")), eval_mrn=str(item.get("eval_MRN", "")), sol=item.get("sol"),
                rules=dict(item.get("rules") or {}))


def load_tasks(path: str | Path) -> list[Task]:
    """Every task in a MedAgentBench task file, in file order (ids must be unique)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise TaskFileError(f"{path}: expected a JSON list of tasks")
    tasks = [task_from_json(item) for item in data]
    seen: set[str] = set()
    for t in tasks:
        if t.id in seen:
            raise TaskFileError(f"{path}: task id {t.id!r} appears twice")
        seen.add(t.id)
    return tasks


def load_funcs(path: str | Path) -> list[dict[str, Any]]:
    """Their FHIR function list (name, description, parameters), as the prompt shows it."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(isinstance(f, dict) and "name" in f for f in data):
        raise TaskFileError(f"{path}: expected a JSON list of functions with names")
    return data


def default_funcs_path() -> Path:
    """Their funcs_v1.json: the shared copy when present, else the copy kept beside this module."""
    shared = SHARED_DIR / "funcs_v1.json"
    return shared if shared.is_file() else Path(__file__).with_name("funcs_v1.json")


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sha256_json(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
