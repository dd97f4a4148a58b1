"""Whole runs of gnrev_mpi on synthetic data: the loss falls, outputs read back with h5py, and
weights after 5 steps agree across 1, 2, 3 and 4 ranks (SGD, Adam, GN)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
import h5py  # noqa: E402
import numpy as np  # noqa: E402

from gnrun import check, finish, metrics, final_theta, plan, rel, run, synthetic_deck  # noqa: E402

import gnrun  # noqa: E402
plan(14)
tmp = gnrun.scratch("gnrev_train_")

# Training loss falls on synthetic data, for each optimizer.
for method, lr in (("sgd", 0.5), ("adam", 0.01), ("gn", 0.5)):
    out = os.path.join(tmp, f"falls_{method}")
    p = run(synthetic_deck(out, method=method, lr=lr, steps=15), np_=2)
    ok = p.returncode == 0
    m = metrics(out) if ok else {}
    loss = m.get("train_loss", np.array([np.nan]))
    check(ok and loss[-2] < 0.7 * loss[0], f"test_training_loss_falls_on_synthetic_data ({method})",
          f"rc={p.returncode} loss={loss[:3]}...{loss[-2:]} {p.stderr[-500:]}")

# Outputs: run.h5 and checkpoints exist with the documented layout.
out = os.path.join(tmp, "falls_gn")
with h5py.File(os.path.join(out, "run.h5"), "r") as f:
    check(f.attrs["format"] == "gnrev-run-1" and int(f.attrs["nranks"]) == 2 and "&optim" in f.attrs["deck"],
          "test_run_h5_root_attributes")
    names = {"step", "epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "wall_s",
             "batch_loss_before", "batch_loss_after"}
    check(names <= set(f["metrics"]), "test_run_h5_has_every_metric", str(sorted(f["metrics"])))
    n = len(f["metrics/step"])
    check(n == 16 and all(len(f["metrics"][k]) == n for k in names), "test_metric_series_have_one_row_per_step_plus_final",
          str(n))
    after = f["metrics/batch_loss_after"][:-1]
    before = f["metrics/batch_loss_before"][:-1]
    check(np.all(np.isfinite(after)) and np.all(after < before), "test_batch_change_recorded_and_gn_lowers_batch_loss")
    check(f["metrics/train_loss"].attrs["description"] != "", "test_metrics_are_described")
ck = os.path.join(out, "checkpoints")
files = sorted(os.listdir(ck))
check("step_00000000.h5" in files and "step_00000015.h5" in files and not any(".tmp" in x for x in files),
      "test_checkpoints_step0_and_final_written_atomically", str(files))
with h5py.File(os.path.join(ck, "step_00000015.h5"), "r") as f:
    U = f["model/U"][...]
    ok = f.attrs["format"] == "gnrev-checkpoint-1" and int(f.attrs["step"]) == 15
    ok = ok and f["model/block_000/F/C"].shape == (8, 24) and f["model/block_001/G/W"].shape == (24, 8)
    ok = ok and f["model/block_001/G/b"].shape == (8,) and U.shape == (16, 4)
    check(ok and np.allclose(U.T @ U, np.eye(4), atol=gnrun.tol(1e-13)), "test_checkpoint_layout_and_orthonormal_U")

# Rank-count invariance of the weights after 5 steps.
for method, lr, extra in (("sgd", 0.3, {"optim__momentum": 0.9}), ("adam", 0.01, {}), ("gn", 0.5, {}),
                          ("sgd", 0.3, {"data__batch_size": 40})):
    ref = None
    worst = 0.0
    ok = True
    for np_ in (1, 2, 3, 4):
        out = os.path.join(tmp, f"np_{method}_{np_}_{sorted(extra.items())}".replace(" ", ""))
        p = run(synthetic_deck(out, method=method, lr=lr, steps=5, **extra), np_=np_)
        if p.returncode != 0:
            ok = False
            print(p.stderr[-800:])
            break
        th = final_theta(out)
        if ref is None:
            ref = th
        else:
            worst = max(worst, rel(th, ref))
    label = method + (" mini-batch" if "data__batch_size" in extra else "") + (" momentum" if "optim__momentum" in extra else "")
    check(ok and worst < gnrun.tol(1e-10), f"test_weights_after_5_steps_same_on_np_1_2_3_4 ({label})", f"worst rel {worst:.2e}")

finish()
