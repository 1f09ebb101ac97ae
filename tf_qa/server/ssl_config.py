"""TF Serving's SSL config (``--ssl_config_file``: a text ``SSLConfig`` holding the PEM texts themselves): the
server's key and certificate, a custom CA, and ``client_verify``, under which a client must present a certificate
that CA signed (mutual TLS). ``tf-qa serve --ssl-config-file`` applies it to gRPC, as TF Serving does, and to REST.

Example:

>>> tls = read_ssl_config("serving/ssl.config")                                          # doctest: +SKIP
>>> tls.client_verify, tls.grpc_credentials()                                            # doctest: +SKIP
(True, <grpc.ServerCredentials object at ...>)
"""

from __future__ import annotations

import dataclasses
import os
import ssl
import tempfile

import grpc
from google.protobuf import text_format


@dataclasses.dataclass(frozen=True)
class ServerTLS:
    """PEM texts: the server's key and certificate chain, and the CA client certificates must chain to."""

    server_key: str
    server_cert: str
    custom_ca: str = ""
    client_verify: bool = False

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.server_key.encode(), self.server_cert.encode())],
            root_certificates=self.custom_ca.encode() or None,
            require_client_auth=self.client_verify,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The same for the REST server (``ssl`` reads a key and certificate from files: a private temporary folder,
        removed at once)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory(prefix="tf-qa-tls-") as folder:
            key, cert = os.path.join(folder, "key.pem"), os.path.join(folder, "cert.pem")
            for path, text in ((key, self.server_key), (cert, self.server_cert)):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
                    handle.write(text)
            context.load_cert_chain(cert, key)
        if self.custom_ca:
            context.load_verify_locations(cadata=self.custom_ca)
        if self.client_verify:
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def read_ssl_config(path: str | os.PathLike) -> ServerTLS:
    """The ``SSLConfig`` text file's TLS; ValueError naming the file and the problem (unreadable, not the
    format, a key and certificate that do not go together, ``client_verify`` without ``custom_ca``)."""
    from tf_qa.saved_model.platform_config import ssl_config_class

    try:
        with open(path, encoding="utf-8") as handle:
            config = text_format.Parse(handle.read(), ssl_config_class()())
    except (OSError, UnicodeDecodeError, text_format.ParseError) as error:
        raise ValueError(f"ssl config {path}: {error}") from None
    if not config.server_key or not config.server_cert:
        raise ValueError(f"ssl config {path}: server_key and server_cert are both required")
    if config.client_verify and not config.custom_ca:
        raise ValueError(f"ssl config {path}: client_verify needs custom_ca, the CA client certificates chain to")
    tls = ServerTLS(config.server_key, config.server_cert, config.custom_ca, config.client_verify)
    try:
        tls.ssl_context()
    except (ssl.SSLError, ValueError) as error:
        raise ValueError(f"ssl config {path}: {error}") from None
    return tls
