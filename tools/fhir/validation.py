"""FHIR R4 validation with the ``fhir.resources`` R4B models, at the store's boundaries.

Validation costs about 0.4 ms a resource (pydantic models), the largest part of a load; the
store runs it in worker processes when it loads several files.
"""

from __future__ import annotations

from typing import Any

_MODEL_CACHE: dict[str, Any] = {}


def _model(rtype: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class  # import cost paid only when needed

    model = _MODEL_CACHE.get(rtype)
    if model is None:
        try:
            model = _MODEL_CACHE[rtype] = get_fhir_model_class(rtype)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"'{rtype}' is not a FHIR R4 resource type") from exc
    return model


def is_resource_type(rtype: str) -> bool:
    try:
        _model(rtype)
    except ValueError:
        return False
    return True


def validate_resource(resource: dict[str, Any]) -> None:
    """Validate one resource against FHIR R4; raises ValueError naming the first problems."""
    model = _model(resource.get("resourceType", ""))
    try:
        model.model_validate(resource)
    except Exception as exc:  # pydantic.ValidationError, or fhir_core's own errors
        errors = getattr(exc, "errors", None)
        if callable(errors):
            found = errors()
            parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in found[:3]]
            more = len(found) - 3
            raise ValueError("; ".join(parts) + (f" (and {more} more)" if more > 0 else "")) from exc
        raise ValueError(str(exc)) from exc
