"""Helpers for the Python tests: run gnrev_mpi under mpirun on a deck written on the fly, read its
outputs with h5py, and report checks in the protocol of tests/run_tests.sh (a TAP plan first, then
one line per check; skips counted as skips)."""
import atexit
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

ROOT = os.environ.get("GNREV_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BINARY = os.path.join(ROOT, os.environ.get("BUILD", ""), "gnrev_mpi") if os.path.exists(os.path.join(ROOT, os.environ.get("BUILD", ""), "gnrev_mpi")) else os.path.join(ROOT, "gnrev_mpi")
MPIRUN = os.environ.get("MPIRUN", "mpirun")
MPIFLAGS = shlex.split(os.environ.get("MPIFLAGS", "--oversubscribe" + (" --allow-run-as-root" if os.geteuid() == 0 else "")))



def _precision():
    """'double' or 'single': the build of BINARY, as its --version says."""
    try:
        out = subprocess.run([BINARY, "--version"], capture_output=True, text=True, timeout=60).stdout
    except OSError:
        return "double"
    for line in out.splitlines():
        if line.startswith("precision:"):
            return line.split()[1]
    return "double"


PRECISION = _precision()
SINGLE = PRECISION == "single"
# Tolerances in both precisions, as tests/testlib.h derives them: a check states the tolerance it
# needs in the double build; a rounding-level one grows by eps_float / eps_double (5.4e8) in the
# single build, capped at 1e-3 so that a wrong result (an O(1) or O(1e-2) error) still fails it.
EPS_RATIO = float(np.finfo(np.float32).eps / np.finfo(np.float64).eps)
TOL_CAP = 1e-3


def tol(t):
    """The tolerance of this build for a check whose double-build tolerance is t."""
    if not SINGLE:
        return t
    return min(t * EPS_RATIO, max(t, TOL_CAP))


_failed = 0
_ran = 0
_planned = None
_scratch = []


def scratch(prefix):
    """A fresh temporary directory, removed when the test ends; kept (and named on stderr) when a
    check failed or GNREV_KEEP_TMP is set, so a failure can be inspected."""
    d = tempfile.mkdtemp(prefix=prefix)
    _scratch.append(d)
    return d


@atexit.register
def _remove_scratch():
    keep = _failed or os.environ.get("GNREV_KEEP_TMP")
    for d in _scratch:
        if keep:
            print(f"# kept {d}", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)


def plan(n):
    """States how many checks (check and skip calls) the test will make: prints "1..n". Call it once,
    before the first check; tests/run_tests.sh fails a test that runs another number."""
    global _planned
    _planned = n
    print(f"1..{n}")
    sys.stdout.flush()


def check(ok, name, detail="", until=None):
    """One check: "ok - name" or "not ok - name: detail". until="<the fix>" marks a check known to fail
    until that fix lands: while it fails it is reported as skipped ("ok - name # SKIP expected to fail
    until <the fix>"), never as passed; once it passes it counts as an ordinary pass."""
    global _failed, _ran
    _ran += 1
    if ok:
        print(f"ok - {name}")
        if until:
            print(f"# {name} passes now: remove its expected-failure note (until {until!r})")
    elif until:
        print(f"ok - {name} # SKIP expected to fail until {until}")
        if detail:
            print("# " + str(detail).replace("\n", "\n# "))
    else:
        _failed += 1
        print(f"not ok - {name}" + (f": {detail}" if detail else ""))
    sys.stdout.flush()
    return ok


def skip(name, reason):
    """A check that cannot run here (a missing optional tool): counted as skipped, never passed."""
    global _ran
    _ran += 1
    print(f"ok - {name} # SKIP {reason}")
    sys.stdout.flush()


def require(ok, what):
    """A precondition on the test's own set-up (a built binary, a scratch file), not a property of
    the code under test: when it does not hold the test stops with "Bail out!", which fails it."""
    if not ok:
        print(f"Bail out! the test's own set-up failed: {what}")
        sys.stdout.flush()
        sys.exit(1)


def finish():
    """Exits 1 when a check failed or the number of checks differs from the plan."""
    if _planned is None:
        print("# no plan: call plan(n) before the first check")
        sys.exit(1)
    if _ran != _planned:
        print(f"# planned {_planned} checks, ran {_ran}")
        sys.exit(1)
    sys.exit(1 if _failed else 0)


def deck_text(groups):
    """groups: {"run": {"seed": 1, ...}, ...} -> namelist text."""
    out = []
    for g, kv in groups.items():
        out.append(f"&{g}")
        for k, v in kv.items():
            if isinstance(v, bool):
                s = ".true." if v else ".false."
            elif isinstance(v, str):
                s = "'" + v.replace("'", "''") + "'"
            else:
                s = repr(v)
            out.append(f"  {k} = {s}")
        out.append("/")
    return "\n".join(out) + "\n"


def synthetic_deck(out_dir, method="sgd", lr=0.1, steps=5, **extra):
    groups = {
        "run": {"name": "t", "out_dir": out_dir, "seed": 11, "epochs": 1000, "max_steps": steps, "log_every": 1},
        "data": {"source": "synthetic", "dim": 16, "classes": 4, "synthetic_train": 96, "synthetic_test": 40,
                 "batch_size": 0},
        "model": {"blocks": 2, "hidden": 24, "init_std": 0.05},
        "optim": {"method": method, "lr": lr},
        "checkpoint": {"every": 0, "keep": 2},
        "diagnostics": {"eval_every": 1, "batch_change": True},
    }
    for key, value in extra.items():
        g, k = key.split("__")
        groups.setdefault(g, {})[k] = value
    return groups


def run(deck_groups, np_=1, args=(), timeout=120, deck_path=None, env=None, mpi_args=()):
    """Writes the deck, runs gnrev_mpi on np_ ranks; returns CompletedProcess with .deck. env adds
    variables for every rank, mpi_args flags for mpirun."""
    if deck_path is None:
        if not _scratch:
            scratch("gnrev_decks_")
        fd, deck_path = tempfile.mkstemp(suffix=".nml", prefix="deck_", dir=_scratch[0])
        os.close(fd)
    with open(deck_path, "w") as f:
        f.write(deck_groups if isinstance(deck_groups, str) else deck_text(deck_groups))
    extra = dict(env or {})
    cmd = [MPIRUN, *MPIFLAGS, *mpi_args, *[a for k in extra for a in ("-x", k)], "-np", str(np_), BINARY, *args,
           deck_path]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", **extra)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        p = subprocess.CompletedProcess(cmd, 124, e.stdout or "", (e.stderr or "") + "\nTIMEOUT")
        if isinstance(p.stdout, bytes):
            p.stdout = p.stdout.decode(errors="replace")
        if isinstance(p.stderr, bytes):
            p.stderr = p.stderr.decode(errors="replace")
    p.deck = deck_path
    return p


def final_theta(out_dir):
    """All trained tensors of the newest checkpoint, concatenated in a fixed order."""
    ck = os.path.join(out_dir, "checkpoints")
    files = sorted(f for f in os.listdir(ck) if f.startswith("step_") and f.endswith(".h5"))
    with h5py.File(os.path.join(ck, files[-1]), "r") as f:
        parts = []
        for b in sorted(k for k in f["model"] if k.startswith("block_")):
            for half in ("F", "G"):
                parts.append(f["model"][b][half]["W"][...].ravel())
                if "b" in f["model"][b][half]:
                    parts.append(f["model"][b][half]["b"][...].ravel())
        return np.concatenate(parts)


def metrics(out_dir):
    with h5py.File(os.path.join(out_dir, "run.h5"), "r") as f:
        return {k: f["metrics"][k][...] for k in f["metrics"]}


def write_hdf5_data(path, x):
    """A small data set in gnrev's HDF5 layout (source = 'hdf5'): x as the training samples, labels
    from the signs of its first two columns, its first 20 rows as the test set (4 classes)."""
    with h5py.File(path, "w") as f:
        f["train/x"] = x
        f["train/y"] = (x[:, 0] > 0).astype(np.int32) + 2 * (x[:, 1] > 0)
        f["test/x"] = x[:20]
        f["test/y"] = np.arange(20, dtype=np.int32) % 4


def rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))
