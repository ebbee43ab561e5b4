"""Log set-up for the `stromledger` command and its nodes: text or JSON lines on stderr, one level for our
own loggers, per-logger levels from config.toml's [log.levels], and libp2p's chatty loggers held at WARNING
unless a level is asked for them by name."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Mapping

# Third-party loggers that flood a node's log at DEBUG/INFO (libp2p: 572 of 605 lines in one devnet run).
QUIET_LOGGERS = ("libp2p", "multiaddr", "hypercorn.access", "hypercorn.error")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601 with ms), level, logger, msg, and exc when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime(DATE_FORMAT, time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def configure_logging(fmt: str = "text", level: str = "INFO", levels: Mapping[str, str] | None = None) -> None:
    """(Re)configure the root logger: `fmt` text|json, `level` for everything not named in `levels`."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter(TEXT_FORMAT, DATE_FORMAT)
        formatter.converter = time.gmtime  # UTC, like every time in the ledger
        handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    levels = dict(levels or {})
    for name in QUIET_LOGGERS:
        if name not in levels:
            logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name, value in levels.items():
        logging.getLogger(name).setLevel(parse_level(value))


def parse_level(value: str) -> int:
    level = logging.getLevelName(str(value).upper())
    return level if isinstance(level, int) else logging.INFO
