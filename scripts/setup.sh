#!/usr/bin/env bash
# Installs what ngs needs to build, test and benchmark on Debian 12 (idempotent: only
# missing packages are installed). Run as root or with sudo available.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev
  libsndfile1-dev libsoxr-dev libcli11-dev nlohmann-json3-dev
  libsamplerate0-dev
  puredata-core puredata-dev
  python3-torch python3-numpy python3-yaml python3-pytest python3-scipy
  python3-hypothesis
  python3-venv
  libopenblas0-pthread
  clang
  libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# PyTorch comparisons must use an optimised BLAS, not Debian's reference BLAS.
if command -v update-alternatives >/dev/null; then
  openblas=/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
  if [ -e "$openblas" ] && ! update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep -q "Value: $openblas"; then
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd update-alternatives --set libblas.so.3-x86_64-linux-gnu "$openblas" || true
  fi
fi
