"""Never lose a run: a run split by a restart equals the uninterrupted run bit for bit (np = 2);
a restart on another rank count continues it to rounding; a signal stops every rank with a
checkpoint; a rank killed while writing a checkpoint leaves the previous one usable; damaged,
foreign and other-version checkpoints are refused or skipped with a clear message."""
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
import h5py  # noqa: E402
import numpy as np  # noqa: E402

from gnrun import BINARY, MPIFLAGS, MPIRUN, check, final_theta, finish, plan, rel, run, synthetic_deck  # noqa: E402

import gnrun  # noqa: E402
plan(18)
tmp = gnrun.scratch("gnrev_restart_")
TIMING = {"wall_s", "step_s"}  # wall-clock columns cannot repeat


def metrics_equal(a, b):
    with h5py.File(os.path.join(a, "run.h5"), "r") as fa, h5py.File(os.path.join(b, "run.h5"), "r") as fb:
        for group in ("metrics", "gn"):
            if group not in fa:
                continue
            for k in fa[group]:
                if k in TIMING:
                    continue
                x, y = fa[group][k][...], fb[group][k][...]
                if x.shape != y.shape or not np.array_equal(x, y, equal_nan=True):
                    return False, f"{group}/{k}: {x.shape} vs {y.shape}"
    return True, ""


def newest(out):
    ck = os.path.join(out, "checkpoints")
    return sorted(f for f in os.listdir(ck) if f.startswith("step_") and f.endswith(".h5"))


cases = [("gn", 0.3, {}), ("sgd", 0.3, {"optim__momentum": 0.9}), ("adam", 0.01, {}),
         ("gn", 0.2, {"data__batch_size": 40}), ("sgd", 0.3, {"data__batch_size": 40, "optim__momentum": 0.5}),
         ("adam", 0.01, {"data__batch_size": 40})]
for method, lr, extra in cases:
    label = method + (" mini-batch" if "data__batch_size" in extra else " full batch")
    full = os.path.join(tmp, f"full_{method}_{len(extra)}")
    part = os.path.join(tmp, f"part_{method}_{len(extra)}")
    p1 = run(synthetic_deck(full, method=method, lr=lr, steps=8, **extra), np_=2)
    p2 = run(synthetic_deck(part, method=method, lr=lr, steps=4, **extra), np_=2)
    p3 = run(synthetic_deck(part, method=method, lr=lr, steps=8, **extra), np_=2)
    ok = p1.returncode == 0 and p2.returncode == 0 and p3.returncode == 0 and "restart: continuing" in p3.stdout
    same_w = ok and np.array_equal(final_theta(full), final_theta(part))
    same_m, why = metrics_equal(full, part) if ok else (False, p3.stderr[-400:])
    check(same_w and same_m, f"test_restart_is_bit_identical ({label}, np=2)", why)

# Another rank count: 4 steps on 2 ranks, 4 more on 3 ranks, against 8 on 2.
full = os.path.join(tmp, "full_gn_0")
part = os.path.join(tmp, "np23")
run(synthetic_deck(part, method="gn", lr=0.3, steps=4), np_=2)
p = run(synthetic_deck(part, method="gn", lr=0.3, steps=8), np_=3)
r = rel(final_theta(part), final_theta(full)) if p.returncode == 0 else 1.0
check(r < gnrun.tol(1e-10), "test_restart_on_another_rank_count_continues_to_rounding", f"rel {r:.2e} {p.stderr[-300:]}")
with h5py.File(os.path.join(part, "run.h5"), "r") as f:
    check(len(f["metrics/step"]) == 9 and "step 4 on 3 ranks" in f.attrs["restarts"],
          "test_restart_truncates_and_continues_the_metric_series")

# Signals: SIGUSR1 to mpirun is forwarded; every rank stops after a step with a checkpoint, exit 75.
sig_out = os.path.join(tmp, "signal")
deck = synthetic_deck(sig_out, method="gn", lr=0.05, steps=100000, data__synthetic_train=600,
                      model__hidden=300, data__batch_size=100)
deck["run"]["log_every"] = 50
deckfile = os.path.join(tmp, "signal.nml")
from gnrun import deck_text  # noqa: E402
with open(deckfile, "w") as f:
    f.write(deck_text(deck))
for signame, sig, expect in (("SIGUSR1", signal.SIGUSR1, 75), ("SIGTERM", signal.SIGTERM, None)):
    shutil.rmtree(sig_out, ignore_errors=True)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen([MPIRUN, *MPIFLAGS, "-np", "2", BINARY, deckfile], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    t0 = time.time()
    while time.time() - t0 < 60 and not os.path.exists(os.path.join(sig_out, "run.h5")):
        time.sleep(0.2)
    time.sleep(1.5)
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    files = newest(sig_out)
    stopped = err.count(f"{signame} received: stopped after step") == 1
    # mpirun returns 1 when it was itself sent SIGTERM (Open MPI), 75 otherwise (docs/operations.md).
    code_ok = proc.returncode == expect if expect is not None else proc.returncode != 0
    check(stopped and code_ok and len(files) >= 2, f"test_{signame.lower()}_stops_all_ranks_with_a_checkpoint",
          f"rc={proc.returncode} files={files} err={err[-300:]}")
# ...and the same command continues from there to the end.
stop_step = int(newest(sig_out)[-1][5:13])
deck["run"]["max_steps"] = stop_step + 3
p = run(deck, np_=2, deck_path=deckfile)
straight = os.path.join(tmp, "signal_straight")
deck2 = dict(deck, run=dict(deck["run"], out_dir=straight))
p2 = run(deck2, np_=2)
ok = p.returncode == 0 and p2.returncode == 0
check(ok and np.array_equal(final_theta(sig_out), final_theta(straight)),
      "test_run_stopped_by_signal_then_restarted_equals_uninterrupted_run", p.stderr[-300:])

# A rank killed (SIGKILL) half-way through writing a checkpoint: the previous one stays usable.
kill_out = os.path.join(tmp, "killed")
kd = synthetic_deck(kill_out, method="sgd", lr=0.3, steps=9, checkpoint__every=3)
env_kill = {"GNREV_FAULT_KILL_IN_CHECKPOINT": "6"}
os.environ.update(env_kill)
pk = run(kd, np_=2)
del os.environ["GNREV_FAULT_KILL_IN_CHECKPOINT"]
files = newest(kill_out)
leftovers = [f for f in os.listdir(os.path.join(kill_out, "checkpoints")) if ".tmp" in f]
check(pk.returncode != 0 and files[-1] == "step_00000003.h5" and leftovers,
      "test_kill_during_checkpoint_leaves_previous_checkpoint", f"rc={pk.returncode} files={files} tmp={leftovers}")
pr = run(kd, np_=2)
ref_out = os.path.join(tmp, "killed_ref")
run(synthetic_deck(ref_out, method="sgd", lr=0.3, steps=9, checkpoint__every=3), np_=2)
check(pr.returncode == 0 and "step_00000003.h5" in pr.stdout and np.array_equal(final_theta(kill_out), final_theta(ref_out)),
      "test_auto_restart_after_kill_uses_previous_checkpoint_and_finishes_identically", pr.stdout[-300:] + pr.stderr[-300:])

# Damaged newest checkpoint: skipped with a warning, the previous one is used.
dmg = os.path.join(tmp, "damaged")
run(synthetic_deck(dmg, method="adam", lr=0.01, steps=6, checkpoint__every=2), np_=2)
last = os.path.join(dmg, "checkpoints", newest(dmg)[-1])
other = os.path.join(tmp, "other_deck_step.h5")
shutil.copy(os.path.join(dmg, "checkpoints", newest(dmg)[-2]), other)
size = os.path.getsize(last)
with open(last, "r+b") as f:
    f.truncate(size // 2)
truncated = os.path.join(tmp, "truncated.h5")
shutil.copy(last, truncated)
p = run(synthetic_deck(dmg, method="adam", lr=0.01, steps=8, checkpoint__every=2), np_=2)
check(p.returncode == 0 and "skipping damaged checkpoint" in p.stderr and "step_00000004.h5" in p.stdout,
      "test_truncated_newest_checkpoint_is_skipped_for_the_previous", p.stdout[-300:] + p.stderr[-300:])

# A truncated checkpoint named explicitly is refused (I/O error, exit 3).
p = run(synthetic_deck(os.path.join(tmp, "explicit"), method="adam", lr=0.01, steps=8, checkpoint__restart=truncated), np_=2)
check(p.returncode == 3 and "gnrev_mpi: I/O error" in p.stderr and p.stderr.count("I/O error") == 1,
      "test_truncated_checkpoint_is_refused_with_one_message", f"rc={p.returncode} {p.stderr[-300:]}")

# A checkpoint of another deck (seed and width differ) is refused, naming the keys.
bad = synthetic_deck(os.path.join(tmp, "foreign"), method="adam", lr=0.01, steps=8, checkpoint__restart=other,
                     model__hidden=30)
bad["run"]["seed"] = 12
p = run(bad, np_=2)
check(p.returncode == 2 and "run:seed: 11 -> 12" in p.stderr and "model:hidden: 24 -> 30" in p.stderr,
      "test_checkpoint_of_another_deck_is_refused_naming_the_keys", p.stderr[-500:])

# A checkpoint of another format version is refused.
vers = os.path.join(tmp, "version.h5")
shutil.copy(other, vers)
with h5py.File(vers, "r+") as f:
    f.attrs["format"] = "gnrev-checkpoint-2"
p = run(synthetic_deck(os.path.join(tmp, "ver"), method="adam", lr=0.01, steps=8, checkpoint__restart=vers), np_=2)
check(p.returncode == 2 and "format 'gnrev-checkpoint-2'" in p.stderr, "test_checkpoint_of_another_format_version_is_refused",
      p.stderr[-300:])

# Harmless deck changes are allowed and reported.
p = run(synthetic_deck(dmg, method="adam", lr=0.01, steps=9, checkpoint__every=2, diagnostics__eval_every=3), np_=2)
check(p.returncode == 0 and "diagnostics:eval_every: 1 -> 3" in p.stdout, "test_harmless_deck_changes_are_reported",
      p.stdout[-400:])
finish()
