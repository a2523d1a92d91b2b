"""The one interface every FHIR backend offers: the embedded store and any FHIR R4 REST server.

Searches take the FHIR query string a FHIR developer already knows
(``"Observation?patient=123&code=http://loinc.org|4548-4&_sort=-date"``) and return
searchset Bundles as plain dicts. Raw dicts stay inside; models validate at the edges.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import parse_qsl, urlencode

Params = list[tuple[str, str]]


class FhirError(Exception):
    """A FHIR-level failure carrying an OperationOutcome, e.g. a bad search parameter.

    ``status`` follows HTTP (400 bad request, 404 not found, 503 unreachable, ...), so the
    embedded store and a REST server report the same failure the same way.
    """

    def __init__(self, message: str, status: int = 400, code: str = "invalid",
                 outcome: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.outcome = outcome or operation_outcome(message, code=code)


class NotFound(FhirError):
    def __init__(self, message: str):
        super().__init__(message, status=404, code="not-found")


class BackendUnavailable(FhirError):
    """The backend cannot be reached (server down, DNS, timeout after retries)."""

    def __init__(self, message: str):
        super().__init__(message, status=503, code="transient")


def operation_outcome(message: str, code: str = "invalid", severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": message}],
    }


def parse_query(query: str) -> tuple[str, Params]:
    """Split ``"Type?a=1&b=2"`` into ``("Type", [("a", "1"), ("b", "2")])``.

    Repeated parameters stay separate (``date=ge2020&date=lt2021`` is an AND of both), and
    percent-escapes are decoded, so ``code=http%3A%2F%2Floinc.org%7C4548-4`` works too.
    """
    query = query.strip()
    if not query:
        raise FhirError("empty query: expected 'ResourceType?param=value&...'")
    path, _, qs = query.partition("?")
    resource_type = path.strip("/").rsplit("/", 1)[-1]
    if not resource_type or not resource_type[0].isupper() or not resource_type.isalpha():
        raise FhirError(f"'{path}' is not a FHIR resource type (expected e.g. 'Observation?...')")
    try:
        params = parse_qsl(qs, keep_blank_values=True, strict_parsing=bool(qs))
    except ValueError as exc:
        raise FhirError(f"malformed query string '{qs}': {exc}") from exc
    return resource_type, params


def format_query(resource_type: str, params: Params) -> str:
    return f"{resource_type}?{urlencode(params)}" if params else resource_type


def next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link", []):
        if link.get("relation") == "next":
            return link.get("url")
    return None


class FhirBackend(ABC):
    """A FHIR R4 data source. Implementations: ``EmbeddedStore`` and ``RestBackend``."""

    #: A short label for messages and benchmark tables ("embedded sqlite", "rest http://...").
    label: str = "fhir"

    @abstractmethod
    def search(self, resource_type: str, params: Params) -> dict[str, Any]:
        """One page of results as a searchset Bundle (``total`` set, ``next`` link if more)."""

    @abstractmethod
    def fetch_page(self, url: str) -> dict[str, Any]:
        """Follow a ``next`` link that an earlier search returned."""

    @abstractmethod
    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """The resource, or ``NotFound``."""

    @abstractmethod
    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Write a new resource and return it as stored (with its id)."""

    def close(self) -> None:  # pragma: no cover - default no-op
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # Shared behaviour, written once on top of the primitives above.

    def search_query(self, query: str) -> dict[str, Any]:
        resource_type, params = parse_query(query)
        return self.search(resource_type, params)

    def search_all(self, resource_type: str, params: Params, max_pages: int = 10_000) -> dict[str, Any]:
        """Every match, following ``next`` links, as one searchset Bundle.

        ``_summary=count`` and an explicit ``_count`` mean the caller asked for one page, so
        only the first page is returned then (as the CLI promises).
        """
        first = self.search(resource_type, params)
        names = {name for name, _ in params}
        if "_count" in names or ("_summary", "count") in params:
            return first
        entries = list(first.get("entry", []))
        url, pages = next_link(first), 1
        while url and pages < max_pages:
            page = self.fetch_page(url)
            entries.extend(page.get("entry", []))
            url, pages = next_link(page), pages + 1
        merged = {k: v for k, v in first.items() if k not in ("entry", "link")}
        merged["link"] = [link for link in first.get("link", []) if link.get("relation") == "self"]
        merged["entry"] = entries
        if "total" not in merged:
            merged["total"] = sum(1 for e in entries if e.get("search", {}).get("mode", "match") == "match")
        return merged

    def resources(self, resource_type: str, params: Params) -> list[dict[str, Any]]:
        """The matching resources themselves (search mode 'match'), all pages."""
        bundle = self.search_all(resource_type, params)
        return [
            e["resource"] for e in bundle.get("entry", [])
            if e.get("search", {}).get("mode", "match") == "match"
        ]
