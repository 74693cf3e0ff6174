"""The errors a store raises.

Each derives from :class:`StoreError` (itself a
:class:`~flowforge.FlowForgeError`) and from the builtin that matches, so
``except KeyError`` catches a job id the store does not have and ``except
TimeoutError`` a database that stayed locked. They are shown under their
public home, ``flowforge.store``, in tracebacks and the docs.
"""

from __future__ import annotations

from ..errors import FlowForgeError, JobStateError


class StoreError(FlowForgeError):
    """Root of the errors a store raises.

    Attributes:
        path: The store's file (``""`` for a :class:`~flowforge.store.MemoryStore`), or
            for a :class:`~flowforge.store.PostgresStore` its URL without the password.
    """

    __module__ = "flowforge.store"

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0])


class NotAStoreError(StoreError, ValueError):
    """The file exists but is not a FlowForge store; it was left untouched."""

    __module__ = "flowforge.store"


class StoreVersionError(StoreError, ValueError):
    """The store was written by a newer FlowForge than this one.

    Attributes:
        found: The schema version in the file.
        supported: The newest schema version this FlowForge reads.
    """

    __module__ = "flowforge.store"

    def __init__(self, message: str, *, path: str, found: int, supported: int) -> None:
        super().__init__(message, path=path)
        self.found = found
        self.supported = supported


class CorruptStoreError(StoreError, ValueError):
    """The store's file is damaged (truncated, overwritten, malformed)."""

    __module__ = "flowforge.store"


class StoreAccessError(StoreError, OSError):
    """The store's file could not be opened, read or written (permissions, disk full)."""

    __module__ = "flowforge.store"


class StoreReadOnlyError(StoreAccessError):
    """A write to a store opened with ``readonly=True``."""

    __module__ = "flowforge.store"


class StoreVanishedError(StoreAccessError):
    """The store's file was removed or replaced while the store was open.

    What was committed since cannot be found again under the store's path, so
    the store refuses to go on rather than lose commits without notice.
    """

    __module__ = "flowforge.store"


class StoreBusyError(StoreError, TimeoutError):
    """The database stayed locked by another connection for longer than the timeout.

    Attributes:
        timeout: The seconds waited.
    """

    __module__ = "flowforge.store"

    def __init__(self, message: str, *, path: str, timeout: float) -> None:
        super().__init__(message, path=path)
        self.timeout = timeout


class StoreClosedError(StoreError, ValueError):
    """The store was used after :meth:`~flowforge.store.Store.close`."""

    __module__ = "flowforge.store"


class StoreUsageError(StoreError, ValueError):
    """A store method got an argument it cannot use (an unknown status, a negative age).

    Attributes:
        argument: The argument's name (``""`` when not given).
        expected: What it must be, in words.
        got: The value that was given.
    """

    __module__ = "flowforge.store"

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        argument: str = "",
        expected: str = "",
        got: object = None,
    ) -> None:
        super().__init__(message, path=path)
        self.argument = argument
        self.expected = expected
        self.got = got


class StoreTypeError(StoreUsageError, TypeError):
    """A store method got an argument of the wrong type (also a ``ValueError``)."""

    __module__ = "flowforge.store"


class JobNotFoundError(StoreError, KeyError):
    """The store has no job with this id.

    Attributes:
        job_id: The id that was asked for.
    """

    __module__ = "flowforge.store"

    def __init__(self, message: str, *, path: str, job_id: str) -> None:
        super().__init__(message, path=path)
        self.job_id = job_id


class FlowNotFoundError(StoreError, KeyError):
    """The store has no saved definition of this flow.

    Attributes:
        flow_id: The id that was asked for.
    """

    __module__ = "flowforge.store"

    def __init__(self, message: str, *, path: str, flow_id: str) -> None:
        super().__init__(message, path=path)
        self.flow_id = flow_id


class StoreURLError(StoreError, ValueError):
    """A store URL (``open_store``, ``--store``, ``FLOWFORGE_STORE``) that names no store.

    Attributes:
        url: The URL as given, its password hidden.
    """

    __module__ = "flowforge.store"

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message, path=url)
        self.url = url


class StoreConnectionError(StoreError, ConnectionError):
    """The database server could not be reached (refused, unknown host, timed out, lost)."""

    __module__ = "flowforge.store"


class StoreAuthError(StoreError, PermissionError):
    """The database server refused the credentials (user name or password)."""

    __module__ = "flowforge.store"


# ImportError's own ``path`` (a module file) is unused here; StoreError's takes its place.
class StoreDriverError(StoreError, ImportError):  # type: ignore[misc]
    """The database driver a store needs is not installed (``flowforge[postgres]``)."""

    __module__ = "flowforge.store"


class LeaseHeldError(JobStateError):
    """A job another runner holds a live lease on was resumed, claimed or changed.

    Attributes:
        job_id: The job.
        status: Its status when asked.
        owner: Who holds the lease (``host:pid:suffix`` of the runner's store).
        since: When that owner took the lease (seconds since the epoch).
        heartbeat_at: The owner's latest heartbeat.
        expires_at: When the lease expires unless the owner renews it.
    """

    __module__ = "flowforge.store"

    def __init__(
        self,
        message: str,
        *,
        job_id: str,
        status: str,
        owner: str,
        since: float,
        heartbeat_at: float,
        expires_at: float,
    ) -> None:
        super().__init__(message, job_id=job_id, status=status)
        self.owner = owner
        self.since = since
        self.heartbeat_at = heartbeat_at
        self.expires_at = expires_at


class LeaseLostError(StoreError):
    """A runner's lease on its job expired and another runner took the job over.

    What the first runner did since is not stored: the job belongs to the
    new owner, which resumes it from the last commit.

    Attributes:
        job_id: The job.
    """

    __module__ = "flowforge.store"

    def __init__(self, message: str, *, path: str, job_id: str) -> None:
        super().__init__(message, path=path)
        self.job_id = job_id
