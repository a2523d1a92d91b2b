"""The project's own synthetic patients: five small Synthea-style FHIR R4 transaction Bundles.

The bundles under ``bundles/`` are generated, byte for byte, by ``python -m fhir_fixtures.generate``
(``--check`` verifies the committed files are current). Refer to patients through ``PATIENTS``
rather than hard-coding uuids::

    from fhir_fixtures import PATIENTS
    maria = PATIENTS["diabetic"]
    maria.id, maria.name, maria.path

Every id is a uuid5 derived from a fixed namespace and a stable key, so ids never move when
the clinical content of a record changes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FIXTURE_DIR", "FixturePatient", "MRN_SYSTEM", "ORGANIZATIONS", "PATIENTS", "PRACTITIONERS",
    "bundle_paths", "fixture_uuid",
]

FIXTURE_DIR: Path = Path(__file__).resolve().parent / "bundles"
MRN_SYSTEM = "http://hospital.example.org/mrn"
_NAMESPACE = uuid.UUID("5b0f6c1e-8d2a-4e57-9a3c-6f2e1d7b9c40")


def fixture_uuid(*parts: str) -> str:
    """The deterministic uuid (version 5) of a fixture resource, e.g. ``fixture_uuid("Patient", "healthy")``."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


@dataclass(frozen=True)
class FixturePatient:
    key: str             # stable role name, e.g. "diabetic"
    id: str              # Patient.id == uuid in the bundle's fullUrl and file name
    given: str
    family: str
    gender: str          # FHIR administrative gender
    birth_date: str      # YYYY-MM-DD
    mrn: str             # identifier value in MRN_SYSTEM
    description: str

    @property
    def name(self) -> str:
        return f"{self.given} {self.family}"

    @property
    def filename(self) -> str:
        return f"{self.given}_{self.family}_{self.id}.json"

    @property
    def path(self) -> Path:
        return FIXTURE_DIR / self.filename


def _patient(key: str, given: str, family: str, gender: str, birth_date: str, mrn: str,
             description: str) -> FixturePatient:
    return FixturePatient(key, fixture_uuid("Patient", key), given, family, gender, birth_date, mrn,
                          description)


PATIENTS: dict[str, FixturePatient] = {p.key: p for p in (
    _patient("diabetic", "Maria", "Garcia", "female", "1962-04-17", "MRN-000101",
             "Adult with type 2 diabetes (2017) and essential hypertension (2016): 12 HbA1c results "
             "2016-2025, metformin + lisinopril (hydrochlorothiazide stopped), penicillin allergy, "
             "ED visit for chest pain, retinal imaging, lipid panels; one clinical note carries a "
             "deliberate prompt-injection sentence."),
    _patient("cardiometabolic", "James", "Okafor", "male", "1971-08-02", "MRN-000102",
             "Adult with essential hypertension and hyperlipidemia on lisinopril + atorvastatin: LDL "
             "and BP series 2014-2025, resolved acute bronchitis (2021), Td/influenza/COVID-19 "
             "immunizations."),
    _patient("asthma_child", "Lucas", "Garcia", "male", "2015-03-08", "MRN-000103",
             "Child (born 2015) with asthma (albuterol + fluticasone inhalers) and a peanut allergy: "
             "childhood immunization series (hep B, DTaP, IPV, PCV13, MMR, varicella, influenza) and "
             "growth vitals. Shares the family name Garcia with the diabetic patient (unrelated)."),
    _patient("ckd_hf", "Eleanor", "Whitfield", "female", "1944-11-23", "MRN-000104",
             "Older adult with chronic kidney disease stage 3 and heart failure: creatinine/eGFR "
             "series 2018-2025, 5-day inpatient stay for heart failure in February 2020 (oxygen "
             "therapy, echocardiogram, LVEF 35 %), ibuprofen stopped, amlodipine + furosemide + "
             "carvedilol active; also essential hypertension and knee osteoarthritis."),
    _patient("healthy", "Aisha", "Rahman", "female", "1999-07-14", "MRN-000105",
             "Healthy young adult with a short record: two wellness visits (2023, 2024), vitals, one "
             "influenza vaccine; no conditions, medications or allergies."),
)}

# Shared resources (the same ids in every bundle that references them).
ORGANIZATIONS: dict[str, str] = {k: fixture_uuid("Organization", k) for k in ("clinic", "hospital")}
PRACTITIONERS: dict[str, str] = {k: fixture_uuid("Practitioner", k) for k in ("pcp", "peds", "hospitalist")}


def bundle_paths() -> list[Path]:
    """The committed bundle files, sorted by name."""
    return sorted(FIXTURE_DIR.glob("*.json"))
