"""`stromledger protocol vectors --out DIR`: write the wire protocol's test vectors (docs/protocol.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("protocol", help="wire protocol tools (test vectors)",
                       description="Tools for implementers of the wire protocol described in docs/protocol.md. "
                                   "Exit status: 2 without an action.")
    ps = p.add_subparsers(dest="protocol_command", metavar="ACTION")
    vectors = ps.add_parser("vectors", help="write the protocol test vectors (docs/vectors/ holds a copy)",
                            description="Write keys, frames, canonical encodings, signing inputs, signatures, "
                                        "a light reply with its proofs, and the message schemas, as JSON (and "
                                        "SCHEMAS.md) into DIR, creating it. Exit status: 0 written, 1 DIR cannot "
                                        "be written.")
    vectors.add_argument("--out", required=True, metavar="DIR", help="directory to write the vector files into")
    vectors.set_defaults(func=_vectors)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _vectors(args: argparse.Namespace) -> int:
    from nodes.vectors import write_vectors

    try:
        written = write_vectors(Path(args.out))
    except OSError as e:
        print(f"cannot write the vectors to {args.out}: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0
