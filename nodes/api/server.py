"""Run the operator API inside the node's trio process: hypercorn's trio worker on the [api] listen
address (port 0 picks a free port), stopped with the node's nursery."""

from __future__ import annotations

import logging
from typing import Any, Optional

import trio

from .app import create_app
from .source import NodeSource


async def start_api(nursery: trio.Nursery, node: Any) -> Optional[str]:
    """Serve the API of `node` (a RoleNode) in `nursery`; returns its base URL, e.g. http://127.0.0.1:43121,
    or None when it cannot listen (address in use, unknown host): that is logged in one line and the node
    settles on without its API, which is an operator's window, not part of the ledger."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    ctx = node.ctx
    source = NodeSource(node)
    app = create_app(source, ctx.metrics, ctx.config.api_token)
    config = Config()
    config.bind = [ctx.config.api_listen]
    config.accesslog = None  # requests are not node events
    config.errorlog = logging.getLogger("hypercorn.error")  # through the node's log set-up (text or JSON)
    config.graceful_timeout = 1.0
    try:
        binds = await nursery.start(serve, app, config)
    except (OSError, BaseExceptionGroup) as e:
        cause = bind_error(e)
        if cause is None:
            raise
        ctx.log.error("cannot serve the operator API on %s (config.toml [api] listen): %s; running without it",
                      config.bind[0], cause)
        return None
    ctx.log.info("operator API on %s (dashboard at /, metrics at /metrics)", binds[0])
    return binds[0]


def bind_error(e: BaseException) -> Optional[OSError]:
    """The OSError of a failed bind, also when hypercorn's nurseries wrap it in exception groups; None if
    `e` holds anything else."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e if isinstance(e, OSError) else None
