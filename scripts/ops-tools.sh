#!/usr/bin/env bash
# The real operations tools the tests run against, from Debian's packages (idempotent; as root):
#   prometheus (promtool), prometheus-alertmanager, haproxy, chromium (headless reports), wrk (load).
# Java 17 (for pyspark's local Spark) is installed only when `java` is missing.
# Nothing is started here: each test starts its own instance on a free loopback port.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
if ((${#need[@]})); then
  echo "[ops-tools] installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts the services it installs; the tests start their own on free ports.
  for service in prometheus prometheus-alertmanager haproxy prometheus-node-exporter; do
    (command -v systemctl >/dev/null && systemctl stop "$service") >/dev/null 2>&1 || true
    pkill -x "$service" >/dev/null 2>&1 || true
  done
fi
echo "[ops-tools] promtool, prometheus-alertmanager, haproxy, chromium, wrk, java: present" >&2
