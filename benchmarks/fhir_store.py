"""Load throughput and search latency of the embedded FHIR store (and, optionally, a REST server).

    python benchmarks/fhir_store.py [--data ../shared/data/synthea-r4] [--fhir-url URL] [--repeat 30]

Prints its figures; nothing here is a pass/fail test. Targets (issue 2): load >= 5,000
resources/s; p50 < 2 ms for patient+code+sort and < 50 ms for the manifest.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.fhir.backend import FhirBackend  # noqa: E402
from tools.fhir.manifest import build_manifest  # noqa: E402
from tools.fhir.store import EmbeddedStore  # noqa: E402


def fresh_store(url: str | None) -> EmbeddedStore:
    if url is None:
        return EmbeddedStore(f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    from sqlalchemy import create_engine, text

    engine = create_engine(url)  # an empty PostgreSQL schema for each run
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS bench CASCADE"))
        conn.execute(text("CREATE SCHEMA bench"))
    engine.dispose()
    return EmbeddedStore(f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3Dbench")


def load_throughput(data: Path, validation: str, jobs: int | None = None, url: str | None = None) -> EmbeddedStore:
    store = fresh_store(url)
    report = store.load_paths([data], validation=validation, jobs=jobs)
    assert not report.errors, report.errors
    workers = "auto" if jobs is None else str(jobs)
    print(f"load  {store.label:17s} validation={validation:5s} workers={workers:>4}: {report.files} files, "
          f"{report.resources:,} resources in {report.seconds:.2f} s = {report.per_second:,.0f} resources/s")
    return store


def reload_time(store: EmbeddedStore, data: Path) -> None:
    report = store.load_paths([data], validation="basic")
    print(f"reload (unchanged, basic): {report.unchanged:,} resources checked in {report.seconds:.2f} s, "
          f"{report.resources} rewritten")


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
    return statistics.median(samples), p95


def queries(patient_ids: list[str]) -> dict[str, list[tuple[str, list[tuple[str, str]]]]]:
    return {
        "patient+code+sort": [("Observation", [("patient", p), ("code", "http://loinc.org|8302-2"), ("_sort", "-date")])
                              for p in patient_ids],
        "patient+category+date-range": [("Observation", [("patient", p), ("category", "laboratory"),
                                                         ("date", "ge2015-01-01"), ("date", "lt2018-01-01")])
                                        for p in patient_ids],
    }


def time_backend(backend: FhirBackend, patient_ids: list[str], repeat: int) -> dict[str, tuple[float, float]]:
    results = {}
    for name, calls in queries(patient_ids).items():
        samples = []
        for _ in range(repeat):
            for rtype, params in calls:
                t = time.perf_counter()
                backend.search_all(rtype, params)
                samples.append((time.perf_counter() - t) * 1000)
        results[name] = percentiles(samples)
    samples = []
    for _ in range(max(1, repeat // 5)):
        for pid in patient_ids:
            t = time.perf_counter()
            build_manifest(backend, pid)
            samples.append((time.perf_counter() - t) * 1000)
    results["manifest"] = percentiles(samples)
    return results


def upload(server, data: Path) -> None:
    from tools.fhir import NotFound
    from tools.fhir.bundles import parse_entries, read_bytes
    from tools.fhir.rest import upload_bundle

    t, sent = time.perf_counter(), 0
    for path in sorted(data.glob("*.json*")):
        entries = parse_entries(path, read_bytes(path))
        patient = next(e["resource"] for e in entries if e.get("resource", {}).get("resourceType") == "Patient")
        try:
            server.read("Patient", patient["id"])
            continue
        except NotFound:
            pass
        upload_bundle(server, {"resourceType": "Bundle", "type": "transaction", "entry": entries})
        sent += len(entries)
    print(f"uploaded {sent:,} resources to {server.base_url} in {time.perf_counter() - t:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "synthea-r4")
    parser.add_argument("--fhir-url", help="also time the same queries against this FHIR server (loaded with the same patients)")
    parser.add_argument("--load-server", action="store_true",
                        help="first upload the --data patients to --fhir-url (skipping those already there)")
    parser.add_argument("--postgres", metavar="URL", help="run the store on this PostgreSQL database instead of SQLite")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no data at {args.data}: pass --data DIR with Synthea bundles")

    print(f"== load: {args.data}  (workers: processes that parse, validate and index; 0 = in-process)")
    load_throughput(args.data, "full", jobs=0, url=args.postgres)
    load_throughput(args.data, "full", url=args.postgres)
    load_throughput(args.data, "basic", jobs=0, url=args.postgres)
    store = load_throughput(args.data, "basic", url=args.postgres)
    reload_time(store, args.data)

    patient_ids = store.patient_ids()
    print(f"\n== search latency over {len(patient_ids)} patients, {store.label}, ms (p50 / p95)")
    embedded = time_backend(store, patient_ids, args.repeat)
    rest = None
    if args.fhir_url:
        from tools.fhir.rest import RestBackend

        with RestBackend(args.fhir_url) as server:
            if args.load_server:
                upload(server, args.data)
            rest = time_backend(server, patient_ids, max(1, args.repeat // 5))
    header = f"{'query':30s} {'embedded p50':>13s} {'p95':>8s}"
    if rest:
        header += f" {'REST p50':>10s} {'p95':>8s} {'REST/embedded p50':>18s}"
    print(header)
    for name, (p50, p95) in embedded.items():
        line = f"{name:30s} {p50:13.2f} {p95:8.2f}"
        if rest:
            r50, r95 = rest[name]
            line += f" {r50:10.2f} {r95:8.2f} {r50 / p50:17.1f}x"
        print(line)


if __name__ == "__main__":
    main()
