"""``RestBackend``: the ``FhirBackend`` interface over any FHIR R4 REST server (HAPI, Firely, sekmet...).

One ``httpx.Client`` per backend; bearer-token auth; ``Accept: application/fhir+json``; retries with
exponential backoff on connection errors, timeouts and 429/502/503/504 (never on other 4xx/5xx).
Searches ask for ``Prefer: handling=strict`` so that an unknown parameter is a 400 (as in the embedded
store) rather than silently ignored, which servers do by default.

``upload_bundle`` loads a Synthea-style transaction bundle so that every resource keeps its bundle id.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from .backend import BackendUnavailable, FhirBackend, FhirError, NotFound, Params

FHIR_JSON = "application/fhir+json"
RETRY_STATUS = frozenset({429, 502, 503, 504})
# Statuses a server sends before doing any work: safe to retry even for a non-idempotent POST.
NOT_PROCESSED = frozenset({429, 503})


class _Retryable(Exception):
    """A retryable HTTP answer (429/502/503/504); carries the response."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _diagnostics(outcome: dict[str, Any]) -> str:
    parts = []
    for issue in outcome.get("issue", []) or []:
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or issue.get("code")
        if text:
            parts.append(str(text))
    return "; ".join(parts)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class RestBackend(FhirBackend):
    """A FHIR R4 REST server at ``base_url`` (e.g. ``http://127.0.0.1:18080/fhir``)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30, retries: int = 3,
                 backoff: float = 0.5, transport: httpx.BaseTransport | None = None, strict: bool = True):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"FHIR base URL must start with http:// or https:// (got {base_url!r})")
        self.base_url = base_url.rstrip("/")
        self.label = f"rest {self.base_url}"
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.strict = strict
        self._token = token
        headers = {"Accept": FHIR_JSON, "User-Agent": "medagent"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(headers=headers, timeout=timeout, transport=transport)

    def __repr__(self) -> str:  # never show the token
        return f"RestBackend({self.base_url!r})"

    # -- transport ---------------------------------------------------------------------------

    def _request(self, method: str, url: str, *, params: Params | None = None, body: Any = None,
                 headers: dict[str, str] | None = None, idempotent: bool = True) -> httpx.Response:
        """Send one request with retries; answers >= 400 raise ``FhirError``."""
        headers = dict(headers or {})
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            headers["Content-Type"] = FHIR_JSON

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, _Retryable):
                return idempotent or exc.response.status_code in NOT_PROCESSED
            if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
                return True  # the request never reached the server
            return idempotent and isinstance(exc, (httpx.TimeoutException, httpx.RemoteProtocolError))

        def wait(state) -> float:
            delay = self.backoff * 2 ** (state.attempt_number - 1)
            exc = state.outcome.exception()
            if isinstance(exc, _Retryable):  # honour Retry-After (seconds) within reason
                try:
                    delay = max(delay, min(float(exc.response.headers.get("Retry-After", 0)), 30.0))
                except ValueError:
                    pass
            return delay

        def send() -> httpx.Response:
            response = self._client.request(method, url, params=params, content=content, headers=headers)
            if response.status_code in RETRY_STATUS:
                raise _Retryable(response)
            return response

        try:
            response = Retrying(stop=stop_after_attempt(self.retries + 1), wait=wait,
                                retry=retry_if_exception(retryable), reraise=True)(send)
        except _Retryable as exc:
            response = exc.response
        except (httpx.ReadTimeout, httpx.WriteTimeout) as exc:
            raise BackendUnavailable(
                f"FHIR server at {self.base_url} did not answer {method} {url} within {self.timeout:g} s "
                f"({self.retries + 1} attempt(s))") from exc
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            if "refused" in reason.lower():
                reason = "connection refused"
            raise BackendUnavailable(f"cannot reach FHIR server at {self.base_url}: {reason} "
                                     f"({self.retries + 1} attempt(s))") from exc
        if response.status_code >= 400:
            raise self._error(method, response)
        return response

    def _error(self, method: str, response: httpx.Response) -> FhirError:
        status = response.status_code
        body = _json(response)
        outcome = body if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome" else None
        detail = _diagnostics(outcome) if outcome else response.text.strip()[:500]
        message = f"{method} {response.request.url} failed: HTTP {status}" + (f": {detail}" if detail else "")
        if status in (404, 410):
            error: FhirError = NotFound(message)
        elif status in (502, 503, 504):
            error = BackendUnavailable(message)
        else:
            codes = [i.get("code") for i in (outcome or {}).get("issue", []) if i.get("code")]
            default = {401: "login", 403: "forbidden", 409: "conflict", 429: "throttled"}.get(status)
            code = codes[0] if codes else default or ("invalid" if status < 500 else "exception")
            error = FhirError(message, status=status, code=code, outcome=outcome)
        error.status = status
        if outcome:
            error.outcome = outcome
        return error

    def _get_json(self, url: str, params: Params | None = None, headers: dict[str, str] | None = None) -> dict:
        response = self._request("GET", url, params=params, headers=headers)
        body = _json(response)
        if not isinstance(body, dict) or "resourceType" not in body:
            raise FhirError(f"GET {response.request.url} answered with something that is not FHIR JSON "
                            f"(content-type {response.headers.get('content-type')!r})", status=502, code="exception")
        return body

    def _url(self, *segments: str) -> str:
        return "/".join([self.base_url, *(quote(s, safe="") for s in segments)])

    @staticmethod
    def _check_type(resource_type: str) -> None:
        if not resource_type or not resource_type.isalpha() or not resource_type[0].isupper():
            raise FhirError(f"'{resource_type}' is not a FHIR resource type")

    # -- FhirBackend ---------------------------------------------------------------------------

    def search(self, resource_type: str, params: Params) -> dict[str, Any]:
        self._check_type(resource_type)
        headers = {"Prefer": "handling=strict"} if self.strict else None
        bundle = self._get_json(self._url(resource_type), params=list(params), headers=headers)
        if bundle.get("resourceType") != "Bundle":
            raise FhirError(f"search {resource_type} returned a {bundle.get('resourceType')}, not a Bundle",
                            status=502, code="exception")
        return bundle

    def fetch_page(self, url: str) -> dict[str, Any]:
        target = urljoin(self.base_url + "/", url)
        if self._token and urlsplit(target)[:2] != urlsplit(self.base_url)[:2]:
            raise FhirError(f"next link {target} leaves {self.base_url}; not sending the bearer token there "
                            "(is the server's public base URL configured?)", status=502, code="security")
        headers = {"Prefer": "handling=strict"} if self.strict else None
        return self._get_json(target, headers=headers)

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        self._check_type(resource_type)
        if not resource_id:
            raise NotFound(f"{resource_type}/ has no id")
        return self._get_json(self._url(resource_type, resource_id))

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        resource_type = resource.get("resourceType", "")
        self._check_type(resource_type)
        response = self._request("POST", self._url(resource_type), body=resource, idempotent=False,
                                 headers={"Prefer": "return=representation"})
        body = _json(response)
        if isinstance(body, dict) and body.get("resourceType") == resource_type:
            return body
        location = response.headers.get("Location") or response.headers.get("Content-Location")
        if not location:
            raise FhirError(f"create {resource_type}: server returned neither the resource nor a Location",
                            status=502, code="exception")
        rid = urlsplit(location).path.split("/_history/")[0].rstrip("/").rsplit("/", 1)[-1]
        return self.read(resource_type, rid)

    def post_bundle(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """POST a transaction/batch Bundle to the base URL as it is; returns the response Bundle.

        Retried like a read: resend only bundles whose entries are idempotent (PUT), as
        ``upload_bundle`` produces.
        """
        idempotent = all((e.get("request") or {}).get("method", "").upper() in ("PUT", "GET", "DELETE")
                         for e in bundle.get("entry", []))
        response = self._request("POST", self.base_url, body=bundle, idempotent=idempotent)
        return _json(response) or {}

    def close(self) -> None:
        self._client.close()


# -- loading Synthea-style transaction bundles -------------------------------------------------

def _walk_references(node: Any):
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            yield from _walk_references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_references(value)


def rewrite_transaction(bundle: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``bundle`` whose resources keep their ids on any server.

    ``POST Type`` entries become ``PUT Type/<resource.id>`` (servers assign new ids on POST), entries
    without a request become PUTs too, and references to an entry's ``fullUrl`` (``urn:uuid:...``)
    become ``Type/<id>``. Conditional references (``Practitioner?identifier=...``) are left for the
    server to resolve.
    """
    out = copy.deepcopy(bundle)
    entries = out.get("entry", []) or []
    targets: dict[str, str] = {}
    for entry in entries:
        resource = entry.get("resource") or {}
        full_url = entry.get("fullUrl") or ""
        if not resource.get("id") and full_url.startswith("urn:uuid:"):
            resource["id"] = full_url[len("urn:uuid:"):]
        if full_url and resource.get("resourceType") and resource.get("id"):
            targets[full_url] = f"{resource['resourceType']}/{resource['id']}"
    for entry in entries:
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        for ref in _walk_references(resource):
            ref["reference"] = targets.get(ref["reference"], ref["reference"])
        request = entry.get("request") or {"method": "POST"}
        url = (request.get("url") or resource.get("resourceType", "")).split("?")[0].strip("/")
        if request.get("method", "").upper() == "POST" and resource.get("id") and "/" not in url:
            entry["request"] = {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
    if out.get("type") not in ("transaction", "batch"):
        out["type"] = "transaction"
    return out


def upload_bundle(target: RestBackend | httpx.Client | str, bundle: dict[str, Any]) -> dict[str, Any]:
    """Send a Synthea-style transaction bundle so that its resources keep their bundle ids.

    ``target`` is a ``RestBackend``, an ``httpx.Client`` whose ``base_url`` is the FHIR base, or the
    base URL itself. Returns the transaction-response Bundle; a rejected transaction raises ``FhirError``.
    """
    tx = rewrite_transaction(bundle)
    if isinstance(target, RestBackend):
        return target.post_bundle(tx)
    if isinstance(target, str):
        with RestBackend(target) as backend:
            return backend.post_bundle(tx)
    response = target.post("", content=json.dumps(tx).encode(),
                           headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
    if response.status_code >= 400:
        outcome = _json(response) if "json" in response.headers.get("content-type", "") else None
        outcome = outcome if isinstance(outcome, dict) and outcome.get("resourceType") == "OperationOutcome" else None
        detail = _diagnostics(outcome) if outcome else response.text[:500]
        raise FhirError(f"transaction to {response.request.url} failed: HTTP {response.status_code}: {detail}",
                        status=response.status_code, outcome=outcome)
    return response.json()
