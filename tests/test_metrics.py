"""tf-qa serve's Prometheus metrics (tf_qa/server/metrics.py): TF Serving's names and labels, tf-qa's own, and a
real Prometheus server scraping them (Debian's package; scripts/setup-debian.sh installs it)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import KIT, debian_setup_log
from grpc import StatusCode
from prometheus_client.parser import text_string_to_metric_families

from tf_qa import errors
from tf_qa.client import QAClient
from tf_qa.server.admission import Overloaded
from tf_qa.server.batching import DeadlineExpired
from tf_qa.server.metrics import DEFAULT_PATH, ServerMetrics, monitoring_path

PATH = "/monitoring/prometheus/metrics"  # the kit's serving/monitoring.config


def samples(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value, as prometheus_client's parser reads the page."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(server) -> dict[tuple, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.rest_port}{PATH}", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return samples(response.read().decode("utf-8"))


def _value(scraped, name, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_kits_monitoring_config_names_the_path_and_a_bad_one_is_refused(tmp_path):
    assert monitoring_path(str(KIT / "monitoring.config")) == PATH
    (tmp_path / "off.config").write_text("prometheus_config { enable: false }")
    (tmp_path / "default.config").write_text("prometheus_config { enable: true }")
    (tmp_path / "typo.config").write_text("prometheus_config { enabled: true }")
    assert monitoring_path(str(tmp_path / "off.config")) is None
    assert monitoring_path(str(tmp_path / "default.config")) == DEFAULT_PATH
    with pytest.raises(ValueError, match="typo.config.*enabled"):
        monitoring_path(str(tmp_path / "typo.config"))


def test_requests_are_counted_by_status_entrypoint_and_answer(tiny_server):
    before = scrape(tiny_server)
    with QAClient(f"127.0.0.1:{tiny_server.port}", "tiny-qa", timeout=60) as client:
        client.answer("Where does Ann live?", "Ann lives in Paris.")
        client.answer_batch(["Who?", "What?"], ["Bob did.", "A red box."])
        with pytest.raises(errors.InvalidRequest):
            client.answer("   ", "Ann lives in Paris.")
    body = json.dumps({"instances": [{"question": "Who?", "context": "Bob did."}]}).encode()
    urllib.request.urlopen(
        urllib.request.Request(f"http://127.0.0.1:{tiny_server.rest_port}/v1/models/tiny-qa:predict", body), timeout=60
    ).read()
    after = scrape(tiny_server)

    def delta(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta(":tensorflow:serving:request_count", model_name="tiny-qa", status="OK") == 3
    assert delta(":tensorflow:serving:request_count", model_name="tiny-qa", status="INVALID_ARGUMENT") == 1
    grpc, rest = ({"model_name": "tiny-qa", "API": "predict", "entrypoint": e} for e in ("GRPC", "REST"))
    assert delta(":tensorflow:serving:request_latency_count", **grpc) == 3
    assert delta(":tensorflow:serving:request_latency_count", **rest) == 1
    assert delta(":tensorflow:serving:runtime_latency_count", model_name="tiny-qa", API="predict", runtime="TF1") >= 3
    assert delta("tf_qa_answer_score_count", model_name="tiny-qa") == 4  # one per question answered
    assert delta("tf_qa_examples_per_request_sum", model_name="tiny-qa") == 4
    assert delta("tf_qa_windows_per_request_sum", model_name="tiny-qa") == 4  # short contexts: a window each
    assert _value(after, "tf_qa_requests_in_flight", model_name="tiny-qa") == 0
    version_dir = str(Path(tiny_server.repository.base_path) / "1")
    assert _value(after, ":tensorflow:cc:saved_model:load_attempt_count", model_path=version_dir, status="success") == 1
    assert _value(after, ":tensorflow:serving:model_warmup_latency_count", model_path=version_dir) == 1


def test_a_model_name_the_server_does_not_serve_never_becomes_a_label(tiny_server):
    names = [f"no-such-model-{i}" for i in range(3)]
    for name in names:
        with QAClient(f"127.0.0.1:{tiny_server.port}", name, timeout=30) as client:
            with pytest.raises(errors.ModelNotFound):
                client.answer("Who?", "Bob did.")
    scraped = scrape(tiny_server)
    labels = {dict(labels).get("model_name") for (_, labels) in scraped}
    assert not labels & set(names)
    assert _value(scraped, ":tensorflow:serving:request_count", model_name="(not served)", status="NOT_FOUND") >= 3


@pytest.mark.parametrize(
    "error,reason",
    [
        (Overloaded("busy", "max_in_flight", 0.1), "max_in_flight"),
        (DeadlineExpired("waited too long"), "deadline"),
        (errors.InvalidRequest("request has 9 examples, over the limit max_examples=8"), "request_limit"),
        (errors.InvalidRequest("question is empty"), None),
    ],
)
def test_refusals_are_counted_by_reason_and_status(error, reason):
    metrics = ServerMetrics()
    with pytest.raises(type(error)):
        with metrics.request("qa", "predict", "GRPC"):
            raise error
    scraped = samples(metrics.exposition().decode())
    assert _value(scraped, ":tensorflow:serving:request_count", model_name="qa", status=error.code.name) == 1
    refused = {labels: value for (name, labels), value in scraped.items() if name == "tf_qa_requests_refused_total"}
    assert refused == ({(("model_name", "qa"), ("reason", reason)): 1.0} if reason else {})
    assert error.code in (StatusCode.RESOURCE_EXHAUSTED, StatusCode.DEADLINE_EXCEEDED, StatusCode.INVALID_ARGUMENT)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _prometheus_binary() -> str:
    """Debian's prometheus (scripts/setup-debian.sh installs it beside the suite); skips saying why it is absent."""
    log = debian_setup_log()
    binary = shutil.which("prometheus")
    if not binary:
        pytest.skip(f"no prometheus binary: run scripts/setup-debian.sh ({log})")
    return binary


def _query(port: int, expression: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())["data"]["result"]


def test_a_real_prometheus_scrapes_the_server_and_answers_a_query(tiny_server, tmp_path):
    binary = _prometheus_binary()
    with QAClient(f"127.0.0.1:{tiny_server.port}", "tiny-qa", timeout=60) as client:
        client.answer("Where does Ann live?", "Ann lives in Paris.")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: tf-qa\n    metrics_path: {PATH}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{tiny_server.rest_port}']}}]\n"
    )
    port = _free_port()
    command = [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}"]
    command += [f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    log = tmp_path / "prometheus.log"
    with log.open("wb") as sink, subprocess.Popen(command, stdout=sink, stderr=sink) as prometheus:
        try:
            expression = 'sum(:tensorflow:serving:request_count{job="tf-qa",model_name="tiny-qa",status="OK"})'
            deadline, result = time.monotonic() + 60, []
            while not result and time.monotonic() < deadline and prometheus.poll() is None:
                time.sleep(0.5)
                try:
                    result = _query(port, expression)
                except OSError:
                    continue
            assert result, f"Prometheus never had the counter: {log.read_text()[-500:]}"
            served = sum(
                v
                for (name, labels), v in scrape(tiny_server).items()
                if name == ":tensorflow:serving:request_count" and ("status", "OK") in labels
            )
            assert 1 <= float(result[0]["value"][1]) <= served
        finally:
            prometheus.terminate()
