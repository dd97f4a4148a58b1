"""One run per out_dir, and a run's files stay its own (docs/operations.md): a second run on a busy
out_dir is refused naming the holder of its lock; a stale lock of a dead process on this host is
taken over and said so; the lock is released on every way out (end, error, stop signal)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
import h5py  # noqa: E402

import gnrun  # noqa: E402
from gnrun import check, deck_text, finish, run, synthetic_deck  # noqa: E402
gnrun.plan(15)

tmp = gnrun.scratch("gnrev_out_dir_")
HOST = socket.gethostname()


def lock_path(out):
    return os.path.join(out, "gnrev.lock")


def start(deck, np_=2):
    path = os.path.join(tmp, f"bg_{time.monotonic_ns()}.nml")
    with open(path, "w") as f:
        f.write(deck_text(deck))
    return subprocess.Popen([gnrun.MPIRUN, *gnrun.MPIFLAGS, "-np", str(np_), gnrun.BINARY, path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))


def wait_for(path, seconds=60):
    t0 = time.time()
    while time.time() - t0 < seconds and not os.path.exists(path):
        time.sleep(0.05)
    return os.path.exists(path)


def rows(out):
    with h5py.File(os.path.join(out, "run.h5"), "r") as f:
        return len(f["metrics/step"])


def long_deck(out):
    d = synthetic_deck(out, method="sgd", lr=0.05, steps=100000, data__synthetic_train=64, data__batch_size=16,
                       diagnostics__eval_every=0, diagnostics__batch_change=False)
    d["run"]["log_every"] = 50
    return d


# ---- a second run on a busy out_dir -----------------------------------------------------------
busy = os.path.join(tmp, "busy")
first = start(long_deck(busy))
started = wait_for(os.path.join(busy, "run.h5"))
held = open(lock_path(busy)).read() if os.path.exists(lock_path(busy)) else ""
# The same deck (only max_steps differs, which a continuation may change): without a lock it
# would continue the first run's step-0 checkpoint into the same run.h5.
second_deck = long_deck(busy)
second_deck["run"]["max_steps"] = 3
second = run(second_deck, np_=2)
first.send_signal(signal.SIGUSR1)
o1, e1 = first.communicate(timeout=120)
check(started and second.returncode == 2 and "is in use" in second.stderr and HOST in second.stderr and "gnrev.lock" in second.stderr
      and second.stderr.count("gnrev_mpi:") == 1,
      "test_second_run_on_a_busy_out_dir_is_refused_naming_the_holder",
      f"rc={second.returncode} lock={held!r} {second.stderr[-500:]}")
# The holder's pid in the message is a rank's, not mpirun's: it is the one in the lock file.
fields = dict(line.split("=", 1) for line in held.splitlines() if "=" in line)
check(f"pid {fields.get('pid', '?')}" in second.stderr and fields.get("host") == HOST,
      "test_lock_file_names_host_and_pid_of_the_holder", f"lock={held!r} {second.stderr[-300:]}")
ok_rows = False
try:
    n = rows(busy)
    with h5py.File(os.path.join(busy, "run.h5"), "r") as f:
        steps = f["metrics/step"][...]
    ok_rows = n >= 2 and list(steps) == list(range(n))
except Exception as e:  # noqa: BLE001 - any failure to read is the bug this guards against
    print(f"# run.h5 unreadable: {e}")
check(first.returncode == 75 and ok_rows and not os.path.exists(lock_path(busy)),
      "test_first_run_is_untouched_by_the_refused_one_and_releases_its_lock_on_a_signal",
      f"rc={first.returncode} rows_ok={ok_rows} lock={os.path.exists(lock_path(busy))} {e1[-300:]}")

# ---- stale locks ------------------------------------------------------------------------------
dead = subprocess.Popen(["true"])
dead.wait()
stale = os.path.join(tmp, "stale")
os.makedirs(stale)
with open(lock_path(stale), "w") as f:
    f.write(f"gnrev_mpi lock\nhost={HOST}\npid={dead.pid}\n")
p = run(synthetic_deck(stale, method="sgd", lr=0.05, steps=2), np_=2)
check(p.returncode == 0 and "stale lock" in p.stderr and f"pid {dead.pid}" in p.stderr
      and not os.path.exists(lock_path(stale)),
      "test_stale_lock_of_a_dead_process_on_this_host_is_reported_and_taken_over",
      f"rc={p.returncode} {p.stderr[-400:]}")

other = os.path.join(tmp, "other_host")
os.makedirs(other)
with open(lock_path(other), "w") as f:
    f.write("gnrev_mpi lock\nhost=node-that-is-not-this-one-17\npid=4242\n")
p = run(synthetic_deck(other, method="sgd", lr=0.05, steps=2), np_=2)
check(p.returncode == 2 and "node-that-is-not-this-one-17" in p.stderr and "pid 4242" in p.stderr
      and os.path.exists(lock_path(other)) and not os.path.exists(os.path.join(other, "run.h5")),
      "test_lock_held_on_another_host_is_refused_and_left_alone", f"rc={p.returncode} {p.stderr[-400:]}")

# A requeued SLURM job keeps its job id and may run on another node: the lock its killed earlier
# run left there names the same job and is taken over; another job's lock is refused.
requeued = os.path.join(tmp, "requeued")
os.makedirs(requeued)
with open(lock_path(requeued), "w") as f:
    f.write("gnrev_mpi lock\nhost=node-that-is-not-this-one-17\npid=4242\nslurm_job=9001\n")
os.environ["SLURM_JOB_ID"] = "9002"
p_other = run(synthetic_deck(requeued, method="sgd", lr=0.05, steps=2), np_=2)
os.environ["SLURM_JOB_ID"] = "9001"
p_same = run(synthetic_deck(requeued, method="sgd", lr=0.05, steps=2), np_=2)
del os.environ["SLURM_JOB_ID"]
check(p_other.returncode == 2 and "node-that-is-not-this-one-17" in p_other.stderr and p_same.returncode == 0
      and "earlier run of this SLURM job (9001)" in p_same.stderr and not os.path.exists(lock_path(requeued)),
      "test_lock_of_an_earlier_run_of_the_same_slurm_job_is_taken_over",
      f"rc={p_other.returncode},{p_same.returncode} {p_other.stderr[-200:]} {p_same.stderr[-300:]}")

# ---- released on every way out ----------------------------------------------------------------
done = os.path.join(tmp, "done")
p = run(synthetic_deck(done, method="sgd", lr=0.05, steps=2), np_=2)
check(p.returncode == 0 and os.path.isdir(done) and not os.path.exists(lock_path(done)),
      "test_lock_released_at_the_end", f"rc={p.returncode}")
failed = os.path.join(tmp, "failed")
p = run(synthetic_deck(failed, method="sgd", lr=1e300, steps=5), np_=2)
check(p.returncode == 5 and os.path.isdir(failed) and not os.path.exists(lock_path(failed)),
      "test_lock_released_after_an_error", f"rc={p.returncode} {p.stderr[-300:]}")
# ---- restart = 'auto' never starts afresh over a run it cannot continue ----------------------
def first_rows(out):
    with h5py.File(os.path.join(out, "run.h5"), "r") as f:
        return len(f["metrics/step"]), f["metrics/train_loss"][...].tolist()


lost = os.path.join(tmp, "lost_checkpoints")
run(synthetic_deck(lost, method="sgd", lr=0.1, steps=6), np_=2)
before = first_rows(lost)
shutil.rmtree(os.path.join(lost, "checkpoints"))
other_seed = synthetic_deck(lost, method="sgd", lr=0.1, steps=4)
other_seed["run"]["seed"] = 99
p = run(other_seed, np_=2)
check(p.returncode == 2 and "run.h5" in p.stderr and "7 rows" in p.stderr and "restart = 'none'" in p.stderr
      and first_rows(lost) == before,
      "test_auto_restart_without_checkpoints_refuses_to_replace_run_h5", f"rc={p.returncode} {p.stderr[-500:]}")

wrecked = os.path.join(tmp, "all_damaged")
run(synthetic_deck(wrecked, method="sgd", lr=0.1, steps=6, checkpoint__every=2), np_=2)
before = first_rows(wrecked)
ckdir = os.path.join(wrecked, "checkpoints")
names = sorted(f for f in os.listdir(ckdir) if f.endswith(".h5"))
sizes = {}
for name in names:
    path = os.path.join(ckdir, name)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    sizes[name] = os.path.getsize(path)
p = run(synthetic_deck(wrecked, method="sgd", lr=0.1, steps=8, checkpoint__every=2), np_=2)
kept = {n: os.path.getsize(os.path.join(ckdir, n + ".damaged")) for n in names
        if os.path.exists(os.path.join(ckdir, n + ".damaged"))}
check(p.returncode == 2 and "damaged" in p.stderr and first_rows(wrecked) == before,
      "test_auto_restart_with_every_checkpoint_damaged_refuses_to_replace_run_h5",
      f"rc={p.returncode} {p.stderr[-500:]}")
check(kept == sizes, "test_damaged_checkpoints_are_moved_aside_not_deleted", f"kept={kept} sizes={sizes}")

# A damaged newest checkpoint is skipped for the previous one; the continued run writes that
# step again, and the damaged file is still there beside it.
partly = os.path.join(tmp, "newest_damaged")
run(synthetic_deck(partly, method="sgd", lr=0.1, steps=6, checkpoint__every=2), np_=2)
newest = os.path.join(partly, "checkpoints", "step_00000006.h5")
with open(newest, "r+b") as f:
    f.truncate(os.path.getsize(newest) // 2)
damaged_size = os.path.getsize(newest)
p = run(synthetic_deck(partly, method="sgd", lr=0.1, steps=8, checkpoint__every=2), np_=2)
aside = newest + ".damaged"
check(p.returncode == 0 and "step_00000004.h5" in p.stdout and os.path.exists(aside)
      and os.path.getsize(aside) == damaged_size and os.path.exists(newest) and rows(partly) == 9,
      "test_damaged_newest_checkpoint_is_kept_aside_when_its_step_is_written_again",
      f"rc={p.returncode} {os.listdir(os.path.join(partly, 'checkpoints'))} {p.stderr[-300:]}")
# ---- run.h5 belongs to its run ----------------------------------------------------------------
run_a = os.path.join(tmp, "run_a")
run_b = os.path.join(tmp, "run_b")
deck_a = synthetic_deck(run_a, method="sgd", lr=0.1, steps=4, checkpoint__every=2)
run(deck_a, np_=2)
deck_b = synthetic_deck(run_b, method="sgd", lr=0.1, steps=2)
deck_b["run"]["seed"] = 12
run(deck_b, np_=2)
with h5py.File(os.path.join(run_a, "run.h5"), "r") as f:
    id_a = f.attrs.get("run_id", "")
with h5py.File(os.path.join(run_a, "checkpoints", "step_00000004.h5"), "r") as f:
    id_ck = f.attrs.get("run_id", "")
with h5py.File(os.path.join(run_b, "run.h5"), "r") as f:
    id_b = f.attrs.get("run_id", "")
check(len(id_a) == 32 and id_a == id_ck and id_b and id_b != id_a,
      "test_run_h5_and_checkpoints_carry_the_same_run_id", f"{id_a!r} {id_ck!r} {id_b!r}")
shutil.copy(os.path.join(run_b, "run.h5"), os.path.join(run_a, "run.h5"))
before = first_rows(run_a)
deck_a["run"]["max_steps"] = 6
p = run(deck_a, np_=2)
check(p.returncode == 2 and "belongs to another run" in p.stderr and first_rows(run_a) == before,
      "test_foreign_run_h5_is_refused_not_appended_to", f"rc={p.returncode} {p.stderr[-400:]}")

# Files of older versions (without run_id, nor the other attributes added with it) are continued
# with a warning, and run.h5 then gets the id.
NEWER = ("run_id", "data_fingerprint", "crc32_state", "crc32_fixed", "loss_first", "loss_min", "best_step",
         "best_loss")
old = os.path.join(tmp, "old_files")
deck_old = synthetic_deck(old, method="sgd", lr=0.1, steps=4, checkpoint__every=2)
run(deck_old, np_=2)
for path in [os.path.join(old, "run.h5")] + [os.path.join(old, "checkpoints", n)
                                             for n in os.listdir(os.path.join(old, "checkpoints"))]:
    with h5py.File(path, "r+") as f:
        for name in NEWER:
            if name in f.attrs:
                del f.attrs[name]
deck_old["run"]["max_steps"] = 6
p = run(deck_old, np_=2)
with h5py.File(os.path.join(old, "run.h5"), "r") as f:
    new_id = f.attrs.get("run_id", "")
check(p.returncode == 0 and "no run_id" in p.stderr and len(new_id) == 32 and rows(old) == 7,
      "test_files_without_run_id_continue_with_a_warning", f"rc={p.returncode} id={new_id!r} {p.stderr[-400:]}")
finish()
