"""Guideline retrieval: ingest a folder of guideline documents, search it by BM25, dense
embeddings or both fused, and cite passages as ``Guideline/<note-id>#<section-slug>``.

Never imports ``agent/``. The agent takes ``guideline_tools(index_path)`` into its registry.
"""

from .chunking import Passage, chunk_document, pack_paragraphs
from .embedder import SentenceEmbedder, default_model_path
from .index import GuidelineIndex, IndexReport
from .readers import Document, Section, read_document, slug
from .retriever import MODES, GuidelineRetriever, Hit, reciprocal_rank_fusion
from .tool import CORPUS_DIR, GuidelineTools, ensure_starter_index, guideline_tools, open_retriever, starter_index_path

__all__ = ["CORPUS_DIR", "Document", "GuidelineIndex", "GuidelineRetriever", "GuidelineTools", "Hit", "IndexReport",
           "MODES", "Passage", "Section", "SentenceEmbedder", "chunk_document", "default_model_path",
           "ensure_starter_index", "guideline_tools", "open_retriever", "pack_paragraphs", "read_document",
           "reciprocal_rank_fusion", "slug", "starter_index_path"]
