"""Runs whose numbers go wrong (docs/operations.md): a loss that turns non-finite, or grows past
divergence_factor times its running minimum (and past its first value), stops the run with exit 5
and keeps the last state whose loss was measured and finite -- never the diverged weights; the
message gives the -P options that continue from there with a smaller lr, and they work; the
step-0 and best checkpoints survive the pruning of a diverging run.

The loss of a saved state is recomputed here from the checkpoint's weights with numpy (the model
of docs/output-format.md on an HDF5 data file written by this test), so "finite and measured" is
checked against something gnrev did not compute."""
import os
import re
import shlex
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
import h5py  # noqa: E402
import numpy as np  # noqa: E402

import gnrun  # noqa: E402
from gnrun import check, finish, metrics, run  # noqa: E402
gnrun.plan(11)

tmp = gnrun.scratch("gnrev_divergence_")

# ---- data and an independent model --------------------------------------------------------------
rng = np.random.default_rng(3)
X = rng.standard_normal((96, 16)).astype(np.float32)
teacher = rng.standard_normal((16, 4))
Y = np.argmax(X @ teacher, axis=1).astype(np.int32)
DATA = os.path.join(tmp, "data.h5")
with h5py.File(DATA, "w") as f:
    f["train/x"], f["train/y"] = X, Y
    f["test/x"], f["test/y"] = X[:40], Y[:40]


def np_loss(ckpt_path):
    """Mean cross-entropy over the training set at the checkpoint's weights: blocks (x1, x2) ->
    (x1 + F(x2), x2 + G(x1 + F(x2))), F(z) = [phi(z C), 1] [W; b], phi = identity in block 0
    (linear_first_block) and relu after; logits = x U. Also returns whether the weights are finite."""
    with h5py.File(ckpt_path, "r") as f:
        x = X.astype(np.float64)
        m = x.shape[1] // 2
        finite = True
        blocks = sorted(k for k in f["model"] if k.startswith("block_"))
        for i, b in enumerate(blocks):
            for s, half in enumerate(("F", "G")):
                g = f["model"][b][half]
                C, W, bias = g["C"][...], g["W"][...], g["b"][...]
                finite = finite and np.all(np.isfinite(W)) and np.all(np.isfinite(bias))
                z = x[:, m:] if s == 0 else x[:, :m]
                a = z @ C
                if i > 0:
                    a = np.maximum(a, 0)
                out = a @ W + bias
                if s == 0:
                    x = np.concatenate([x[:, :m] + out, x[:, m:]], axis=1)
                else:
                    x = np.concatenate([x[:, :m], x[:, m:] + out], axis=1)
        with np.errstate(all="ignore"):
            logits = x @ f["model/U"][...]
            top = logits.max(axis=1, keepdims=True)
            lse = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
            return float(np.mean(lse - logits[np.arange(len(Y)), Y])), bool(finite)


def deck(out, lr, steps, method="gn", **extra):
    d = {"run": {"name": "t", "out_dir": out, "seed": 11, "epochs": 1000, "max_steps": steps, "log_every": 1},
         "data": {"source": "hdf5", "path": DATA, "batch_size": 0},
         "model": {"blocks": 2, "hidden": 24, "init_std": 0.05},
         "optim": {"method": method, "lr": lr},
         "checkpoint": {"every": 1, "keep": 3},
         "diagnostics": {"eval_every": 0}}
    for key, value in extra.items():
        g, k = key.split("__")
        d.setdefault(g, {})[k] = value
    return d


def ckpt(out, step):
    return os.path.join(out, "checkpoints", f"step_{step:08d}.h5")


def saved_path(stderr):
    m = re.search(r"is saved as (\S+\.h5)", stderr)
    return m.group(1) if m else ""


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


# The numpy model agrees with gnrev's own measurements on a healthy run: the loss of theta_t on the
# full batch is row t's batch_loss_before.
good = os.path.join(tmp, "good")
p = run(deck(good, 0.5, 3), np_=2)
met = metrics(good) if p.returncode == 0 else {"batch_loss_before": [np.nan] * 4}
errs = [rel(np_loss(ckpt(good, t))[0], met["batch_loss_before"][t]) for t in (0, 1, 2)] if p.returncode == 0 else [1]
check(max(errs) < gnrun.tol(1e-10), "test_numpy_model_reproduces_the_measured_loss", f"rel errors {errs} {p.stderr[-300:]}")

# ---- a finite divergence ------------------------------------------------------------------------
wild = os.path.join(tmp, "wild")
p = run(deck(wild, 30.0, 12), np_=2)
saved = saved_path(p.stderr)
step = int(saved[-11:-3]) if saved else -1
loss, finite = np_loss(saved) if saved and os.path.exists(saved) else (np.nan, False)
met = metrics(wild)
check(p.returncode == 5 and "divergence_factor" in p.stderr and p.stderr.count("gnrev_mpi:") == 1 and step >= 1,
      "test_finite_divergence_stops_with_exit_5", f"rc={p.returncode} {p.stderr[-600:]}")
check(finite and np.isfinite(loss) and step >= 0 and rel(loss, met["batch_loss_before"][step]) < gnrun.tol(1e-10),
      "test_divergence_keeps_the_last_state_with_a_measured_finite_loss",
      f"step={step} numpy loss={loss} row={met['batch_loss_before'][step] if 0 <= step < len(met['step']) else None}")
names = os.listdir(os.path.join(wild, "checkpoints"))
later = [n for n in names if n.endswith(".h5") and int(n[5:13]) > step]
check(not later and f"step_{step + 1:08d}.h5.diverged" in names and "step_00000000.h5" in names,
      "test_diverged_checkpoints_are_set_aside_and_step_0_kept", f"step={step} {sorted(names)}")

# A run trained for 4 steps, continued from its step 4 with lr 30 and a tighter guard
# (divergence_factor = 10): the first update diverges; the message's -P options continue from
# step 4 with a tenth of that lr, and that works.
branch = os.path.join(tmp, "branch")
run(deck(branch, 0.5, 4), np_=2)
first = ["-P", "optim:lr=30", "-P", f"checkpoint:restart='{ckpt(branch, 4)}'", "-P", "run:divergence_factor=10"]
deck_path = os.path.join(tmp, "branch.nml")
p = run(deck(branch, 0.5, 12), np_=2, args=first, deck_path=deck_path)
m = re.search(r"(-P optim:lr=\S+ -P \"checkpoint:restart='[^']+'\")", p.stderr)
args = shlex.split(m.group(1)) if m else []
check(p.returncode == 5 and saved_path(p.stderr) == ckpt(branch, 4) and args[:2] == ["-P", "optim:lr=3"],
      "test_divergence_message_names_the_state_and_a_tenth_of_the_lr", f"rc={p.returncode} {p.stderr[-500:]}")
q = run(deck(branch, 0.5, 12), np_=2, args=first + args, deck_path=deck_path)
met2 = metrics(branch) if q.returncode == 0 else {"train_loss": [np.nan], "batch_loss_before": [np.nan] * 5}
check(q.returncode == 0 and f"continuing from {ckpt(branch, 4)}" in q.stdout and "optim:lr: 30.0 -> 3.0" in q.stdout
      and len(met2["train_loss"]) == 13 and np.all(np.isfinite(met2["train_loss"]))
      and met2["train_loss"][-1] < met2["batch_loss_before"][4],
      "test_resume_command_from_the_message_continues_with_a_smaller_lr",
      f"args={args} rc={q.returncode} {q.stdout[-400:]} {q.stderr[-400:]}")

# ---- a loss that turns non-finite ---------------------------------------------------------------
blow = os.path.join(tmp, "blowup")
p = run(deck(blow, 10.0, 12, method="sgd", run__divergence_factor=0), np_=2)
saved = saved_path(p.stderr)
loss, finite = np_loss(saved) if saved and os.path.exists(saved) else (np.nan, False)
check(p.returncode == 5 and "not finite" in p.stderr and finite and np.isfinite(loss),
      "test_non_finite_loss_keeps_a_state_with_finite_weights_and_loss",
      f"rc={p.returncode} saved={saved} loss={loss} {p.stderr[-500:]}")

# ---- the best checkpoint survives the pruning --------------------------------------------------
# Four good steps, then (guard off) a continuation at lr 1e8 whose losses grow to ~1e30 and whose
# checkpoints rotate keep = 2: the best one (the lowest measured loss) must stay. A float build
# overflows at lr 1e8 on the first step (a non-finite stop, tested above); lr 1e3 diverges to
# ~1e18 and stays finite there.
BIG_LR, HUGE = (1e3, 1e15) if gnrun.SINGLE else (1e8, 1e20)
best = os.path.join(tmp, "best")
run(deck(best, 0.5, 4, checkpoint__keep=2), np_=2)
p = run(deck(best, BIG_LR, 10, checkpoint__keep=2, run__divergence_factor=0,
             checkpoint__restart=ckpt(best, 4)), np_=2)
names = sorted(n for n in os.listdir(os.path.join(best, "checkpoints")) if n.endswith(".h5"))
best_step = -1
if os.path.exists(ckpt(best, 10)):
    with h5py.File(ckpt(best, 10), "r") as f:
        best_step = int(f.attrs.get("best_step", -1))
met = metrics(best)
check(p.returncode == 0 and names == ["step_00000000.h5", "step_00000004.h5", "step_00000009.h5", "step_00000010.h5"]
      and best_step == 4 and np.nanmax(met["train_loss"]) > HUGE,
      "test_best_and_step_0_checkpoints_survive_the_pruning_of_a_diverging_run",
      f"rc={p.returncode} {names} best_step={best_step} {p.stderr[-300:]}")
# ---- a run that cannot change anything ---------------------------------------------------------
# atol = 1e10: every pseudo-inverse keeps nothing, theta never moves: one warning naming the first
# half-block and the threshold, then a refusal at the first step.
still = os.path.join(tmp, "atol")
p = run(deck(still, 0.5, 80, optim__atol=1e10), np_=2)
check(p.returncode == 5 and p.stderr.count("kept no singular value") == 1 and "block 0, F" in p.stderr
      and "1e+10" in p.stderr and "changed no parameter" in p.stderr and "step 0:" in p.stderr
      and os.path.exists(ckpt(still, 0)),
      "test_pinv_keeping_nothing_warns_once_and_a_step_changing_nothing_is_refused",
      f"rc={p.returncode} {p.stderr[-700:]}")
damped = os.path.join(tmp, "damped")
p = run(deck(damped, 0.5, 80, optim__pinv="damped", optim__damping=1e300), np_=2)
check(p.returncode == 5 and "changed no parameter" in p.stderr and "kept no singular value" not in p.stderr,
      "test_huge_damping_step_changing_nothing_is_refused", f"rc={p.returncode} {p.stderr[-500:]}")
# One half-block below the threshold, the others above: the warning alone; the run goes on.
probe = os.path.join(tmp, "probe")
run(deck(probe, 0.5, 1), np_=2)
with h5py.File(os.path.join(probe, "run.h5"), "r") as f:
    sig = {k: float(f["gn"][k][0]) for k in f["gn"] if k.startswith("sigma_max")}
atol = sig["sigma_max_b000_F"] * 1.0001
others_keep = sum(v >= atol for v in sig.values())
part = os.path.join(tmp, "partly")
p = run(deck(part, 0.5, 4, optim__atol=atol), np_=2)
check(others_keep >= 1 and p.returncode == 0 and p.stderr.count("kept no singular value") == 1
      and "block 0, F" in p.stderr,
      "test_one_half_block_keeping_nothing_only_warns", f"sigma={sig} rc={p.returncode} {p.stderr[-500:]}")
finish()
