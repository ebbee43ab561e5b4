"""One module per `stromledger` subcommand; each exposes `register(subparsers)`."""
