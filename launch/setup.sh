#!/usr/bin/env bash
# Installs, with apt-get, every Debian package hubel needs to build, test and train.
# Idempotent: when everything is present it only says so. Run as root (or with sudo).
# `setup.sh test` adds what only the tests need (headless Chromium renders report.html;
# Node.js and, from the npm registry, onnxruntime-node run the exported ONNX models).
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libtbb-dev
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools zlib1g-dev
  libboost-program-options-dev
  libyaml-cpp-dev
  libopenblas-pthread-dev
  libpng-dev libjpeg62-turbo-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist
)
if [ "${1:-}" = test ]; then
  PACKAGES+=(chromium python3 clang libclang-rt-14-dev clang-format)
  # Node.js with npm (Debian's, unless a node with npm is already installed).
  command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)
fi

# onnxruntime-node (Microsoft's CPU runtime, prebuilt in the npm package) for the ONNX
# export test, in hubel's cache; its install scripts are skipped (they fetch optional GPU
# parts from elsewhere).
ORT_VERSION=1.20.1
ORT_DIR="${HUBEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hubel}/onnxruntime-$ORT_VERSION"
install_ort() {
  [ "${1:-}" = test ] || return 0
  [ -f "$ORT_DIR/node_modules/onnxruntime-node/package.json" ] && return 0
  echo "hubel setup: installing onnxruntime-node $ORT_VERSION from the npm registry into $ORT_DIR"
  mkdir -p "$ORT_DIR"
  npm install --prefix "$ORT_DIR" --no-audit --no-fund --ignore-scripts --loglevel=error \
    "onnxruntime-node@$ORT_VERSION" >/dev/null
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "hubel setup: all ${#PACKAGES[@]} packages present"
  install_ort "${1:-}"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "hubel setup: missing packages (${missing[*]}) and not root; run as root or install them" >&2; exit 1; }
  SUDO=sudo
fi
echo "hubel setup: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "hubel setup: done"
install_ort "${1:-}"
