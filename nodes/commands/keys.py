"""`stromledger keys gen|show`: create and inspect node key files."""

from __future__ import annotations

import argparse
import os
import sys

from stromledger.crypto import SigningKey
from stromledger.keys import KeyFileError, read_key_file, read_public_key, write_key_file

PASSPHRASE_ENV = "STROMLEDGER_PASSPHRASE"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="create or show an Ed25519 key file",
                       description="Key files hold a node's Ed25519 key: it signs readings, schedules, votes and "
                                   "receipts, and is the node's libp2p identity. Put the printed public key in the "
                                   "genesis (validators, balancing groups, meter operators, meters).")
    ks = p.add_subparsers(dest="keys_command", metavar="ACTION")
    gen = ks.add_parser("gen", help="create a new key file (mode 0600; never overwrites)",
                        description="Create a new Ed25519 key file at FILE (mode 0600 from the first byte; an "
                                    "existing file is never overwritten) and print its public key (64 hex "
                                    "characters): that is what goes into the genesis. With --encrypt the key is "
                                    "stored encrypted with the passphrase in $STROMLEDGER_PASSPHRASE. Exit "
                                    "status: 0 created, 1 FILE exists or cannot be written, 2 no passphrase "
                                    "for --encrypt.")
    gen.add_argument("--out", required=True, metavar="FILE", help="path of the key file to create")
    gen.add_argument("--encrypt", action="store_true",
                     help=f"encrypt the key with the passphrase in ${PASSPHRASE_ENV} (scrypt + ChaCha20-Poly1305)")
    gen.set_defaults(func=_gen)
    show = ks.add_parser("show", help="print the public key of a key file",
                         description="Print the public key a key file holds; with --check also open the key "
                                     "and check it matches.")
    show.add_argument("file", metavar="FILE")
    show.add_argument("--check", action="store_true",
                      help=f"also open the key (needs ${PASSPHRASE_ENV} if encrypted) and check it matches")
    show.set_defaults(func=_show)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _gen(args: argparse.Namespace) -> int:
    passphrase = os.environ.get(PASSPHRASE_ENV) if args.encrypt else None
    if args.encrypt and not passphrase:
        print(f"--encrypt needs the passphrase in ${PASSPHRASE_ENV}", file=sys.stderr)
        return 2
    key = SigningKey.generate()
    try:
        write_key_file(args.out, key, passphrase)
    except FileExistsError:
        print(f"{args.out} exists: refusing to overwrite a key", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"cannot write {args.out}: {e}", file=sys.stderr)
        return 1
    print(key.public.hex())
    return 0


def _show(args: argparse.Namespace) -> int:
    try:
        if args.check:
            public = read_key_file(args.file, os.environ.get(PASSPHRASE_ENV)).public
        else:
            public = read_public_key(args.file)
    except KeyFileError as e:  # names the file already
        print(f"cannot use the key: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        print(f"cannot read {args.file}: {e}", file=sys.stderr)
        return 2
    print(public.hex())
    return 0
