"""Hostile inputs at the program level: broken decks, options and data files run through
`gnrev_mpi --check` (and some through a real run) on 2 ranks under a timeout. Each must end with
one message on stderr (printed once, not once per rank) that names its cause (a pattern for each
case, matched against the message without the deck lines it quotes, and matching no other case's
message), the documented exit status (2 input, 3 I/O, 4 memory), no hang and, when the suite runs
under SANITIZE=1, no sanitizer report."""
import gzip
import os
import re
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
import h5py  # noqa: E402
import numpy as np  # noqa: E402

import gnrun  # noqa: E402
from gnrun import check, deck_text, finish, plan, synthetic_deck  # noqa: E402

plan(64)
tmp = gnrun.scratch("gnrev_hostile_")
SANITIZER = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer")
# Sanitized binaries start and exit several times slower: the quick-refusal limits scale with them.
SLOW = 4 if os.environ.get("SANITIZE") == "1" else 1
TIMEOUT = int(os.environ.get("HOSTILE_TIMEOUT", "60")) * SLOW
counter = [0]


# The runs mostly wait (MPI start-up, file checks): a few at a time keep the test short.
pool = ThreadPoolExecutor(max_workers=int(os.environ.get("HOSTILE_JOBS", "4")))
pending = []


def run_raw(deck_bytes, args=(), np_=2, timeout=TIMEOUT, deck_path=None):
    """Writes deck_bytes (unless deck_path is given as is) and starts gnrev_mpi under `timeout`,
    which stops mpirun with SIGTERM so that no rank outlives the test; returns a future of the
    CompletedProcess."""
    if deck_path is None:
        counter[0] += 1
        deck_path = os.path.join(tmp, f"deck_{counter[0]}.nml")
        with open(deck_path, "wb") as f:
            f.write(deck_bytes if isinstance(deck_bytes, bytes) else deck_bytes.encode())
    cmd = ["timeout", "-s", "TERM", "-k", "10", str(timeout), gnrun.MPIRUN, *gnrun.MPIFLAGS, "-np", str(np_),
           gnrun.BINARY, *args, deck_path]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    return pool.submit(subprocess.run, cmd, capture_output=True, text=True, errors="replace", env=env)


def verdict(name, fut, codes, pattern, until=None):
    """Judged at the end, in order. codes: the acceptable exit statuses; pattern: a regex the
    message must match, naming the cause of this case (not just a key or a path that other messages
    name too); until: the fix a case waits for while it is known to fail (see gnrun.check)."""
    pending.append((name, fut, codes, pattern, until))


DECK_QUOTE = re.compile(r"^\s*\d*\s*\|")  # "   3 |   seed = ..." and "     |   ^~~" under a deck error


def message(err):
    """gnrev's message in stderr: from its "gnrev_mpi: " line to mpirun's own report, without the
    deck lines it quotes (a key in a quoted line says nothing about the cause)."""
    lines, out = err.splitlines(), []
    start = next((i for i, line in enumerate(lines) if line.startswith("gnrev_mpi: ")), len(lines))
    for line in lines[start:]:
        if line.startswith("-----"):
            break
        if not DECK_QUOTE.match(line):
            out.append(line)
    return "\n".join(out)


messages = {}


def judge(name, fut, codes, pattern, until):
    p = fut.result()
    err = p.stderr
    msgs = [line for line in err.splitlines() if line.startswith("gnrev_mpi: ")]
    messages[name] = (pattern, message(err))
    problems = []
    if p.returncode == 124 or p.returncode == 137:
        problems.append("timed out (a hang, or work the input should have stopped)")
    elif p.returncode not in codes:
        problems.append(f"exit {p.returncode}, expected {' or '.join(map(str, codes))}")
    if len(msgs) != 1:
        problems.append(f"{len(msgs)} 'gnrev_mpi:' message lines, expected 1")
    if not re.search(pattern, message(err), re.S):
        problems.append(f"message does not match /{pattern}/")
    if SANITIZER.search(err):
        problems.append("sanitizer report")
    detail = "; ".join(problems)
    if problems:
        m = SANITIZER.search(err)
        excerpt = err[max(m.start() - 200, 0):m.start() + 2500] if m else err[-1500:]
        detail += "\n    stderr: " + excerpt.replace("\n", "\n    ")
    check(not problems, f"test_hostile {name}", detail, until=until)


BASE = synthetic_deck(os.path.join(tmp, "out"), method="sgd", steps=2)


def deck_with(**changes):
    g = {k: dict(v) for k, v in BASE.items()}
    for key, value in changes.items():
        grp, k = key.split("__")
        g.setdefault(grp, {})[k] = value
    return deck_text(g)


def hostile_deck(name, text, pattern, codes=(2,), args=("--check",), timeout=TIMEOUT, until=None):
    verdict(f"deck: {name}", run_raw(text, args=args, timeout=timeout), codes, pattern, until)


# ---- decks -------------------------------------------------------------------------------------
valid = deck_with()
p = run_raw(valid, args=("--check",)).result()
check(p.returncode == 0 and not SANITIZER.search(p.stderr), "test_hostile the unmodified base deck passes --check",
      p.stderr[-800:])

rng = np.random.default_rng(5)
# The memory plan's refusal: the figure needed against the figure available.
MEMORY = r"out of memory: this run needs about [0-9.]+ [KMGTPE]iB per node \([0-9.]+ [KMGTPE]iB shared by the node.s ranks \+ [0-9]+ ranks x [0-9.]+ [KMGTPE]iB\) but only [0-9.]+ [KMGTPE]iB is available on this node"
hostile_deck("syntax garbage", "&run seed = = 3 , , / / &&\n", r":1:13: error: unexpected '=' in the value of 'seed'")


def first_nul(deck):
    """The message of a deck's first NUL byte: the byte's line and column (1-based, bytes), as counted
    here from the bytes written."""
    at = deck.index(b"\0")
    line = deck.count(b"\n", 0, at) + 1
    col = at - (deck.rfind(b"\n", 0, at) + 1) + 1
    return rf"deck_\d+\.nml:{line}:{col}: error: a NUL byte\b"


# Binary junk holds NUL bytes, which the reader refuses first (the parser would stop at the first
# one); the same junk without them reaches the parser, which finds no group.
junk = bytes(rng.integers(0, 256, 4096, dtype=np.uint8))
require_junk = b"\0" in junk and junk[:1] not in (b"\0", b"&", b"$", b"!") and not junk[:1].isspace()
gnrun.require(require_junk, "the junk deck holds a NUL byte and starts with a stray byte")
hostile_deck("binary junk", junk, first_nul(junk))
hostile_deck("binary junk without NUL bytes", junk.replace(b"\0", b"\x01"), r":1:1: error: .* outside any namelist group")
# The parser reads the deck as a C string: a NUL inside a group would read as an unclosed group, and
# one after a complete group would drop everything behind it without a word (the run would go ahead).
nul_inside = valid[:40].encode() + b"\0" + valid[40:].encode()
hostile_deck("NUL byte inside a valid deck", nul_inside, first_nul(nul_inside))
nul_between = valid.encode() + b"\0&model hidden = -5 /\n"
hostile_deck("NUL byte between two groups hides the second", nul_between, first_nul(nul_between))
hostile_deck("unterminated string", "&run name = 'abc\n/\n", r":1:13: error: unterminated string for 'name'")
hostile_deck("unknown key with suggestion", deck_with(model__hiden=10),
             r"unknown variable 'hiden' in group &model\n\s*did you mean 'hidden'\?")
hostile_deck("unknown group", deck_with() + "&training epochs = 1 /\n", r"error: unknown group &training")
hostile_deck("integer beyond int64", deck_with(run__seed=10**30), r"error: integer 10{30} is out of range")
hostile_deck("real beyond double (1e999)", deck_with().replace("lr = 0.1", "lr = 1e999"),
             r"error: real number 1e999 is out of the range of double precision")
hostile_deck("negative hidden", deck_with(model__hidden=-5), r"error: hidden = -5 is out of range in &model")
hostile_deck("negative batch_size", deck_with(data__batch_size=-1), r"error: batch_size = -1 is out of range in &data")
hostile_deck("odd synthetic dim", deck_with(data__dim=15), r"error: dim = 15 in &data is odd")
hostile_deck("unknown method", deck_with(optim__method="newton"), r"error: unknown method 'newton' in &optim")
hostile_deck("string for an integer", deck_with(run__seed="many"),
             r"error: wrong type for 'seed' in &run: expected an integer")
hostile_deck("name longer than its field", deck_with(run__name="n" * 5000),
             r"error: value of 'name' in &run is too long: 5000 characters")
hostile_deck("out_dir longer than a path", deck_with(run__out_dir="/tmp/" + "d" * 5000),
             r"error: value of 'out_dir' in &run is too long: 5005 characters")
hostile_deck("n_train = -1", deck_with(data__n_train=-1), r"error: n_train = -1 is out of range in &data")
hostile_deck("hidden = 10**9: refused by the memory plan with the figure", deck_with(model__hidden=10**9), MEMORY,
             codes=(4,), timeout=15 * SLOW)
hostile_deck("hidden = 2**62", deck_with(model__hidden=2**62), r"error: hidden = 4611686018427387904 is out of range",
             timeout=15 * SLOW)
hostile_deck("blocks = 10**9: refused by the memory plan", deck_with(model__blocks=10**9), MEMORY, codes=(4,),
             timeout=15 * SLOW)
hostile_deck("synthetic_train = 10**12: refused before the data is made", deck_with(data__synthetic_train=10**12),
             r"out of memory: the training and test sets need [0-9.]+ [KMGTPE]iB per node "
             r"\(1000000000000 \+ 40 samples",
             codes=(4,), timeout=15 * SLOW)
hostile_deck("fashion-mnist path to a missing folder",
             deck_text({"data": {"source": "fashion-mnist", "path": os.path.join(tmp, "nowhere")}}),
             r"cannot open \S*/nowhere/train-images-idx3-ubyte\S*( or \S*)?: No such file or directory", codes=(3,))
plain_file = os.path.join(tmp, "plain.txt")
with open(plain_file, "w") as f:
    f.write("not a folder\n")
hostile_deck("mnist path is a regular file", deck_text({"data": {"source": "mnist", "path": plain_file}}),
             r"cannot open \S*/plain\.txt/train-images-idx3-ubyte\S*: Not a directory", codes=(2, 3))
hostile_deck("hdf5 path is a folder", deck_text({"data": {"source": "hdf5", "path": tmp}}),
             re.escape(tmp) + r" is not an HDF5 file", codes=(2, 3))
hostile_deck("hdf5 path missing", deck_text({"data": {"source": "hdf5", "path": os.path.join(tmp, "no.h5")}}),
             r"cannot open the HDF5 input \S*/no\.h5: No such file or directory", codes=(3,))
hostile_deck("-P without '='", valid, r"-P model:hidden: error: expected group:key=value",
             args=("--check", "-P", "model:hidden"))
hostile_deck("-P unknown group", valid, r"-P nosuch:x=1: error: unknown group 'nosuch'",
             args=("--check", "-P", "nosuch:x=1"))
hostile_deck("unknown option", valid, r"unknown option '--frobnicate'", args=("--frobnicate",))
verdict("deck: the deck path is a folder", run_raw(None, args=("--check",), deck_path=tmp), (2, 3),
        r"deck " + re.escape(tmp) + r" is not a regular file")
verdict("deck: the deck file is missing",
        run_raw(None, args=("--check",), deck_path=os.path.join(tmp, "missing.nml")), (3,),
        r"cannot open deck \S*/missing\.nml: No such file or directory")
verdict("deck: two decks", run_raw(valid, args=("--check", plain_file)), (2,),
        r"more than one deck given \('\S*/plain\.txt' and '\S*\.nml'\)")

# Real runs (not --check): outputs that cannot be written, restarts that cannot be read.
hostile_deck("real run: out_dir under /proc", deck_with(run__out_dir="/proc/gnrev_out"),
             r"cannot create output folder /proc/gnrev_out: No such file or directory", codes=(3,), args=())
# Refused by name before the lock file or MPI-IO would fail inside it ("Not a directory", which does
# not say that out_dir is the problem).
hostile_deck("real run: out_dir is a regular file", deck_with(run__out_dir=plain_file),
             r"out_dir \S*/plain\.txt exists and is not a folder", codes=(3,), args=())
hostile_deck("real run: restart from a missing checkpoint",
             deck_with(run__out_dir=os.path.join(tmp, "r1"), checkpoint__restart=os.path.join(tmp, "none.h5")),
             r"cannot open '\S*/none\.h5': No such file or directory", codes=(2, 3), args=())
hostile_deck("real run: restart from a file that is not HDF5",
             deck_with(run__out_dir=os.path.join(tmp, "r2"), checkpoint__restart=plain_file),
             r"cannot open '\S*/plain\.txt' for reading: not an HDF5 file", codes=(2, 3), args=())
hostile_deck("real run: hidden = 10**9", deck_with(model__hidden=10**9), MEMORY, codes=(4,), args=(),
             timeout=15 * SLOW)


# ---- data files ----------------------------------------------------------------------------------
def folder(name):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    return d


# 28 x 28: MNIST's image size; source = 'mnist' refuses other sizes before reading any pixel.
def idx_pair(d, n=4, rows=28, cols=28, labels=None, img_magic=0x803, gz=False, img_bytes=None, lab_bytes=None):
    labels = list(range(n)) if labels is None else labels
    for prefix, count in (("train", n), ("t10k", n)):
        img = img_bytes if img_bytes is not None else struct.pack(">IIII", img_magic, count, rows, cols) + bytes(
            (i * 13) % 256 for i in range(count * rows * cols))
        lab = lab_bytes if lab_bytes is not None else struct.pack(">II", 0x801, len(labels)) + bytes(labels)
        for base, data in ((f"{prefix}-images-idx3-ubyte", img), (f"{prefix}-labels-idx1-ubyte", lab)):
            if gz:
                with gzip.open(os.path.join(d, base + ".gz"), "wb") as f:
                    f.write(data)
            else:
                with open(os.path.join(d, base), "wb") as f:
                    f.write(data)


def mnist_deck(d, **extra):
    g = {"run": {"out_dir": os.path.join(tmp, "out_data")}, "data": {"source": "mnist", "path": d},
         "model": {"blocks": 1, "hidden": 8}}
    g["data"].update(extra)
    return deck_text(g)


def hostile_data(name, text, pattern, codes=(2,), args=("--check",), until=None):
    verdict(f"data: {name}", run_raw(text, args=args), codes, pattern, until)


d = folder("idx_ok")
idx_pair(d)
p = run_raw(mnist_deck(d), args=("--check",)).result()
check(p.returncode == 0, "test_hostile data: a tiny valid IDX set passes --check (the base of the IDX cases)",
      p.stderr[-800:])
d = folder("idx_4x4")
idx_pair(d, rows=4, cols=4)
hostile_data("IDX of 4 x 4 images under source = 'mnist'", mnist_deck(d), pattern="expects MNIST's 28 x 28 images")
d = folder("idx_trunc_gz")
idx_pair(d, gz=True)
with gzip.open(os.path.join(d, "train-images-idx3-ubyte.gz"), "rb") as f:
    body = f.read()
with gzip.open(os.path.join(d, "train-images-idx3-ubyte.gz"), "wb") as f:
    f.write(body[:-5])
hostile_data("IDX .gz whose images are truncated", mnist_deck(d),
             r"train-images-idx3-ubyte\.gz is truncated: expected 3152 bytes after decompression")
d = folder("idx_magic")
idx_pair(d, img_magic=0x801)
hostile_data("IDX with a wrong magic number", mnist_deck(d),
             r"train-images-idx3-ubyte is not an IDX image file: magic number 0x00000801")
d = folder("idx_gz_corrupt")
idx_pair(d, gz=True)
path = os.path.join(d, "train-images-idx3-ubyte.gz")
raw = bytearray(open(path, "rb").read())
# The deflate data between the gzip header (10 bytes, then the stored file name up to its NUL) and
# the 8-byte trailer: zlib reads the header and then finds the stream invalid.
body = raw.index(0, 10) + 1 if raw[3] & 8 else 10
for i in range(body, len(raw) - 8):
    raw[i] ^= 0xA5
open(path, "wb").write(bytes(raw))
hostile_data("IDX .gz with a corrupt body", mnist_deck(d),
             r"cannot read \S*/train-images-idx3-ubyte\.gz: .*(invalid|incorrect|error)", codes=(3,))
d = folder("idx_empty")
idx_pair(d, img_bytes=b"")
hostile_data("IDX empty image file", mnist_deck(d),
             r"train-images-idx3-ubyte is truncated: its IDX header needs 16 bytes, got 0")
d = folder("idx_label")
idx_pair(d, labels=[0, 1, 10, 2])
hostile_data("IDX label 10", mnist_deck(d), r"train-labels-idx1-ubyte: label 10 of sample 2 is out of range")
d = folder("idx_count")
idx_pair(d, labels=[0, 1, 2])
hostile_data("IDX image and label counts differ", mnist_deck(d),
             r"train-images-idx3-ubyte holds 4 images but \S*/train-labels-idx1-ubyte holds 3 labels")
d = folder("idx_huge_dims")
idx_pair(d, img_bytes=struct.pack(">IIII", 0x803, 4, 0xFFFFFFFF, 0xFFFFFFFF))
hostile_data("IDX declaring 4294967295 x 4294967295 pixels", mnist_deck(d),
             r"train-images-idx3-ubyte declares images of 4294967295 x 4294967295 pixels")

d = folder("cifar_size")
with open(os.path.join(d, "test_batch.bin"), "wb") as f:
    f.write(bytes(3072))
for k in range(1, 6):
    with open(os.path.join(d, f"data_batch_{k}.bin"), "wb") as f:
        f.write(bytes(3073))
cifar = lambda d: deck_text({"run": {"out_dir": os.path.join(tmp, "out_c")},  # noqa: E731
                             "data": {"source": "cifar10", "path": d}, "model": {"blocks": 1, "hidden": 8}})
hostile_data("CIFAR test batch of the wrong size", cifar(d),
             r"test_batch\.bin: size 3072 bytes is not a multiple of the 3073-byte CIFAR-10 record")
d = folder("cifar_missing")
for k in (1, 2, 4, 5):
    with open(os.path.join(d, f"data_batch_{k}.bin"), "wb") as f:
        f.write(bytes(3073))
hostile_data("CIFAR data_batch_3.bin missing", cifar(d),
             r"cannot open \S*/data_batch_3\.bin: No such file or directory", codes=(3,))
d = folder("cifar_label")
for k in range(1, 6):
    with open(os.path.join(d, f"data_batch_{k}.bin"), "wb") as f:
        f.write(bytes([11]) + bytes(3072))
with open(os.path.join(d, "test_batch.bin"), "wb") as f:
    f.write(bytes(3073))
hostile_data("CIFAR label 11", cifar(d), r"data_batch_1\.bin: record 0 has label 11, expected 0\.\.9")


def h5file(name, trx=None, tr_y=None, tex=None, te_y=None):
    path = os.path.join(tmp, name)
    with h5py.File(path, "w") as f:
        f["train/x"] = np.arange(24, dtype="f4").reshape(6, 4) if trx is None else trx
        f["train/y"] = np.array([0, 1, 2, 0, 1, 2]) if tr_y is None else tr_y
        f["test/x"] = np.ones((2, 4)) if tex is None else tex
        f["test/y"] = np.array([1, 0]) if te_y is None else te_y
    return path


h5deck = lambda path: deck_text({"run": {"out_dir": os.path.join(tmp, "out_h")},  # noqa: E731
                                 "data": {"source": "hdf5", "path": path}, "model": {"blocks": 1, "hidden": 8}})
p = run_raw(h5deck(h5file("ok.h5")), args=("--check",)).result()
check(p.returncode == 0, "test_hostile data: a tiny valid HDF5 set passes --check (the base of the HDF5 cases)",
      p.stderr[-800:])
nan_x = np.arange(24, dtype="f4").reshape(6, 4)
nan_x[3, 1] = np.nan
hostile_data("HDF5 with NaN in /train/x", h5deck(h5file("nan.h5", trx=nan_x)),
             r"nan\.h5: /train/x\[3\]\[1\] = nan; inputs must be finite")
hostile_data("HDF5 real run with NaN in /train/x", h5deck(h5file("nan2.h5", trx=nan_x)),
             r"nan2\.h5: /train/x\[3\]\[1\] = nan; inputs must be finite", args=())
hostile_data("HDF5 /train/x of integers", h5deck(h5file("int.h5", trx=np.ones((6, 4), dtype="i4"))),
             r"int\.h5: dataset /train/x holds integer values, expected floating-point")
hostile_data("HDF5 /train/x 3-D", h5deck(h5file("rank3.h5", trx=np.ones((6, 4, 1), dtype="f4"))),
             r"rank3\.h5: dataset /train/x has rank 3 \(shape 6 x 4 x 1\), expected rank 2")
hostile_data("HDF5 x and y lengths differ", h5deck(h5file("len.h5", tr_y=np.array([0, 1, 2]))),
             r"len\.h5: /train/x holds 6 samples but /train/y holds 3 labels")
hostile_data("HDF5 train and test widths differ", h5deck(h5file("d.h5", tex=np.ones((2, 6)))),
             r"/train/x has 4 features per sample but \S*/test/x has 6")
hostile_data("HDF5 negative label", h5deck(h5file("neg.h5", tr_y=np.array([0, 1, -2, 0, 1, 2]))),
             r"neg\.h5: /train/y\[2\] = -2; labels must be 0, 1, \.\.\., C-1")
hostile_data("HDF5 label 2**40", h5deck(h5file("big.h5", tr_y=np.array([0, 1, 2**40, 0, 1, 2], dtype="i8"))),
             r"big\.h5: a label is 2147483647 or more")
hostile_data("HDF5 string labels", h5deck(h5file("str.h5", tr_y=np.array([b"a", b"b", b"c", b"a", b"b", b"c"]))),
             r"str\.h5: dataset /train/y holds string values, expected integer")
not_h5 = os.path.join(tmp, "text.h5")
with open(not_h5, "w") as f:
    f.write("this is not HDF5\n" * 10)
hostile_data("a text file named .h5", h5deck(not_h5), r"/text\.h5 is not an HDF5 file")
empty_h5 = os.path.join(tmp, "empty.h5")
open(empty_h5, "wb").close()
hostile_data("an empty file named .h5", h5deck(empty_h5), r"/empty\.h5 is not an HDF5 file")
trunc_h5 = os.path.join(tmp, "trunc.h5")
data = open(h5file("full.h5"), "rb").read()
open(trunc_h5, "wb").write(data[: len(data) // 2])
# HDF5's own reason tells a damaged file from one that cannot be reached.
hostile_data("a truncated HDF5 file", h5deck(trunc_h5), r"trunc\.h5\S*:? .*(truncated|damaged|corrupt)", codes=(2, 3))

for item in pending:
    judge(*item)
pool.shutdown()

# Each pattern names its case's cause: it matches no other case's message (cases that share a
# cause share their pattern).
clashes = [f"/{pat}/ of '{name}' also matches the message of '{other}'"
           for name, (pat, _) in messages.items() for other, (opat, msg) in messages.items()
           if other != name and opat != pat and re.search(pat, msg, re.S)]
check(not clashes and len(messages) == 60, "test_hostile every expected message is specific to its case",
      "; ".join(clashes) or f"{len(messages)} cases")
finish()
