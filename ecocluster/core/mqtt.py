"""What every MQTT client of the project shares above the wire: its error types, the one
place where socket, TLS, timeout and codec exceptions become them, the meaning of a CONNACK
refusal, and the TLS settings (CA, client certificate) the subscriber, the publisher and
the simulator all honour the same way.

```
EcoclusterError
  x MqttError
      x MqttUnavailable      (TransientError) broker unreachable, connection lost, timeout,
                             broker busy: back off and reconnect
          x MqttSessionTakenOver  another client connected with our client id
      x MqttProtocolError    (TransientError) the broker sent bytes we cannot parse: drop
                             the connection, reconnect
      x MqttPartlySubscribed (TransientError) some of our subscriptions were refused: never
                             run with part of our topics; reconnect until all are granted
      x MqttRefused          (FatalError) credentials refused, not authorised, banned
      x MqttConfigError      (FatalError) retrying cannot help until a setting changes
                             (broker without MQTT 5, shared subscriptions or QoS 1)
```
Messages are one line and never contain a password: brokers print as `MqttTarget`, which
leaves the password out.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ecocluster.core.errors import EcoclusterError, FatalError, TransientError, describe
from ecocluster.core.mqtt_wire import MalformedPacket

if TYPE_CHECKING:
    from ecocluster.core.settings import MqttTarget, Settings

__all__ = [
    "PROTOCOL_HINT",
    "MqttConfigError",
    "MqttError",
    "MqttPartlySubscribed",
    "MqttProtocolError",
    "MqttRefused",
    "MqttSessionTakenOver",
    "MqttTls",
    "MqttUnavailable",
    "connack_error",
    "map_mqtt_errors",
]

PROTOCOL_HINT = "set ECOCLUSTER_MQTT_PROTOCOL=3.1.1 (or mqtt_protocol: '3.1.1' in the settings)"


class MqttError(EcoclusterError):
    """Base of the MQTT clients' errors."""


class MqttUnavailable(MqttError, TransientError):
    """The broker cannot be reached or the connection was lost; reconnecting may help."""


class MqttSessionTakenOver(MqttUnavailable):
    """The broker closed our connection because another client connected with our id."""


class MqttProtocolError(MqttError, TransientError):
    """The broker sent something this client cannot parse or did not expect."""


class MqttPartlySubscribed(MqttError, TransientError):
    """The broker granted some of our subscriptions and refused others (an ACL that covers
    only part of our topics, a broker out of resources): running on would silently drop the
    refused sites' readings, so the client disconnects and retries, logging the filters."""


class MqttRefused(MqttError, FatalError):
    """The broker refused our credentials or authorisation: retrying cannot help."""


class MqttConfigError(MqttError, FatalError):
    """The broker and our settings do not fit (protocol, shared subscriptions, QoS)."""


@contextlib.contextmanager
def map_mqtt_errors(target: MqttTarget | str, doing: str = "talking to") -> Iterator[None]:
    """Translate what sockets, TLS, timeouts and the codec raise into `MqttError`s.

    The one mapping place of every asyncio MQTT client (httpx's `map_httpcore_exceptions`
    is the model); errors already ours pass unchanged."""
    try:
        yield
    except MqttError:
        raise
    except MalformedPacket as exc:
        raise MqttProtocolError(f"broker {target} sent a malformed packet: {exc}") from exc
    except ssl.SSLCertVerificationError as exc:
        raise MqttUnavailable(
            f"TLS with broker {target}: certificate not trusted"
            f" ({getattr(exc, 'verify_message', None) or describe(exc)});"
            " set ECOCLUSTER_MQTT_CA_FILE to the CA that signed it"
        ) from exc
    except ssl.SSLError as exc:
        raise MqttUnavailable(f"TLS with broker {target} failed: {describe(exc)}") from exc
    except TimeoutError as exc:
        raise MqttUnavailable(f"broker {target} did not answer in time ({doing})") from exc
    except socket.gaierror as exc:
        raise MqttUnavailable(f"broker {target}: host name not resolved ({exc.strerror})") from exc
    except ConnectionRefusedError as exc:
        raise MqttUnavailable(f"broker {target} refused the TCP connection") from exc
    except (ConnectionError, OSError, EOFError) as exc:
        raise MqttUnavailable(f"{doing} broker {target}: {describe(exc)}") from exc


#: CONNACK codes (3.1.1 §3.2.2.3, 5 §3.2.2.2) → (error class, what it means).
_V3_CODES: dict[int, tuple[type[MqttError], str]] = {
    1: (MqttConfigError, "unacceptable protocol version"),
    2: (MqttConfigError, "client identifier rejected"),
    3: (MqttUnavailable, "server unavailable"),
    4: (MqttRefused, "bad user name or password"),
    5: (MqttRefused, "not authorised"),
}
_V5_CODES: dict[int, tuple[type[MqttError], str]] = {
    0x80: (MqttUnavailable, "unspecified error"),
    0x81: (MqttProtocolError, "our CONNECT was malformed"),
    0x82: (MqttProtocolError, "protocol error"),
    0x83: (MqttUnavailable, "implementation specific error"),
    0x84: (MqttConfigError, "unsupported protocol version"),
    0x85: (MqttConfigError, "client identifier not valid"),
    0x86: (MqttRefused, "bad user name or password"),
    0x87: (MqttRefused, "not authorised"),
    0x88: (MqttUnavailable, "server unavailable"),
    0x89: (MqttUnavailable, "server busy"),
    0x8A: (MqttRefused, "banned"),
    0x8C: (MqttRefused, "bad authentication method"),
    0x90: (MqttConfigError, "topic name invalid"),
    0x95: (MqttConfigError, "packet too large"),
    0x97: (MqttUnavailable, "quota exceeded"),
    0x99: (MqttConfigError, "payload format invalid"),
    0x9A: (MqttConfigError, "retain not supported"),
    0x9B: (MqttConfigError, "QoS not supported"),
    0x9C: (MqttUnavailable, "use another server"),
    0x9D: (MqttUnavailable, "server moved"),
    0x9F: (MqttUnavailable, "connection rate exceeded"),
}


def connack_error(code: int, *, v5: bool, target: MqttTarget | str) -> MqttError | None:
    """The error a refusing CONNACK means, or None when it accepts the connection.

    A v5 CONNECT answered with a 3.1.1-style code (0x01 "unacceptable protocol version")
    means the broker does not speak MQTT 5: say so and how to switch."""
    if code == 0:
        return None
    if v5 and code in (0x01, 0x84):
        return MqttConfigError(
            f"broker {target} does not speak MQTT 5 (CONNACK code {code:#04x}): {PROTOCOL_HINT}"
        )
    known = (_V5_CODES if v5 else _V3_CODES).get(code)
    if known is None:
        return MqttUnavailable(f"broker {target} refused the connection (code {code:#04x})")
    cls, meaning = known
    if cls is MqttRefused:
        return MqttRefused(
            f"broker {target} refused our credentials: {meaning} (CONNACK code {code:#04x});"
            " check the user and password in ECOCLUSTER_MQTT_URL and the broker's ACL"
        )
    return cls(f"broker {target} refused the connection: {meaning} (code {code:#04x})")


@dataclass(frozen=True, slots=True)
class MqttTls:
    """TLS for `mqtts://` brokers: the CA to trust (system CAs when None) and an optional
    client certificate and key (brokers with `require_certificate true`)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> MqttTls:
        return cls(settings.mqtt_ca_file, settings.mqtt_cert_file, settings.mqtt_key_file)

    def context(self) -> ssl.SSLContext:
        """A client context verifying the broker's certificate and host name."""
        try:
            ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            if self.cert_file is not None:
                ctx.load_cert_chain(
                    str(self.cert_file), str(self.key_file) if self.key_file else None
                )
        except (OSError, ssl.SSLError) as exc:
            raise MqttConfigError(f"MQTT TLS files unusable: {describe(exc)}") from exc
        return ctx
