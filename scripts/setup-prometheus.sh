#!/usr/bin/env bash
# Installs Debian's Prometheus server for the metrics test (tests/test_metrics.py scrapes tf-qa serve with it and
# queries it back). Needs root and apt-get; elsewhere it says why and the test skips with that reason.
set -euo pipefail
if command -v prometheus > /dev/null; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
  echo "cannot install prometheus here (needs root and apt-get)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -q --no-install-recommends prometheus; }
install || { apt-get update -q && install; }
