"""Shared plumbing for the subcommands: consoles, settings, backends, error exits."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator

import orjson
import typer
from rich.console import Console

from agent.settings import Settings, load_settings
from tools.fhir import BackendUnavailable, FhirBackend, FhirError, open_backend

# stdout carries data (JSON) for pipes; everything for people goes to stderr or tables.
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

# Exit codes: 1 = the request was refused (bad query, bad bundle), 3 = backend unreachable.
EXIT_REFUSED = 1
EXIT_UNAVAILABLE = 3

StoreOpt = Annotated[str | None, typer.Option("--store", help="Embedded store URL (sqlite:///path or postgresql+psycopg://...). Env: MEDAGENT_STORE.", show_default=False)]
FhirUrlOpt = Annotated[str | None, typer.Option("--fhir-url", help="Use this FHIR R4 REST server instead of the store. Env: MEDAGENT_FHIR_URL.", show_default=False)]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file. Env: MEDAGENT_CONFIG.", show_default=False)]


def settings_from(config: Path | None = None, **flags) -> Settings:
    try:
        return load_settings(config, **flags)
    except (FileNotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def backend_from(settings: Settings) -> FhirBackend:
    token = settings.fhir_token.get_secret_value() if settings.fhir_token else None
    with fhir_errors():
        return open_backend(settings.store, settings.fhir_url, token=token,
                            timeout=settings.fhir_timeout, retries=settings.fhir_retries)


def model_from(settings: Settings):
    """(spec, chat model) for ``settings.llm``; a bad spec is a clear error and exit code 2."""
    from agent.models import ModelSpecError, parse_spec
    from agent.models.factory import build_chat_model

    try:
        spec = parse_spec(settings.llm)
        return spec, build_chat_model(spec, settings)
    except ModelSpecError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


UNCITED = "none: no record a tool returned backs this answer; check it against the record"


def citation_line(cited_ids) -> str:
    """``cited: ...`` for a finished run; an answer resting on no shown record says so plainly."""
    return "cited: " + (", ".join(cited_ids) if cited_ids else UNCITED)


def print_json(data) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


@contextmanager
def fhir_errors() -> Iterator[None]:
    """Turn FHIR failures into a clear message (OperationOutcome JSON on stderr) and an exit code."""
    try:
        yield
    except BackendUnavailable as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_UNAVAILABLE) from exc
    except FhirError as exc:
        sys.stderr.write(orjson.dumps(exc.outcome, option=orjson.OPT_INDENT_2).decode() + "\n")
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_REFUSED) from exc
