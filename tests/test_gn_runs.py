"""Whole GN runs: GN beats SGD and Adam in full batch on 256 Fashion-MNIST samples; the tractable
right-inverse step and the Moore-Penrose step (gn_reference) give losses that agree to O(lr)
(Theorem 4.3); every pseudo-inverse kind runs; ViViT's step trains, and its bootstrap damping is
the smallest candidate for a single sample and a candidate of the step's GGN on mini-batches; a
non-finite update stops the run with the step named and a last good state saved whose loss the
run measured."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
import numpy as np  # noqa: E402

from gnrun import check, finish, metrics, plan, run, synthetic_deck  # noqa: E402

import gnrun  # noqa: E402
plan(12)
tmp = gnrun.scratch("gnrev_gn_")
FMNIST = "/usr/share/datasets/fashion-mnist"

# GN vs SGD vs Adam, full batch, 256 Fashion-MNIST samples, 20 steps.
final = {}
for method, lr in (("gn", 0.5), ("sgd", 0.1), ("adam", 1e-3)):
    out = os.path.join(tmp, f"fm_{method}")
    deck = {
        "run": {"name": method, "out_dir": out, "seed": 42, "epochs": 20, "log_every": 5},
        "data": {"source": "fashion-mnist", "path": FMNIST, "n_train": 256, "n_test": 100, "batch_size": 0},
        "model": {"blocks": 2, "hidden": 1000},
        "optim": {"method": method, "lr": lr},
        "diagnostics": {"eval_every": 0},
    }
    p = run(deck, np_=2, timeout=300)
    final[method] = metrics(out)["train_loss"][-1] if p.returncode == 0 else np.nan
    if p.returncode != 0:
        print(p.stderr[-600:])
print(f"# final training loss after 20 full-batch steps: {final}")
check(final["gn"] < 0.9 * min(final["sgd"], final["adam"]),
      "test_gn_reaches_lower_training_loss_than_sgd_and_adam_on_fashion_mnist", str(final))

# Right inverse (tractable) vs Moore-Penrose (gn_reference): |L_tr - L_mp| shrinks with lr.
# Features of full row rank (hp >= n, nonlinear blocks), Assumption 4.1 of the paper.
diffs = []
for lr in (0.2, 0.1, 0.05):
    losses = []
    for ref in (False, True):
        out = os.path.join(tmp, f"thm_{lr}_{ref}")
        d = synthetic_deck(out, method="gn", lr=lr, steps=4, data__synthetic_train=20, model__hidden=40,
                           model__linear_first_block=False, model__activation="tanh", optim__rtol=1e-8,
                           optim__atol=1e-12, optim__gn_reference=ref, model__init_std=0.2)
        p = run(d, np_=2)
        losses.append(metrics(out)["train_loss"] if p.returncode == 0 else np.full(5, np.nan))
        if p.returncode != 0:
            print(p.stderr[-500:])
    diffs.append(float(np.max(np.abs(losses[0] - losses[1]))))
print(f"# max |L_tractable - L_moore_penrose| over 4 steps for lr 0.2, 0.1, 0.05: {diffs}")
check(diffs[0] > diffs[1] > diffs[2] and diffs[2] < 0.6 * diffs[1] and diffs[1] < 0.6 * diffs[0],
      "test_tractable_and_moore_penrose_gn_losses_agree_to_O_lr", str(diffs))

# Every pseudo-inverse kind trains, wide and tall.
for pinv, extra in (("gram", {}), ("svd", {}), ("damped", {"optim__damping": 1e-3}),
                    ("gram", {"model__hidden": 30}), ("svd", {"model__hidden": 30})):
    out = os.path.join(tmp, f"pinv_{pinv}_{len(extra)}")
    hidden = extra.get("model__hidden", 120)
    e = dict(extra, model__hidden=hidden)
    p = run(synthetic_deck(out, method="gn", lr=0.5, steps=6, optim__pinv=pinv, **e), np_=3)
    ok = p.returncode == 0
    loss = metrics(out)["train_loss"] if ok else [1, 1]
    tall = "tall case" in p.stdout
    check(ok and loss[-1] < 0.8 * loss[0] and tall == (hidden + 1 < 96),
          f"test_gn_trains_with_pinv_{pinv} ({'tall' if hidden + 1 < 96 else 'wide'})", p.stderr[-300:])

# gn_vivit (ViViT damped Newton step): trains in full batch with constant damping.
import h5py  # noqa: E402
out = os.path.join(tmp, "vivit_const")
p = run(synthetic_deck(out, method="gn_vivit", lr=0.5, steps=5, optim__damping=1e-3,
                       diagnostics__ggn_top_k=8, data__synthetic_train=32), np_=2)
loss = metrics(out)["train_loss"] if p.returncode == 0 else [1, 1]
check(p.returncode == 0 and loss[-1] < 0.9 * loss[0], "test_gn_vivit_constant_damping_trains_full_batch",
      f"{loss} {p.stderr[-300:]}")


def vivit_damping_and_lambda_ref(out, k):
    """The damping recorded per direction and step (k x steps) and, from the GGN diagnostic of the
    same step (same batch, same weights), lambda_ref: the mean of the top-k lambda_k (steps)."""
    with h5py.File(os.path.join(out, "run.h5"), "r") as f:
        damp = np.array([f["vivit"][f"damping_{i:03d}"][...] for i in range(k)])
        ggn_steps = f["ggn/step"][...]
        lam_ref = f["ggn/lambda_mean"][:, :k].mean(axis=1)
        steps = f["metrics/step"][:-1]
    return damp, lam_ref, np.array_equal(ggn_steps, steps)


# One training sample: every bootstrap resample is that sample, nothing is noise, and the rule of
# ViViT section 4.2 picks the smallest candidate damping, 1e-6 lambda_ref, in every direction.
out = os.path.join(tmp, "vivit_one_sample")
p = run(synthetic_deck(out, method="gn_vivit", lr=0.5, steps=4, optim__damping_mode="bootstrap",
                       diagnostics__ggn_top_k=3, diagnostics__ggn_every=1, diagnostics__ggn_samples=1,
                       data__synthetic_train=1, diagnostics__eval_every=0), np_=2)
ok, detail = p.returncode == 0, p.stderr[-300:]
if ok:
    damp, lam_ref, aligned = vivit_damping_and_lambda_ref(out, 3)
    ratio = damp / lam_ref[None, :damp.shape[1]]
    ok = aligned and damp.shape == (3, 4) and np.allclose(ratio, 1e-6, rtol=1e-12, atol=0)
    detail = f"damping / lambda_ref = {ratio}"
check(ok, "test_gn_vivit_bootstrap_picks_the_smallest_damping_for_a_single_sample", detail)

# Mini-batches of 24: the damping recorded for each step and direction is a candidate
# lambda_ref 10^j (j = -6..6) of the GGN the diagnostic measured on that step's batch.
out = os.path.join(tmp, "vivit_boot")
p = run(synthetic_deck(out, method="gn_vivit", lr=0.5, steps=5, optim__damping_mode="bootstrap",
                       diagnostics__ggn_top_k=3, data__batch_size=24, diagnostics__ggn_every=1,
                       diagnostics__ggn_samples=24), np_=2)
ok, detail = p.returncode == 0, p.stderr[-300:]
if ok:
    damp, lam_ref, aligned = vivit_damping_and_lambda_ref(out, 3)
    e = np.log10(damp / lam_ref[None, :damp.shape[1]])
    ok = aligned and damp.shape == (3, 5) and np.all(np.abs(e - np.round(e)) < 1e-9) and np.all(np.abs(e) <= 6)
    detail = f"log10(damping / lambda_ref) = {e}"
check(ok, "test_gn_vivit_bootstrap_records_a_candidate_damping_of_each_steps_ggn", detail)

# A non-finite update stops the run, names the step, and keeps the last good state: the checkpoint
# the message names holds finite weights whose loss was measured (row `step` of /metrics) and finite.
out = os.path.join(tmp, "blowup")
p = run(synthetic_deck(out, method="sgd", lr=1e300, steps=5), np_=2)
saved = re.search(r"is saved as (\S+/step_(\d{8})\.h5)", p.stderr)
good = False
if saved and os.path.exists(saved.group(1)):
    with h5py.File(saved.group(1), "r") as f:
        weights = [f["model"][b][h][t][...] for b in f["model"] if b.startswith("block_") for h in ("F", "G")
                   for t in ("W", "b")]
    row_loss = metrics(out)["batch_loss_before"][int(saved.group(2))]
    good = all(np.all(np.isfinite(w)) for w in weights) and np.isfinite(row_loss)
check(p.returncode == 5 and "step 1:" in p.stderr and "not finite" in p.stderr and good
      and p.stderr.count("gnrev_mpi:") == 1,
      "test_non_finite_loss_stops_with_step_named_and_checkpoint", f"rc={p.returncode} {p.stderr[-400:]}")

# The state kept as the last good one must be a state whose loss the run measured and found finite:
# run.h5 has a row for its step with a finite loss, and the same deck resumed from that checkpoint
# for one step measures the same loss again (so the file holds the weights that were measured).
named = re.search(r"restart='([^']+\.h5)'", p.stderr) or re.search(r"saved as the checkpoint of step (\d+)", p.stderr)
ok, detail = False, f"no checkpoint named in: {p.stderr[-300:]}"
if named:
    path = named.group(1)
    if path.isdigit():
        path = os.path.join(out, "checkpoints", f"step_{int(path):08d}.h5")
    s_good = int(re.search(r"step_(\d+)\.h5$", path).group(1))
    m = metrics(out)
    rows = np.flatnonzero(m["step"] == s_good)
    recorded = float(m["train_loss"][rows[0]]) if rows.size else np.nan
    resumed = os.path.join(tmp, "blowup_resumed")
    pr = run(synthetic_deck(resumed, method="sgd", lr=1e300, steps=s_good + 1, checkpoint__restart=path), np_=2)
    again = np.nan
    if os.path.exists(os.path.join(resumed, "run.h5")):
        with h5py.File(os.path.join(resumed, "run.h5"), "r") as f:
            if "metrics" in f:
                r = np.flatnonzero(f["metrics/step"][...] == s_good)
                again = float(f["metrics/train_loss"][r[0]]) if r.size else np.nan
    ok = np.isfinite(recorded) and np.isfinite(again) and abs(again - recorded) <= 1e-12 * abs(recorded)
    detail = (f"checkpoint of step {s_good}: loss in run.h5 {recorded}, measured again from the checkpoint "
              f"{again} (rc {pr.returncode})")
check(ok, "test_non_finite_loss_keeps_a_last_good_state_whose_loss_was_measured_finite", detail)
finish()
