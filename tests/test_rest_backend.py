"""RestBackend: unit tests over httpx.MockTransport, plus live tests against a real FHIR server."""

from __future__ import annotations

import json
import socket
import uuid

import httpx
import pytest

from tools.fhir.backend import BackendUnavailable, FhirError, NotFound, next_link
from tools.fhir.rest import RestBackend, rewrite_transaction, upload_bundle

BASE = "http://fhir.test/r4"


def outcome(diagnostics: str, code: str = "invalid") -> dict:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]}


def fhir(status: int, body: dict, **headers) -> httpx.Response:
    return httpx.Response(status, json=body, headers={"content-type": "application/fhir+json", **headers})


def searchset(ids: list[str], total: int, next_url: str | None = None) -> dict:
    links = [{"relation": "self", "url": f"{BASE}/Observation"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links,
            "entry": [{"resource": {"resourceType": "Observation", "id": i}, "search": {"mode": "match"}}
                      for i in ids]}


def backend(handler, **kw) -> RestBackend:
    kw.setdefault("backoff", 0)
    return RestBackend(BASE, transport=httpx.MockTransport(handler), **kw)


# -- unit tests (no server) ---------------------------------------------------------------------

def test_search_sends_auth_accept_and_strict_handling():
    seen: list[httpx.Request] = []

    def handler(request):
        seen.append(request)
        return fhir(200, searchset(["o1"], 1))

    with backend(handler, token="s3cret") as b:
        assert b.label == f"rest {BASE}"
        bundle = b.search("Observation", [("patient", "p1"), ("code", "http://loinc.org|4548-4"),
                                          ("date", "ge2020-01-01T00:00:00+01:00")])
    assert bundle["total"] == 1
    (request,) = seen
    assert request.method == "GET"
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["Accept"] == "application/fhir+json"
    assert request.headers["Prefer"] == "handling=strict"
    assert str(request.url).startswith(f"{BASE}/Observation?")
    assert list(request.url.params.multi_items()) == [
        ("patient", "p1"), ("code", "http://loinc.org|4548-4"), ("date", "ge2020-01-01T00:00:00+01:00")]
    assert "s3cret" not in repr(b)


def test_no_auth_header_without_token():
    seen = []
    with backend(lambda r: seen.append(r) or fhir(200, searchset([], 0))) as b:
        b.search("Patient", [])
    assert "Authorization" not in seen[0].headers


def test_retries_on_503_then_succeeds():
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) < 3:
            return fhir(503, outcome("warming up", "transient"))
        return fhir(200, {"resourceType": "Patient", "id": "p1"})

    with backend(handler, retries=3) as b:
        assert b.read("Patient", "p1")["id"] == "p1"
    assert len(calls) == 3


@pytest.mark.parametrize("status", [429, 502, 504])
def test_retries_on_other_transient_statuses(status):
    calls = []

    def handler(request):
        calls.append(request)
        return fhir(status, outcome("busy")) if len(calls) == 1 else fhir(200, searchset([], 0))

    with backend(handler, retries=2) as b:
        b.search("Patient", [])
    assert len(calls) == 2


def test_no_retry_on_400_and_diagnostics_in_error():
    calls = []
    oo = outcome("Unknown search parameter 'foo' for Observation", "not-supported")

    def handler(request):
        calls.append(request)
        return fhir(400, oo)

    with backend(handler, retries=5) as b, pytest.raises(FhirError) as info:
        b.search("Observation", [("foo", "bar")])
    assert len(calls) == 1
    err = info.value
    assert err.status == 400 and err.code == "not-supported"
    assert err.outcome == oo
    assert "Unknown search parameter 'foo'" in str(err) and "HTTP 400" in str(err)


def test_unavailable_after_retries_keeps_server_outcome():
    calls = []
    with backend(lambda r: calls.append(r) or fhir(503, outcome("maintenance")), retries=2) as b:
        with pytest.raises(BackendUnavailable) as info:
            b.search("Patient", [])
    assert len(calls) == 3
    assert info.value.status == 503 and "maintenance" in str(info.value)
    assert info.value.outcome["issue"][0]["diagnostics"] == "maintenance"


def test_non_fhir_error_body_is_reported():
    with backend(lambda r: httpx.Response(500, text="<html>Internal Server Error</html>")) as b:
        with pytest.raises(FhirError) as info:
            b.search("Patient", [])
    assert info.value.status == 500 and "Internal Server Error" in str(info.value)


def test_read_404_is_not_found():
    seen = []

    def handler(request):
        seen.append(request)
        return fhir(404, outcome("Patient/nope not found", "not-found"))

    with backend(handler) as b, pytest.raises(NotFound) as info:
        b.read("Patient", "nope")
    assert str(seen[0].url) == f"{BASE}/Patient/nope"
    assert info.value.status == 404 and "Patient/nope not found" in str(info.value)


def test_read_escapes_the_id():
    seen = []
    with backend(lambda r: seen.append(r) or fhir(404, outcome("no"))) as b, pytest.raises(NotFound):
        b.read("Patient", "../metadata")
    assert seen[0].url.raw_path == b"/r4/Patient/..%2Fmetadata"


def test_search_all_follows_absolute_and_relative_next_links():
    pages = {
        "/r4/Observation": searchset(["a", "b"], 5, f"{BASE}/Observation?_page=2"),
        "/r4/Observation?_page=2": searchset(["c", "d"], 5, "Observation?_page=3"),
        "/r4/Observation?_page=3": searchset(["e"], 5),
    }
    urls = []

    def handler(request):
        key = request.url.raw_path.decode()
        urls.append(key)
        return fhir(200, pages[key.split("&")[0] if "_page" in key else "/r4/Observation"])

    with backend(handler) as b:
        merged = b.search_all("Observation", [("patient", "p1")])
    assert [e["resource"]["id"] for e in merged["entry"]] == ["a", "b", "c", "d", "e"]
    assert merged["total"] == 5 and next_link(merged) is None
    assert urls == ["/r4/Observation?patient=p1", "/r4/Observation?_page=2", "/r4/Observation?_page=3"]


def test_next_link_to_another_origin_does_not_get_the_token():
    with backend(lambda r: fhir(200, searchset([], 0)), token="t") as b, pytest.raises(FhirError) as info:
        b.fetch_page("http://elsewhere.test/r4/Observation?_page=2")
    assert "not sending the bearer token" in str(info.value)


def test_backend_unavailable_when_nothing_listens():
    with socket.socket() as s:  # a port that was free a moment ago and is closed now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/fhir"
    with RestBackend(url, retries=1, backoff=0.01, timeout=2) as b, pytest.raises(BackendUnavailable) as info:
        b.search("Patient", [])
    assert str(info.value).startswith(f"cannot reach FHIR server at {url}: connection refused")
    assert info.value.status == 503


def test_timeout_is_backend_unavailable():
    calls = []

    def handler(request):
        calls.append(request)
        raise httpx.ReadTimeout("timed out", request=request)

    with backend(handler, retries=2, timeout=1.5) as b, pytest.raises(BackendUnavailable) as info:
        b.read("Patient", "p1")
    assert len(calls) == 3 and "did not answer" in str(info.value) and "1.5 s" in str(info.value)


def test_create_posts_and_is_not_resent_after_a_502():
    calls = []

    def handler(request):
        calls.append(request)
        return fhir(502, outcome("bad gateway"))

    with backend(handler, retries=3) as b, pytest.raises(BackendUnavailable):
        b.create({"resourceType": "Observation", "status": "final"})
    assert len(calls) == 1  # the server may have stored it: a retry could duplicate it
    assert calls[0].method == "POST" and str(calls[0].url) == f"{BASE}/Observation"
    assert calls[0].headers["Content-Type"] == "application/fhir+json"


def test_create_returns_the_stored_resource_and_retries_503():
    calls = []

    def handler(request):
        calls.append(request)
        if len(calls) == 1:
            return fhir(503, outcome("busy"), **{"Retry-After": "0"})
        body = json.loads(request.content)
        return fhir(201, {**body, "id": "new-1"}, Location=f"{BASE}/Observation/new-1/_history/1")

    with backend(handler) as b:
        stored = b.create({"resourceType": "Observation", "status": "final"})
    assert stored["id"] == "new-1" and len(calls) == 2


def test_create_reads_location_when_server_returns_no_body():
    def handler(request):
        if request.method == "POST":
            return httpx.Response(201, headers={"Location": f"{BASE}/Patient/p9/_history/1"})
        assert str(request.url) == f"{BASE}/Patient/p9"
        return fhir(200, {"resourceType": "Patient", "id": "p9"})

    with backend(handler) as b:
        assert b.create({"resourceType": "Patient"})["id"] == "p9"


SYNTHEA_LIKE = {
    "resourceType": "Bundle", "type": "transaction",
    "entry": [
        {"fullUrl": "urn:uuid:pat-1", "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "id": "pat-1", "name": [{"family": "Doe"}]}},
        {"fullUrl": "urn:uuid:enc-1", "request": {"method": "POST", "url": "Encounter"},
         "resource": {"resourceType": "Encounter", "id": "enc-1", "status": "finished",
                      "subject": {"reference": "urn:uuid:pat-1"},
                      "participant": [{"individual": {"reference": "Practitioner?identifier=npi|1"}}]}},
        {"fullUrl": "urn:uuid:obs-1", "request": {"method": "POST", "url": "Observation"},
         "resource": {"resourceType": "Observation", "id": "obs-1", "status": "final",
                      "subject": {"reference": "urn:uuid:pat-1"}, "encounter": {"reference": "urn:uuid:enc-1"},
                      "hasMember": [{"reference": "#contained-1"}]}},
        {"fullUrl": "urn:uuid:org-1", "request": {"method": "PUT", "url": "Organization/org-1"},
         "resource": {"resourceType": "Organization", "id": "org-1"}},
    ],
}


def test_rewrite_transaction_keeps_bundle_ids():
    original = json.dumps(SYNTHEA_LIKE, sort_keys=True)
    tx = rewrite_transaction(SYNTHEA_LIKE)
    assert json.dumps(SYNTHEA_LIKE, sort_keys=True) == original  # input untouched
    assert tx["type"] == "transaction"
    assert [e["request"] for e in tx["entry"]] == [
        {"method": "PUT", "url": "Patient/pat-1"}, {"method": "PUT", "url": "Encounter/enc-1"},
        {"method": "PUT", "url": "Observation/obs-1"}, {"method": "PUT", "url": "Organization/org-1"}]
    enc, obs = tx["entry"][1]["resource"], tx["entry"][2]["resource"]
    assert enc["subject"] == {"reference": "Patient/pat-1"}
    assert enc["participant"][0]["individual"]["reference"] == "Practitioner?identifier=npi|1"
    assert obs["subject"]["reference"] == "Patient/pat-1" and obs["encounter"]["reference"] == "Encounter/enc-1"
    assert obs["hasMember"][0]["reference"] == "#contained-1"
    assert "urn:uuid:" not in json.dumps([e["resource"] for e in tx["entry"]])


def test_rewrite_turns_a_collection_into_a_transaction():
    tx = rewrite_transaction({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:abc", "resource": {"resourceType": "Patient"}}]})
    assert tx["type"] == "transaction"
    assert tx["entry"][0]["request"] == {"method": "PUT", "url": "Patient/abc"}
    assert tx["entry"][0]["resource"]["id"] == "abc"


def test_upload_bundle_posts_the_rewritten_transaction_to_the_base():
    posted = []

    def handler(request):
        posted.append(request)
        return fhir(200, {"resourceType": "Bundle", "type": "transaction-response", "entry": []})

    with backend(handler) as b:
        assert upload_bundle(b, SYNTHEA_LIKE)["type"] == "transaction-response"
    (request,) = posted
    assert request.method == "POST" and str(request.url) == BASE
    sent = json.loads(request.content)
    assert sent == rewrite_transaction(SYNTHEA_LIKE)


def test_upload_bundle_error_carries_the_outcome():
    oo = outcome("Entry 2: unresolved reference 'urn:uuid:x'")
    with backend(lambda r: fhir(400, oo), retries=3) as b, pytest.raises(FhirError) as info:
        upload_bundle(b, SYNTHEA_LIKE)
    assert info.value.status == 400 and info.value.outcome == oo and "unresolved reference" in str(info.value)


def test_upload_bundle_through_a_plain_httpx_client():
    posted = []

    def handler(request):
        posted.append(request)
        return fhir(200, {"resourceType": "Bundle", "type": "transaction-response"})

    with httpx.Client(base_url=BASE, transport=httpx.MockTransport(handler)) as client:
        upload_bundle(client, SYNTHEA_LIKE)
    assert json.loads(posted[0].content)["entry"][0]["request"]["method"] == "PUT"


# -- against a real FHIR server (MEDAGENT_TEST_FHIR_URL) ----------------------------------------

def small_bundle(patient_id: str, n_obs: int = 5) -> dict:
    entries = [{"fullUrl": f"urn:uuid:{patient_id}", "request": {"method": "POST", "url": "Patient"},
                "resource": {"resourceType": "Patient", "id": patient_id, "gender": "female",
                             "name": [{"family": "Resttest", "given": ["Ada"]}], "birthDate": "1970-01-02"}}]
    for i in range(n_obs):
        oid = str(uuid.uuid5(uuid.UUID(patient_id), f"obs-{i}"))
        entries.append({
            "fullUrl": f"urn:uuid:{oid}", "request": {"method": "POST", "url": "Observation"},
            "resource": {"resourceType": "Observation", "id": oid, "status": "final",
                         "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
                         "subject": {"reference": f"urn:uuid:{patient_id}"},
                         "effectiveDateTime": f"2020-01-0{i + 1}T10:00:00+00:00",
                         "valueQuantity": {"value": 5.0 + i, "unit": "%"}}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@pytest.fixture
def live(fhir_server_url):
    with RestBackend(fhir_server_url, retries=2, backoff=0.2) as b:
        yield b


@pytest.mark.fhir_server
def test_live_upload_and_read_back_with_original_ids(live):
    pid = str(uuid.uuid4())
    bundle = small_bundle(pid)
    response = upload_bundle(live, bundle)
    assert response["type"] == "transaction-response" and len(response["entry"]) == 6
    patient = live.read("Patient", pid)
    assert patient["id"] == pid and patient["name"][0]["family"] == "Resttest"
    first_obs = bundle["entry"][1]["resource"]["id"]
    obs = live.read("Observation", first_obs)
    assert obs["subject"]["reference"] == f"Patient/{pid}"
    upload_bundle(live, bundle)  # PUTs: loading twice keeps one copy
    assert live.search("Observation", [("patient", pid), ("_summary", "count")])["total"] == 5


@pytest.mark.fhir_server
def test_live_search_paging_with_count(live):
    pid = str(uuid.uuid4())
    bundle = small_bundle(pid)
    upload_bundle(live, bundle)
    params = [("patient", pid), ("code", "http://loinc.org|4548-4"), ("_sort", "date"), ("_count", "2")]
    page = live.search("Observation", params)
    assert page["total"] == 5 and len(page["entry"]) == 2
    ids = [e["resource"]["id"] for e in page["entry"]]
    url, pages = next_link(page), 1
    while url:
        page = live.fetch_page(url)
        ids += [e["resource"]["id"] for e in page.get("entry", []) if e["search"]["mode"] == "match"]
        url, pages = next_link(page), pages + 1
    assert pages == 3
    assert ids == [e["resource"]["id"] for e in bundle["entry"][1:]]  # effective dates ascend
    assert live.search_all("Observation", params)["entry"] == live.search("Observation", params)["entry"]
    everything = live.resources("Observation", [("patient", pid), ("_sort", "-date")])
    assert [o["id"] for o in everything] == ids[::-1]


@pytest.mark.fhir_server
def test_live_unknown_search_parameter_is_a_400_with_outcome(live):
    with pytest.raises(FhirError) as info:
        live.search("Observation", [("no-such-param", "x")])
    err = info.value
    assert err.status == 400
    assert err.outcome["resourceType"] == "OperationOutcome"
    assert "no-such-param" in str(err)


@pytest.mark.fhir_server
def test_live_read_missing_is_not_found(live):
    with pytest.raises(NotFound):
        live.read("Patient", f"missing-{uuid.uuid4()}")
