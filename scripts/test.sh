#!/usr/bin/env bash
# The test command: installs what is missing, builds, generates the golden fixtures, and
# runs every test (C++ through ctest, Python through pytest). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
PY=/usr/bin/python3

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2
if [ -f weights_converter/make_fixtures.py ]; then
  $PY -m weights_converter.make_fixtures --out build/fixtures
fi
ctest --test-dir build --output-on-failure -j2
$PY -m pytest -q tests/python
