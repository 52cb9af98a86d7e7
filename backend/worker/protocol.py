"""The framed RPC between the gateway and its replicas, over a Unix domain socket or TCP: the frames and ops.

HTTP between two processes on one machine costs more than the scoring it carries, so replicas speak
this instead. A frame is

    !II header_length body_length | header (UTF-8 JSON object) | body (raw bytes)

and the header carries an `id`, so one connection multiplexes many concurrent requests: answers
come back in any order and are matched to their request by id.

Requests:  {"op": "ping"}  and  {"op": "invoke", "content_type": ..., "timeout": seconds} + body
Answers:   {"op": "pong"}  and  {"op": "result", "status": ..., "content_type": ...} + body
A request the replica cannot handle at all is answered with {"op": "error", "message": ...}.

Over TCP (a Ray replica on another node), the first frame of a connection must be
{"op": "hello", "secret": ...} with the replica's secret, answered {"op": "welcome"}; a connection
that opens otherwise, or with another secret, is closed unanswered. (A Unix socket is guarded by
its directory's permissions instead.)

{"op": "cancel", "id": N} (no answer) withdraws invoke N when its caller stopped waiting (cancelled
or timed out): still queued, it is dropped unscored; already being predicted, it finishes and its
answer is ignored. Only abandoned requests cost this extra frame.

Both sides import this module: the replica's server (`backend.worker.server`) and the engine's
client (`backend.engines.local.client`).
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

PREFIX = struct.Struct("!II")
MAX_HEADER_BYTES = 64 * 1024
# A sanity bound that detects a corrupted stream; the gateway enforces the real request size limit.
MAX_BODY_BYTES = 1024 * 1024 * 1024

OP_PING = "ping"
OP_PONG = "pong"
OP_INVOKE = "invoke"
OP_RESULT = "result"
OP_ERROR = "error"
OP_CANCEL = "cancel"
OP_HELLO = "hello"
OP_WELCOME = "welcome"


class ProtocolError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def encode_frame(header: dict[str, Any], body: bytes = b"") -> bytes:
    """One frame, ready to write (a single write keeps concurrent frames from interleaving)."""
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    return b"".join((PREFIX.pack(len(header_bytes), len(body)), header_bytes, body))


async def read_frame(
    reader: asyncio.StreamReader, max_body_bytes: int = MAX_BODY_BYTES
) -> tuple[dict[str, Any], bytes]:
    """The next frame; raises asyncio.IncompleteReadError at end of stream, ProtocolError on garbage.

    `max_body_bytes` bounds the body before anything of it is read (0 for a peer not yet authenticated).
    """
    header_length, body_length = PREFIX.unpack(await reader.readexactly(PREFIX.size))
    if header_length > MAX_HEADER_BYTES or body_length > max_body_bytes:
        raise ProtocolError(f"frame too large: header {header_length} bytes, body {body_length} bytes")
    payload = await reader.readexactly(header_length + body_length)
    try:
        header = json.loads(payload[:header_length])
    except ValueError as exc:
        raise ProtocolError(f"frame header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("frame header is not a JSON object")
    return header, payload[header_length:]
