#!/usr/bin/env bash
# Mutation check (docs/TESTING.md): injects each bug of scripts/mutations.py, one at a time,
# into a scratch copy of this work tree and reports which ones the test suite catches.
# Not part of scripts/test.sh. Usage: scripts/mutation_check.sh [--full] [--keep]
# [--scratch DIR] [--list] [NAME ...]; exit status 0 only if every mutation is caught.
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 scripts/mutation_check.py "$@"
