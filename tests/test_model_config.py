"""tf-qa serve --model-config-file: TF Serving's ModelServerConfig, version policies, version labels (gRPC and
REST) and a label moved by editing the file (tf_qa/server/model_config.py, tf_qa/server/model_server.py)."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request

import pytest
from conftest import KIT

from tf_qa import errors
from tf_qa.cli import main
from tf_qa.client import QAClient
from tf_qa.server.model_config import VersionPolicy, read_model_config
from tf_qa.server.model_server import ModelServer
from tf_qa.server.options import ServeOptions


def _config(base_path, labels: dict[str, int], policy: str = "latest { num_versions: 2 }", extra: str = "") -> str:
    label_lines = "".join(f'    version_labels {{ key: "{k}" value: {v} }}\n' for k, v in labels.items())
    return (
        "model_config_list {\n  config {\n"
        f'    name: "qa"\n    base_path: "{base_path}"\n    model_platform: "tensorflow"\n'
        f"    model_version_policy {{ {policy} }}\n{label_lines}{extra}  }}\n}}\n"
    )


def test_the_kits_model_config_reads_as_tf_serving_reads_it():
    (model,) = read_model_config(KIT / "models.config")
    assert (model.name, model.policy, model.labels) == ("distilbert-squad", VersionPolicy("latest", 2), {"stable": 1})


@pytest.mark.parametrize(
    "text,message",
    [
        ('model_config_list { config { name: "qa" } }', "model 'qa' has no base_path"),
        ('model_config_list { config { name: "qa" base_path: "/m" model_platform: "onnx" } }', "platform 'onnx'"),
        ('model_config_list { config { name: "a" base_path: "/a" } config { name: "a" base_path: "/b" } }', "twice"),
        ('model_config_list { config { nmae: "qa" } }', "nmae"),
        ("", "no model_config_list"),
    ],
)
def test_a_config_tf_qa_cannot_serve_is_refused_naming_the_file(text, message, tmp_path):
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as refused:
        read_model_config(path)
    assert str(path) in str(refused.value)


@pytest.mark.parametrize(
    "policy,available,chosen",
    [
        (VersionPolicy(), [1, 2, 3], [3]),
        (VersionPolicy("latest", 2), [1, 2, 3], [2, 3]),
        (VersionPolicy("all"), [1, 2, 3], [1, 2, 3]),
        (VersionPolicy("specific", versions=(1, 3, 7)), [1, 2, 3], [1, 3]),
    ],
)
def test_version_policies_choose_as_tf_serving(policy, available, chosen):
    assert policy.choose(available) == chosen


@pytest.fixture(scope="module")
def two_versions(tiny_repository, tmp_path_factory):
    """The tiny export as versions 1 and 2 of one model."""
    base = tmp_path_factory.mktemp("labelled") / "qa"
    for version in (1, 2):
        shutil.copytree(tiny_repository / "1", base / str(version))
    return base


@pytest.fixture(scope="module")
def labelled_server(two_versions, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "models.config"
    config.write_text(_config(two_versions, {"stable": 1, "canary": 2}))
    options = ServeOptions(
        model_config_file=str(config), model_config_file_poll_wait_seconds=0.2, port=0, poll_seconds=0, rest_api_port=0
    )
    server = ModelServer(options).start()
    yield server, config
    server.stop(0)


def _served_version(server, **version) -> int:
    with QAClient(f"127.0.0.1:{server.port}", "qa", timeout=30, **version) as client:
        return client.metadata()["version"]


def test_labels_name_versions_over_grpc_and_rest(labelled_server):
    server, _ = labelled_server
    assert (_served_version(server, version_label="stable"), _served_version(server, version_label="canary")) == (1, 2)
    assert _served_version(server) == 2  # the newest, as without labels
    with pytest.raises(errors.ModelNotFound, match=r"no version label 'beta' \(its labels: canary -> 2, stable -> 1\)"):
        _served_version(server, version_label="beta")
    url = f"http://127.0.0.1:{server.rest_port}/v1/models/qa/labels"
    body = json.dumps({"instances": [{"question": "Who?", "context": "Bob did."}]}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{url}/stable:predict", body), timeout=30) as response:
        assert json.loads(response.read())["predictions"][0]["answer"]
    with urllib.request.urlopen(f"{url}/canary/metadata", timeout=30) as response:
        assert json.loads(response.read())["model_spec"]["version"] == "2"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(f"{url}/beta:predict", body), timeout=30)
    assert refused.value.code == 404 and "no version label 'beta'" in refused.value.read().decode()


def _wait_for(condition, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_label_moves_when_the_file_changes_and_a_bad_edit_keeps_the_running_config(labelled_server, two_versions):
    server, config = labelled_server
    config.write_text(_config(two_versions, {"stable": 2, "canary": 2}))
    assert _wait_for(lambda: _served_version(server, version_label="stable") == 2), "the label never moved"
    config.write_text(_config(two_versions, {"stable": 7, "canary": 2}))  # version 7 is not loaded: refused
    time.sleep(1.0)
    assert _served_version(server, version_label="stable") == 2
    config.write_text("model_config_list { config { name: ")  # does not parse: the running config stays
    time.sleep(1.0)
    assert _served_version(server, version_label="canary") == 2
    config.write_text(_config(two_versions, {"stable": 1, "canary": 2}))
    assert _wait_for(lambda: _served_version(server, version_label="stable") == 1)


def test_a_logging_config_it_cannot_run_is_logged_on_reload_and_the_poller_goes_on(labelled_server, two_versions):
    server, config = labelled_server
    bad = 'logging_config { log_collector_config { filename_prefix: "/tmp/x" } sampling_config { sampling_rate: 2 } }'
    config.write_text(_config(two_versions, {"stable": 2, "canary": 2}, extra=f"    {bad}\n"))
    time.sleep(1.0)  # polled and refused (sampling_rate must be in [0, 1]): nothing changed
    assert _served_version(server, version_label="stable") == 1 and not server.predictor.request_loggers
    config.write_text(_config(two_versions, {"stable": 2, "canary": 2}))
    assert _wait_for(lambda: _served_version(server, version_label="stable") == 2), "the poller stopped"
    config.write_text(_config(two_versions, {"stable": 1, "canary": 2}))
    assert _wait_for(lambda: _served_version(server, version_label="stable") == 1)


def test_a_label_of_a_version_not_loaded_is_refused_at_start(labelled_server, two_versions):
    """What ``start`` applies (strict): refused, and the running labels stay."""
    server, _ = labelled_server
    wrong = read_model_config_text(_config(two_versions, {"stable": 7}), two_versions.parent / "wrong.config")
    with pytest.raises(
        errors.UsageError, match=r"version labels \{'stable': 7\} name versions not loaded \(\[1, 2\]\)"
    ):
        server.apply_models(wrong, strict=True)


def read_model_config_text(text: str, path):
    path.write_text(text)
    return read_model_config(path)


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--model-config-file", "m.config", "--model-name", "qa"], "not both"),
        ([], "--model-base-path and --model-name are required (or --model-config-file)"),
        (["--model-config-file", "/no/such/models.config"], "model config /no/such/models.config"),
    ],
)
def test_serve_refuses_a_wrong_model_config_in_one_line(flags, message, capsys):
    assert main(["serve", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
