"""The file list body is byte for byte what Pydantic writes for `FileList` of the same rows,
whichever database it comes from and whatever form a stored time has."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from casekit import CaseKit
from sqlalchemy.orm import Session

from vault.api.routes.files import FileList, VersionOut, version_out
from vault.db.engine import make_engine
from vault.db.models.files import FileRow, FileVersion


@pytest.fixture
def engine(app_settings):
    engine = make_engine(app_settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def listed(client, make_user):
    kit = CaseKit(client)
    alice = make_user("alice")
    case = kit.create_case(alice)
    ids = []
    for _ in range(4):
        file_id, done = kit.upload(alice, case, secrets.token_bytes(300))
        assert done.status_code == 201, done.text
        ids.append(file_id)
    _, done = kit.upload(alice, case, secrets.token_bytes(200), file_id=ids[0], version=2)
    assert done.status_code == 201, done.text
    tomb = kit.client.post(
        f"/v1/cases/{case.case_id}/files/{ids[3]}/tombstone",
        json={"tombstone": kit.tombstone(alice, case, ids[3])},
        headers=alice.headers,
    )
    assert tomb.status_code == 200, tomb.text
    return kit, case, alice, ids


def _set_created(engine, case_id: str, file_id: str, when: datetime) -> None:
    with Session(engine) as db:
        db.execute(
            sa.update(FileVersion)
            .where(FileVersion.case_id == case_id, FileVersion.file_id == file_id)
            .values(created_at=when)
        )
        db.commit()


def _model_versions(engine, case_id: str) -> list[VersionOut]:
    """The versions as the model describes them, read through the ORM (typed columns)."""
    with Session(engine) as db:
        pairs = db.execute(
            sa.select(FileVersion, FileRow)
            .join(
                FileRow,
                (FileRow.case_id == FileVersion.case_id) & (FileRow.file_id == FileVersion.file_id),
            )
            .where(FileVersion.case_id == case_id)
            .order_by(FileVersion.file_id, FileVersion.version)
        ).all()
        # The route's own model path (used for single versions) is the reference.
        return [version_out(v, f) for v, f in pairs]


def _get(kit, case, user, **params):
    r = kit.client.get(f"/v1/cases/{case.case_id}/files", params=params, headers=user.headers)
    assert r.status_code == 200, r.text
    return r


def test_the_whole_list_is_the_models_json_byte_for_byte(listed, engine):
    kit, case, alice, ids = listed
    # Both time formats Pydantic writes: no fraction on a whole second, six digits otherwise.
    _set_created(engine, case.case_id, ids[1], datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC))
    _set_created(engine, case.case_id, ids[2], datetime(2026, 3, 4, 5, 6, 7, 120000, UTC))
    body = _get(kit, case, alice).content
    expected = FileList(versions=_model_versions(engine, case.case_id))
    assert body == expected.model_dump_json(exclude={"next"}).encode()
    assert b'"created_at":"2026-03-04T05:06:07Z"' in body
    assert b'"created_at":"2026-03-04T05:06:07.120000Z"' in body
    assert body.count(b'"deleted":true') == 1 and body.count(b'"tombstone":{"body":') == 1


def test_pages_are_the_models_json_byte_for_byte(listed, engine):
    kit, case, alice, ids = listed
    versions = _model_versions(engine, case.case_id)
    first = _get(kit, case, alice, limit=3).content
    cursor = f"{versions[2].file_id}:{versions[2].version}"
    assert first == FileList(versions=versions[:3], next=cursor).model_dump_json().encode()
    rest = _get(kit, case, alice, limit=3, after=cursor).content
    assert rest == FileList(versions=versions[3:], next=None).model_dump_json().encode()


def test_a_time_stored_in_another_format_is_still_listed_as_the_model_writes_it(listed, engine):
    kit, case, alice, ids = listed
    # Written by hand, not by the model's column type: a one-digit fraction, which SQLite
    # keeps as written and which must still be listed with six digits.
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE file_versions SET created_at = :t WHERE file_id = :f"),
            {"t": "2026-05-06 07:08:09.5", "f": ids[1]},
        )
    body = _get(kit, case, alice).content
    expected = FileList(versions=_model_versions(engine, case.case_id))
    assert body == expected.model_dump_json(exclude={"next"}).encode()
    if engine.dialect.name == "sqlite":  # PostgreSQL read the text in its session's zone
        assert b'"created_at":"2026-05-06T07:08:09.500000Z"' in body


def test_an_empty_case_lists_nothing(client, make_user):
    kit = CaseKit(client)
    alice = make_user("alice")
    case = kit.create_case(alice)
    assert _get(kit, case, alice).content == b'{"versions":[]}'
    assert _get(kit, case, alice, limit=5).content == b'{"versions":[],"next":null}'
