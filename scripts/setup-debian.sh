#!/usr/bin/env bash
# Installs ferry's build and test dependencies from Debian 12 packages.
# The CUDA backend additionally needs the CUDA toolkit at /usr/local/cuda
# (it is built whenever nvcc is there; nothing here downloads it).
set -euo pipefail
packages=(
  build-essential cmake pkg-config clang libclang-rt-dev
  libopenblas-dev libcjson-dev libsentencepiece-dev
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libpng-dev libjpeg-dev
  libopenmpi-dev openmpi-bin liburing-dev libcmocka-dev libicu-dev python3 python3-numpy
)
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "ferry: dependencies installed"
