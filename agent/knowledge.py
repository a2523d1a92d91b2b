"""The knowledge tools a run offers beside the record tools: guideline search and image search.

Neither returns another patient's data (image search strips other patients' ids, reports and
paths from its hits), so they join a bound session's tool registry. Each is offered only when usable: guidelines unless the
``guidelines`` setting is ``off`` (``starter`` = the corpus shipped in the package, or an
index folder built with ``medagent guidelines index``); images only when a MedSigLIP folder
and an image index are configured. Nothing heavy loads until a tool is first called.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

from tools.ehr.results import ToolResult


@lru_cache(maxsize=4)
def _guideline_tools(index: str | None) -> tuple[Callable[..., ToolResult], ...]:
    # One retriever per index and process: a chat or a batch run pays the index load once.
    from tools.guidelines.tool import guideline_tools

    return tuple(guideline_tools(index))


def knowledge_tools(settings: Any, patient_id: str | None) -> list[Callable[..., ToolResult]]:
    """The knowledge tools ``settings`` make usable, for a session bound to ``patient_id``."""
    tools: list[Callable[..., ToolResult]] = []
    choice = (getattr(settings, "guidelines", "starter") or "off").strip()
    if choice.lower() != "off":
        tools += _guideline_tools(None if choice.lower() == "starter" else choice)
    if getattr(settings, "image_encoder", None):
        from tools.images import default_index_path

        tools += _image_tools(settings.image_index or default_index_path(), settings.image_encoder, patient_id)
    return tools


@lru_cache(maxsize=8)
def _image_tools(index: str, encoder: str, patient_id: str | None) -> tuple[Callable[..., ToolResult], ...]:
    # MedSigLIP is ~3 GB in fp32: one encoder per index, encoder and bound patient, not one per
    # question (other patients' hits are stripped of ids, so the tools are per patient).
    from tools.images.tools import image_tools

    return tuple(image_tools(index, encoder, patient_id=patient_id))


def record_notes(settings: Any) -> dict[str, Callable[[dict[str, Any]], str]]:
    """The record side of image search: ImagingStudy and Media rows say how many of their images
    the configured image index holds ('2 images indexed (series UID)'). Needs only the index's
    metadata, not the encoder; empty when no index is built."""
    from tools.images import ImageIndex, default_index_path, indexed_note

    index = ImageIndex(getattr(settings, "image_index", None) or default_index_path())
    if not index.exists:
        return {}
    note = lambda resource: indexed_note(index, resource)  # noqa: E731 (one index, two types)
    return {"ImagingStudy": note, "Media": note}
