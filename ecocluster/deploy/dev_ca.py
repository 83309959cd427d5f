"""A private certificate authority for testing and small sites: CA, broker and client certs.

    paths = make_dev_ca(Path("certs"), hosts=["broker.local", "127.0.0.1"], clients=["s1/em-01"])

Files (the names `broker-config` expects): `ca.crt`, `ca.key`, `server.crt`, `server.key`,
and `client-<name>.crt`/`.key` per client. Keys are ECDSA P-256 (every MQTT TLS stack we
know accepts them, and they are small for meters), written 0600 (0640 with `group`, so
Mosquitto's own user can read the server key). An existing CA is kept and reused: a re-run
re-issues the server certificate (new hosts) without invalidating provisioned devices.

Not for a public deployment: use your organisation's CA or ACME certificates there.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ecocluster.core.errors import FatalError
from ecocluster.deploy.credentials import write_private

__all__ = ["DevCa", "DevCaError", "make_dev_ca"]

CA_DAYS = 3650
LEAF_DAYS = 825  # the longest validity browsers and most TLS stacks accept for a leaf
_CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@/-]{0,127}$")


class DevCaError(FatalError):
    """The CA cannot be made or read (a bad host name, an unreadable key)."""


@dataclass(frozen=True)
class DevCa:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]]
    created_ca: bool


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ecocluster dev CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _make_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    name = _name("ecocluster dev CA")
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    hosts: Sequence[str] = (),
    server: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    now = _now()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_sans(hosts)), False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _sans(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not re.fullmatch(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", host):
                msg = f"--hosts: {host!r} is neither an IP address nor a host name"
                raise DevCaError(msg) from None
            names.append(x509.DNSName(host))
    return names


def _load_ca(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise DevCaError(f"{cert_path.parent}: cannot read the existing CA ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise DevCaError(f"{key_path}: not an EC key made by `ecocluster dev-ca`")
    return cert, key


def make_dev_ca(
    out: Path,
    *,
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    clients: Sequence[str] = (),
    group_gid: int | None = None,
) -> DevCa:
    """Make (or reuse) the CA in `out`, issue the broker's certificate for `hosts` and one
    client certificate per name in `clients`."""
    if not hosts:
        raise DevCaError("--hosts: name at least one host the broker is reached by")
    out.mkdir(parents=True, exist_ok=True)
    ca_crt, ca_key_path = out / "ca.crt", out / "ca.key"
    created = not (ca_crt.exists() and ca_key_path.exists())
    if created:
        ca_cert, ca_key = _make_ca()
        write_private(ca_key_path, _key_pem(ca_key))
        write_private(ca_crt, _cert_pem(ca_cert), 0o644)
    else:
        ca_cert, ca_key = _load_ca(ca_crt, ca_key_path)
    server_crt, server_key = out / "server.crt", out / "server.key"
    cert, key = _leaf(ca_cert, ca_key, hosts[0], hosts=hosts, server=True)
    _write_pair(server_crt, server_key, cert, key, group_gid)
    issued = {}
    for name in clients:
        if not _CLIENT_NAME.match(name):
            raise DevCaError(f"--client: invalid name {name!r}")
        safe = name.replace("/", "_")
        paths = (out / f"client-{safe}.crt", out / f"client-{safe}.key")
        cert, key = _leaf(ca_cert, ca_key, name, server=False)
        _write_pair(*paths, cert, key, None)
        issued[name] = paths
    return DevCa(ca_crt, ca_key_path, server_crt, server_key, issued, created)


def _write_pair(
    crt: Path,
    key_path: Path,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    group_gid: int | None,
) -> None:
    write_private(key_path, _key_pem(key), 0o600 if group_gid is None else 0o640)
    if group_gid is not None:
        os.chown(key_path, -1, group_gid)
    write_private(crt, _cert_pem(cert), 0o644)
