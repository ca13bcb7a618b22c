#!/usr/bin/env bash
# Seconds-long runs of the benchmark harness and of the soak (debug builds) so that they cannot rot:
# every target starts, every measurement is valid. They assert nothing about speed; bench/results/
# holds those.
set -euo pipefail
cd "$(dirname "$0")/../.."
bench/run --smoke
bench/soak.sh --smoke
bench/wrk.sh --smoke
bench/tenants.sh --smoke
bench/scale.sh --smoke
bench/retrieval.sh --smoke
bench/semantic.sh --smoke
bench/time.sh --smoke
