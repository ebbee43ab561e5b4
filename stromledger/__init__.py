"""stromledger: a coinless, cascading-consensus balancing ledger for electricity."""

__version__ = "0.1.0"
