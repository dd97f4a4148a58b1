#!/bin/bash
# test_jobs.sh — the SLURM scripts in jobs/ without SLURM: sbatch, srun and scontrol are replaced
# by stand-ins on PATH that record their arguments and environment (sbatch runs each array task
# in turn; srun records, or waits for a signal and exits 75 as gnrev_mpi does after a checkpoint,
# or runs gnrev_mpi under mpirun). Checked: syntax; the deck and -P options reach the launcher with
# one BLAS thread and CPU binding; each script asks SLURM for USR1 before the time limit, allows
# requeue and appends to its log; the array index picks the seed / deck; USR1 and TERM sent to
# the batch shell reach the launcher; exit 75 requeues the job by its id, other exits do not;
# a real gnrev_mpi run through the script on a tiny synthetic deck; after make install, the
# installed seeds.slurm and paper.slurm, submitted from another folder, find the installed
# binary, decks and gnrev.slurm (the stand-in sbatch runs a spooled copy of the script, as sbatch
# does, so a script cannot find its siblings through its own path), and a real run through the
# installed seeds.slurm writes its outputs under the submit folder.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
MPIRUN=${MPIRUN:-mpirun}
if [ "$(id -u)" = 0 ]; then ROOTFLAG=--allow-run-as-root; else ROOTFLAG=; fi
MPIFLAGS=${MPIFLAGS:---oversubscribe $ROOTFLAG}
export MPIRUN MPIFLAGS

. tests/sh/tap.sh
# 3 job scripts x 3, the launcher 5, requeue 2 + 5 exit codes, signals 2 x 2, arrays 6, real runs 4.
plan 40
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- stand-ins ------------------------------------------------------------------------------
mkdir -p "$tmp/bin" "$tmp/log"
export FAKE_LOG="$tmp/log"
cat >"$tmp/bin/srun" <<'EOS'
#!/bin/bash
# Stand-in srun. FAKE_SRUN_MODE: record (exit FAKE_SRUN_RC), wait (until USR1/TERM, then exit 75),
# mpirun (run the command under mpirun -np 2 without srun's own options).
n=$(ls "$FAKE_LOG" | grep -c '^srun\.args')
{ for a in "$@"; do printf '%s\n' "$a"; done; } >"$FAKE_LOG/srun.args.$n"
{ echo "OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-unset}"; echo "PWD=$PWD"; } >"$FAKE_LOG/srun.env.$n"
case ${FAKE_SRUN_MODE:-record} in
  record) exit "${FAKE_SRUN_RC:-0}" ;;
  wait)
    trap 'echo USR1 >>"$FAKE_LOG/srun.signals"; exit 75' USR1
    trap 'echo TERM >>"$FAKE_LOG/srun.signals"; exit 75' TERM
    touch "$FAKE_LOG/srun.started"
    for _ in $(seq 600); do sleep 0.1; done
    exit 0 ;;
  mpirun)
    while [ $# -gt 0 ] && [ "${1#--}" != "$1" ]; do shift; done
    touch "$FAKE_LOG/srun.started"
    # shellcheck disable=SC2086
    exec "$MPIRUN" $MPIFLAGS -np 2 "$@" ;;
esac
EOS
cat >"$tmp/bin/scontrol" <<'EOS'
#!/bin/bash
printf '%s\n' "$*" >>"$FAKE_LOG/scontrol.args"
exit 0
EOS
cat >"$tmp/bin/sbatch" <<'EOS'
#!/bin/bash
# Stand-in sbatch: runs a spooled copy of the script (as sbatch does) once per array task
# (--array=a-b or a,b,c on the command line, else the script's #SBATCH --array line) with the
# variables SLURM sets; records each status.
array=""
while [ $# -gt 0 ]; do
  case $1 in
    --array=*) array=${1#--array=}; shift ;;
    --*) shift ;;
    *) break ;;
  esac
done
script=$1
shift
[ -n "$array" ] || array=$(sed -n 's/^#SBATCH --array=//p' "$script" | head -n 1)
tasks=""
if [ -z "$array" ]; then
  tasks=none
else
  for part in ${array//,/ }; do
    if [ "${part#*-}" != "$part" ]; then tasks="$tasks $(seq "${part%-*}" "${part#*-}")"; else tasks="$tasks $part"; fi
  done
fi
spool=$(mktemp -d)
cp "$script" "$spool/slurm_script"
for t in $tasks; do
  if [ "$t" = none ]; then
    SLURM_JOB_ID=4242 SLURM_SUBMIT_DIR=$PWD bash "$spool/slurm_script" "$@" >>"$FAKE_LOG/sbatch.out" 2>&1
  else
    SLURM_JOB_ID=$((5000 + t)) SLURM_ARRAY_JOB_ID=5000 SLURM_ARRAY_TASK_ID=$t SLURM_SUBMIT_DIR=$PWD \
      bash "$spool/slurm_script" "$@" >>"$FAKE_LOG/sbatch.out" 2>&1
  fi
  echo "task $t rc $?" >>"$FAKE_LOG/sbatch.status"
done
rm -rf "$spool"
EOS
chmod +x "$tmp/bin/"*
export PATH="$tmp/bin:$PATH"
reset_log() { rm -rf "$FAKE_LOG"; mkdir -p "$FAKE_LOG"; }

# ---- syntax ------------------------------------------------------------------------------------
for f in jobs/*.slurm; do
  if bash -n "$f"; then ok "bash -n $f"; else notok "bash -n $f"; fi
  if grep -qx -- '#SBATCH --signal=B:USR1@120' "$f"; then ok "$f asks SLURM for USR1 to the batch shell 120 s before the limit"; else notok "$f asks SLURM for USR1 to the batch shell 120 s before the limit"; fi
  # A requeued job runs the script again with the same log: it must be allowed and append.
  if grep -qx -- '#SBATCH --requeue' "$f" && grep -qx -- '#SBATCH --open-mode=append' "$f"; then ok "$f allows requeue and appends to its log"; else notok "$f allows requeue and appends to its log"; fi
done

# ---- gnrev.slurm: what reaches the launcher ----------------------------------------------------
DECK=input/deck.nml
# The script's default binary: ./gnrev_mpi of the submit folder if built there, else the PATH's
# (a sanitized check builds only build-san/gnrev_mpi).
DEFBIN=$ROOT/gnrev_mpi
[ -x "$DEFBIN" ] || DEFBIN=gnrev_mpi
reset_log
SLURM_JOB_ID=77 SLURM_RESTART_COUNT=2 FAKE_SRUN_MODE=record bash jobs/gnrev.slurm "$DECK" -P run:seed=9 \
  -P "optim:lr=0.25" >"$tmp/out" 2>&1
rc=$?
args=$(cat "$FAKE_LOG/srun.args.0" 2>/dev/null)
expected=$(printf '%s\n' --cpu-bind=cores --kill-on-bad-exit=1 "$DEFBIN" -P run:seed=9 -P optim:lr=0.25 "$DECK")
if [ "$args" = "$expected" ]; then ok "gnrev.slurm passes the binary, the -P options and the deck to srun in order"; else notok "gnrev.slurm passes the binary, the -P options and the deck to srun in order"; fi
if grep -qx 'OPENBLAS_NUM_THREADS=1' "$FAKE_LOG/srun.env.0"; then ok "gnrev.slurm runs the ranks with OPENBLAS_NUM_THREADS=1"; else notok "gnrev.slurm runs the ranks with OPENBLAS_NUM_THREADS=1"; fi
if [ "$rc" = 0 ] && [ ! -e "$FAKE_LOG/scontrol.args" ]; then ok "gnrev.slurm exits 0 after a run that exits 0, without requeue"; else notok "gnrev.slurm exits 0 after a run that exits 0, without requeue"; fi
if grep -q 'job 77.*restart count 2' "$tmp/out"; then ok "gnrev.slurm logs the job id and SLURM_RESTART_COUNT"; else notok "gnrev.slurm logs the job id and SLURM_RESTART_COUNT"; fi

reset_log
cat >"$tmp/bin/mpirun" <<'EOS'
#!/bin/bash
printf '%s\n' "$@" >"$FAKE_LOG/mpirun.args"
exit 0
EOS
chmod +x "$tmp/bin/mpirun"
GNREV_LAUNCH="mpirun -np 3 --bind-to core" GNREV=/opt/gnrev/bin/gnrev_mpi bash jobs/gnrev.slurm "$DECK" >/dev/null 2>&1
rm -f "$tmp/bin/mpirun"
if [ "$(cat "$FAKE_LOG/mpirun.args" 2>/dev/null)" = "$(printf '%s\n' -np 3 --bind-to core /opt/gnrev/bin/gnrev_mpi "$DECK")" ]; then ok "GNREV_LAUNCH and GNREV replace srun and the binary (no srun options added)"; else notok "GNREV_LAUNCH and GNREV replace srun and the binary (no srun options added)"; fi

reset_log
SLURM_JOB_ID=78 bash jobs/gnrev.slurm no/such/deck.nml >"$tmp/out" 2>&1
rc=$?
if [ "$rc" = 2 ] && [ ! -e "$FAKE_LOG/srun.args.0" ] && grep -q 'cannot read the deck no/such/deck.nml' "$tmp/out"; then ok "gnrev.slurm refuses a missing deck with status 2 before launching"; else notok "gnrev.slurm refuses a missing deck with status 2 before launching"; fi

# ---- exit statuses and requeue -----------------------------------------------------------------
reset_log
SLURM_JOB_ID=4711 FAKE_SRUN_MODE=record FAKE_SRUN_RC=75 bash jobs/gnrev.slurm "$DECK" >"$tmp/out" 2>&1
rc=$?
if [ "$(cat "$FAKE_LOG/scontrol.args" 2>/dev/null)" = "requeue 4711" ] && [ "$rc" = 0 ]; then ok "exit 75 of the run requeues the job by its id (scontrol requeue 4711) and the shell exits 0"; else notok "exit 75 of the run requeues the job by its id (scontrol requeue 4711) and the shell exits 0"; fi
reset_log
SLURM_JOB_ID=4712 GNREV_NO_REQUEUE=1 FAKE_SRUN_MODE=record FAKE_SRUN_RC=75 bash jobs/gnrev.slurm "$DECK" >/dev/null 2>&1
rc=$?
if [ "$rc" = 75 ] && [ ! -e "$FAKE_LOG/scontrol.args" ]; then ok "GNREV_NO_REQUEUE=1 passes exit 75 on without requeue"; else notok "GNREV_NO_REQUEUE=1 passes exit 75 on without requeue"; fi
for code in 2 3 4 5 1; do
  reset_log
  SLURM_JOB_ID=4713 FAKE_SRUN_MODE=record FAKE_SRUN_RC=$code bash jobs/gnrev.slurm "$DECK" >/dev/null 2>&1
  rc=$?
  if [ "$rc" = "$code" ] && [ ! -e "$FAKE_LOG/scontrol.args" ]; then ok "exit $code of the run is the job's status and does not requeue"; else notok "exit $code of the run is the job's status and does not requeue"; fi
done

# ---- signals sent to the batch shell reach the launcher ------------------------------------------
for sig in USR1 TERM; do
  reset_log
  SLURM_JOB_ID=900 FAKE_SRUN_MODE=wait bash jobs/gnrev.slurm "$DECK" >"$tmp/out" 2>&1 &
  shell=$!
  for _ in $(seq 100); do [ -e "$FAKE_LOG/srun.started" ] && break; sleep 0.1; done
  kill -s "$sig" "$shell"
  for _ in $(seq 100); do kill -0 "$shell" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$shell" 2>/dev/null; then
    kill -9 "$shell"
    notok "$sig to the batch shell: the shell did not end within 10 s"
    continue
  fi
  wait "$shell"
  rc=$?
  if [ "$(cat "$FAKE_LOG/srun.signals" 2>/dev/null)" = "$sig" ]; then ok "$sig sent to the batch shell is forwarded to the launcher"; else notok "$sig sent to the batch shell is forwarded to the launcher"; fi
  if [ "$(cat "$FAKE_LOG/scontrol.args" 2>/dev/null)" = "requeue 900" ] && [ "$rc" = 0 ]; then ok "after $sig the launcher's exit 75 requeues job 900 and the shell exits 0"; else notok "after $sig the launcher's exit 75 requeues job 900 and the shell exits 0"; fi
done

# ---- arrays: seeds and the paper matrix ----------------------------------------------------------
reset_log
sbatch --array=0-2 jobs/seeds.slurm "$DECK" -P model:hidden=64
good=1
for t in 0 1 2; do
  seed=$((1 + t))
  want=$(printf '%s\n' --cpu-bind=cores --kill-on-bad-exit=1 "$DEFBIN" -P model:hidden=64 -P "run:seed=$seed" \
    -P "run:out_dir='runs/deck_seed$seed'" "$DECK")
  [ "$(cat "$FAKE_LOG/srun.args.$t" 2>/dev/null)" = "$want" ] || good=0
done
if [ "$good" = 1 ]; then ok "seeds.slurm: array task i runs seed 1+i into runs/<deck>_seed<seed>, extra -P kept"; else notok "seeds.slurm: array task i runs seed 1+i into runs/<deck>_seed<seed>, extra -P kept"; fi
reset_log
GNREV_SEEDS="42 7" GNREV_OUT=/scratch/me/fm sbatch --array=1 jobs/seeds.slurm "$DECK"
if grep -qx "run:out_dir='/scratch/me/fm_seed7'" "$FAKE_LOG/srun.args.0"; then ok "seeds.slurm: GNREV_SEEDS and GNREV_OUT choose the seed list and the output base"; else notok "seeds.slurm: GNREV_SEEDS and GNREV_OUT choose the seed list and the output base"; fi
reset_log
GNREV_SEEDS="42 7" sbatch --array=2 jobs/seeds.slurm "$DECK"
if grep -qx 'task 2 rc 2' "$FAKE_LOG/sbatch.status" && [ ! -e "$FAKE_LOG/srun.args.0" ] &&
   grep -q 'array task 2 but GNREV_SEEDS lists 2 seeds' "$FAKE_LOG/sbatch.out"; then ok "seeds.slurm: an array index past GNREV_SEEDS fails with status 2 before launching"; else notok "seeds.slurm: an array index past GNREV_SEEDS fails with status 2 before launching"; fi

reset_log
sbatch jobs/paper.slurm -P run:epochs=1
ndecks=$(find input/paper -maxdepth 1 -name '*.nml' | wc -l)
decks=""
for t in $(seq 0 $((ndecks - 1))); do
  decks="$decks $(tail -n 1 "$FAKE_LOG/srun.args.$t" 2>/dev/null)"
done
want=""
for f in input/paper/*.nml; do want="$want $f"; done
if [ "$decks" = "$want" ]; then ok "paper.slurm: its #SBATCH --array covers input/paper/*.nml, one deck per task"; else notok "paper.slurm: its #SBATCH --array covers input/paper/*.nml, one deck per task"; fi
if [ "$(grep -c 'rc 0' "$FAKE_LOG/sbatch.status")" = "$ndecks" ] && [ "$(cat "$FAKE_LOG"/srun.args.* | grep -cx run:epochs=1)" = "$ndecks" ]; then ok "paper.slurm: every task ran and got the extra -P options"; else notok "paper.slurm: every task ran and got the extra -P options"; fi
reset_log
sbatch --array="$ndecks" jobs/paper.slurm
if grep -qx "task $ndecks rc 2" "$FAKE_LOG/sbatch.status" && grep -q "array task $ndecks outside 0..$((ndecks - 1))" "$FAKE_LOG/sbatch.out" &&
   [ ! -e "$FAKE_LOG/srun.args.0" ]; then ok "paper.slurm: array task $ndecks (no such deck) fails with status 2"; else notok "paper.slurm: array task $ndecks (no such deck) fails with status 2"; fi

# ---- installed scripts, submitted from another folder --------------------------------------------
# make install of this build into a temporary PREFIX (BUILD as for the tests: no rebuild, and a
# sanitized check installs its own binary).
PREFIX=$tmp/prefix
if make -s -C "$ROOT" install PREFIX="$PREFIX" BUILD="${BUILD:-build}" >"$tmp/install.log" 2>&1; then
  ok "make install PREFIX=$PREFIX"
else
  notok "make install PREFIX=$PREFIX: $(tail -n 5 "$tmp/install.log")"
fi
SHARE=$PREFIX/share/gnrev
mkdir -p "$tmp/work"
cp input/deck.nml "$tmp/work/mydeck.nml"
reset_log
(cd "$tmp/work" && sbatch --array=0-1 "$SHARE/jobs/seeds.slurm" mydeck.nml -P model:hidden=64)
good=1
for t in 0 1; do
  seed=$((1 + t))
  want=$(printf '%s\n' --cpu-bind=cores --kill-on-bad-exit=1 "$PREFIX/bin/gnrev_mpi" -P model:hidden=64 \
    -P "run:seed=$seed" -P "run:out_dir='runs/mydeck_seed$seed'" mydeck.nml)
  [ "$(cat "$FAKE_LOG/srun.args.$t" 2>/dev/null)" = "$want" ] || good=0
  grep -qx "PWD=$tmp/work" "$FAKE_LOG/srun.env.$t" 2>/dev/null || good=0
done
if [ "$good" = 1 ] && [ "$(grep -c 'rc 0' "$FAKE_LOG/sbatch.status")" = 2 ]; then
  ok "installed seeds.slurm from another folder runs the installed binary on the submit folder's deck, in that folder"
else
  notok "installed seeds.slurm from another folder runs the installed binary on the submit folder's deck, in that folder: $(cat "$FAKE_LOG/srun.args.0" "$FAKE_LOG/sbatch.status" 2>/dev/null | tr '\n' ' ') $(tail -n 3 "$FAKE_LOG/sbatch.out" 2>/dev/null)"
fi
reset_log
(cd "$tmp/work" && sbatch "$SHARE/jobs/paper.slurm" -P run:epochs=1)
decks=""
for t in $(seq 0 $((ndecks - 1))); do decks="$decks $(tail -n 1 "$FAKE_LOG/srun.args.$t" 2>/dev/null)"; done
want=""
for f in "$SHARE"/input/paper/*.nml; do [ -r "$f" ] && want="$want $f"; done
if [ "$decks" = "$want" ] && [ -n "$want" ] && [ "$(grep -c 'rc 0' "$FAKE_LOG/sbatch.status")" = "$ndecks" ] &&
   grep -qx "PWD=$tmp/work" "$FAKE_LOG/srun.env.0"; then
  ok "installed paper.slurm from another folder runs the $ndecks installed paper decks, in that folder"
else
  notok "installed paper.slurm from another folder runs the $ndecks installed paper decks: got$decks, want$want"
fi
if [ -x "$PREFIX/bin/gnrev_mpi" ]; then
  cat >"$tmp/work/tiny.nml" <<EOF2
&run name = 'tiny', epochs = 10, max_steps = 2, log_every = 1 /
&data source = 'synthetic', dim = 8, classes = 3, synthetic_train = 40, synthetic_test = 20 /
&model blocks = 1, hidden = 12 /
&optim method = 'sgd', lr = 0.1 /
EOF2
  reset_log
  (cd "$tmp/work" && FAKE_SRUN_MODE=mpirun sbatch --array=0 "$SHARE/jobs/seeds.slurm" tiny.nml)
  rows=$("${PYTHON:-/usr/bin/python3}" -c "import h5py,sys; print(len(h5py.File(sys.argv[1],'r')['metrics/step']))" \
    "$tmp/work/runs/tiny_seed1/run.h5" 2>/dev/null)
  if grep -qx 'task 0 rc 0' "$FAKE_LOG/sbatch.status" && [ "$rows" = 3 ]; then
    ok "a real run through the installed seeds.slurm writes runs/tiny_seed1/run.h5 (3 rows) in the submit folder"
  else
    notok "a real run through the installed seeds.slurm writes runs/tiny_seed1/run.h5 in the submit folder (rows '$rows')"
    tail -n 20 "$FAKE_LOG/sbatch.out"
  fi
fi

# ---- a real run through the script -------------------------------------------------------------
# The binary under test: $BUILD's (the sanitized one with make check SANITIZE=1).
REAL=$ROOT/${BUILD:-build}/gnrev_mpi
[ -x "$REAL" ] || REAL=$ROOT/gnrev_mpi
if [ ! -x "$REAL" ]; then
  for what in "a real run through gnrev.slurm" "a deck error of a real run" "USR1 to the batch shell of a real run" \
    "the requeued real job continues"; do
    skip "$what" "no gnrev_mpi built in ${BUILD:-build}/ or ./ (run make first)"
  done
else
  cat >"$tmp/tiny.nml" <<EOF2
&run name = 'jobs', out_dir = '$tmp/run', max_steps = 3, log_every = 1 /
&data source = 'synthetic', dim = 8, classes = 3, synthetic_train = 40, synthetic_test = 20 /
&model blocks = 1, hidden = 12 /
&optim method = 'sgd', lr = 0.1 /
EOF2
  reset_log
  SLURM_JOB_ID=31 GNREV=$REAL FAKE_SRUN_MODE=mpirun bash jobs/gnrev.slurm "$tmp/tiny.nml" -P run:seed=5 >"$tmp/out" 2>&1
  rc=$?
  if [ "$rc" = 0 ] && [ -s "$tmp/run/run.h5" ] && [ ! -e "$FAKE_LOG/scontrol.args" ]; then ok "a real gnrev_mpi run on 2 ranks through gnrev.slurm finishes, writes run.h5, no requeue"; else notok "a real gnrev_mpi run on 2 ranks through gnrev.slurm finishes, writes run.h5, no requeue"; fi
  [ "$rc" = 0 ] || tail -n 20 "$tmp/out"
  reset_log
  SLURM_JOB_ID=32 GNREV=$REAL FAKE_SRUN_MODE=mpirun bash jobs/gnrev.slurm "$tmp/tiny.nml" -P model:hidden=-1 >"$tmp/out" 2>&1
  rc=$?
  if [ "$rc" = 2 ] && [ ! -e "$FAKE_LOG/scontrol.args" ]; then ok "a deck error of the real run (exit 2) is the job's status, no requeue"; else notok "a deck error of the real run (exit 2) is the job's status, no requeue"; fi
  # Preemption end to end: USR1 to the batch shell -> the ranks checkpoint and exit 75 -> requeue;
  # the requeued job (same command) continues from that checkpoint and finishes.
  cat >"$tmp/long.nml" <<EOF2
&run name = 'jobs-sig', out_dir = '$tmp/sig', max_steps = 100000000, epochs = 100000000, log_every = 100 /
&data source = 'synthetic', dim = 8, classes = 3, synthetic_train = 64, synthetic_test = 16, batch_size = 16 /
&model blocks = 1, hidden = 12 /
&optim method = 'sgd', lr = 0.05 /
&checkpoint every = 100 /
&diagnostics eval_every = 0 /
EOF2
  reset_log
  SLURM_JOB_ID=33 GNREV=$REAL FAKE_SRUN_MODE=mpirun bash jobs/gnrev.slurm "$tmp/long.nml" >"$tmp/out1" 2>&1 &
  shell=$!
  for _ in $(seq 300); do [ -e "$tmp/sig/run.h5" ] && break; sleep 0.1; done
  sleep 0.5
  kill -USR1 "$shell"
  for _ in $(seq 600); do kill -0 "$shell" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$shell" 2>/dev/null && kill -9 "$shell"
  wait "$shell"
  rc=$?
  # The run never ends by itself (max_steps 1e8): only the signal can have stopped it.
  stopped=$(ls "$tmp/sig/checkpoints" 2>/dev/null | grep -v 'step_00000000' | tail -n 1)
  if [ "$rc" = 0 ] && [ "$(cat "$FAKE_LOG/scontrol.args" 2>/dev/null)" = "requeue 33" ] && [ -n "$stopped" ]; then
    ok "USR1 to the batch shell of a real run: checkpoint ($stopped), exit 75, scontrol requeue 33"
  else
    notok "USR1 to the batch shell of a real run: checkpoint, exit 75, scontrol requeue 33 (rc $rc, checkpoints: $(ls "$tmp/sig/checkpoints" 2>/dev/null | tr '\n' ' '))"
    tail -n 20 "$tmp/out1"
  fi
  reset_log
  s=$(echo "$stopped" | sed 's/step_0*\([0-9][0-9]*\)\.h5/\1/')
  end=$((${s:-0} + 50))
  SLURM_JOB_ID=33 SLURM_RESTART_COUNT=1 GNREV=$REAL FAKE_SRUN_MODE=mpirun bash jobs/gnrev.slurm "$tmp/long.nml" \
    -P run:max_steps=$end >"$tmp/out2" 2>&1
  rc=$?
  rows=$("${PYTHON:-/usr/bin/python3}" -c "import h5py,sys; print(len(h5py.File(sys.argv[1],'r')['metrics/step']))" \
    "$tmp/sig/run.h5" 2>/dev/null)
  if [ "$rc" = 0 ] && [ -e "$tmp/sig/checkpoints/$(printf 'step_%08d.h5' "$end")" ] && [ "$rows" = $((end + 1)) ] &&
     [ ! -e "$FAKE_LOG/scontrol.args" ]; then
    ok "the requeued job continues from the checkpoint and finishes (step $end, $((end + 1)) metric rows)"
  else
    notok "the requeued job continues from the checkpoint and finishes (rc $rc, rows $rows)"
    tail -n 20 "$tmp/out2"
  fi
fi

tap_finish
