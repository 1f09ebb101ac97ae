"""tf-qa serve --ssl-config-file (TF Serving's SSLConfig) with client_verify: a client without a certificate, with
one of another CA, and with one the configured CA signed; over gRPC and REST (tf_qa/server/ssl_config.py)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest
from conftest import serving_tiny
from make_pki import make_pki

from tf_qa import errors
from tf_qa.cli import main
from tf_qa.client import QAClient, tls_credentials
from tf_qa.server.ssl_config import read_ssl_config

CLIENTS = {"no certificate": None, "another CA's certificate": "rogue", "the CA's certificate": "client"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_server(tiny_repository, pki):
    with serving_tiny(tiny_repository, ssl_config_file=str(pki["ssl.config"])) as server:
        yield server


@pytest.mark.parametrize("client", CLIENTS)
def test_grpc_answers_only_a_client_the_configured_ca_signed(mtls_server, pki, client):
    name = CLIENTS[client]
    credentials = tls_credentials(
        ca=pki["ca"], cert=pki[name] if name else None, key=pki[f"{name}-key"] if name else None
    )
    with QAClient(f"localhost:{mtls_server.port}", "tiny-qa", timeout=10, retries=0, credentials=credentials) as qa:
        if name == "client":
            assert qa.answer("Where does Ann live?", "Ann lives in Paris.")["answer"]
        else:
            with pytest.raises(errors.ServerUnavailable):
                qa.answer("Where does Ann live?", "Ann lives in Paris.")


@pytest.mark.parametrize("client", CLIENTS)
def test_rest_answers_only_a_client_the_configured_ca_signed(mtls_server, pki, client):
    name = CLIENTS[client]
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if name:
        context.load_cert_chain(str(pki[name]), str(pki[f"{name}-key"]))
    body = json.dumps({"instances": [{"question": "Who?", "context": "Bob did."}]}).encode()
    url = f"https://localhost:{mtls_server.rest_port}/v1/models/tiny-qa:predict"
    if name == "client":
        with urllib.request.urlopen(urllib.request.Request(url, body), timeout=10, context=context) as response:
            assert json.loads(response.read())["predictions"][0]["answer"]
    else:
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            urllib.request.urlopen(urllib.request.Request(url, body), timeout=10, context=context).read()


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda text: text.replace("client_verify: true", "client_verify: true\nserver_kye: 1"), "server_kye"),
        (lambda text: text.split("custom_ca:")[0] + "client_verify: true\n", "client_verify needs custom_ca"),
        (lambda text: "server_cert: " + text.split("server_cert: ")[1], "server_key and server_cert are both"),
    ],
)
def test_an_ssl_config_tf_qa_cannot_use_is_refused_naming_the_file(pki, tmp_path, edit, message, capsys):
    path = tmp_path / "ssl.config"
    path.write_text(edit(pki["ssl.config"].read_text()))
    with pytest.raises(ValueError, match=message):
        read_ssl_config(path)
    assert main(["serve", "--model-base-path", "m", "--model-name", "m", "--ssl-config-file", str(path)]) == 2
    assert f"ssl config {path}" in capsys.readouterr().err


def test_the_kits_ssl_config_template_is_tf_servings_format():
    from pathlib import Path

    from google.protobuf import text_format

    from tf_qa.saved_model.platform_config import ssl_config_class

    text = (Path(__file__).resolve().parents[1] / "serving" / "ssl.config").read_text()
    config = text_format.Parse(text, ssl_config_class()())
    assert config.client_verify and "BEGIN CERTIFICATE" in config.custom_ca and "PRIVATE KEY" in config.server_key
