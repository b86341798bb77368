"""What an actor may ask of its connection's wire layer (implemented by wire.protocol)."""

from __future__ import annotations

from typing import Protocol

from dispatchd.wire.errors import AMQPError


class Link(Protocol):
    """The write side of one client connection, as actors see it."""

    id: int  # the connection's id within its broker
    frame_max: int
    connection_name: str
    user: str  # the authenticated user
    vhost: str  # the vhost the connection opened
    writable: bool  # False while the socket's write buffer is above its high-water mark
    cancel_notify: bool  # the client takes basic.cancel from the server (a capability)

    def write(self, data: bytes) -> None:
        """Queue encoded frames; they go out once per loop turn."""

    def channel_closing(self, channel: int) -> None:
        """The server closed the channel: the client's close-ok will free its number."""

    def channel_closed(self, channel: int) -> None:
        """The channel's number is free again (after channel.close-ok either way)."""

    def close_connection(self, error: AMQPError) -> None:
        """Close the whole connection with a hard error."""
