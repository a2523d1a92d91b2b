"""AgentClinic-MedQA cases (one ``{"OSCE_Examination": {...}}`` object a line) as BenchCases.

Case ids are the file's stem and the 1-based line number (``agentclinic_medqa-007``): stable
for a given file, which is what resuming needs. What each role may see is split here: the
doctor gets only the objective, the patient only ``Patient_Actor``, the measurement agent only
the physical examination and the test results; the diagnosis goes to the moderator alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from evals.bench.types import BenchCase

DEFAULT_CASES = Path(__file__).resolve().parents[3] / "shared" / "data" / "agentclinic" / "agentclinic_medqa.jsonl"


class BadCaseFile(ValueError):
    pass


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_cases(path: Path) -> list[BenchCase]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no AgentClinic case file at {path} (give --cases FILE)")
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadCaseFile(f"{path}:{number} is not JSON: {exc.msg}") from exc
        osce = item.get("OSCE_Examination", item) if isinstance(item, dict) else None
        if not isinstance(osce, dict):
            raise BadCaseFile(f"{path}:{number}: expected an object with OSCE_Examination")
        cases.append(BenchCase(id=f"{path.stem}-{number:03d}", category=category_of(osce), data=osce))
    return cases


def category_of(osce: dict[str, Any]) -> str:
    """The cases carry no specialty: report them under the dataset's name."""
    return str(osce.get("Category") or "medqa")


def objective(osce: dict[str, Any]) -> str:
    return str(osce.get("Objective_for_Doctor") or "Assess and diagnose the patient.")


def patient_info(osce: dict[str, Any]) -> dict[str, Any]:
    return dict(osce.get("Patient_Actor") or {})


def exam_info(osce: dict[str, Any]) -> dict[str, Any]:
    """Physical examination findings with the test results under ``tests``, as AgentClinic does."""
    info = dict(osce.get("Physical_Examination_Findings") or {})
    info["Test_Results"] = osce.get("Test_Results") or {}
    return info


def diagnosis(osce: dict[str, Any]) -> str:
    return str(osce.get("Correct_Diagnosis") or "")


def as_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
