"""``medagent fhir ...``: load bundles, search, read and count, on the store or a FHIR server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from tools.fhir import parse_query

from .common import (ConfigOpt, EXIT_REFUSED, FhirUrlOpt, StoreOpt, backend_from, err, fhir_errors, out,
                     print_json, settings_from)

app = typer.Typer(help="Load FHIR bundles and query the record (embedded store or FHIR server).", no_args_is_help=True)


@app.command()
def load(
    paths: Annotated[list[Path], typer.Argument(help="Bundle files (.json, .json.gz, .ndjson) or folders of them.")],
    store: StoreOpt = None,
    fhir_url: FhirUrlOpt = None,
    validate: Annotated[Literal["full", "basic"] | None, typer.Option(help="full: every resource against the R4 models; basic: structure, references and dates only.", show_default="full")] = None,
    config: ConfigOpt = None,
) -> None:
    """Load bundles. Each file loads whole or not at all; bad files are reported, good ones load."""
    settings = settings_from(config, store=store, fhir_url=fhir_url, validation=validate)
    missing = [p for p in paths if not p.exists()]
    if missing:
        err.print(f"[red]error:[/red] no such file or folder: {', '.join(map(str, missing))}")
        raise typer.Exit(2)
    backend = backend_from(settings)
    with fhir_errors():
        if settings.fhir_url:
            _upload(backend, paths)
            return
        report = backend.load_paths(paths, validation=settings.validation)  # type: ignore[attr-defined]
    for message in report.errors:
        err.print(f"[red]not loaded:[/red] {message}")
    table = Table(title=f"Loaded into {backend.label}", show_edge=False)
    table.add_column("type")
    table.add_column("written", justify="right")
    for rtype, n in sorted(report.by_type.items()):
        table.add_row(rtype, str(n))
    out.print(table)
    out.print(f"{report.files} file(s), {report.resources} resources written, {report.unchanged} unchanged, "
              f"{report.deleted} deleted, {len(report.errors)} file(s) refused, "
              f"{report.seconds:.2f} s ({report.per_second:,.0f} resources/s)")
    if report.errors:
        raise typer.Exit(EXIT_REFUSED)


def _upload(backend, paths: list[Path]) -> None:
    from tools.fhir.bundles import parse_entries, read_bytes
    from tools.fhir.rest import upload_bundle
    from tools.fhir.store import expand_paths

    for path in expand_paths(paths):
        entries = parse_entries(path, read_bytes(path))
        upload_bundle(backend, {"resourceType": "Bundle", "type": "transaction", "entry": entries})
        out.print(f"uploaded {path} ({len(entries)} entries)")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="A FHIR search, e.g. 'Observation?patient=ID&code=http://loinc.org|4548-4&_sort=-date'.")],
    store: StoreOpt = None,
    fhir_url: FhirUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print the searchset Bundle as JSON: every match across pages, unless _count asks for one page."""
    settings = settings_from(config, store=store, fhir_url=fhir_url)
    with fhir_errors():
        resource_type, params = parse_query(query)
        backend = backend_from(settings)
        print_json(backend.search_all(resource_type, params))


@app.command()
def read(
    reference: Annotated[str, typer.Argument(help="Type/id, e.g. Patient/123.")],
    store: StoreOpt = None,
    fhir_url: FhirUrlOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print one resource as JSON."""
    settings = settings_from(config, store=store, fhir_url=fhir_url)
    rtype, _, rid = reference.partition("/")
    if not rtype or not rid:
        err.print(f"[red]error:[/red] expected Type/id, got '{reference}'")
        raise typer.Exit(2)
    with fhir_errors():
        print_json(backend_from(settings).read(rtype, rid))


@app.command()
def stats(
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print counts as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Count the resources in the embedded store, per type."""
    settings = settings_from(config, store=store)
    with fhir_errors():
        backend = backend_from(settings.model_copy(update={"fhir_url": None}))
        counts = backend.stats()  # type: ignore[attr-defined]
    if as_json:
        print_json(counts)
        return
    print_stats(counts, f"{backend.label}: {settings.store}")


def print_stats(counts: dict[str, int], title: str) -> None:
    table = Table(title=title, show_edge=False)
    table.add_column("type")
    table.add_column("resources", justify="right")
    for rtype, n in counts.items():
        table.add_row(rtype, f"{n:,}")
    table.add_section()
    table.add_row("total", f"{sum(counts.values()):,}")
    out.print(table)
