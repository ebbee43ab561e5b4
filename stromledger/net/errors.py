"""Typed errors of the transport layer.

Every error carries a short machine-readable ``reason`` code (lower_snake_case)
so callers can branch on it and logs/metrics can group by it; ``str(err)`` is for
humans.
"""

from __future__ import annotations


class NetError(Exception):
    """Base class of every error raised by ``stromledger.net``."""

    reason: str = "net_error"

    def __init__(self, reason: str | None = None, detail: str = "") -> None:
        if reason is not None:
            self.reason = reason
        self.detail = detail
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)


class FrameError(NetError):
    """A frame on the wire broke the framing rules."""

    reason = "bad_frame"


class FrameTooLarge(FrameError):
    """A frame (incoming header or outgoing payload) is above the size limit."""

    reason = "frame_too_large"

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(detail=f"{size} bytes > limit {limit}")


class TruncatedFrame(FrameError):
    """The stream ended in the middle of a frame."""

    reason = "truncated_frame"


class FrameTimeout(FrameError):
    """A frame began but did not complete within the per-frame read deadline."""

    reason = "frame_timeout"


class OverBudget(FrameError):
    """A frame would take the peer's or the node's in-flight bytes above their budget.

    Reasons: ``peer_inflight``, ``total_inflight``.
    """

    reason = "over_budget"


class MalformedMessage(FrameError):
    """A whole frame arrived but its content is not a valid envelope."""

    reason = "malformed_message"


class ListenError(NetError):
    """Cannot listen on the configured address (reason ``port_in_use``)."""

    reason = "listen_failed"


class PeerUnreachable(NetError):
    """No usable connection to the peer.

    Reasons: ``unknown_peer`` (not in the peer table), ``backoff`` (a recent dial
    failed; retry later), ``dial_failed``, ``self`` (sending to ourselves),
    ``closed`` (the local network is shutting down).
    """

    reason = "unreachable"


class RequestTimeout(NetError):
    """The request did not complete within its timeout."""

    reason = "timeout"


class RemoteError(NetError):
    """The remote side refused or failed the request.

    Reasons: ``protocol_refused`` (remote does not serve the protocol),
    ``unauthorized`` (the remote's ``allowed`` check refused us), ``reset``
    (the stream ended without a reply: the remote reset it or went away),
    ``handler_error``, ``no_response`` (the handler returned None),
    ``response_too_large``, ``bad_reply``.
    """

    reason = "remote_error"
