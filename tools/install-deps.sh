#!/bin/sh
# Installs the Debian packages gnrev needs, only those missing; silent when all are present.
set -eu
PKGS="openmpi-bin libopenmpi-dev libscalapack-openmpi-dev libhdf5-openmpi-dev hdf5-tools
libopenblas-dev librandom123-dev zlib1g-dev pkg-config make gcc gfortran
python3-h5py python3-numpy python3-matplotlib dataset-fashion-mnist
python3-paraview xvfb xauth libgl1-mesa-dri"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing"
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: not root; please run: sudo apt-get install$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
