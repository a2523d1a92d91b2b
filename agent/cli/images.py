"""``medagent images ...``: build the MedSigLIP image index and search it by image or text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from .common import ConfigOpt, EXIT_REFUSED, err, out, print_json, settings_from

app = typer.Typer(help="Image search with MedSigLIP embeddings in a FAISS index (needs a local MedSigLIP folder).",
                  no_args_is_help=True)

EncoderOpt = Annotated[Optional[Path], typer.Option(
    "--encoder", help="Local MedSigLIP folder (config.json, weights, tokenizer). Env: MEDAGENT_IMAGE_ENCODER.",
    show_default=False)]
IndexOpt = Annotated[Optional[Path], typer.Option(
    "--index", help="Image index folder. Env: MEDAGENT_IMAGE_INDEX. Default: <user data dir>/medagent/image-index.",
    show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the hits as JSON (path, score, metadata), best first.")]


def _paths(config: Path | None, encoder: Path | None, index: Path | None) -> tuple[str | None, str]:
    from tools.images import default_index_path

    settings = settings_from(config, image_encoder=str(encoder) if encoder else None,
                             image_index=str(index) if index else None)
    return settings.image_encoder, settings.image_index or default_index_path()


def _encoder(path: str | None):
    from tools.images import CONFIGURE_HINT, EncoderError, ImageEncoder

    if not path:
        err.print(f"[red]error:[/red] {CONFIGURE_HINT}", markup=True, highlight=False)
        raise typer.Exit(EXIT_REFUSED)
    err.print(f"loading the image encoder from {path} ...", markup=False)
    try:
        return ImageEncoder(path)
    except EncoderError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_REFUSED) from exc


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(EXIT_REFUSED)


@app.command()
def index(
    folder: Annotated[Path, typer.Argument(help="Folder of PNG/JPEG/DICOM images (searched recursively).")],
    labels: Annotated[Optional[Path], typer.Option(
        "--labels", help="CSV with a path column and any of patient_id, modality, body_part, labels, report, "
                         "study_uid, series_uid (other columns are kept as extra metadata).")] = None,
    encoder: EncoderOpt = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Index folder (default: the configured image index).",
                                                    show_default=False)] = None,
    frames: Annotated[Literal["middle", "each"], typer.Option(
        help="Multi-frame DICOM: index the middle frame, or each frame as its own image.")] = "middle",
    config: ConfigOpt = None,
) -> None:
    """Index a folder of images (again: only new or changed files are encoded)."""
    from tools.images import ImageIndex, ImageIndexError

    encoder_path, index_path = _paths(config, encoder, out_dir)
    if not folder.is_dir():
        _fail(f"{folder} is not a folder")
    if labels is not None and not labels.is_file():
        _fail(f"labels CSV {labels} does not exist")
    enc = _encoder(encoder_path)
    idx = ImageIndex(index_path)
    try:
        report = idx.add_folder(folder, enc, labels_csv=labels, frames=frames)
    except (ImageIndexError, ValueError) as exc:
        _fail(str(exc))
    for path, reason in report.failed:
        err.print(f"[yellow]skipped:[/yellow] {reason}", highlight=False)
    m = idx.manifest()
    out.print(f"{report.summary()}\nindex {idx.path}: {m['count']} images, {m['model']} {m['dim']}-d, "
              f"FAISS {m['search']}", markup=False, highlight=False)


@app.command()
def search(
    image: Annotated[Optional[Path], typer.Option("--image", help="Query image (PNG/JPEG/DICOM).")] = None,
    text: Annotated[Optional[str], typer.Option("--text", help="Query text, e.g. 'chest x-ray with effusion'.")] = None,
    index_dir: IndexOpt = None,
    k: Annotated[int, typer.Option("-k", help="How many hits.")] = 5,
    encoder: EncoderOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """The images nearest to a query image or text (cosine similarity, best first)."""
    from tools.images import ImageIndex, ImageTools

    if image is None and not text:
        _fail("give --image PATH or --text \"...\" (or both)")
    encoder_path, index_path = _paths(config, encoder, index_dir)
    if not ImageIndex(index_path).exists:
        _fail(f"no image index at {index_path}: build one with `medagent images index DIR`")
    tools = ImageTools(index_path, encoder_path or "", _encoder(encoder_path))
    result = tools.search_images(query_image=str(image) if image else None, query_text=text, k=k)
    if result.error:
        _fail(result.error)
    if as_json:
        print_json({"query": {"image": str(image) if image else None, "text": text}, "index": str(index_path),
                    "hits": result.resources})
    else:
        out.print(result.text, markup=False, highlight=False, soft_wrap=True)


@app.command()
def classify(
    image: Annotated[Path, typer.Argument(help="Image to score (PNG/JPEG/DICOM).")],
    label: Annotated[list[str], typer.Option("--label", "-l", help="A candidate finding; repeat for each.")],
    encoder: EncoderOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Zero-shot scores of an image against labels (MedSigLIP's sigmoid)."""
    from tools.images import ImageTools

    encoder_path, index_path = _paths(config, encoder, None)
    tools = ImageTools(index_path, encoder_path or "", _encoder(encoder_path))
    result = tools.classify_image(str(image), label)
    if result.error:
        _fail(result.error)
    if as_json:
        print_json({"image": str(image), "scores": result.resources})
    else:
        out.print(result.text, markup=False, highlight=False, soft_wrap=True)


@app.command()
def info(index_dir: IndexOpt = None, encoder: EncoderOpt = None, config: ConfigOpt = None) -> None:
    """Whether image search is usable here: the encoder setting and the index's contents."""
    from tools.images import ImageIndex, unavailable_reason

    encoder_path, index_path = _paths(config, encoder, index_dir)
    idx = ImageIndex(index_path)
    out.print(f"encoder: {encoder_path or '(not configured)'}", markup=False)
    if idx.exists:
        m = idx.manifest()
        out.print(f"index: {idx.path}: {m['count']} images, {m['model']} {m['dim']}-d, FAISS {m['search']}, "
                  f"updated {m['updated']}", markup=False)
    else:
        out.print(f"index: {idx.path} (not built)", markup=False)
    reason = unavailable_reason(index_path, encoder_path)
    out.print("image tools: available" if reason is None else f"image tools: off: {reason}", markup=False)
