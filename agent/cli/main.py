"""``medagent``: the root command and its subcommands."""

from __future__ import annotations

import typer

from . import ask, bench, chat, demo, ehr, ehrqa, fhir, guidelines, images, llm, qa, trace_cmd

app = typer.Typer(
    name="medagent",
    help="An agentic clinical assistant: MedGemma plans over a patient's FHIR record.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# the record, the tools, the model and traces by hand
app.add_typer(fhir.app, name="fhir")
app.add_typer(ehr.app, name="ehr")
app.add_typer(llm.app, name="llm")
app.add_typer(trace_cmd.app, name="trace")
# the knowledge tools
app.add_typer(guidelines.app, name="guidelines")
app.add_typer(images.app, name="images")
# the ways in: one question, a conversation, a file of questions, evaluations and benchmarks
app.command("ask")(ask.ask)
app.command("chat")(chat.chat)
app.command("qa")(qa.qa)
app.add_typer(ehrqa.app, name="ehrqa")
app.add_typer(bench.app, name="bench")
app.command("demo")(demo.demo)


@app.callback()
def _root() -> None:
    """medagent: FHIR records, tools and agent runs from one command."""
