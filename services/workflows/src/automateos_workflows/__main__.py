"""`python -m automateos_workflows keys rotate|new`: the workflows service's management commands."""

from __future__ import annotations

import argparse
import sys

from automateos_common.db import make_engine
from automateos_common.secretstore import SecretStoreError, new_master_key_text

from .keys import rotate
from .settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m automateos_workflows")
    commands = parser.add_subparsers(dest="command", required=True)
    keys = commands.add_parser("keys", help="master keys of the credentials' encryption")
    actions = keys.add_subparsers(dest="action", required=True)
    actions.add_parser("new", help="print a new random master key (base64 of 32 bytes)")
    actions.add_parser("rotate", help="re-wrap every credential under the first key of AUTOMATEOS_MASTER_KEYS "
                                      "(resumable: run it again after an interruption)")
    args = parser.parse_args(argv)
    if args.action == "new":
        sys.stdout.write(new_master_key_text() + "\n")
        return 0
    settings = get_settings()
    try:
        store = settings.make_secret_store(settings.data_dir)
    except SecretStoreError as exc:
        sys.stderr.write(f"keys rotate: {exc}\n")
        return 2
    engine = make_engine(settings.database_url_for("workflows"))
    try:
        report = rotate(engine, store)
    finally:
        engine.dispose()
    primary = store.keyring.primary.kid
    sys.stdout.write(f"keys rotate: {report.rewrapped} credentials re-wrapped under {primary}, "
                     f"{report.current} already were\n")
    for cid, why in sorted(report.failed.items()):
        sys.stderr.write(f"keys rotate: credential {cid}: {why}\n")
    if report.failed:
        sys.stderr.write("keys rotate: keep the old keys configured until these are fixed or deleted\n")
        return 1
    sys.stdout.write("keys rotate: every credential is under the first key; the others can be removed\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
