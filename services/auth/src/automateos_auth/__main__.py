"""`python -m automateos_auth rotate-key [--grace-s N]`: the auth service's management commands."""

from __future__ import annotations

import argparse
import sys

from .keys import rotate_key
from .settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m automateos_auth")
    commands = parser.add_subparsers(dest="command", required=True)
    rotate = commands.add_parser(
        "rotate-key", help="retire the current signing key (published for a grace period) and start a new one")
    rotate.add_argument("--grace-s", type=int, default=None,
                        help="seconds the old key stays published (default: AUTOMATEOS_AUTH_KEY_GRACE_S, "
                             "else the access-token lifetime + 300)")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.grace_s is not None and args.grace_s < 0:
        parser.error("--grace-s must be 0 or more")
    try:
        retired = rotate_key(settings, grace_s=args.grace_s)
    except RuntimeError as exc:
        sys.stderr.write(f"rotate-key: {exc}\n")
        return 2
    sys.stdout.write(f"retired key {retired.kid}: published until {retired.until.isoformat()}; "
                     "running auth services sign with the new key within 5 s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
