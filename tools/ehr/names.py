"""Names for the references a row carries: who prescribed, for what, who performed.

Synthea's references are bare ids (``requester: {"reference": "Practitioner/..."}``); a planner
should not need one ``read_record`` per row to learn them. ``ReferenceNames.fill`` returns
copies whose references carry the target's name as ``display``, read once per session and
never from another patient's record (``in_scope`` decides).
"""

from __future__ import annotations

from typing import Any, Callable

from tools.fhir.backend import FhirBackend, FhirError, NotFound
from tools.fhir.extract import split_reference
from tools.fhir.manifest import human_name

from .results import concept_text

#: Reference fields whose targets' names the tables show.
NAMED_REFS = ("requester", "reasonReference", "performer", "participant", "recorder", "asserter", "author")
PERSON_TYPES = ("Practitioner", "Patient", "RelatedPerson")


class ReferenceNames:
    def __init__(self, backend: FhirBackend, in_scope: Callable[[dict[str, Any]], bool]):
        self.backend = backend
        self.in_scope = in_scope
        self._cache: dict[str, str] = {}   # "Type/id" -> display name ('' when unknown or out of scope)

    def fill(self, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Copies of ``resources`` whose named references carry their target's name."""
        out = []
        for r in resources:
            r = dict(r)
            for key in NAMED_REFS:
                if key in r:
                    r[key] = self._named(r[key])
            out.append(r)
        return out

    def _named(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._named(v) for v in value]
        if not isinstance(value, dict):
            return value
        if isinstance(value.get("reference"), str) and not value.get("display"):
            name = self.name(value["reference"])
            return {**value, "display": name} if name else value
        # performer/participant entries wrap the reference: {"actor": {...}}, {"individual": {...}}
        return {k: self._named(v) if k in ("actor", "individual") else v for k, v in value.items()}

    def name(self, reference: str) -> str:
        """The referenced resource's name, or '' (unreadable, or not the bound patient's)."""
        if reference not in self._cache:
            name = ""
            target = split_reference(reference)
            if target and target[0]:
                try:
                    found = self.backend.read(*target)
                except (NotFound, FhirError):
                    found = None
                if found and self.in_scope(found):  # never a name from another patient's record
                    name = (human_name(found.get("name")) if target[0] in PERSON_TYPES
                            else found.get("name") if isinstance(found.get("name"), str)
                            else concept_text(found.get("code")))
            self._cache[reference] = name or ""
        return self._cache[reference]
