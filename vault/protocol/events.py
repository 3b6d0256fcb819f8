"""Every audit event action, defined once for the server that records it and the client that
reads it back. Tags are shaped `source:subject:action` (warehouse's events/tags.py form), so a
grep for one finds every place on both sides that writes or expects it."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """The `action` of an audit log entry."""

    # accounts
    REGISTER = "account:register:success"
    INVITE_CREATED = "account:invite:created"
    ACTIVATE_OK = "account:activate:success"
    ACTIVATE_FAILED = "account:activate:failure"
    ACTIVATE_RATELIMITED = "account:activate:ratelimited"
    LOGIN_OK = "account:login:success"
    LOGIN_FAILED = "account:login:failure"
    LOGIN_RATELIMITED = "account:login:ratelimited"
    TOTP_REPLAY = "account:totp:replay"
    SESSION_CREATED = "account:session:created"
    SESSION_REVOKED = "account:session:revoked"
    KEY_REGISTERED = "account:key:registered"
    RECOVERY_BEGIN = "account:recovery:begin"
    RECOVERY_COMPLETE = "account:recovery:complete"
    RECOVERY_FAILED = "account:recovery:failure"
    RECOVERY_RATELIMITED = "account:recovery:ratelimited"
    # cases
    CASE_CREATED = "case:case:created"
    GRANT_ADDED = "case:grant:added"
    GENERATION_ADDED = "case:generation:added"
    MEMBER_ADDED = "case:member:added"
    MEMBER_REMOVED = "case:member:removed"
    MEMBER_ROLE_CHANGED = "case:member:role_changed"
    CASE_HOLD_PLACED = "case:hold:placed"
    CASE_HOLD_RELEASED = "case:hold:released"
    # files
    FILE_UPLOADED = "file:version:uploaded"
    FILE_DOWNLOADED = "file:version:downloaded"
    FILE_LISTED = "file:list:read"
    FILE_DELETED = "file:file:deleted"
    # One leaf per closed window of an aggregated event (T30): detail names the window and count.
    ACTIVATE_RATELIMITED_WINDOW = "account:activate:ratelimited_window"
    LOGIN_RATELIMITED_WINDOW = "account:login:ratelimited_window"
    RECOVERY_RATELIMITED_WINDOW = "account:recovery:ratelimited_window"
    FILE_LISTED_WINDOW = "file:list:read_window"


class CredentialCheck(StrEnum):
    """The credential checks that share one rate limit and one failure path; each names its
    failure, refusal and success actions."""

    ACTIVATE = "activate"
    LOGIN = "login"
    RECOVERY = "recovery"

    @property
    def failed(self) -> Action:
        return Action(f"account:{self.value}:failure")

    @property
    def ratelimited(self) -> Action:
        return Action(f"account:{self.value}:ratelimited")


# Events that are counted per window instead of each becoming a leaf (T30), and the action of
# the leaf that carries a closed window's count. Everything else is logged one leaf per event.
AGGREGATED_EVENTS: dict[Action, Action] = {
    Action.ACTIVATE_RATELIMITED: Action.ACTIVATE_RATELIMITED_WINDOW,
    Action.LOGIN_RATELIMITED: Action.LOGIN_RATELIMITED_WINDOW,
    Action.RECOVERY_RATELIMITED: Action.RECOVERY_RATELIMITED_WINDOW,
    Action.FILE_LISTED: Action.FILE_LISTED_WINDOW,
}


# A membership log entry's `action` (vault.protocol.membership) -> the event that records it,
# for every entry but `create` (Action.CASE_CREATED). Legal holds are entries of the same log,
# so their events carry the entry and are visible to the revocation scan like the others.
MEMBERSHIP_EVENTS: dict[str, Action] = {
    "add": Action.MEMBER_ADDED,
    "remove": Action.MEMBER_REMOVED,
    "role": Action.MEMBER_ROLE_CHANGED,
    "hold": Action.CASE_HOLD_PLACED,
    "release": Action.CASE_HOLD_RELEASED,
}
