"""``medagent``: the root command and its subcommands."""

from __future__ import annotations

import typer

from . import ask, chat, demo, ehr, fhir, llm, qa, trace_cmd

app = typer.Typer(
    name="medagent",
    help="An agentic clinical assistant: MedGemma plans over a patient's FHIR record.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(fhir.app, name="fhir")
app.add_typer(ehr.app, name="ehr")
app.add_typer(llm.app, name="llm")
app.add_typer(trace_cmd.app, name="trace")
from . import bench  # noqa: E402  (beside its registration: one small edit to this shared file)
app.add_typer(bench.app, name="bench")
from . import images  # noqa: E402  (image search: one small edit to this shared file)
app.add_typer(images.app, name="images")
from . import guidelines  # noqa: E402  (guideline search: one small edit to this shared file)
app.add_typer(guidelines.app, name="guidelines")
from . import ehrqa  # noqa: E402  (EHRQA-style evaluation: one small edit to this shared file)
app.add_typer(ehrqa.app, name="ehrqa")
app.command("ask")(ask.ask)
app.command("demo")(demo.demo)
app.command("chat")(chat.chat)
app.command("qa")(qa.qa)


@app.callback()
def _root() -> None:
    """medagent: FHIR records, tools and agent runs from one command."""
