"""How long a version takes to load: its warmup requests, in TF Serving's session (the TF1 loader, the platform
config's session options), one fresh process per export so that no kernel or pool is made before.

The first request of each signature is where TensorFlow optimizes that signature's graph (Grappler) and makes its
kernels; later requests take milliseconds. ``--default-passes`` runs the same session with TensorFlow's default
Grappler passes (only the platform config's ``function_optimization`` kept) instead of the platform config's;
the options ``tf-qa export`` records in the SavedModel's function calls stay as they are.
Prints, per export, each warmup request's time and their total.

    python benchmarks/model_load.py export/demo-bf16/1 export/demo-fp32/1 [--default-passes]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from served import cpu_name


def measure(version_dir: str, default_passes: bool) -> None:
    """In this process: load ``version_dir`` and answer its warmup requests, printing their times."""
    import time

    from tensorflow.core.protobuf import rewriter_config_pb2

    from tf_qa.saved_model.layout import warmup_file
    from tf_qa.saved_model.platform_config import read_platform_config
    from tf_qa.saved_model.session import load_session, run_predict_request, use_session_threads
    from tf_qa.saved_model.warmup import read_warmup

    config = read_platform_config().session_config
    use_session_threads(config)
    if default_passes:
        rewrite = config.graph_options.rewrite_options
        rewrite.CopyFrom(rewriter_config_pb2.RewriterConfig(function_optimization=rewrite.function_optimization))
    session, signatures = load_session(version_dir, config)
    times = []
    for request in read_warmup(warmup_file(Path(version_dir))):
        started = time.perf_counter()
        run_predict_request(session, signatures, request)
        times.append((request.model_spec.signature_name, time.perf_counter() - started))
    each = ", ".join(f"{name} {seconds:.2f}" for name, seconds in times)
    print(f"{version_dir}: warmup {sum(seconds for _, seconds in times):.2f} s ({each})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version_dirs", nargs="+", help="export version folders (e.g. export/NAME/1)")
    parser.add_argument("--default-passes", action="store_true", help="TensorFlow's default Grappler passes")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # one export, in this process
    args = parser.parse_args()
    if args.measure:
        from tf_qa import console

        console.quiet()
        measure(args.version_dirs[0], args.default_passes)
        return 0
    passes = "TensorFlow's default Grappler passes" if args.default_passes else "the platform config's session"
    print(f"model load, {passes}, on {cpu_name()}")
    for version_dir in args.version_dirs:
        command = [sys.executable, __file__, version_dir, "--measure"]
        subprocess.run(command + (["--default-passes"] if args.default_passes else []), check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
