"""Run the operator API inside the node's trio process: hypercorn's trio worker on the [api] listen
address (port 0 picks a free port), stopped with the node's nursery."""

from __future__ import annotations

import logging
from typing import Any

import trio

from .app import create_app
from .source import NodeSource


async def start_api(nursery: trio.Nursery, node: Any) -> str:
    """Serve the API of `node` (a RoleNode) in `nursery`; returns its base URL, e.g. http://127.0.0.1:43121."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    ctx = node.ctx
    source = NodeSource(node)
    app = create_app(source, ctx.metrics, ctx.config.api["token"])
    config = Config()
    config.bind = [ctx.config.api["listen"]]
    config.accesslog = None  # requests are not node events
    config.errorlog = logging.getLogger("hypercorn.error")  # through the node's log set-up (text or JSON)
    config.graceful_timeout = 1.0
    binds = await nursery.start(serve, app, config)
    return binds[0]
