"""The record side: which indexed images belong to an ImagingStudy or Media resource.

Matches, strongest first: SOP instance UIDs, series UIDs, the study UID (FHIR writes it as
an identifier ``urn:oid:<uid>``), a Media's file URL, and last the patient id (images of the
same patient, not necessarily of this study). The match kind goes with the rows, so the
caller can say how sure the link is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .index import ImageIndex

MATCH_ORDER = ("instance", "series", "study", "file", "patient")


@dataclass
class RecordImages:
    match: str | None = None                      # one of MATCH_ORDER, or None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def note(self) -> str:
        """A short cell for a record row: '2 images indexed (series UID)', or ''."""
        if not self.rows:
            return ""
        what = {"instance": "instance UID", "series": "series UID", "study": "study UID", "file": "file",
                "patient": "same patient, study not matched"}[self.match or "patient"]
        return f"{len(self.rows)} image{'s' if len(self.rows) != 1 else ''} indexed ({what})"


def _uid(value: Any) -> str:
    text = str(value or "").strip()
    return text[len("urn:oid:"):] if text.startswith("urn:oid:") else text


def _patient_id(resource: dict[str, Any]) -> str:
    ref = (resource.get("subject") or resource.get("patient") or {}).get("reference", "")
    return ref.rsplit("/", 1)[-1].removeprefix("urn:uuid:") if ref else ""


def _in(index: ImageIndex, column: str, values: list[str]) -> list[dict[str, Any]]:
    values = sorted({v for v in values if v})
    if not values:
        return []
    return index.rows(f"{column} IN ({', '.join('?' * len(values))})", values)


def record_images(index: ImageIndex, resource: dict[str, Any]) -> RecordImages:
    """The indexed images of an ImagingStudy or Media, and how they were matched."""
    if not index.exists or not isinstance(resource, dict):
        return RecordImages()
    rtype = resource.get("resourceType")
    identifiers = [_uid(i.get("value")) for i in resource.get("identifier", []) if isinstance(i, dict)]
    if rtype == "ImagingStudy":
        series = resource.get("series", [])
        instances = [_uid(inst.get("uid")) for s in series for inst in s.get("instance", [])]
        candidates = [("instance", "sop_uid", instances), ("series", "series_uid", [_uid(s.get("uid")) for s in series]),
                      ("study", "study_uid", identifiers)]
    elif rtype == "Media":
        url = str((resource.get("content") or {}).get("url") or "")
        candidates = [("instance", "sop_uid", identifiers), ("study", "study_uid", identifiers),
                      ("file", "path", [url.removeprefix("file://")] if url.startswith(("file://", "/")) else [])]
    else:
        return RecordImages()
    for kind, column, values in candidates:
        rows = _in(index, column, values)
        if rows:
            return RecordImages(kind, rows)
    rows = _in(index, "patient_id", [_patient_id(resource)])
    return RecordImages("patient", rows) if rows else RecordImages()


def indexed_note(index: ImageIndex, resource: dict[str, Any]) -> str:
    """'' or e.g. '3 images indexed (study UID)': for an ImagingStudy/Media row's value cell."""
    return record_images(index, resource).note()
