"""The EHR tools a planner calls over one patient's FHIR record.

``EhrSession(backend, patient_id)`` binds one patient; ``session.tools()`` lists the planner's
tools (find_patient, patient_summary, search_records, read_record, draft_order). Each returns a
``ToolResult``: compact ``text`` for the planner, ``ids``, raw ``resources`` and ``error``.
"""

from .resolve import Match, Resolution, resolve_codes
from .results import ToolResult
from .session import CLINICAL_TYPES, EhrSession

__all__ = ["CLINICAL_TYPES", "EhrSession", "Match", "Resolution", "ToolResult", "resolve_codes"]
