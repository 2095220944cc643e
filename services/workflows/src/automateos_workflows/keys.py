"""Master-key rotation: re-wrap every credential's data key under the first configured master key.

During a rotation every service is configured with both keys, the new one first
(AUTOMATEOS_MASTER_KEYS=new,old): new values are sealed with it and every value opens, whichever
key sealed it. `rotate` then re-wraps row by row, each in its own short transaction (the value
itself is never decrypted, only its data key), so it can be stopped and run again: rows already
under the new key are left alone. When it reports nothing left, the old key can be removed. With the
`aws` store the envelopes are in AWS Secrets Manager: each is read, re-wrapped and put back as a new
version of its secret (same ARN).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from automateos_common.secretstore import RewrappingStore, SecretRef, SecretStoreError

from .models import Credential


@dataclass
class RotationReport:
    rewrapped: int = 0
    current: int = 0
    failed: dict[int, str] = field(default_factory=dict)  # credential id -> why (never any part of a value)


def rotate(engine: Engine, store: RewrappingStore, *, batch: int = 100) -> RotationReport:
    report = RotationReport()
    last = 0
    while True:
        with Session(engine) as session:
            ids = session.exec(select(Credential.id).where(col(Credential.id) > last)
                               .order_by(col(Credential.id)).limit(batch)).all()
        if not ids:
            return report
        for cid in ids:
            assert cid is not None
            last = cid
            with Session(engine) as session:
                # FOR UPDATE (PostgreSQL): an API write of a new value waits, or wins, never gets lost.
                cred = session.exec(select(Credential).where(Credential.id == cid).with_for_update()).first()
                if cred is None:
                    continue  # deleted meanwhile
                try:
                    new_ref = store.rewrap(SecretRef(cred.owner_id, cid, cred.secret_ref))
                except SecretStoreError as exc:
                    report.failed[cid] = str(exc)
                    continue
                if new_ref is None:
                    report.current += 1
                    continue
                cred.secret_ref = new_ref
                session.add(cred)
                session.commit()
                report.rewrapped += 1
