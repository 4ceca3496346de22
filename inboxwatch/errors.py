"""One error family; `cli.main` maps each class to the contract's exit code."""

from __future__ import annotations


class InboxwatchError(Exception):
    """Base class: `str(err)` is the one line shown to the user."""

    exit_code = 1
    kind = "error"


class UsageError(InboxwatchError):
    exit_code = 2
    kind = "usage"


class ConfigError(InboxwatchError):
    exit_code = 3
    kind = "config"


class AuthError(InboxwatchError):
    exit_code = 4
    kind = "auth"


class ServerError(InboxwatchError):
    """Server unreachable, TLS failure, dropped connection, protocol trouble."""

    exit_code = 5
    kind = "connection"

    def __init__(self, message: str, retryable: bool = True, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retryable = retryable  # False where trying again cannot help (TLS trust, no STARTTLS)
        self.retry_after = retry_after  # seconds the server asked us to wait (throttling)


class DeliveryError(InboxwatchError):
    exit_code = 6
    kind = "delivery"


class LockError(InboxwatchError):
    exit_code = 7
    kind = "lock"


class StateError(ConfigError):
    """The state file cannot be written or read: a full disk, a read-only file system, a
    damaged file. Exit 3 like the config's other files (contract: exit codes)."""

    kind = "state"


class CorruptState(StateError):
    """The state database is damaged: moved aside and rebuilt (store.faults)."""


class SignInNeeded(InboxwatchError):
    """The OAuth sign-in ended (refresh token revoked or expired, or none yet): that
    account stops until `inboxwatch auth NAME` is run again; the others go on."""

    exit_code = 8
    kind = "signin"
