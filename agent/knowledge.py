"""The knowledge tools a run offers beside the record tools: guideline search and image search.

Both hold no patient data of their own (image search hides other patients' ids), so they join
a bound session's tool registry. Each is offered only when usable: guidelines unless the
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
        from tools.images.tools import image_tools

        tools += image_tools(settings.image_index or default_index_path(), settings.image_encoder,
                             patient_id=patient_id)
    return tools
