"""The deployment kit in serving/ parses as TF Serving reads it, so a typo fails CI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from google.protobuf import text_format
from serving_protos import MonitoringConfig
from tensorflow.core.protobuf import rewriter_config_pb2
from tensorflow_serving.config import model_server_config_pb2

from tf_qa.defaults import DEFAULT_PLATFORM_CONFIG
from tf_qa.saved_model.allocator import TCMALLOC, TCMALLOC_PACKAGE
from tf_qa.saved_model.platform_config import batching_parameters_class, read_platform_config

SERVING = Path(__file__).resolve().parents[1] / "serving"
PLATFORM_CONFIG = SERVING / "platform_config.pbtxt"
#: TF Serving ignores these flags when --platform_config_file is given: the file holds their options.
IGNORED_WITH_PLATFORM_CONFIG = ("--enable_batching", "--batching_parameters_file", "--enable_model_warmup")


def test_models_config():
    config = text_format.Parse((SERVING / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == "distilbert-squad" and model.base_path == "/models/distilbert-squad"
    assert model.model_version_policy.latest.num_versions == 2
    assert dict(model.version_labels) == {"stable": 1}


def test_platform_config():
    config = read_platform_config(PLATFORM_CONFIG)
    assert list(config.saved_model_tags) == ["serve"] and config.enable_model_warmup
    rewrite = config.session_config.graph_options.rewrite_options
    assert rewrite.function_optimization == rewriter_config_pb2.RewriterConfig.OFF
    # Passes that cost load time and do nothing for this graph on CPU (the fused kernels: test_distilbert.py).
    assert rewrite.disable_tfg_optimizer and rewrite.layout_optimizer == rewriter_config_pb2.RewriterConfig.OFF
    assert rewrite.memory_optimization == rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
    params = config.batching_parameters
    assert params.max_batch_size.value == 16 and params.num_batch_threads.value >= 1
    assert params.pad_variable_length_inputs is False
    # One thread an op; the cores run batches and window groups side by side (inter-op: TensorFlow's choice).
    assert config.session_config.intra_op_parallelism_threads == 1
    assert config.session_config.inter_op_parallelism_threads == 0


def test_tf_qa_reads_the_kits_platform_config():
    assert DEFAULT_PLATFORM_CONFIG.resolve() == PLATFORM_CONFIG.resolve()


@pytest.mark.parametrize(
    "text,problem",
    [
        ("platform_configs { key: 'tensorflow' value { source_adapter_config { "
         "[type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig] { legacy_config { "
         "session_config { graph_options { rewrite_options { function_optimisation: OFF } } } } } } } }",
         "function_optimisation"),
        ("platform_configs { key: 'tfl' value { } }", "no 'tensorflow' platform"),
        ("", "no 'tensorflow' platform"),
    ],
)  # fmt: skip
def test_platform_config_errors_name_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "platform_config.pbtxt"
    path.write_text(text)
    with pytest.raises(ValueError, match=problem) as caught:
        read_platform_config(path)
    assert str(path) in str(caught.value)


def test_monitoring_config():
    config = text_format.Parse((SERVING / "monitoring.config").read_text(), MonitoringConfig())
    assert config.prometheus_config.enable and config.prometheus_config.path.startswith("/monitoring")


def test_typo_is_caught():
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_sise { value: 16 }", batching_parameters_class()())


def dockerfile_instructions() -> dict[str, list[str]]:
    """serving/Dockerfile's instructions by keyword, continuation lines joined."""
    text = (SERVING / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.setdefault(keyword, []).append(rest.strip())
    return instructions


def test_dockerfile_is_stock_tf_serving_on_the_allocator_tf_qa_preloads():
    instructions = dockerfile_instructions()
    assert instructions["FROM"] == ["tensorflow/serving:${TF_SERVING_TAG}"]
    assert instructions["ARG"] == ["TF_SERVING_TAG=2.21.0"]
    assert instructions["ENV"] == [f"LD_PRELOAD={TCMALLOC}"]
    assert f"install -y --no-install-recommends {TCMALLOC_PACKAGE} " in instructions["RUN"][0]
    assert "ENTRYPOINT" not in instructions and "CMD" not in instructions  # TF Serving's own entry point


def test_docker_compose():
    compose = yaml.safe_load((SERVING / "docker-compose.yml").read_text())
    service = compose["services"]["tf-serving"]
    assert service["build"] == {"context": ".", "args": {"TF_SERVING_TAG": "${TF_SERVING_TAG:-2.21.0}"}}
    assert service["image"] == "tf-qa-serving:${TF_SERVING_TAG:-2.21.0}"
    assert "--rest_api_timeout_in_ms=30000" in service["command"]
    assert not [arg for arg in service["command"] if arg.startswith(IGNORED_WITH_PLATFORM_CONFIG)]
    assert "TF_ENABLE_ONEDNN_OPTS=1" in service["environment"]
    mounts = dict(v.rsplit(":", 1)[0].split(":") for v in service["volumes"])
    assert mounts["./platform_config.pbtxt"] == "/models/platform_config.pbtxt"
    for flag in ("--model_config_file=", "--platform_config_file=", "--monitoring_config_file="):
        path = next(arg for arg in service["command"] if arg.startswith(flag)).split("=", 1)[1]
        assert path in mounts.values()
    for source in mounts:
        assert source.startswith("../export/") or (SERVING / source).is_file(), source


def test_kubernetes_manifest():
    documents = {d["kind"]: d for d in yaml.safe_load_all((SERVING / "kubernetes.yaml").read_text())}
    assert set(documents) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    container = documents["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "tf-qa-serving:" + dockerfile_instructions()["ARG"][0].split("=")[1]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/distilbert-squad"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert {"--rest_api_timeout_in_ms=30000", "--platform_config_file=/config/platform_config.pbtxt"} <= set(
        container["args"]
    )
    assert not [arg for arg in container["args"] if arg.startswith(IGNORED_WITH_PLATFORM_CONFIG)]
    assert {"name": "TF_ENABLE_ONEDNN_OPTS", "value": "1"} in container["env"]
    # TLS with client verification: the SSLConfig from a Secret, mounted where the flag reads it.
    volumes = {v["name"]: v for v in documents["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert "--ssl_config_file=/tls/ssl.config" in container["args"]
    assert volumes["tls"]["secret"]["secretName"] == "tf-qa-tls" and mounts["tls"] == "/tls"
    assert documents["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == "tf-qa"


def test_the_server_loads_versions_with_the_session_config_it_is_given(tmp_path, monkeypatch):
    from tensorflow.core.protobuf import config_pb2

    from tf_qa.server import repository

    received = []
    monkeypatch.setattr(repository, "load_session", lambda path, config: received.append(config) or (None, {}))
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "saved_model.pb").write_bytes(b"")
    config = config_pb2.ConfigProto(intra_op_parallelism_threads=1)
    repository.ModelRepository(str(tmp_path), "m", session_config=config).poll()
    assert received == [config]


THREADS_PROBE = """
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tf_qa.saved_model.session import use_session_threads
first = use_session_threads(config_pb2.ConfigProto(intra_op_parallelism_threads=1))
intra = tf.config.threading.get_intra_op_parallelism_threads()
tf.constant(1.0) + 1.0  # TensorFlow's runtime starts: its pools are made
again = use_session_threads(config_pb2.ConfigProto(intra_op_parallelism_threads=1))
other = use_session_threads(config_pb2.ConfigProto(intra_op_parallelism_threads=2))
print(first, intra, again, other, tf.config.threading.get_intra_op_parallelism_threads())
"""


def test_the_session_threads_are_the_processs_until_tensorflow_runs():
    """As tensorflow_model_server's first session does, the platform config sizes the process's pools, which
    TensorFlow makes once: after that, other sizes are refused (the server logs it) and nothing changes."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", THREADS_PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "1", "True", "False", "1"]
