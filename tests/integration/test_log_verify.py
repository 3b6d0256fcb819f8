"""`casevault-server verify-log` on a real database: an honest log passes; an edited, deleted,
reordered or smuggled-in event row, or a tampered hash or checkpoint, is reported."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from vault.cli import main
from vault.config import Settings
from vault.db.engine import make_engine, make_sessionmaker
from vault.db.models.log import LogCheckpoint, LogLeaf, LogNode
from vault.services import auditlog
from vault.services.events import record_event

EVENTS = sa.table("audit_events", sa.column("id"), sa.column("action"), sa.column("detail"),
                  sa.column("time"), sa.column("result"))


@pytest.fixture
def server(database_url, tmp_path, migrated_template):
    migrated_template.copy_to(database_url)
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    signer = auditlog.LogSigner.from_data_dir(settings.data_dir)
    with sessions() as db:
        for i in range(13):
            record_event(db, action="file:file:upload", actor_id="a" * 32, detail={"n": i})
        db.commit()
        auditlog.current_checkpoint(db, signer)
        db.commit()
        record_event(db, action="file:file:download", actor_id="a" * 32)
        db.commit()
    yield settings, sessions
    engine.dispose()


def _run(settings, capsys) -> tuple[int, str]:
    code = main(["verify-log", "--data-dir", str(settings.data_dir),
                 "--database-url", settings.resolved_database_url()])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_honest_log_passes(server, capsys):
    settings, _ = server
    code, output = _run(settings, capsys)
    assert code == 0, output
    assert "14 entries, 1 signed checkpoint" in output


def test_edited_event_row_is_reported(server, capsys):
    settings, sessions = server
    with sessions() as db:
        db.execute(sa.update(EVENTS).where(EVENTS.c.id == 3).values(action="file:file:list"))
        db.commit()
    code, output = _run(settings, capsys)
    assert code == 1 and "event 3 was edited" in output


def test_deleted_event_row_is_reported(server, capsys):
    settings, sessions = server
    with sessions() as db:
        db.execute(sa.delete(EVENTS).where(EVENTS.c.id == 5))
        db.commit()
    code, output = _run(settings, capsys)
    assert code == 1 and "event 5 was deleted" in output


def test_reordered_event_rows_are_reported(server, capsys):
    settings, sessions = server
    with sessions() as db:
        rows = {r.id: r for r in db.execute(sa.select(EVENTS).where(EVENTS.c.id.in_([2, 7])))}
        for a, b in ((2, 7), (7, 2)):
            db.execute(sa.update(EVENTS).where(EVENTS.c.id == a).values(
                action=rows[b].action, detail=rows[b].detail, time=rows[b].time))
        db.commit()
    code, output = _run(settings, capsys)
    assert code == 1
    assert "event 2 was edited or moved" in output and "event 7 was edited or moved" in output


def test_event_inserted_behind_the_logs_back_is_reported(server, capsys):
    settings, sessions = server
    with sessions() as db:
        db.execute(sa.text(
            "INSERT INTO audit_events (time, action, result, detail) "
            "VALUES (CURRENT_TIMESTAMP, 'account:login:success', 'success', '{}')"
        ))
        db.commit()
    code, output = _run(settings, capsys)
    assert code == 1 and "not in the log" in output


def test_rewritten_leaf_and_node_hashes_are_reported(server, capsys):
    settings, sessions = server
    with sessions() as db:
        db.execute(sa.update(LogLeaf).where(LogLeaf.leaf_index == 4).values(entry=b"{}"))
        db.execute(sa.update(LogNode).where(LogNode.level == 2, LogNode.index == 0)
                   .values(hash=b"\x00" * 32))
        db.commit()
    code, output = _run(settings, capsys)
    assert code == 1
    assert "leaf 4" in output and "stored node (2, 0)" in output


def test_tampered_checkpoint_is_reported(server, capsys):
    settings, sessions = server
    with sessions() as db:
        note = db.scalar(sa.select(LogCheckpoint.note))
        db.execute(sa.update(LogCheckpoint).values(note=note.replace("\n13\n", "\n12\n")))
        db.commit()
    code, output = _run(settings, capsys)
    assert code == 1 and "checkpoint 13" in output


def test_missing_log_key_is_an_error_not_a_new_key(server, capsys, tmp_path):
    settings, _ = server
    other = Settings(data_dir=tmp_path / "empty", database_url=settings.database_url)
    code, output = _run(other, capsys)
    assert code == 1 and "no log key" in output
    assert not (tmp_path / "empty" / auditlog.LOG_KEY_FILE).exists()


def test_deleted_node_is_reported_once_and_the_rest_still_checks(server, capsys):
    settings, sessions = server
    with sessions() as db:
        db.execute(sa.delete(LogNode).where(LogNode.level == 1, LogNode.index == 2))
        db.commit()
    code, output = _run(settings, capsys)
    assert code == 1
    problems = [line for line in output.splitlines() if line.startswith("PROBLEM")]
    # 14 leaves have 7 + 3 + 1 perfect subtrees above the leaves; the others still match.
    assert problems == [
        "PROBLEM: stored node (1, 2) does not match the entries",
        "PROBLEM: 10 stored nodes where the tree has 11",
    ]
