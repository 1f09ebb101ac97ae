#!/usr/bin/env bash
# Installs the Debian packages some tests use, then builds the C++ gRPC front end: Prometheus's server
# (tests/test_metrics.py scrapes tf-qa serve with it and queries it back), gRPC's C++ build kit
# (tf_qa/server/native_grpc.py builds against it; tests/test_native_grpc.py serves with it) and TCMalloc (the
# allocator tf-qa's runtimes preload, tf_qa/saved_model/allocator.py; tests/test_allocator.py). Needs root and
# apt-get; elsewhere it says why and those tests skip with that reason.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES="prometheus libgrpc++-dev pkg-config libtcmalloc-minimal4"
if ! command -v prometheus > /dev/null || ! pkg-config --exists grpc++ 2> /dev/null \
  || ! /sbin/ldconfig -p | grep libtcmalloc_minimal.so.4 > /dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
    echo "cannot install $PACKAGES here (needs root and apt-get)"
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086  # the package list splits into words
  install() { apt-get install -y -q --no-install-recommends $PACKAGES; }
  install || { apt-get update -q && install; }
fi
.venv/bin/python -m tf_qa.server.native_grpc
