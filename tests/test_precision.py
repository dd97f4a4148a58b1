"""The two precisions side by side (make builds double in build/, make PRECISION=single float in
build-single/): each binary says which it is; 20 full-batch GN steps on Fashion-MNIST give train
losses that agree to 1e-3 relative; both write double-precision files of one format; a checkpoint
of one precision is refused by the other with a message that names both and the way out; and the
single build's memory plan is about half the double one's. Needs both builds: skipped (and counted
as skipped) when one is missing."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
import h5py  # noqa: E402
import numpy as np  # noqa: E402

import gnrun  # noqa: E402
from gnrun import MPIFLAGS, MPIRUN, ROOT, check, deck_text, finish, metrics, plan  # noqa: E402

plan(7)
BIN = {"double": os.path.join(ROOT, "build", "gnrev_mpi"), "single": os.path.join(ROOT, "build-single", "gnrev_mpi")}
FMNIST = "/usr/share/datasets/fashion-mnist"
missing = [p for p in BIN.values() if not os.access(p, os.X_OK)]
if missing or not os.path.isdir(FMNIST):
    why = f"needs both builds (make && make PRECISION=single): missing {' '.join(missing)}" if missing else \
        f"needs Fashion-MNIST in {FMNIST}"
    for name in ("test_version_names_each_precision", "test_single_and_double_train_losses_agree_to_1e-3_over_20_gn_steps",
                 "test_both_precisions_write_double_datasets", "test_single_build_refuses_a_double_checkpoint",
                 "test_double_build_refuses_a_single_checkpoint", "test_a_refused_restart_leaves_the_checkpoint_as_it_was",
                 "test_single_precision_plans_about_half_the_memory"):
        gnrun.skip(name, why)
    finish()

tmp = gnrun.scratch("gnrev_precision_")


def run(binary, deck, np_=2, args=()):
    path = os.path.join(tmp, f"deck_{len(os.listdir(tmp))}.nml")
    with open(path, "w") as f:
        f.write(deck_text(deck))
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    return subprocess.run([MPIRUN, *MPIFLAGS, "-np", str(np_), binary, *args, path], capture_output=True, text=True,
                          timeout=600, env=env)


def deck(out, steps=20):
    return {
        "run": {"name": "precision", "out_dir": out, "seed": 42, "epochs": steps, "log_every": 5},
        "data": {"source": "fashion-mnist", "path": FMNIST, "n_train": 256, "n_test": 100, "batch_size": 0},
        "model": {"blocks": 2, "hidden": 1000},
        "optim": {"method": "gn", "lr": 0.5},
        "checkpoint": {"every": 10, "keep": 3},
        "diagnostics": {"eval_every": 0},
    }


versions = {p: subprocess.run([b, "--version"], capture_output=True, text=True).stdout for p, b in BIN.items()}
check(all(re.search(rf"^precision: {p}\b", v, re.M) for p, v in versions.items()),
      "test_version_names_each_precision", str(versions))

out = {p: os.path.join(tmp, p) for p in BIN}
procs = {p: run(BIN[p], deck(out[p])) for p in BIN}
ok = all(q.returncode == 0 for q in procs.values())
loss = {p: metrics(out[p])["train_loss"] if ok else np.full(21, np.nan) for p in BIN}
rel_diff = np.max(np.abs(loss["single"] - loss["double"]) / np.abs(loss["double"])) if ok else np.inf
print(f"# train loss, double: {np.array2string(loss['double'][::5], precision=6)}")
print(f"# train loss, single: {np.array2string(loss['single'][::5], precision=6)}; largest relative difference "
      f"{rel_diff:.2e}")
# The losses must also have fallen (a run that did nothing in both builds would agree too).
check(ok and rel_diff <= 1e-3 and loss["double"][-1] < 0.5 * loss["double"][0],
      "test_single_and_double_train_losses_agree_to_1e-3_over_20_gn_steps",
      f"rc {[q.returncode for q in procs.values()]} diff {rel_diff} {procs['single'].stderr[-300:]}")

dtypes = set()
for p in BIN:
    ck = sorted(os.listdir(os.path.join(out[p], "checkpoints")))[-1] if ok else None
    if ck:
        with h5py.File(os.path.join(out[p], "checkpoints", ck), "r") as f:
            dtypes |= {(p, f["model/block_000/F/W"].dtype.str, f.attrs.get("precision", b"").__str__())}
check(ok and {d[1] for d in dtypes} == {"<f8"} and {(d[0], d[0] in d[2]) for d in dtypes} == {("double", True),
                                                                                              ("single", True)},
      "test_both_precisions_write_double_datasets", str(dtypes))

# A checkpoint continues only in its own precision (restart = 'auto' finds it; epochs raised).
snap = {}
for p in BIN:
    ck = os.path.join(out[p], "checkpoints")
    snap[p] = {f: open(os.path.join(ck, f), "rb").read() for f in os.listdir(ck)} if ok else {}
refused = {}
for p, other in (("single", "double"), ("double", "single")):
    q = run(BIN[p], deck(out[other], steps=25))
    refused[p] = q
    check(q.returncode == 2 and f"written by a {other}-precision build" in q.stderr and f"this one is {p} precision"
          in q.stderr and f"PRECISION={other}" in q.stderr and q.stderr.count("gnrev_mpi:") == 1,
          f"test_{p}_build_refuses_a_{other}_checkpoint", f"rc {q.returncode}: {q.stderr[-500:]}")
after = {p: {f: open(os.path.join(out[p], "checkpoints", f), "rb").read()
             for f in os.listdir(os.path.join(out[p], "checkpoints"))} for p in BIN} if ok else {}
check(ok and after == snap, "test_a_refused_restart_leaves_the_checkpoint_as_it_was",
      str({p: sorted(after.get(p, {})) for p in BIN}))

# --check's memory plan: the parameters, optimizer state and workspaces are gn_real.
plans = {}
for p in BIN:
    d = deck(os.path.join(tmp, f"plan_{p}"))
    d["model"]["hidden"] = 8000
    d["data"]["n_train"] = 1024
    q = run(BIN[p], d, np_=2, args=("--check",))
    m = re.search(r"total per node\s+([\d.]+)\s+(MiB|GiB)", q.stdout)
    plans[p] = float(m.group(1)) * (1024 if m.group(2) == "GiB" else 1) if m else np.nan
ratio = plans["single"] / plans["double"]
print(f"# --check total per node: double {plans['double']:.0f} MiB, single {plans['single']:.0f} MiB "
      f"(ratio {ratio:.2f})")
check(0.45 <= ratio <= 0.6, "test_single_precision_plans_about_half_the_memory", str(plans))
finish()
