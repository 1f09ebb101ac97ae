"""The deployment kit in serving/ parses as TF Serving reads it, so a typo fails CI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from google.protobuf import text_format
from serving_protos import BatchingParameters, MonitoringConfig
from tensorflow_serving.config import model_server_config_pb2

SERVING = Path(__file__).resolve().parents[1] / "serving"


def test_models_config():
    config = text_format.Parse((SERVING / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    assert model.name == "distilbert-squad" and model.base_path == "/models/distilbert-squad"
    assert model.model_version_policy.latest.num_versions == 2
    assert dict(model.version_labels) == {"stable": 1}


def test_batching_parameters():
    params = text_format.Parse((SERVING / "batching_parameters.txt").read_text(), BatchingParameters())
    assert params.max_batch_size.value == 16 and params.num_batch_threads.value >= 1
    assert params.pad_variable_length_inputs is False


def test_monitoring_config():
    config = text_format.Parse((SERVING / "monitoring.config").read_text(), MonitoringConfig())
    assert config.prometheus_config.enable and config.prometheus_config.path.startswith("/monitoring")


def test_typo_is_caught():
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_sise { value: 16 }", BatchingParameters())


def test_docker_compose():
    compose = yaml.safe_load((SERVING / "docker-compose.yml").read_text())
    service = compose["services"]["tf-serving"]
    assert service["image"].startswith("tensorflow/serving:")
    assert {"--enable_model_warmup=true", "--rest_api_timeout_in_ms=30000"} <= set(service["command"])
    assert "TF_ENABLE_ONEDNN_OPTS=1" in service["environment"]
    mounted = {v.split(":")[1] for v in service["volumes"]}
    assert {"/models/distilbert-squad", "/models/models.config", "/models/batching_parameters.txt"} <= mounted
    for flag in ("--model_config_file=", "--batching_parameters_file=", "--monitoring_config_file="):
        path = next(arg for arg in service["command"] if arg.startswith(flag)).split("=", 1)[1]
        assert path in mounted


def test_kubernetes_manifest():
    documents = {d["kind"]: d for d in yaml.safe_load_all((SERVING / "kubernetes.yaml").read_text())}
    assert set(documents) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    container = documents["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/distilbert-squad"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    assert "--rest_api_timeout_in_ms=30000" in container["args"]
    assert {"name": "TF_ENABLE_ONEDNN_OPTS", "value": "1"} in container["env"]
    assert documents["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == "tf-qa"
