"""Read FHIR files into resources ready to store: parse, resolve references, validate, index.

Everything here happens before the database is touched, so a file with any bad entry is
refused whole (the store then writes nothing from it). Errors name the file, the entry and
the reason. Formats: a Bundle (transaction, batch, collection, searchset) or a single
resource as ``.json`` / ``.json.gz``; NDJSON (one resource or Bundle per line) as
``.ndjson`` / ``.ndjson.gz``.
"""

from __future__ import annotations

import gzip
import re
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import orjson

from .backend import FhirError
from .dates import DateFormatError
from .extract import IndexRows, compartment_patient, index_resource, split_reference
from .validation import is_resource_type, validate_resource

Validation = Literal["full", "basic"]

ACCEPTED_BUNDLE_TYPES = {"transaction", "batch", "collection", "searchset"}
_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_TYPE_RE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")

# Resolves a conditional reference (``Organization?identifier=sys|val``) against data
# already stored; returns "Type/id" or None.
ConditionalResolver = Callable[[str, list[tuple[str, str]]], "str | None"]


def _rebuild_bundle_error(path, reason, entry, message, needs_store):
    exc = BundleError.__new__(BundleError)
    FhirError.__init__(exc, message, status=422, code="processing")
    exc.path, exc.reason, exc.entry, exc.needs_store = path, reason, entry, needs_store
    return exc


class BundleError(FhirError):
    """A file that cannot be loaded; nothing from it was written."""

    def __init__(self, path: str | Path, reason: str, entry: int | None = None, what: str | None = None):
        where = f"{path}"
        if entry is not None:
            where += f": entry[{entry}]"
            if what:
                where += f" ({what})"
        super().__init__(f"{where}: {reason}", status=422, code="processing")
        self.path, self.entry, self.reason = str(path), entry, reason
        # Set when the file might load once references are looked up in the store too.
        self.needs_store = False

    def __reduce__(self):  # picklable, so worker processes can report it
        return (_rebuild_bundle_error, (self.path, self.reason, self.entry, self.args[0], self.needs_store))


@dataclass
class PreparedResource:
    """A resource ready to write: its compact JSON (``meta`` stamped as version 1) and index rows.

    Bytes rather than a dict, so worker processes hand it back cheaply."""
    type: str
    id: str
    patient_id: str | None
    body: bytes
    index: IndexRows

    @classmethod
    def of(cls, resource: dict[str, Any], stamp: str) -> "PreparedResource":
        resource["meta"] = {**(resource.get("meta") or {}), "versionId": "1", "lastUpdated": stamp}
        return cls(resource["resourceType"], resource["id"], compartment_patient(resource),
                   orjson.dumps(resource), index_resource(resource))

    @property
    def resource(self) -> dict[str, Any]:
        return orjson.loads(self.body)


@dataclass
class PreparedFile:
    path: str
    stamp: str = ""  # the meta.lastUpdated its resources carry
    resources: list[PreparedResource] = field(default_factory=list)
    deletes: list[tuple[str, str]] = field(default_factory=list)


def read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.name.lower().endswith(".gz") else data
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise BundleError(path, f"cannot read file: {exc}") from exc


def parse_entries(path: Path, raw: bytes) -> list[dict[str, Any]]:
    """The entries ({fullUrl?, resource?, request?}) of the documents in a file's bytes."""
    name = path.name.lower()
    stem = name[:-3] if name.endswith(".gz") else name
    try:
        if stem.endswith(".ndjson"):
            docs = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
        elif stem.endswith(".json"):
            docs = [orjson.loads(raw)]
        else:
            raise BundleError(path, "unsupported file type (expected .json, .json.gz, .ndjson or .ndjson.gz)")
    except orjson.JSONDecodeError as exc:
        raise BundleError(path, f"not valid JSON: {exc}") from exc
    entries: list[dict[str, Any]] = []
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
            raise BundleError(path, f"document {i + 1} is not a FHIR resource (no resourceType)")
        if doc["resourceType"] != "Bundle":
            entries.append({"resource": doc})
            continue
        btype = doc.get("type")
        if btype not in ACCEPTED_BUNDLE_TYPES:
            raise BundleError(path, f"Bundle type '{btype}' cannot be loaded (expected one of {sorted(ACCEPTED_BUNDLE_TYPES)})")
        raw_entries = doc.get("entry", [])
        if not isinstance(raw_entries, list):
            raise BundleError(path, "Bundle.entry is not a list")
        for entry in raw_entries:
            if not isinstance(entry, dict):
                raise BundleError(path, "not a JSON object", entry=len(entries))
            entries.append(entry)
    return entries


def _entry_id(entry: dict[str, Any]) -> str | None:
    resource = entry.get("resource") or {}
    if resource.get("id"):
        return resource["id"]
    full_url = entry.get("fullUrl") or ""
    if full_url.startswith(("urn:uuid:", "urn:oid:")):
        return full_url.split(":", 2)[2]
    target = split_reference(full_url)
    return target[1] if target else None


# References are the only JSON members named "reference" in FHIR, so rewriting them in the
# file's text (one regex pass in C, then one parse) beats walking every resource in Python.
_REFERENCE_RE = re.compile(rb'"reference"(\s*):(\s*)"((?:[^"\\]|\\.)*)"')


def _identifier_keys(resource: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(resource["resourceType"], i.get("system", ""), i.get("value", ""))
            for i in resource.get("identifier", []) or [] if isinstance(i, dict)]


class _Resolver:
    """Maps a reference found in the file to ``Type/id``; remembers what it could not map."""

    def __init__(self, url_map: dict[str, str], by_identifier: dict[tuple[str, str, str], str],
                 resolve_conditional: ConditionalResolver | None):
        self.url_map, self.by_identifier = url_map, by_identifier
        self.resolve_conditional = resolve_conditional
        self.failures: dict[str, str] = {}

    def __call__(self, ref: str) -> str:
        if ref in self.url_map:
            return self.url_map[ref]
        if ref.startswith("urn:"):
            self.failures[ref] = f"reference '{ref}' points to no entry of this file"
        elif "?" in ref:
            rtype, _, query = ref.partition("?")
            params = [tuple(p.split("=", 1)) for p in query.split("&") if "=" in p]
            found = None
            if len(params) == 1 and params[0][0] == "identifier":
                system, _, value = params[0][1].rpartition("|")
                found = self.by_identifier.get((rtype, system, value))
            if found is None and self.resolve_conditional is not None:
                found = self.resolve_conditional(rtype, params)  # type: ignore[arg-type]
            if found is not None:
                return found
            self.failures[ref] = f"conditional reference '{ref}' matches nothing"
        return ref

    def sub(self, m: re.Match) -> bytes:
        raw = m.group(3)
        ref = orjson.loads(b'"' + raw + b'"') if b"\\" in raw else raw.decode()
        new = self(ref)
        return m.group(0) if new == ref else b'"reference":' + orjson.dumps(new)


def _first_entry_with(entries: list[dict[str, Any]], ref: str) -> tuple[int, str]:
    needle = orjson.dumps(ref)
    for n, entry in enumerate(entries):
        resource = entry.get("resource") or {}
        if needle in orjson.dumps(resource):
            return n, f"{resource.get('resourceType')}/{_entry_id(entry)}"
    return -1, "?"


def prepare_file(path: str | Path, validation: Validation = "full",
                 resolve_conditional: ConditionalResolver | None = None, stamp: str | None = None) -> PreparedFile:
    """Parse, resolve, validate and index one file, or raise ``BundleError`` naming the entry.

    ``stamp``: the ``meta.lastUpdated`` to give every resource (one per load)."""
    path = Path(path)
    stamp = stamp or now_stamp()
    raw = read_bytes(path)
    entries = parse_entries(path, raw)
    prepared = PreparedFile(str(path), stamp)

    # Pass 1: every entry's identity, so references between entries can be resolved.
    url_map: dict[str, str] = {}
    by_identifier: dict[tuple[str, str, str], str] = {}
    ids: dict[int, str] = {}
    for n, entry in enumerate(entries):
        request = entry.get("request") or {}
        method = (request.get("method") or "PUT").upper()
        if method == "DELETE":
            target = split_reference(request.get("url", ""))
            if not target or not target[0]:
                raise BundleError(path, f"DELETE needs a 'Type/id' url, got '{request.get('url')}'", entry=n)
            prepared.deletes.append((target[0], target[1]))
            continue
        if method not in ("POST", "PUT"):
            raise BundleError(path, f"request method '{method}' is not supported (POST, PUT or DELETE)", entry=n)
        resource = entry.get("resource")
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise BundleError(path, "entry has no resource", entry=n)
        rtype = resource["resourceType"]
        rid = _entry_id(entry)
        what = f"{rtype}/{rid}"
        if not _TYPE_RE.match(rtype) or not is_resource_type(rtype):
            raise BundleError(path, f"'{rtype}' is not a FHIR R4 resource type", entry=n, what=what)
        if not rid or not _ID_RE.match(rid):
            raise BundleError(path, "no valid id (resource.id, or a urn:uuid: fullUrl to take it from)", entry=n, what=what)
        ref = f"{rtype}/{rid}"
        if entry.get("fullUrl"):
            url_map[entry["fullUrl"]] = ref
        for key in _identifier_keys(resource):
            by_identifier.setdefault(key, ref)
        ids[n] = rid

    # Pass 2: rewrite references to Type/id in the text, parse again, validate and index.
    resolver = _Resolver(url_map, by_identifier, resolve_conditional)
    rewritten, matches = _REFERENCE_RE.subn(resolver.sub, raw)
    if resolver.failures:
        ref, reason = next(iter(resolver.failures.items()))
        n, what = _first_entry_with(entries, ref)
        error = BundleError(path, reason, entry=n, what=what)
        error.needs_store = resolve_conditional is None and "?" in ref
        raise error
    if matches:
        entries = parse_entries(path, rewritten)
    for n, rid in ids.items():
        resource = entries[n]["resource"]
        resource["id"] = rid
        what = f"{resource['resourceType']}/{rid}"
        if validation == "full":
            try:
                validate_resource(resource)
            except ValueError as exc:
                raise BundleError(path, f"invalid FHIR R4 resource: {exc}", entry=n, what=what) from exc
        try:
            prepared.resources.append(PreparedResource.of(resource, stamp))
        except DateFormatError as exc:
            raise BundleError(path, str(exc), entry=n, what=what) from exc
    return prepared


def now_stamp() -> str:
    """``meta.lastUpdated`` for what is written now (FHIR instant, UTC, milliseconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
