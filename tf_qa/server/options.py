"""``ServeOptions``: everything ``tf-qa serve`` is told, defined and validated once (no TensorFlow here).

``tf-qa serve`` makes one flag of each field (``serve_flag``; the help and the argparse type come from the field),
``ServeOptions.from_namespace`` reads them back, and ``ModelServer`` is built from the one object. The flags are
TF Serving's where it has one (``--model_base_path``, ``--rest_api_port``, ``--enable_batching``, ...), spelled
with dashes.

Example:

>>> options = ServeOptions(model_base_path="export/demo", model_name="demo", port=0)
>>> options.max_in_flight, serve_flag("rest_api_timeout_in_ms")
(32, '--rest-api-timeout-in-ms')
>>> ServeOptions(model_base_path="export/demo", model_name="demo", ssl_cert="server.pem")
Traceback (most recent call last):
...
ValueError: --ssl-cert and --ssl-key go together
>>> ServeOptions(model_base_path="export/demo", model_name="demo", max_in_flight=0)
Traceback (most recent call last):
...
ValueError: --max-in-flight must be at least 1; got 0
"""

from __future__ import annotations

import dataclasses

from tf_qa.defaults import DEFAULT_PLATFORM_CONFIG

#: tf-qa serve: Predict requests at once (gRPC and REST) before more are refused with RESOURCE_EXHAUSTED.
DEFAULT_MAX_IN_FLIGHT = 32
#: tf-qa serve: windows of work in flight before more requests are refused (one call's largest, the graph's
#: default max_windows: a request alone may always run).
DEFAULT_MAX_WINDOWS_IN_FLIGHT = 512
#: tf-qa serve: the largest gRPC request message and REST body (what the graph accepts, 256 KiB of text or 512
#: windows of ids, fits with room for JSON escapes).
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
#: tf-qa serve: seconds a REST request may run, as TF Serving's --rest_api_timeout_in_ms (30000).
DEFAULT_REST_TIMEOUT = 30.0

#: The range of each numeric field kind (the command line's argparse types refuse the same values earlier).
KIND_RANGES = {
    "port": (0, 65535),
    "positive_int": (1, None),
    "non_negative_int": (0, None),
    "non_negative_float": (0, None),
    "versions": (1, None),
}


def _flag(default, help_text: str | None, kind: str = "text", *, required: bool = False):
    """A field and its ``tf-qa serve`` flag; ``kind`` names the flag's argparse type (``tf_qa.arguments``)."""
    return dataclasses.field(default=default, metadata={"help": help_text, "kind": kind, "required": required})


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    """The options of one ``tf-qa serve``; the defaults are TF Serving's where it has the option."""

    model_base_path: str = _flag("", "folder of numeric version folders, e.g. export/NAME (or --model-config-file)")
    model_name: str = _flag("", "the name requests use in model_spec.name (or --model-config-file)")
    model_config_file: str | None = _flag(
        None,
        "TF Serving's ModelServerConfig (text format, e.g. the kit's serving/models.config): the models, their "
        "version policies, version labels and request logging, instead of --model-base-path and --model-name",
    )
    model_config_file_poll_wait_seconds: float = _flag(
        0.0,
        "how often to read --model-config-file again and apply its changes (0: never), as TF Serving's flag",
        "non_negative_float",
    )
    port: int = _flag(8500, "gRPC port (0: a free one)", "port")
    host: str = _flag("127.0.0.1", "address to bind")
    rest_api_port: int | None = _flag(None, "also serve TF Serving's REST API on this port", "port")
    versions: tuple[int, ...] | None = _flag(None, "versions to serve (default: the newest)", "versions")
    poll_seconds: float = _flag(2.0, "how often to look for new versions (0: never)", "non_negative_float")
    platform_config_file: str = _flag(
        str(DEFAULT_PLATFORM_CONFIG),
        "TF Serving's platform config: the session options and batching parameters to serve with "
        "(default: the kit's serving/platform_config.pbtxt)",
    )
    enable_batching: bool = _flag(
        False,
        "merge concurrent requests into batches (as TF Serving's --enable_batching), with the platform config's "
        "batching parameters unless the flags below say otherwise",
        "switch",
    )
    max_batch_size: int | None = _flag(None, "largest merged batch, in examples", "positive_int")
    batch_timeout_micros: int | None = _flag(
        None, "how long a request waits for others to join its batch", "non_negative_int"
    )
    num_batch_threads: int | None = _flag(None, "batches run at once", "positive_int")
    max_in_flight: int = _flag(
        DEFAULT_MAX_IN_FLIGHT,
        "Predict requests at once (gRPC and REST); more are refused at once with RESOURCE_EXHAUSTED / HTTP 429 "
        "(default %(default)s)",
        "positive_int",
    )
    max_windows_in_flight: int = _flag(
        DEFAULT_MAX_WINDOWS_IN_FLIGHT,
        "windows of work in flight (each up to max_seq_len tokens through the model, estimated from the text before "
        "a request runs); a request that would pass it is refused the same way, unless nothing else is in flight "
        "(default %(default)s)",
        "positive_int",
    )
    max_request_bytes: int = _flag(
        DEFAULT_MAX_REQUEST_BYTES, "largest gRPC request message and REST body (default %(default)s)", "positive_int"
    )
    rest_api_timeout_in_ms: int = _flag(
        int(DEFAULT_REST_TIMEOUT * 1000),
        "time a REST request may run, as TF Serving's flag (default %(default)s); gRPC requests run until their "
        "own deadline",
        "positive_int",
    )
    monitoring_config_file: str | None = _flag(
        None,
        "TF Serving's MonitoringConfig (text format, e.g. the kit's serving/monitoring.config): Prometheus metrics "
        "on the REST port at its path",
    )
    ssl_config_file: str | None = _flag(
        None,
        "TF Serving's SSLConfig (text format: server_key, server_cert, custom_ca, client_verify): TLS for gRPC and "
        "REST; with client_verify, clients must present a certificate custom_ca signed",
    )
    ssl_cert: str | None = _flag(None, "PEM certificate chain: serve TLS (or --ssl-config-file)")
    ssl_key: str | None = _flag(None, "PEM private key of --ssl-cert")

    def __post_init__(self):
        by_flags = bool(self.model_base_path or self.model_name)
        if self.model_config_file and by_flags:
            raise ValueError(
                f"give {serve_flag('model_config_file')} or {serve_flag('model_base_path')} and "
                f"{serve_flag('model_name')}, not both"
            )
        if not self.model_config_file and not (self.model_base_path and self.model_name):
            raise ValueError(
                f"{serve_flag('model_base_path')} and {serve_flag('model_name')} are required "
                f"(or {serve_flag('model_config_file')})"
            )
        if self.model_config_file and self.versions is not None:
            raise ValueError(f"{serve_flag('versions')}: the model config file's version policies say which")
        if bool(self.ssl_cert) != bool(self.ssl_key):
            raise ValueError(f"{serve_flag('ssl_cert')} and {serve_flag('ssl_key')} go together")
        if self.ssl_cert and self.ssl_config_file:
            raise ValueError(f"give {serve_flag('ssl_config_file')} or {serve_flag('ssl_cert')}, not both")
        if self.monitoring_config_file and self.rest_api_port is None:
            raise ValueError(
                f"{serve_flag('monitoring_config_file')} needs {serve_flag('rest_api_port')}: metrics are served there"
            )
        if self.versions is not None:
            object.__setattr__(self, "versions", tuple(self.versions))
        for field in dataclasses.fields(self):
            kind, value = field.metadata["kind"], getattr(self, field.name)
            if kind in KIND_RANGES and value is not None:
                for number in value if kind == "versions" else [value]:
                    _check_range(field.name, number, *KIND_RANGES[kind])

    @property
    def rest_timeout(self) -> float:
        """``rest_api_timeout_in_ms`` in seconds."""
        return self.rest_api_timeout_in_ms / 1000

    @classmethod
    def from_namespace(cls, namespace) -> ServeOptions:
        """The options of parsed ``tf-qa serve`` flags (``argparse.Namespace``)."""
        return cls(**{field.name: getattr(namespace, field.name) for field in dataclasses.fields(cls)})


def _check_range(name: str, number, low, high) -> None:
    if number < low or (high is not None and number > high):
        bounds = f"at least {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{serve_flag(name)} must be {bounds}; got {number}")


def serve_flag(name: str) -> str:
    """The ``tf-qa serve`` flag of the field ``name``."""
    return "--" + name.replace("_", "-")
