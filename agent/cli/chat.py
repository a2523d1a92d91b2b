"""``medagent chat``: talk to the agent about one patient at a time (the loop is agent.chat)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from .common import ConfigOpt, FhirUrlOpt, StoreOpt, backend_from, err, settings_from
from .llm import LlmOpt


def chat(
    patient: Annotated[Optional[str], typer.Option("--patient", "-p", help="Bind this Patient id at the start (else /patient NAME or ID).")] = None,
    llm: LlmOpt = None,
    session: Annotated[Optional[str], typer.Option("--session", help="Resume this session (or start one under this id).")] = None,
    strategy: Annotated[Literal["react", "navigator"], typer.Option(help="react: the model picks narrow searches; navigator: manifest, types, fetches, extraction, synthesis.")] = "react",
    max_steps: Annotated[int, typer.Option(help="Model turns per question before the turn stops with status max_steps.")] = 8,
    now: Annotated[Optional[str], typer.Option(help="The date the agent is told it is (ISO), for questions like 'last year'.")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Where sessions, traces and input history live (default: the user data dir).")] = None,
    image: Annotated[Optional[Path], typer.Option(help="An image (PNG, JPEG, DICOM) for the first question (later ones: /image PATH): shown to a multimodal model (openai:, hf:) and the query for image search.")] = None,
    store: StoreOpt = None, fhir_url: FhirUrlOpt = None, config: ConfigOpt = None,
) -> None:
    """Chat with the agent about a patient: streamed answers with sources, slash commands (/help), resumable sessions."""
    from platformdirs import user_data_dir

    from agent.chat.app import ChatApp
    from agent.chat.render import Renderer
    from agent.chat.sessions import SessionStore
    from agent.models import ModelSpecError

    settings = settings_from(config, store=store, fhir_url=fhir_url, llm=llm)
    backend = backend_from(settings)
    root = data_dir or Path(user_data_dir("medagent")) / "chat"
    sessions = SessionStore(root)
    renderer = Renderer()
    try:
        app = ChatApp(settings=settings, backend=backend, store=sessions, renderer=renderer, llm=settings.llm,
                      strategy=strategy, max_steps=max_steps, now=now, history_file=root / "input_history")
    except (ModelSpecError, ValueError, FileNotFoundError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if image is not None:
        from agent.images_in import load_question_image

        try:
            load_question_image(image)
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        app.next_image = str(image)
    try:
        if session:
            info = sessions.get(session)
            if info is not None:
                app.resume(info)
            else:
                app.session = sessions.create(session_id=session, model=str(app.spec))
        if patient and patient != app.patient_id:
            app.bind(app.read_patient(patient))
    except LookupError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    if app.patient is None:
        renderer.info("No patient bound: /patient NAME or ID to pick one; /help for commands.")
    raise typer.Exit(app.run())
