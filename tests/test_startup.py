"""What gnrev refuses before training starts, at the program level (docs/operations.md): deck
messages print the deck's control characters and broken UTF-8 escaped, so a deck cannot send
escape sequences to the terminal; a deck without any namelist group is refused instead of
silently training the default job."""
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
import gnrun  # noqa: E402
from gnrun import check, finish  # noqa: E402
gnrun.plan(11)

tmp = gnrun.scratch("gnrev_startup_")


def run_bytes(deck_bytes, np_=2, args=(), timeout=120):
    """Runs gnrev_mpi on a deck given as bytes; stdout and stderr are returned as bytes."""
    path = os.path.join(tmp, f"deck_{abs(hash(deck_bytes))}.nml")
    with open(path, "wb") as f:
        f.write(deck_bytes)
    cmd = [gnrun.MPIRUN, *gnrun.MPIFLAGS, "-np", str(np_), gnrun.BINARY, *args, path]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    return subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)


# ---- deck messages are escaped ----------------------------------------------------------------
# Values holding ESC[2J (clear screen), a byte that is not UTF-8 (0xff), and a valid UTF-8
# letter that must stay as it is.
deck = (b"&run out_dir = '" + tmp.encode() + b"/o' /\n&data source = 'synthetic' /\n"
        b"&optim\n  method = 'sg\x1b[2Jd'\n  loss = 'c\xffe'\n/\n&model activation = 'rel\xc3\xa9' /\n")
p = run_bytes(deck, args=("--check",))
err = p.stderr
raw_control = re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", err)
check(p.returncode == 2 and raw_control is None and b"\xff" not in err,
      "test_deck_error_prints_no_raw_control_or_non_utf8_byte",
      f"rc={p.returncode} raw={raw_control} {err[-600:]!r}")
check(b"'sg\\x1b[2Jd'" in err and b"'c\\xffe'" in err,
      "test_deck_error_shows_control_and_non_utf8_bytes_as_hex_escapes", repr(err[-800:]))
check("'relé'" in err.decode("utf-8", errors="replace"), "test_deck_error_keeps_valid_utf8_text", repr(err[-800:]))
# The caret still points at the value, and underlines all of it, in the escaped echo of its line.
lines = err.decode("utf-8", errors="replace").splitlines()
caret_ok = False
for i, line in enumerate(lines[:-1]):
    if line.startswith("    5 | ") and "'c\\xffe'" in line:
        start = line.index("'c\\xffe'")
        caret_ok = lines[i + 1].index("^") == start and lines[i + 1].rstrip().endswith("^" + "~" * 7)
check(caret_ok, "test_deck_error_caret_aligned_under_escaped_echo", "\n".join(lines[:20]))

# Messages from later stages that quote the deck (here a data path) are escaped too.
p = run_bytes(b"&run out_dir = '" + tmp.encode() + b"/o' /\n&data source = 'fashion-mnist' "
              b"path = '/nonexistent/\x1b[31mred' /\n", args=("--check",))
check(p.returncode in (2, 3) and b"\x1b" not in p.stderr and b"/nonexistent/\\x1b[31mred" in p.stderr,
      "test_data_error_quoting_the_deck_is_escaped", repr(p.stderr[-400:]))

# ---- a deck with no group ---------------------------------------------------------------------
for label, text in (("empty", b""), ("comments only", b"! nothing here\n\n   \n! still nothing\n")):
    p = run_bytes(text, args=("--check",))
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 2 and "has no namelist group" in err and err.count("gnrev_mpi:") == 1
          and "total per rank" not in p.stdout.decode(errors="replace"),
          f"test_deck_without_groups_is_refused ({label})", f"rc={p.returncode} {err[-400:]}")
# One group, even empty, is a deliberate deck: the refusal is only for a deck with none.
p = run_bytes(b"&run out_dir = '" + tmp.encode() + b"/o2' /\n&data source = 'synthetic' /\n", args=("--check",))
check(p.returncode == 0 and b"has no namelist group" not in p.stderr,
      "test_deck_with_one_group_is_not_refused_as_empty", repr(p.stderr[-300:]))
# ---- the total step count --------------------------------------------------------------------
def count_deck(out, epochs, max_steps):
    return (f"&run out_dir = '{out}' epochs = {epochs} max_steps = {max_steps} log_every = 1 /\n"
            "&data source = 'synthetic' dim = 8 classes = 2 synthetic_train = 64 synthetic_test = 8 batch_size = 1 /\n"
            "&model hidden = 8 /\n&optim method = 'sgd' lr = 0.01 /\n&diagnostics eval_every = 0 /\n").encode()


# epochs * steps_per_epoch = 2**57 * 64 overflows a 64-bit integer.
p = run_bytes(count_deck(os.path.join(tmp, "ovf"), 2**57, 0), args=("--check",))
err = p.stderr.decode(errors="replace")
check(p.returncode == 2 and "epochs = 144115188075855872" in err and "more than" in err and err.count("gnrev_mpi:") == 1,
      "test_step_count_overflow_is_refused_at_start", f"rc={p.returncode} {err[-400:]}")
# With max_steps the product does not matter: 5 steps are taken and named with 8 digits.
out = os.path.join(tmp, "bounded")
p = run_bytes(count_deck(out, 2**57, 5))
names = sorted(os.listdir(os.path.join(out, "checkpoints"))) if os.path.isdir(os.path.join(out, "checkpoints")) else []
check(p.returncode == 0 and names == ["step_00000000.h5", "step_00000005.h5"] and b"5 steps" in p.stdout,
      "test_huge_epochs_with_max_steps_runs_max_steps", f"rc={p.returncode} {names} {p.stderr[-300:]!r}")
# ---- a stop signal during start-up -----------------------------------------------------------
def rank_pids(parent):
    """The gnrev_mpi processes mpirun started (its children once they have exec'ed)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[1]) == parent and "(gnrev_mpi)" in st:
            pids.append(int(d))
    return pids


def in_mpi_init(pid):
    """MPI_Init starts Open MPI's helper threads: a second thread means main() runs and MPI_Init
    is under way (or done)."""
    try:
        return len(os.listdir(f"/proc/{pid}/task")) >= 2
    except OSError:
        return False


out = os.path.join(tmp, "early_signal")
deck_path = os.path.join(tmp, "early_signal.nml")
with open(deck_path, "wb") as f:
    f.write(count_deck(out, 1000, 400))
proc = subprocess.Popen([gnrun.MPIRUN, *gnrun.MPIFLAGS, "-np", "2", gnrun.BINARY, deck_path],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
t0 = time.time()
pids = []
while time.time() - t0 < 60 and not (len(pids) == 2 and all(in_mpi_init(q) for q in pids)):
    pids = rank_pids(proc.pid)
    time.sleep(0.002)
sent_before_training = not os.path.exists(os.path.join(out, "run.h5"))
for q in pids:
    os.kill(q, signal.SIGUSR1)
try:
    o, e = proc.communicate(timeout=120)
except subprocess.TimeoutExpired:
    proc.kill()
    o, e = proc.communicate()
ckpts = sorted(os.listdir(os.path.join(out, "checkpoints"))) if os.path.isdir(os.path.join(out, "checkpoints")) else []
check(len(pids) == 2 and sent_before_training and proc.returncode == 75
      and "SIGUSR1 received: stopped after step 1 " in e and ckpts == ["step_00000000.h5", "step_00000001.h5"],
      "test_sigusr1_during_mpi_init_stops_after_the_first_step_with_exit_75",
      f"pids={pids} before={sent_before_training} rc={proc.returncode} {ckpts} {e[-400:]}")
finish()
