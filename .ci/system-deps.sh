#!/usr/bin/env bash
# Debian packages the tests and benchmarks use; installs only what is missing, so it is cheap to repeat.
set -euo pipefail
need=()
command -v initdb >/dev/null 2>&1 || [ -x "$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | head -1)" ] || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)  # Spark, for ai_query's Spark tests
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
