"""gnrev_mpi --check says how a run of the deck would start in its out_dir (docs/operations.md,
"Resuming"): afresh, from the newest checkpoint that loads, or refused with the run's own message and
exit status; and it changes nothing on disk (no folder, no lock file, no rename of a damaged
checkpoint). Each verdict is set against what the real run then does with the same deck."""
import hashlib
import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
import h5py  # noqa: E402
import numpy as np  # noqa: E402

import gnrun  # noqa: E402
from gnrun import check, finish, plan, run, synthetic_deck  # noqa: E402

plan(16)
tmp = gnrun.scratch("gnrev_check_restart_")
HOST = socket.gethostname()


def deck(out, steps, **extra):
    return synthetic_deck(out, method="sgd", lr=0.1, steps=steps, checkpoint__every=2, **extra)


def ckpt(out, step):
    return os.path.join(out, "checkpoints", f"step_{step:08d}.h5")


def snapshot(d):
    """Every folder and file under d with the SHA-256 of its bytes; None when d does not exist."""
    if not os.path.exists(d):
        return None
    seen = {}
    for root, dirs, files in os.walk(d):
        rel = os.path.relpath(root, d)
        seen[rel + "/"] = "folder"
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                seen[os.path.join(rel, name)] = hashlib.sha256(f.read()).hexdigest()
    return seen


def verdicts(p):
    return [line for line in p.stdout.splitlines() if line.startswith("restart: would")]


def refusal(p):
    """--check's refusal: the text after "restart: would refuse: " to the end of stdout."""
    at = p.stdout.find("restart: would refuse: ")
    return p.stdout[at + len("restart: would refuse: "):].rstrip("\n") if at >= 0 else None


def run_message(p):
    """A run's error message on stderr, without "gnrev_mpi: <kind>: " and mpirun's report below it."""
    kinds = "input error|I/O error|out of memory|numerical error|library error|MPI error|internal error"
    m = re.search(rf"^gnrev_mpi: (?:{kinds}): (.*?)(?=\n-{{10}}|\Z)", p.stderr, re.S | re.M)
    return m.group(1).rstrip("\n") if m else None


def check_run(d, np_=2):
    """--check on d, with the snapshots of out_dir before and after it."""
    out = d["run"]["out_dir"]
    before = snapshot(out)
    p = run(d, np_=np_, args=("--check",))
    p.unchanged = snapshot(out) == before
    p.before = before
    return p


# ---- a fresh out_dir ------------------------------------------------------------------------------
fresh = os.path.join(tmp, "fresh")
p = check_run(deck(fresh, 4))
check(p.returncode == 0 and verdicts(p) == [f"restart: would start fresh: no checkpoint in {fresh}/checkpoints"]
      and not os.path.exists(fresh),
      "test_check_on_a_missing_out_dir_says_start_fresh_and_creates_nothing",
      f"rc={p.returncode} verdicts={verdicts(p)} exists={os.path.exists(fresh)} {p.stderr[-300:]}")
# The memory plan says, once, that it is sized for the ranks --check runs on.
check(p.stdout.count("sized for the ranks this --check runs on") == 1,
      "test_check_says_once_that_memory_is_sized_for_its_own_ranks", p.stdout[:600])
os.makedirs(fresh)
p = check_run(deck(fresh, 4))
check(p.returncode == 0 and len(verdicts(p)) == 1 and "would start fresh" in verdicts(p)[0]
      and p.unchanged and os.listdir(fresh) == [],
      "test_check_on_an_empty_out_dir_says_start_fresh_and_leaves_no_lock",
      f"rc={p.returncode} {verdicts(p)} {os.listdir(fresh)}")

# ---- after a run with checkpoints: resume from the newest ----------------------------------------
done = os.path.join(tmp, "done")
first = run(deck(done, 4), np_=2)
gnrun.require(first.returncode == 0 and os.path.exists(ckpt(done, 4)), f"a first run of 4 steps: {first.stderr[-300:]}")
p = check_run(deck(done, 4))
check(p.returncode == 0 and verdicts(p) == [
          f"restart: would resume from step 4 ({ckpt(done, 4)}): the run is complete, nothing left to do"]
      and p.unchanged,
      "test_check_after_the_final_step_says_the_run_is_complete", f"rc={p.returncode} {verdicts(p)} {p.stderr[-300:]}")
p = check_run(deck(done, 8))
real = run(deck(done, 8), np_=2)
with h5py.File(os.path.join(done, "run.h5"), "r") as f:
    steps = f["metrics/step"][...]
check(p.returncode == 0 and verdicts(p) == [f"restart: would resume from step 4 ({ckpt(done, 4)})"] and p.unchanged
      and real.returncode == 0 and f"restart: continuing from {ckpt(done, 4)} (step 4," in real.stdout
      and list(steps) == list(range(9)),
      "test_check_says_resume_from_the_newest_step_and_the_run_then_resumes_there",
      f"check rc={p.returncode} {verdicts(p)}; run rc={real.returncode} {real.stdout[-300:]} steps={steps}")

# restart = 'none' replaces run.h5: said so.
p = check_run(deck(done, 8, checkpoint__restart="none"))
check(p.returncode == 0 and verdicts(p) == ["restart: would start fresh: restart = 'none': run.h5 would be replaced"]
      and p.unchanged, "test_check_with_restart_none_says_run_h5_would_be_replaced", f"{verdicts(p)} {p.stderr[-300:]}")


# ---- keys that change results: refused as the run refuses ------------------------------------------
def same_refusal(label, d, key):
    """--check refuses naming key, with the message and exit status the real run then gives."""
    p = check_run(d)
    r = run(d, np_=2)
    said = refusal(p)
    check(p.returncode != 0 and p.returncode == r.returncode and len(verdicts(p)) == 1 and said is not None
          and key in said and said == run_message(r) and p.unchanged,
          f"test_check_refuses_{label}_as_the_run_does",
          f"check rc={p.returncode} run rc={r.returncode}\n  check: {said!r}\n  run:   {run_message(r)!r}")


changed_seed = deck(done, 12)
changed_seed["run"]["seed"] = 12
same_refusal("a_changed_seed", changed_seed, "run:seed: 11 -> 12")
same_refusal("a_changed_lr_under_auto", deck(done, 12, optim__lr=0.05), "optim:lr: 0.1 -> 0.05")

# ---- a damaged newest checkpoint: the previous one, and the damaged file left as it is ------------
hurt = os.path.join(tmp, "damaged")
gnrun.require(run(deck(hurt, 6), np_=2).returncode == 0 and os.path.exists(ckpt(hurt, 6)), "a run of 6 steps")
with open(ckpt(hurt, 6), "r+b") as f:
    f.truncate(os.path.getsize(ckpt(hurt, 6)) // 2)
p = check_run(deck(hurt, 8))
check(p.returncode == 0 and verdicts(p) == [f"restart: would resume from step 4 ({ckpt(hurt, 4)})"]
      and ckpt(hurt, 6) in p.stderr,
      "test_check_over_a_damaged_newest_checkpoint_says_resume_from_the_previous",
      f"rc={p.returncode} {verdicts(p)} {p.stderr[-400:]}")
# It read the damaged file (its verdict skips it) and left it as it was, bytes and name.
said = re.fullmatch(r"restart: would resume from step (\d+) \((.*)\)", verdicts(p)[0]) if len(verdicts(p)) == 1 else None
check(said is not None and p.unchanged and os.path.exists(ckpt(hurt, 6))
      and not os.path.exists(ckpt(hurt, 6) + ".damaged"),
      "test_check_leaves_the_damaged_checkpoint_in_place_unrenamed",
      f"verdicts={verdicts(p)} before={p.before} after={snapshot(hurt)}")
real = run(deck(hurt, 8), np_=2)
check(said is not None and real.returncode == 0
      and f"restart: continuing from {said.group(2)} (step {said.group(1)}," in real.stdout
      and os.path.exists(ckpt(hurt, 6) + ".damaged"),
      "test_the_run_then_resumes_where_check_said_and_sets_the_damaged_one_aside",
      f"rc={real.returncode} {real.stdout[-300:]} {real.stderr[-300:]}")

# ---- the lock -------------------------------------------------------------------------------------
# A lock held by a process that runs (this test itself): refused naming it, the lock left as it was.
held = os.path.join(tmp, "held")
gnrun.require(run(deck(held, 2), np_=2).returncode == 0, "a run of 2 steps")
with open(os.path.join(held, "gnrev.lock"), "w") as f:
    f.write(f"gnrev_mpi lock\nhost={HOST}\npid={os.getpid()}\n")
p = check_run(deck(held, 4))
check(p.returncode == 2 and f"pid {os.getpid()}" in (refusal(p) or "") and "is in use" in (refusal(p) or "")
      and p.unchanged, "test_check_refuses_an_out_dir_locked_by_a_running_process_and_leaves_the_lock",
      f"rc={p.returncode} {verdicts(p)} {p.stderr[-300:]}")
# A stale lock (a process that has ended): a run would take it over; --check says so and leaves it.
gone = subprocess.Popen(["true"])
gone.wait()
with open(os.path.join(held, "gnrev.lock"), "w") as f:
    f.write(f"gnrev_mpi lock\nhost={HOST}\npid={gone.pid}\n")
p = check_run(deck(held, 4))
check(p.returncode == 0 and verdicts(p) == [f"restart: would resume from step 2 ({ckpt(held, 2)})"]
      and "stale lock" in p.stderr and p.unchanged,
      "test_check_over_a_stale_lock_says_resume_and_leaves_the_lock", f"rc={p.returncode} {verdicts(p)} {p.stderr[-300:]}")

# ---- run.h5 of another run, and 'auto' over rows without a checkpoint ------------------------------
other = os.path.join(tmp, "other")
gnrun.require(run(deck(other, 2), np_=2).returncode == 0, "another run of 2 steps")
foreign = os.path.join(tmp, "foreign")
gnrun.require(run(deck(foreign, 2), np_=2).returncode == 0, "a run of 2 steps")
with open(os.path.join(other, "run.h5"), "rb") as src, open(os.path.join(foreign, "run.h5"), "wb") as dst:
    dst.write(src.read())
same_refusal("a_foreign_run_h5", deck(foreign, 4), "belongs to another run")

lost = os.path.join(tmp, "lost")
gnrun.require(run(deck(lost, 2), np_=2).returncode == 0, "a run of 2 steps")
for name in os.listdir(os.path.join(lost, "checkpoints")):
    os.remove(os.path.join(lost, "checkpoints", name))
same_refusal("auto_over_run_h5_rows_without_a_checkpoint", deck(lost, 4), "will not start afresh")

# ---- data that changed under the same path ------------------------------------------------------
data = os.path.join(tmp, "data.h5")


def write_data(x):
    gnrun.write_hdf5_data(data, x)


x = np.random.default_rng(3).standard_normal((96, 16)).astype(np.float32)
write_data(x)
hdeck = deck(os.path.join(tmp, "data_run"), 2, data__source="hdf5", data__path=data)
for key in ("dim", "classes", "synthetic_train", "synthetic_test"):
    del hdeck["data"][key]
gnrun.require(run(hdeck, np_=2).returncode == 0, "a run on HDF5 data")
x[5, 2] += 1.0
write_data(x)
hdeck["run"]["max_steps"] = 4
same_refusal("changed_data", hdeck, "the data differ from those checkpoint")
finish()
