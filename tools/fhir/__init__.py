"""FHIR access for the tools: the embedded store and any FHIR R4 REST server, one interface."""

from __future__ import annotations

from .backend import BackendUnavailable, FhirBackend, FhirError, NotFound, format_query, parse_query


def open_backend(store_url: str | None = None, fhir_url: str | None = None, token: str | None = None,
                 timeout: float = 30.0, retries: int = 3) -> FhirBackend:
    """A REST backend when ``fhir_url`` is given, else the embedded store at ``store_url``."""
    if fhir_url:
        from .rest import RestBackend

        return RestBackend(fhir_url, token=token, timeout=timeout, retries=retries)
    if not store_url:
        raise ValueError("either a store URL or a FHIR server URL is needed")
    from .store import EmbeddedStore

    return EmbeddedStore(store_url)


__all__ = ["open_backend", "FhirBackend", "FhirError", "NotFound", "BackendUnavailable", "parse_query", "format_query"]
