#!/usr/bin/env bash
# A seconds-long run of the benchmark harness (debug build) so that it cannot rot: every target
# starts, every measurement is valid. It asserts nothing about speed; bench/results/ holds those.
set -euo pipefail
cd "$(dirname "$0")/../.."
bench/run --smoke
