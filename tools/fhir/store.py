"""The embedded FHIR store: SQLAlchemy on SQLite (default) or PostgreSQL (by URL).

Loads bundles atomically per file, keeps each resource's own id, de-duplicates shared
resources by (type, id), replaces a resource's index rows whole on reload, and answers
FHIR searches with the semantics compiled in ``search.py``.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit

import orjson
from sqlalchemy import create_engine, event, func, insert, select, tuple_
from sqlalchemy.engine import Connection, Engine, make_url

from .backend import FhirBackend, FhirError, NotFound, Params, format_query, parse_query
from .bundles import BundleError, PreparedFile, PreparedResource, Validation, now_stamp, prepare_file
from .dates import DateFormatError
from .schema import SCHEMA_VERSION, idx_ref, meta_table, metadata, resources
from .search import CompiledSearch, compile_search
from .validation import is_resource_type, validate_resource
from .writer import LoadReport, write_prepared

BASE_URL = "http://medagent.invalid/fhir"  # .invalid: a reserved name, never a real host


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


class EmbeddedStore(FhirBackend):
    def __init__(self, url: str):
        self.url = url
        self.label = f"embedded {make_url(url).get_backend_name()}"
        self.engine = make_engine(url)
        try:
            metadata.create_all(self.engine)
            with self.engine.begin() as conn:
                found = conn.execute(select(meta_table.c.value).where(meta_table.c.key == "schema")).scalar()
                if found is None:
                    conn.execute(insert(meta_table).values(key="schema", value=SCHEMA_VERSION))
                elif found != SCHEMA_VERSION:
                    raise FhirError(f"store {url} has schema version {found}; this medagent needs {SCHEMA_VERSION}. "
                                    "Load your bundles into a new store.", status=500, code="exception")
        except FhirError:
            raise
        except Exception as exc:  # driver missing, server down, bad path
            raise FhirError(f"cannot open store {make_url(url).render_as_string(hide_password=True)}: {exc}",
                            status=503, code="transient") from exc

    def close(self) -> None:
        self.engine.dispose()

    # -- loading ---------------------------------------------------------------------------

    def load_paths(self, paths: Iterable[str | Path], validation: Validation = "full", jobs: int | None = None) -> LoadReport:
        """Load files one by one; a bad file loads nothing and is reported, the rest load.

        With several files, worker processes parse, validate and index upcoming files while
        this process writes the current one. ``jobs``: worker processes, default one per CPU;
        0 = everything in this process. Writes stay
        in file order, one transaction per file.
        """
        report = LoadReport()
        start = time.perf_counter()
        files = expand_paths(paths)
        if jobs is None:
            jobs = os.cpu_count() or 1
        jobs = min(jobs, len(files) - 1)  # a single file gains nothing from a worker
        stamp = now_stamp()
        for path, prepared in self._prepared(files, validation, jobs, stamp):
            try:
                if isinstance(prepared, BundleError) and prepared.needs_store:
                    prepared = prepare_file(path, validation, resolve_conditional=self._resolve_conditional, stamp=stamp)
                if isinstance(prepared, BundleError):
                    raise prepared
                with self.engine.begin() as conn:
                    write_prepared(conn, prepared, report)
                report.files += 1
            except BundleError as exc:
                report.errors.append(str(exc))
        if report.resources or report.deleted:
            self.analyze()
        report.seconds = time.perf_counter() - start
        return report

    def analyze(self) -> None:
        """Refresh the planner's statistics: without them SQLite walks every row of a type
        instead of starting from the most selective index (a 5x slower search)."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")

    def load_file(self, path: str | Path, validation: Validation = "full") -> LoadReport:
        """Load one file in one transaction: all of it, or (``BundleError``) none of it."""
        report = LoadReport()
        prepared = prepare_file(path, validation, resolve_conditional=self._resolve_conditional)
        with self.engine.begin() as conn:
            write_prepared(conn, prepared, report)
        report.files = 1
        return report

    @staticmethod
    def _prepared(files: list[Path], validation: Validation, jobs: int,
                  stamp: str) -> Iterator[tuple[Path, PreparedFile | BundleError]]:
        """Each file prepared (or the error that refused it), in order; in ``jobs`` workers."""
        if jobs <= 0:
            for path in files:
                try:
                    yield path, prepare_file(path, validation, stamp=stamp)
                except BundleError as exc:
                    yield path, exc
            return
        is_resource_type("Patient")  # import the R4 models package once, before the workers fork
        with ProcessPoolExecutor(jobs) as pool:
            pending: deque[tuple[Path, Future]] = deque()
            todo = iter(files)
            for path in itertools.islice(todo, 2 * jobs):  # bounded read-ahead: memory stays flat
                pending.append((path, pool.submit(prepare_file, path, validation, None, stamp)))
            while pending:
                path, future = pending.popleft()
                for nxt in itertools.islice(todo, 1):
                    pending.append((nxt, pool.submit(prepare_file, nxt, validation, None, stamp)))
                try:
                    yield path, future.result()
                except BundleError as exc:
                    yield path, exc

    def _resolve_conditional(self, rtype: str, params: list[tuple[str, str]]) -> str | None:
        """A conditional reference a file could not resolve itself, looked up in the store."""
        try:
            found = self.search(rtype, [*params, ("_count", "2")])
        except FhirError:
            return None
        ids = [e["resource"]["id"] for e in found.get("entry", [])]
        return f"{rtype}/{ids[0]}" if len(ids) == 1 else None

    # -- FhirBackend -----------------------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            body = conn.execute(select(resources.c.json).where(
                resources.c.type == resource_type, resources.c.id == resource_id)).scalar()
        if body is None:
            raise NotFound(f"{resource_type}/{resource_id} is not in the store")
        return orjson.loads(body)

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Validate, index and store a new resource (server-assigned id unless it has one)."""
        resource = dict(resource)
        resource.setdefault("id", str(uuid.uuid4()))
        try:
            validate_resource(resource)
        except ValueError as exc:
            raise FhirError(f"invalid {resource.get('resourceType')}: {exc}", status=422, code="processing") from exc
        stamp = now_stamp()
        try:
            prepared = PreparedFile("<create>", stamp, [PreparedResource.of(resource, stamp)])
        except DateFormatError as exc:
            raise FhirError(f"invalid {resource['resourceType']}: {exc}", status=422, code="processing") from exc
        with self.engine.begin() as conn:
            if conn.execute(select(resources.c.pk).where(resources.c.type == resource["resourceType"],
                                                         resources.c.id == resource["id"])).scalar() is not None:
                raise FhirError(f"{resource['resourceType']}/{resource['id']} already exists", status=409, code="duplicate")
            write_prepared(conn, prepared, LoadReport())
        return self.read(resource["resourceType"], resource["id"])

    def search(self, resource_type: str, params: Params) -> dict[str, Any]:
        cs = compile_search(resource_type, params)
        with self.engine.connect() as conn:
            return self._run(conn, cs)

    def fetch_page(self, url: str) -> dict[str, Any]:
        path = url[len(BASE_URL):] if url.startswith(BASE_URL) else urlsplit(url).path + "?" + urlsplit(url).query
        return self.search_query(path.lstrip("/"))

    def _run(self, conn: Connection, cs: CompiledSearch) -> dict[str, Any]:
        where = (resources.c.type == cs.resource_type, *cs.where)
        page = []
        if not cs.summary_count:
            page = conn.execute(select(resources.c.pk, resources.c.id, resources.c.json).where(*where)
                                .order_by(*cs.order_by).limit(cs.count).offset(cs.offset)).all()
        if cs.offset == 0 and 0 < len(page) < cs.count:
            total = len(page)  # a first page that is not full holds every match: no count query
        else:
            total = conn.execute(select(func.count()).select_from(select(resources.c.pk).where(*where).subquery())).scalar_one()
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": total,
                                  "link": [{"relation": "self", "url": self._link(cs, cs.offset)}]}
        if cs.summary_count:
            return bundle
        if cs.offset + cs.count < total and cs.count > 0:
            bundle["link"].append({"relation": "next", "url": self._link(cs, cs.offset + cs.count)})
        entries = [self._entry(cs.resource_type, rid, body, "match") for _, rid, body in page]
        if cs.includes and page:
            entries += self._included(conn, cs, [pk for pk, _, _ in page], [rid for _, rid, _ in page])
        bundle["entry"] = entries
        return bundle

    def _included(self, conn: Connection, cs: CompiledSearch, pks: list[int], ids: list[str]) -> list[dict[str, Any]]:
        seen: set[tuple[str, str]] = set()
        out = []
        for inc in cs.includes:
            if inc.reverse:
                q = (select(resources.c.type, resources.c.id, resources.c.json).join(idx_ref, idx_ref.c.res_pk == resources.c.pk)
                     .where(idx_ref.c.type == inc.source_type, idx_ref.c.param == inc.param,
                            idx_ref.c.target_id.in_(ids), idx_ref.c.target_type.in_([cs.resource_type]))
                     .order_by(resources.c.type, resources.c.id))
            else:
                targets = select(idx_ref.c.target_type, idx_ref.c.target_id).where(
                    idx_ref.c.res_pk.in_(pks), idx_ref.c.param == inc.param, idx_ref.c.target_type.is_not(None))
                if inc.target_type:
                    targets = targets.where(idx_ref.c.target_type == inc.target_type)
                q = (select(resources.c.type, resources.c.id, resources.c.json)
                     .where(tuple_(resources.c.type, resources.c.id).in_(targets))
                     .order_by(resources.c.type, resources.c.id))
            for rtype, rid, body in conn.execute(q):
                if (rtype, rid) not in seen:
                    seen.add((rtype, rid))
                    out.append(self._entry(rtype, rid, body, "include"))
        return out

    @staticmethod
    def _entry(rtype: str, rid: str, body: str, mode: str) -> dict[str, Any]:
        return {"fullUrl": f"{BASE_URL}/{rtype}/{rid}", "resource": orjson.loads(body), "search": {"mode": mode}}

    @staticmethod
    def _link(cs: CompiledSearch, offset: int) -> str:
        params = list(cs.link_params)
        if offset:
            params.append(("_offset", str(offset)))
        if not any(name == "_count" for name, _ in params) and offset:
            params.append(("_count", str(cs.count)))
        return f"{BASE_URL}/{format_query(cs.resource_type, params)}"

    # -- introspection ---------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Resource counts per type."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(resources.c.type, func.count()).group_by(resources.c.type)
                                .order_by(resources.c.type)).all()
        return {t: n for t, n in rows}

    def patient_counts(self) -> dict[str, int]:
        """Resources in each patient's compartment (the Patient resource included)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(resources.c.patient_id, func.count()).where(resources.c.patient_id.is_not(None))
                                .group_by(resources.c.patient_id)).all()
        return {pid: n for pid, n in rows}

    def patient_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(resources.c.id).where(resources.c.type == "Patient")
                                     .order_by(resources.c.id)).scalars())


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders expanded to the loadable files inside them, sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file()
                          and f.name.lower().endswith((".json", ".json.gz", ".ndjson", ".ndjson.gz")))
        else:
            out.append(p)
    return out


__all__ = ["EmbeddedStore", "LoadReport", "BundleError", "expand_paths", "parse_query"]
