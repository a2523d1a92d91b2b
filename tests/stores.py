"""Make an empty embedded store for a test: SQLite always, PostgreSQL when one is configured.

``MEDAGENT_TEST_PG_URL`` (``postgresql+psycopg://user@127.0.0.1:port/db``, started by .ci/run)
enables the PostgreSQL runs; each store gets a schema of its own, dropped and recreated.
"""

from __future__ import annotations

import os
import re

import pytest

from tools.fhir.store import EmbeddedStore

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def new_store(kind: str, tmp_path, name: str) -> EmbeddedStore:
    if kind == "sqlite":
        return EmbeddedStore(f"sqlite:///{tmp_path / (name + '.db')}")
    url = os.environ.get("MEDAGENT_TEST_PG_URL", "").strip()
    if not url:
        pytest.skip("MEDAGENT_TEST_PG_URL is not set (.ci/run starts a PostgreSQL server)")
    from sqlalchemy import create_engine, text

    schema = "t_" + re.sub(r"\W", "_", name.lower())[:40]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    sep = "&" if "?" in url else "?"
    return EmbeddedStore(f"{url}{sep}options=-csearch_path%3D{schema}")
