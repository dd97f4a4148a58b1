"""What a restart trusts in a checkpoint (docs/operations.md): every attribute that steers the
continuation is covered by a checksum and the step must match the file name; an edited or renamed
checkpoint is damaged (skipped by restart = 'auto', refused when named)."""
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
import h5py  # noqa: E402
import numpy as np  # noqa: E402

import gnrun  # noqa: E402
from gnrun import check, final_theta, finish, metrics, run, synthetic_deck  # noqa: E402
gnrun.plan(18)

tmp = gnrun.scratch("gnrev_ckpt_trust_")


def deck(out, steps, **extra):
    return synthetic_deck(out, method="adam", lr=0.01, steps=steps, checkpoint__every=2, checkpoint__keep=10,
                          data__batch_size=40, **extra)


def ckpt(out, step):
    return os.path.join(out, "checkpoints", f"step_{step:08d}.h5")


# The reference: 8 steps straight.
ref = os.path.join(tmp, "ref")
run(deck(ref, 8), np_=2)

# ---- an edited step -----------------------------------------------------------------------------
edited = os.path.join(tmp, "edited_step")
run(deck(edited, 4), np_=2)
keep = os.path.join(tmp, "edited_step_4.h5")
with h5py.File(ckpt(edited, 4), "r+") as f:
    f.attrs["step"] = np.int64(5)
shutil.copy(ckpt(edited, 4), keep)
p = run(deck(edited, 8), np_=2)
m = metrics(edited) if p.returncode == 0 else {"step": []}
check(p.returncode == 0 and "step_00000004.h5" in p.stderr and "damaged" in p.stderr
      and "continuing from " + ckpt(edited, 2) in p.stdout
      and np.array_equal(final_theta(edited), final_theta(ref)) and list(m["step"]) == list(range(9)),
      "test_edited_step_attribute_is_damage_and_auto_falls_back_to_the_previous_checkpoint",
      f"rc={p.returncode} {p.stdout[-300:]} {p.stderr[-500:]}")
p = run(deck(os.path.join(tmp, "explicit_edited"), 8, checkpoint__restart=keep), np_=2)
check(p.returncode == 3 and "checksum" in p.stderr and p.stderr.count("gnrev_mpi:") == 1,
      "test_edited_step_attribute_in_a_named_checkpoint_is_refused", f"rc={p.returncode} {p.stderr[-400:]}")

# ---- every other attribute that steers a restart ---------------------------------------------
for attr, value in (("epoch", np.int64(3)), ("optimizer_t", np.int64(7)), ("epoch_loss_sum", 123.0),
                    ("epoch_samples", 80.0), ("optimizer_has_momentum", np.int64(1)), ("nranks", np.int64(5)),
                    ("optimizer", "sgd")):
    path = os.path.join(tmp, f"attr_{attr}.h5")
    shutil.copy(ckpt(ref, 4), path)
    with h5py.File(path, "r+") as f:
        f.attrs[attr] = value
    p = run(deck(os.path.join(tmp, f"attr_{attr}"), 8, checkpoint__restart=path), np_=2)
    check(p.returncode == 3 and "checksum" in p.stderr, f"test_edited_{attr}_attribute_is_refused",
          f"rc={p.returncode} {p.stderr[-400:]}")
# The deck kept in a checkpoint steers the comparison with the current deck: covered too.
path = os.path.join(tmp, "attr_deck.h5")
shutil.copy(ckpt(ref, 4), path)
with h5py.File(path, "r+") as f:
    f.attrs["deck"] = f.attrs["deck"].replace("eval_every = 1", "eval_every = 2")
p = run(deck(os.path.join(tmp, "attr_deck"), 8, checkpoint__restart=path), np_=2)
check(p.returncode == 3 and "checksum" in p.stderr, "test_edited_deck_attribute_is_refused",
      f"rc={p.returncode} {p.stderr[-400:]}")

# ---- the step must match the name -------------------------------------------------------------
renamed_dir = os.path.join(tmp, "renamed")
os.makedirs(renamed_dir)
renamed = os.path.join(renamed_dir, "step_00000003.h5")
shutil.copy(ckpt(ref, 4), renamed)
p = run(deck(os.path.join(tmp, "from_renamed"), 8, checkpoint__restart=renamed), np_=2)
check(p.returncode == 3 and "holds step 4" in p.stderr and "step_00000003.h5" in p.stderr,
      "test_checkpoint_whose_name_says_another_step_is_refused", f"rc={p.returncode} {p.stderr[-400:]}")
# Any other name is not a claim about the step: a copy named best.h5 continues.
best = os.path.join(renamed_dir, "best.h5")
shutil.copy(ckpt(ref, 4), best)
out = os.path.join(tmp, "from_best")
p = run(deck(out, 8, checkpoint__restart=best), np_=2)
check(p.returncode == 0 and np.array_equal(final_theta(out), final_theta(ref)),
      "test_checkpoint_under_another_name_continues_identically", f"rc={p.returncode} {p.stderr[-400:]}")
# ---- damaged fixed projections ----------------------------------------------------------------
import zlib  # noqa: E402

for what, dset in (("C", "model/block_001/G/C"), ("U", "model/U")):
    out = os.path.join(tmp, f"fixed_{what}")
    run(deck(out, 4), np_=2)
    with h5py.File(ckpt(out, 4), "r+") as f:
        a = f[dset][...]
        a[1, 2] += 1e-3
        f[dset][...] = a
    p = run(deck(out, 8), np_=2)
    check(p.returncode == 0 and "damaged" in p.stderr and "continuing from " + ckpt(out, 2) in p.stdout
          and np.array_equal(final_theta(out), final_theta(ref)),
          f"test_damaged_fixed_{what}_in_the_newest_checkpoint_falls_back_to_the_previous",
          f"rc={p.returncode} {p.stdout[-200:]} {p.stderr[-500:]}")

# A projection that is whole (its checksum holds) but not the one this build makes is a genuine
# mismatch (another version or BLAS), not damage: refused with exit 2. The checksum is that of U
# then every C in block order, F before G, as the values are stored.
genuine = os.path.join(tmp, "genuine.h5")
shutil.copy(ckpt(ref, 4), genuine)
with h5py.File(genuine, "r+") as f:
    c = f["model/block_000/F/C"][...]
    c[0, 0] *= 2  # exact in float too: a single build reads the same value the checksum covers
    f["model/block_000/F/C"][...] = c
    crc = zlib.crc32(np.ascontiguousarray(f["model/U"][...], dtype="<f8").tobytes())
    for b in sorted(k for k in f["model"] if k.startswith("block_")):
        for half in ("F", "G"):
            crc = zlib.crc32(np.ascontiguousarray(f["model"][b][half]["C"][...], dtype="<f8").tobytes(), crc)
    f.attrs["crc32_fixed"] = np.int64(crc)
p = run(deck(os.path.join(tmp, "from_genuine"), 8, checkpoint__restart=genuine), np_=2)
check(p.returncode == 2 and "another gnrev version or BLAS" in p.stderr and "block 0, F" in p.stderr,
      "test_whole_but_different_projection_is_refused_as_a_genuine_mismatch", f"rc={p.returncode} {p.stderr[-400:]}")
# ---- the data a run was trained on ------------------------------------------------------------
rng = np.random.default_rng(5)
data = os.path.join(tmp, "data.h5")


def write_data(x):
    gnrun.write_hdf5_data(data, x)


x = rng.standard_normal((96, 16)).astype(np.float32)
write_data(x)
out = os.path.join(tmp, "data_run")
hdeck = deck(out, 4, data__source="hdf5", data__path=data)
del hdeck["data"]["dim"], hdeck["data"]["classes"], hdeck["data"]["synthetic_train"], hdeck["data"]["synthetic_test"]
p1 = run(hdeck, np_=2)
with h5py.File(os.path.join(out, "run.h5"), "r") as f:
    fp_run = f.attrs.get("data_fingerprint", "")
with h5py.File(ckpt(out, 4), "r") as f:
    fp_ckpt = f.attrs.get("data_fingerprint", "")
check(p1.returncode == 0 and fp_run and fp_run == fp_ckpt and "n=96" in fp_run and "d=16" in fp_run,
      "test_data_fingerprint_recorded_in_run_h5_and_checkpoints", f"{fp_run!r} {fp_ckpt!r} {p1.stderr[-300:]}")
# The same content written again: the continuation goes on.
write_data(x)
hdeck["run"]["max_steps"] = 6
p = run(hdeck, np_=2)
check(p.returncode == 0 and "continuing from " + ckpt(out, 4) in p.stdout,
      "test_same_data_rewritten_continues", f"rc={p.returncode} {p.stderr[-300:]}")
# One sample changed (same path, same shape): refused, naming both fingerprints.
x[7, 3] += 0.5
write_data(x)
hdeck["run"]["max_steps"] = 8
p = run(hdeck, np_=2)
check(p.returncode == 2 and "data" in p.stderr and fp_ckpt in p.stderr and p.stderr.count("gnrev_mpi:") == 1,
      "test_restart_with_a_changed_data_file_is_refused", f"rc={p.returncode} {p.stderr[-500:]}")
finish()
