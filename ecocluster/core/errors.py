"""The project's own error tree: every adapter maps its library's exceptions into it at its
boundary (one place per adapter, like httpx's `map_httpcore_exceptions`), so the composition
root decides what to do from the class alone and prints the message as one line.

```
EcoclusterError            str() is one line naming what failed and where
  x TransientError         retrying later can help: the caller backs off and retries
  x FatalError             retrying cannot help (refused credentials, a bad file): the
                           node stops, prints the message, exits 1
```
Stage-specific trees (ingest's `IngestError`, `ConfigError`) derive from `EcoclusterError`
and mix in `TransientError` or `FatalError` where the distinction matters.
"""

from __future__ import annotations

__all__ = ["EcoclusterError", "FatalError", "TransientError", "describe"]


class EcoclusterError(Exception):
    """Base of every error the project raises on purpose."""


class TransientError(EcoclusterError):
    """The operation may succeed if retried later (broker or store away, a timeout)."""


class FatalError(EcoclusterError):
    """Retrying cannot help: the node (or the command) stops and says why in one line."""


def describe(exc: BaseException) -> str:
    """One line for any exception: its message, or its class name when the message is empty
    (`TimeoutError()` prints as "" otherwise), with the cause chained when it adds something."""
    text = str(exc).strip().replace("\n", " ") or type(exc).__name__
    if not isinstance(exc, EcoclusterError):
        text = f"{type(exc).__name__}: {text}" if str(exc).strip() else text
    cause = exc.__cause__
    if cause is not None and str(cause).strip() and str(cause) not in text:
        text = f"{text} ({describe(cause)})"
    return text
