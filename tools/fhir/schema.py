"""Tables of the embedded store: one row per resource (raw JSON) plus typed index tables.

The same SQLAlchemy Core tables run on SQLite (default) and PostgreSQL. Index rows carry
the resource type so a search touches one narrow index range; every index row belongs to
exactly one resource row (``res_pk``) and is replaced whole when that resource is.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text, UniqueConstraint,
)

metadata = MetaData()

resources = Table(
    "resources", metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("patient_id", String(64), nullable=True),  # Patient compartment, for scoping and stats
    Column("version", Integer, nullable=False, default=1),
    Column("last_updated", String(40), nullable=False),
    Column("source", Text, nullable=True),  # the file it was loaded from
    Column("json", Text, nullable=False),
    UniqueConstraint("type", "id", name="uq_resources_type_id"),
)
Index("ix_resources_patient_type", resources.c.patient_id, resources.c.type)


def _res_pk() -> Column:
    return Column("res_pk", Integer, ForeignKey("resources.pk", ondelete="CASCADE"), nullable=False)


idx_token = Table(
    "idx_token", metadata, _res_pk(),
    Column("type", String(64), nullable=False),
    Column("param", String(64), nullable=False),
    Column("system", Text, nullable=True),
    Column("code", Text, nullable=True),
    Column("display", Text, nullable=True),
)
Index("ix_token_lookup", idx_token.c.type, idx_token.c.param, idx_token.c.code, idx_token.c.res_pk)
Index("ix_token_res", idx_token.c.res_pk)

idx_ref = Table(
    "idx_ref", metadata, _res_pk(),
    Column("type", String(64), nullable=False),
    Column("param", String(64), nullable=False),
    Column("target_type", String(64), nullable=True),
    Column("target_id", Text, nullable=False),
)
Index("ix_ref_lookup", idx_ref.c.type, idx_ref.c.param, idx_ref.c.target_id, idx_ref.c.res_pk)
Index("ix_ref_res", idx_ref.c.res_pk)

idx_date = Table(
    "idx_date", metadata, _res_pk(),
    Column("type", String(64), nullable=False),
    Column("param", String(64), nullable=False),
    Column("lo", BigInteger, nullable=False),
    Column("hi", BigInteger, nullable=False),
)
Index("ix_date_lookup", idx_date.c.type, idx_date.c.param, idx_date.c.lo)
Index("ix_date_res", idx_date.c.res_pk, idx_date.c.param)

idx_string = Table(
    "idx_string", metadata, _res_pk(),
    Column("type", String(64), nullable=False),
    Column("param", String(64), nullable=False),
    Column("value", Text, nullable=False),  # normalised (casefolded, accents stripped)
    Column("raw", Text, nullable=False),
)
Index("ix_string_lookup", idx_string.c.type, idx_string.c.param, idx_string.c.value)
Index("ix_string_res", idx_string.c.res_pk)

INDEX_TABLES = (idx_token, idx_ref, idx_date, idx_string)

# Kept in the database so a store written by an incompatible layout is refused clearly.
SCHEMA_VERSION = "1"
meta_table = Table(
    "medagent_meta", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
