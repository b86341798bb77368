"""Who is asking the management API, and what their tags let them do (RabbitMQ 3.10's rules).

A user's tags decide which parts of the API they reach (as recorded from RabbitMQ 3.10.8): any
of ``management``, ``policymaker``, ``monitoring`` or ``administrator`` opens the API;
``monitoring`` (and ``administrator``) lists every vhost and sees every connection; only
``administrator`` sees objects in vhosts it has no permissions in, closes others' connections
and manages users, vhosts, permissions and definitions. Everyone else sees the objects of the
vhosts they have permissions in and their own connections and channels. What anyone may do to
exchanges and queues is then up to their permissions, checked by the vhost as on a channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["ApiUser", "Level"]


class Level(IntEnum):
    """What a route asks of the user's tags, in rising order."""

    MANAGEMENT = 1
    POLICYMAKER = 2
    MONITORING = 3
    ADMINISTRATOR = 4


#: Each tag's level; a user holds the highest of their tags (policymaker does not include
#: monitoring nor the reverse, but no route asks for policymaker yet).
TAG_LEVELS = {
    "management": Level.MANAGEMENT,
    "policymaker": Level.POLICYMAKER,
    "monitoring": Level.MONITORING,
    "administrator": Level.ADMINISTRATOR,
}

#: RabbitMQ's 401 reasons for a user whose tags do not reach a level.
REFUSALS = {
    Level.MANAGEMENT: "Not management user",
    Level.POLICYMAKER: "Not policymaker user",
    Level.MONITORING: "Not monitor user",
    Level.ADMINISTRATOR: "Not administrator user",
}


@dataclass(frozen=True, slots=True)
class ApiUser:
    """An authenticated API user: name, tags and the vhosts they have permissions in."""

    name: str
    tags: tuple[str, ...]
    vhosts: frozenset[str]

    @property
    def level(self) -> int:
        """The highest level the user's tags reach (0: none, no API at all)."""
        return max((TAG_LEVELS.get(tag, 0) for tag in self.tags), default=0)

    def reaches(self, level: Level) -> bool:
        """Whether the user's tags open routes of ``level``."""
        if level is Level.POLICYMAKER:
            return "policymaker" in self.tags or "administrator" in self.tags
        return self.level >= level

    @property
    def monitors(self) -> bool:
        """Whether the user sees every vhost's name and limits and everyone's connections."""
        return self.reaches(Level.MONITORING)

    def lists_vhost(self, vhost: str) -> bool:
        """Whether ``GET /api/vhosts`` (and the vhost limits) show ``vhost`` to the user."""
        return self.monitors or vhost in self.vhosts

    def sees_vhost(self, vhost: str) -> bool:
        """Whether the user may look at and act on objects in ``vhost``: administrators
        everywhere (their permissions still decide what they may change), others where they
        have permissions."""
        return self.reaches(Level.ADMINISTRATOR) or vhost in self.vhosts

    def sees_user(self, user: str) -> bool:
        """Whether the user may see connections and channels of ``user``."""
        return self.monitors or user == self.name

    def closes_user(self, user: str) -> bool:
        """Whether the user may close connections of ``user``."""
        return self.reaches(Level.ADMINISTRATOR) or user == self.name
