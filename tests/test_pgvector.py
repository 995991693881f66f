"""pgvector through Django on the embedded PostgreSQL 18 (`vector` columns, an HNSW cosine index, pgvector's
field and distance), and the system check that says when a database lacks it: the machine's Postgres 15."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import Warning, run_checks
from django.db import models
from pgvector.django import CosineDistance, VectorField

from conversations.checks import PGVECTOR_MISSING

pytestmark = pytest.mark.subprocess


class Passage(models.Model):
    """A row of the table the test makes by hand (not a model of the app: no migration makes it)."""

    text = models.TextField()
    embedding = VectorField(dimensions=3)

    class Meta:
        app_label = "pgvector_probe"
        db_table = "probe_passages"
        managed = False

    def __str__(self) -> str:
        return self.text


def test_vector_columns_and_an_hnsw_cosine_index_work_through_django(pgvector_connection: Any) -> None:
    alias = pgvector_connection.alias
    with pgvector_connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS probe_passages")
        cursor.execute(
            "CREATE TABLE probe_passages (id bigserial PRIMARY KEY, text text, embedding vector(3))"
        )
        cursor.execute(
            "CREATE INDEX probe_passages_embedding ON probe_passages USING hnsw (embedding vector_cosine_ops)"
        )
    try:
        rows = {"east": [1, 0, 0], "north": [0, 1, 0], "north-east": [1, 1, 0], "west": [-1, 0, 0]}
        Passage.objects.using(alias).bulk_create(
            Passage(text=text, embedding=vector) for text, vector in rows.items()
        )
        nearest = Passage.objects.using(alias).annotate(distance=CosineDistance("embedding", [2, 0.1, 0]))
        ranked = list(nearest.order_by("distance").values_list("text", "distance"))
        assert [text for text, _ in ranked] == ["east", "north-east", "north", "west"]
        cosine = 2 / 4.01**0.5  # of east and the query; vectors are stored as 4-byte floats
        assert ranked[0][1] == pytest.approx(1 - cosine, abs=1e-6)
        assert ranked[-1][1] == pytest.approx(1 + cosine, abs=1e-6)  # opposite: a distance near 2
        east = Passage.objects.using(alias).get(text="east")
        assert list(east.embedding) == [1.0, 0.0, 0.0]  # read back as numbers
        with pgvector_connection.cursor() as cursor:
            cursor.execute("SET enable_seqscan = off")  # four rows: only then does the planner pick the index
        plan = nearest.order_by("distance")[:2].explain()
        assert "probe_passages_embedding" in plan, plan
    finally:
        with pgvector_connection.cursor() as cursor:
            cursor.execute("RESET enable_seqscan")
            cursor.execute("DROP TABLE probe_passages")


def pgvector_warnings(alias: str) -> list[Any]:
    """The pgvector check's messages for the database `alias`, as `migrate` runs the database checks."""
    return [message for message in run_checks(databases=[alias]) if message.id == PGVECTOR_MISSING]


@pytest.mark.django_db
def test_the_check_warns_on_a_database_without_pgvector() -> None:
    (warning,) = pgvector_warnings("default")  # the machine's Postgres 15
    assert isinstance(warning, Warning)
    assert "has no pgvector extension: knowledge bases will need it" in warning.msg
    assert "docs/operations.md" in warning.hint


def test_the_check_is_silent_where_pgvector_is_available(pgvector_connection: Any) -> None:
    assert pgvector_warnings(pgvector_connection.alias) == []
