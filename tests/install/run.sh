#!/usr/bin/env bash
# Installed-library test: installs the "ngs" component of BUILD_DIR into BUILD_DIR/install-test with
# `cmake --install`, compiles tests/install/main.c with `cc $(pkg-config --cflags --libs ngs)`
# (shared) and against libngs.a (static), builds the find_package(ngs) consumer project,
# and runs every program on MODEL.   Usage: tests/install/run.sh BUILD_DIR MODEL
set -euo pipefail
build=$(cd "$1" && pwd)
model=$2
here=$(cd "$(dirname "$0")" && pwd)
prefix=$build/install-test
rm -rf "$prefix"
cmake --install "$build" --prefix "$prefix" --component ngs >/dev/null
libdir=$(dirname "$(find "$prefix" -name ngs.pc -print -quit)")/..
export PKG_CONFIG_PATH=$libdir/pkgconfig
cc=${CC:-cc}
out=$prefix/bin-test
mkdir -p "$out"

echo "== pkg-config: $(pkg-config --modversion ngs), $(pkg-config --cflags --libs ngs)"
# shellcheck disable=SC2046
$cc -std=c99 -Wall -Wextra -Werror -pedantic "$here/main.c" -o "$out/check_pc_shared" \
  $(pkg-config --cflags --libs ngs) -lm
LD_LIBRARY_PATH=$libdir "$out/check_pc_shared" "$model"
# Static: the archive plus the private libraries pkg-config lists.
static_libs=$(pkg-config --static --libs ngs | sed 's/-lngs\b/-l:libngs.a/')
# shellcheck disable=SC2046,SC2086
$cc -std=c99 -Wall -Wextra -Werror -pedantic -DNGS_STATIC "$here/main.c" -o "$out/check_pc_static" \
  $(pkg-config --cflags ngs) $static_libs -lm
if ldd "$out/check_pc_static" | grep -q libngs; then
  echo "check_pc_static links libngs dynamically" >&2
  exit 1
fi
"$out/check_pc_static" "$model"

echo "== find_package(ngs)"
cmake -S "$here" -B "$out/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$out/consumer" >/dev/null
"$out/consumer/check_shared" "$model"
"$out/consumer/check_static" "$model"
echo "install test: ok"
