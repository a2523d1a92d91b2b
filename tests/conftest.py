"""Fixtures shared by the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    """``fhir_server`` tests skip cleanly when no server is configured."""
    if os.environ.get("MEDAGENT_TEST_FHIR_URL", "").strip():
        return
    skip = pytest.mark.skip(reason="MEDAGENT_TEST_FHIR_URL is not set (bash .ci/fhir_server.sh start)")
    for item in items:
        if "fhir_server" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def fhir_server_url() -> str:
    """Base URL of a real FHIR R4 server, e.g. ``http://127.0.0.1:18080/fhir``."""
    url = os.environ.get("MEDAGENT_TEST_FHIR_URL", "").strip()
    if not url:
        pytest.skip("MEDAGENT_TEST_FHIR_URL is not set (bash .ci/fhir_server.sh start)")
    return url.rstrip("/")


@pytest.fixture(scope="session")
def shared_synthea_dir() -> Path:
    """The shared Synthea R4 patients (one gzipped transaction bundle each), when present."""
    path = REPO_ROOT.parent / "shared" / "data" / "synthea-r4"
    if not path.is_dir() or not any(path.glob("*.json.gz")):
        pytest.skip(f"shared Synthea data not found at {path}")
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The five fixture patients in a fresh SQLite store, one per test module (a module may write
    to it without touching another's). Modules that need another store define their own."""
    from fhir_fixtures import bundle_paths
    from tools.fhir.store import EmbeddedStore

    s = EmbeddedStore(f"sqlite:///{tmp_path_factory.mktemp('fixtures') / 'store.db'}")
    assert not s.load_paths(bundle_paths()).errors
    yield s
    s.close()
