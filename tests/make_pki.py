"""Certificates for the TLS tests: a CA, a server certificate it signed (localhost, 127.0.0.1), a client certificate
it signed, and a client certificate of another CA; and TF Serving's SSLConfig for the server with client_verify.

``python tests/make_pki.py FOLDER`` writes them (the client suite runs it with the server's Python, which has
``cryptography``); ``make_pki(folder)`` does the same in-process.
"""

from __future__ import annotations

import datetime
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(name: str, key, issuer_name: str, issuer_key, *, ca: bool = False, server: bool = False):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _quoted(pem: bytes) -> str:
    return '"' + pem.decode().replace("\n", "\\n") + '"'


def make_pki(folder: Path) -> dict[str, Path]:
    """Writes the files; returns their paths by name (ca, server, server-key, client, client-key, rogue,
    rogue-key, ssl.config)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, other_ca_key, server_key, client_key, rogue_key = (
        ec.generate_private_key(ec.SECP256R1()) for _ in range(5)
    )
    files = {
        "ca": _certificate("tf-qa test CA", ca_key, "tf-qa test CA", ca_key, ca=True),
        "server": _certificate("localhost", server_key, "tf-qa test CA", ca_key, server=True),
        "server-key": _pem(server_key),
        "client": _certificate("a client", client_key, "tf-qa test CA", ca_key),
        "client-key": _pem(client_key),
        "rogue": _certificate("a rogue client", rogue_key, "another CA", other_ca_key),
        "rogue-key": _pem(rogue_key),
    }
    paths = {}
    for name, pem in files.items():
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(pem)
    paths["ssl.config"] = folder / "ssl.config"
    paths["ssl.config"].write_text(
        f"server_key: {_quoted(files['server-key'])}\nserver_cert: {_quoted(files['server'])}\n"
        f"custom_ca: {_quoted(files['ca'])}\nclient_verify: true\n"
    )
    return paths


if __name__ == "__main__":
    make_pki(Path(sys.argv[1]))
