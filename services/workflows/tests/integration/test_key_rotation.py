"""`python -m automateos_workflows keys rotate` on SQLite/PostgreSQL: both keys open during the rotation, it
re-wraps row by row (resumable, idempotent), and afterwards the old key is unneeded."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from automateos_common.secretstore import SecretRef, SecretSettings, new_master_key_text
from automateos_workflows import credentials as crud
from automateos_workflows.__main__ import main
from automateos_workflows.keys import rotate
from automateos_workflows.models import Credential
from automateos_workflows.schemas import CredentialCreate
from automateos_workflows.settings import WorkflowsSettings, get_settings

pytestmark = pytest.mark.integration


def store(tmp_path, *keys: str):
    return SecretSettings(master_keys=",".join(keys)).make_secret_store(tmp_path)


def rows(db_engine) -> list[Credential]:
    with Session(db_engine) as session:
        return list(session.exec(select(Credential).order_by(Credential.id)).all())


def test_rotation(db_engine, db_url, tmp_path, monkeypatch, capsys):
    old, new = new_master_key_text(), new_master_key_text()
    with Session(db_engine) as session:
        for i in range(5):
            crud.create(session=session, owner_id=1 + i % 2, store=store(tmp_path, old),
                        data=CredentialCreate(name=f"c{i}", type="bearer", data={"token": f"token-{i}"}))
        session.commit()
    during = store(tmp_path, new, old)
    with Session(db_engine) as session:  # written during the rotation: sealed with the new key
        crud.create(session=session, owner_id=1, store=during,
                    data=CredentialCreate(name="late", type="bearer", data={"token": "token-late"}))
        session.commit()
    values = {c.id: during.get(SecretRef(c.owner_id, c.id, c.secret_ref)) for c in rows(db_engine)}
    assert len(values) == 6

    report = rotate(db_engine, during, batch=2)
    assert (report.rewrapped, report.current, report.failed) == (5, 1, {})
    assert rotate(db_engine, during).rewrapped == 0  # idempotent: run again after an interruption

    after = store(tmp_path, new)  # the old key removed
    for c in rows(db_engine):
        assert after.keyring.envelope_kid(c.secret_ref) == after.keyring.primary.kid
        assert after.get(SecretRef(c.owner_id, c.id, c.secret_ref)) == values[c.id]

    # The command, configured as an operator would: a row sealed with a key it lacks is reported, exit 1.
    with Session(db_engine) as session:
        crud.create(session=session, owner_id=1, store=store(tmp_path, new_master_key_text()),
                    data=CredentialCreate(name="stray", type="bearer", data={"token": "t"}))
        session.commit()
    settings = WorkflowsSettings.model_validate({"database_url": db_url, "master_keys": new,
                                                 "data_dir": tmp_path / "data"})
    monkeypatch.setattr("automateos_workflows.__main__.get_settings", lambda: settings)
    assert main(["keys", "rotate"]) == 1
    out = capsys.readouterr()
    assert "0 credentials re-wrapped" in out.out and "6 already were" in out.out
    assert "is not configured" in out.err
    get_settings.cache_clear()
