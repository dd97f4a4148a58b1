"""A full disk (docs/operations.md), on a small tmpfs mounted for the test: writing a checkpoint or
appending to run.h5 ends with exit 3 and a message naming the file system, on 1 and 2 ranks, with
no hang and no crash in MPI_Finalize; no partial checkpoint is left, the earlier checkpoints and
run.h5 stay readable, and once there is room the same command continues. Both ways to meet the full
disk are tried: the space check gnrev makes before each write, and HDF5 failing in the middle of a
write (GNREV_FAULT_SKIP_SPACE_CHECK=1, as a quota or another program filling the disk would).

Mounting needs root with CAP_SYS_ADMIN; without it every check here is reported as skipped."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
import h5py  # noqa: E402

import gnrun  # noqa: E402
from gnrun import check, finish, run  # noqa: E402
gnrun.plan(9)

tmp = gnrun.scratch("gnrev_disk_full_")
MNT = os.path.join(tmp, "fs")
os.makedirs(MNT)
TIMEOUT = 120 * (4 if os.environ.get("SANITIZE") == "1" else 1)
NAMES = []


def mount(size_k):
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_k}k", "tmpfs", MNT],
                          capture_output=True, text=True)


def umount():
    for _ in range(50):
        if subprocess.run(["umount", MNT], capture_output=True).returncode == 0:
            return
        time.sleep(0.2)


def checkpoint_deck(out):
    # ~0.55 MiB per checkpoint (Adam: weights and two moments), every 2 steps.
    return {"run": {"name": "t", "out_dir": out, "seed": 11, "epochs": 1000, "max_steps": 20, "log_every": 1},
            "data": {"source": "synthetic", "dim": 64, "classes": 4, "synthetic_train": 256, "synthetic_test": 40},
            "model": {"blocks": 2, "hidden": 128},
            "optim": {"method": "adam", "lr": 0.001},
            "checkpoint": {"every": 2, "keep": 50},
            "diagnostics": {"eval_every": 1}}


def run_h5_deck(out):
    # A small model (checkpoints of ~45 KiB) whose run.h5 grows by a 512 KiB NTK matrix per step.
    return {"run": {"name": "t", "out_dir": out, "seed": 11, "epochs": 1000, "max_steps": 20, "log_every": 1},
            "data": {"source": "synthetic", "dim": 16, "classes": 4, "synthetic_train": 256, "synthetic_test": 40},
            "model": {"blocks": 2, "hidden": 16},
            "optim": {"method": "adam", "lr": 0.001},
            "checkpoint": {"every": 0},
            "diagnostics": {"eval_every": 1, "ntk_every": 1, "ntk_samples": 64}}


def readable(path):
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("complete", 1) == 1
    except Exception:  # noqa: BLE001 - unreadable is the answer
        return False


def disk_full(label, make_deck, size_k, np_, skip_check):
    """Runs the deck on a fresh tmpfs of size_k KiB until the disk is full; returns what the
    checks need."""
    umount()
    r = mount(size_k)
    if r.returncode != 0:
        return None
    out = os.path.join(MNT, "out")
    env_before = dict(os.environ)
    os.environ["GNREV_IO_TIMEOUT"] = "10"
    if skip_check:
        os.environ["GNREV_FAULT_SKIP_SPACE_CHECK"] = "1"
    t0 = time.time()
    try:
        p = run(make_deck(out), np_=np_, timeout=TIMEOUT)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    elapsed = time.time() - t0
    ck = os.path.join(out, "checkpoints")
    names = sorted(os.listdir(ck)) if os.path.isdir(ck) else []
    return {"p": p, "elapsed": elapsed, "names": names, "out": out, "deck": make_deck(out),
            "ckpts_ok": all(readable(os.path.join(ck, n)) for n in names if n.endswith(".h5")),
            "run_ok": readable(os.path.join(out, "run.h5"))}


probe = mount(1024)
can_mount = probe.returncode == 0
umount()
if not can_mount:
    reason = (probe.stderr.strip() or "mount failed").replace("\n", " ")
    for name in ("checkpoint", "run_h5"):
        for np_ in (1, 2):
            for how in ("space_check", "hdf5_failure"):
                gnrun.skip(f"test_disk_full_{name}_{how} (np={np_})", f"cannot mount a tmpfs: {reason}")
    gnrun.skip("test_after_freeing_space_the_same_command_continues", f"cannot mount a tmpfs: {reason}")
    finish()

try:
    for np_ in (1, 2):
        for skip_check in (False, True):
            how = "hdf5_failure" if skip_check else "space_check"
            # ---- a checkpoint that does not fit (2 MiB: step 0 fits, a later one does not) -------------
            r = disk_full("checkpoint", checkpoint_deck, 2048, np_, skip_check)
            p = r["p"]
            err = p.stderr
            h5 = [n for n in r["names"] if n.endswith(".h5")]
            check(p.returncode == 3 and f"the file system at {MNT} (tmpfs)" in err and "is not written" in err
                  and err.count("gnrev_mpi:") == 1 and "Segmentation" not in err and "signal" not in err.lower()
                  and not [n for n in r["names"] if ".tmp." in n] and "step_00000000.h5" in h5 and r["ckpts_ok"]
                  and r["run_ok"],
                  f"test_disk_full_checkpoint_{how} (np={np_})",
                  f"rc={p.returncode} {r['elapsed']:.0f}s files={r['names']} ckpts_ok={r['ckpts_ok']} "
                  f"run_ok={r['run_ok']} {err[-700:]}")
            if np_ == 2 and not skip_check:
                # Room again (the same tmpfs made larger): the same command continues from the newest.
                subprocess.run(["mount", "-o", "remount,size=16m", MNT], capture_output=True)
                q = run(r["deck"], np_=2, timeout=TIMEOUT)
                check(q.returncode == 0 and f"continuing from {r['out']}/checkpoints/{h5[-1]}" in q.stdout,
                      "test_after_freeing_space_the_same_command_continues", f"rc={q.returncode} {q.stderr[-400:]}")

            # ---- run.h5 that grows past the disk (2.5 MiB: the NTK matrices of a few steps) ------------
            r = disk_full("run_h5", run_h5_deck, 2560, np_, skip_check)
            p = r["p"]
            err = p.stderr
            # HDF5 failing inside a collective may leave the other rank waiting: the failed one then
            # aborts the job after GNREV_IO_TIMEOUT (10 s here) with the same exit status.
            check(p.returncode == 3 and f"the file system at {MNT} (tmpfs)" in err and "run.h5" in err
                  and "Segmentation" not in err and r["elapsed"] < 60 and r["ckpts_ok"]
                  and (r["run_ok"] or skip_check),
                  f"test_disk_full_run_h5_{how} (np={np_})",
                  f"rc={p.returncode} {r['elapsed']:.0f}s files={r['names']} run_ok={r['run_ok']} {err[-700:]}")
finally:
    umount()
finish()
