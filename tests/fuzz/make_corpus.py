#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets into tests/fuzz/corpus/<target>/ (committed; rerun
after changing an input layout of tests/fuzz/fuzz_*.c). Names say what tests/test_fuzz_corpus.c
expects: ok-* must be accepted, bad-* refused with a message; any other name (inputs the fuzzer
found and that were added later) must only not crash."""
import gzip
import io
import os
import shutil
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def crash(name, data):
    """A reproducer of a bug found by fuzzing, for the module's owner: tests/fuzz/crashes/."""
    d = os.path.join(HERE, "crashes")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- deck: text, then optionally NUL and -P overrides one per line ----------------------------
def decks():
    for rel in ["input/deck.nml"] + sorted("input/paper/" + f for f in os.listdir(os.path.join(ROOT, "input/paper"))):
        with open(os.path.join(ROOT, rel), "rb") as f:
            put("deck", "ok-" + rel.replace("/", "_"), f.read())
    syn = ("&run name='t', out_dir='/tmp/x', max_steps=3 /\n&data source='synthetic', dim=8, classes=3 /\n"
           "&model blocks=1, hidden=16 /\n&optim method='adam', lr=1.0d-3 /\n")
    put("deck", "ok-synthetic.nml", syn)
    put("deck", "ok-empty.nml", "")
    put("deck", "ok-comments-only.nml", "! nothing but a comment\n\n")
    put("deck", "ok-overrides.nml", syn + "\0run:seed=7\noptim:method='sgd'\nmodel:hidden=32")
    put("deck", "ok-fortran-syntax.nml", "&RUN Name = \"a\"\"b\" , SEED=+3 ,EPOCHS= 2 &END\n"
        "&optim lr = 5.0E-02, beta1 = .9d0 , nesterov=F momentum=0.5 /\n&model bias=.FALSE. /\n")
    put("deck", "bad-unterminated-string.nml", "&run name = 'abc\n/\n")
    put("deck", "bad-unknown-key.nml", "&model hiden = 10 /\n")
    put("deck", "bad-unknown-group.nml", "&training epochs = 1 /\n")
    put("deck", "bad-type.nml", "&run seed = 'many' /\n&optim lr = .true. /\n")
    put("deck", "bad-no-slash.nml", "&run seed = 1\n")
    put("deck", "bad-huge-int.nml", "&run seed = 99999999999999999999999999 /\n")
    put("deck", "bad-negative.nml", "&model hidden = -5, blocks = 0 /\n&data batch_size = -1 /\n")
    put("deck", "bad-nan-lr.nml", "&optim lr = NaN /\n")
    put("deck", "bad-binary.nml", bytes(range(1, 256)) * 2)
    put("deck", "bad-enum.nml", "&optim method = 'newton' /\n")
    put("deck", "bad-override.nml", syn + "\0model:hidden\nnosuchgroup:x=1")
    put("deck", "bad-override-value.nml", syn + "\0run:seed='x")
    put("deck", "bad-garbage-after.nml", "&run seed = 1 / trailing words\n&&&\n")
    put("deck", "bad-array-syntax.nml", "&run seed(1:3) = 1, 2, 3 /\n")
    put("deck", "bad-long-string.nml", "&run name = '" + "n" * 5000 + "' /\n")


# ---- idx: flags byte, u16 image-file length, image file, label file ---------------------------
def idx_images(n, r, c, magic=0x803, pixels=None):
    hdr = struct.pack(">IIII", magic, n, r, c)
    body = bytes(pixels) if pixels is not None else bytes((i * 37) % 256 for i in range(n * r * c))
    return hdr + body


def idx_labels(labels, magic=0x801, count=None):
    return struct.pack(">II", magic, len(labels) if count is None else count) + bytes(labels)


def idx_input(img, lab, flags=0):
    return struct.pack("<BH", flags, len(img)) + img + lab


def gz(b):
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as g:
        g.write(b)
    return out.getvalue()


def idxs():
    img, lab = idx_images(3, 2, 2), idx_labels([0, 1, 9])
    put("idx", "ok-plain", idx_input(img, lab))
    put("idx", "ok-gz", idx_input(gz(img), gz(lab), 3))
    put("idx", "ok-plain-named-gz", idx_input(img, lab, 1))
    put("idx", "ok-28x28", idx_input(idx_images(2, 28, 28), idx_labels([4, 2])))
    put("idx", "bad-wrong-magic", idx_input(idx_images(3, 2, 2, magic=0x801), lab))
    put("idx", "bad-label-magic", idx_input(img, idx_labels([0, 1, 9], magic=0x803)))
    put("idx", "bad-header-short", idx_input(img[:10], lab))
    put("idx", "bad-truncated-images", idx_input(img[:-3], lab))
    put("idx", "bad-truncated-labels", idx_input(img, lab[:-1]))
    put("idx", "bad-count-mismatch", idx_input(img, idx_labels([0, 1])))
    put("idx", "bad-label-10", idx_input(img, idx_labels([0, 10, 1])))
    put("idx", "bad-zero-cols", idx_input(idx_images(3, 2, 0), lab))
    put("idx", "bad-huge-count", idx_input(idx_images(3, 2, 2)[:4] + struct.pack(">III", 0xFFFFFFFF, 2, 2), lab))
    # rows * cols would overflow int64 (data_idx.c bounds it)
    put("idx", "bad-huge-dims-overflow", idx_input(struct.pack(">IIII", 0x803, 1, 0xFFFFFFFF, 0xFFFFFFFF), idx_labels([1])))
    g = bytearray(gz(img))
    for i in range(12, len(g) - 8):
        g[i] ^= 0x5A
    put("idx", "bad-gz-corrupt-body", idx_input(bytes(g), gz(lab), 3))
    put("idx", "bad-gz-truncated", idx_input(gz(img)[:-12], gz(lab), 3))
    put("idx", "bad-empty", idx_input(b"", b""))


# ---- cifar: flags byte; test: test_batch.bin; train: 4 x u16 lengths, files 1..5 --------------
def cifar_rec(label, seed):
    return bytes([label]) + bytes((seed + 7 * i) % 256 for i in range(3072))


def cifars():
    two = cifar_rec(3, 1) + cifar_rec(9, 2)
    put("cifar", "ok-test-2-records", b"\x00" + two)
    put("cifar", "ok-test-empty", b"\x00")
    recs = [cifar_rec(k, k) for k in range(5)]
    put("cifar", "ok-train-5-files", b"\x01" + struct.pack("<4H", *(len(r) for r in recs[:4])) + b"".join(recs))
    put("cifar", "bad-test-short-record", b"\x00" + two[:-1])
    put("cifar", "bad-test-label-10", b"\x00" + cifar_rec(10, 0))
    put("cifar", "bad-train-file-3-missing",
        b"\x03" + struct.pack("<4H", *(len(r) for r in recs[:4])) + b"".join(recs))
    put("cifar", "bad-train-file-2-odd-size",
        b"\x01" + struct.pack("<4H", 3073, 100, 3073, 3073) + recs[0] + b"x" * 100 + b"".join(recs[2:]))


# ---- hdf5: mode byte; bit 0 = 0: raw file; bit 0 = 1: description for the HDF5 API ------------
TYPES = {"f32": (0, "<f4"), "f64": (1, "<f8"), "i32": (2, "<i4"), "u8": (3, "u1"), "i64": (4, "<i8"),
         "str": (5, "S4"), "i8": (6, "i1"), "u64": (7, "<u8")}
OK_MODE = 1 | (1 << 1) | (1 << 3)  # structured, n_train = 0 (all), n_test = 0 (all)


def h5_ds(kind="ds", t="f32", shape=(), values=None):
    if kind == "absent":
        return b"\x00"
    if kind == "group":
        return b"\x02"
    code, dt = TYPES[t]
    spec = 1 | code << 2 | len(shape) << 5
    n = int(np.prod(shape)) if shape else 1
    arr = np.zeros(n, dtype=dt) if values is None else np.asarray(values, dtype=dt).ravel()
    return bytes([spec]) + bytes(shape) + arr.tobytes()


def h5_struct(trx, tr_y, tex, te_y, mode=OK_MODE):
    return bytes([mode]) + trx + tr_y + tex + te_y


def h5_raw_valid():
    import h5py
    path = os.path.join(CORPUS, "_tmp.h5")
    with h5py.File(path, "w", libver="earliest") as f:
        f["train/x"] = np.arange(8, dtype="f4").reshape(4, 2)
        f["train/y"] = np.array([0, 1, 2, 1], dtype="i4")
        f["test/x"] = np.ones((2, 2), dtype="f8")
        f["test/y"] = np.array([2, 0], dtype="i8")
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


def hdf5s():
    x3 = h5_ds(t="f32", shape=(3, 2), values=np.arange(6) / 7)
    y3 = h5_ds(t="i32", shape=(3,), values=[0, 1, 2])
    x2 = h5_ds(t="f64", shape=(2, 2), values=[0.5, -1, 2, 3])
    y2 = h5_ds(t="u8", shape=(2,), values=[1, 0])
    put("hdf5", "ok-struct", h5_struct(x3, y3, x2, y2))
    put("hdf5", "ok-struct-n1", h5_struct(x3, y3, x2, y2, mode=1 | (2 << 1) | (2 << 3)))
    raw = h5_raw_valid()
    raw_mode = bytes([(1 << 1) | (1 << 3)])  # raw file, n_train = n_test = 0 (all)
    put("hdf5", "ok-raw-h5py", raw_mode + raw)
    put("hdf5", "bad-raw-truncated", raw_mode + raw[: len(raw) // 2])
    put("hdf5", "bad-raw-not-hdf5", raw_mode + b"this is not an HDF5 file\n")
    put("hdf5", "bad-raw-empty", raw_mode)
    put("hdf5", "bad-struct-nan", h5_struct(h5_ds(t="f32", shape=(3, 2), values=[0, 1, np.nan, 3, 4, 5]), y3, x2, y2))
    put("hdf5", "bad-struct-inf-test", h5_struct(x3, y3, h5_ds(t="f64", shape=(2, 2), values=[0, np.inf, 1, 2]), y2))
    put("hdf5", "bad-struct-int-x", h5_struct(h5_ds(t="i32", shape=(3, 2)), y3, x2, y2))
    put("hdf5", "bad-struct-float-y", h5_struct(x3, h5_ds(t="f32", shape=(3,)), x2, y2))
    put("hdf5", "bad-struct-string-y", h5_struct(x3, h5_ds(t="str", shape=(3,)), x2, y2))
    put("hdf5", "bad-struct-x-rank3", h5_struct(h5_ds(t="f32", shape=(3, 2, 1)), y3, x2, y2))
    put("hdf5", "bad-struct-x-scalar", h5_struct(h5_ds(t="f32", shape=()), y3, x2, y2))
    put("hdf5", "bad-struct-x-group", h5_struct(h5_ds("group"), y3, x2, y2))
    put("hdf5", "bad-struct-test-missing", h5_struct(x3, y3, h5_ds("absent"), h5_ds("absent")))
    put("hdf5", "bad-struct-count-mismatch", h5_struct(x3, h5_ds(t="i32", shape=(2,), values=[0, 1]), x2, y2))
    put("hdf5", "bad-struct-d-mismatch", h5_struct(x3, y3, h5_ds(t="f64", shape=(2, 3)), y2))
    put("hdf5", "bad-struct-zero-rows", h5_struct(h5_ds(t="f32", shape=(0, 2)), h5_ds(t="i32", shape=(0,)), x2, y2))
    put("hdf5", "bad-struct-zero-cols", h5_struct(h5_ds(t="f32", shape=(3, 0)), y3, h5_ds(t="f32", shape=(2, 0)), y2))
    put("hdf5", "bad-struct-negative-label", h5_struct(x3, h5_ds(t="i8", shape=(3,), values=[0, -1, 2]), x2, y2))
    put("hdf5", "bad-struct-huge-label", h5_struct(x3, h5_ds(t="u64", shape=(3,), values=[0, 2**63, 1]), x2, y2))
    put("hdf5", "bad-struct-n-train-negative", h5_struct(x3, y3, x2, y2, mode=1))
    put("hdf5", "bad-struct-n-train-too-big",  # n_train = 2 of 1 sample
        h5_struct(h5_ds(t="f32", shape=(1, 2)), h5_ds(t="i32", shape=(1,)), x2, y2, mode=1 | (3 << 1) | (1 << 3)))


if __name__ == "__main__":
    if os.path.isdir(CORPUS) and "--keep" not in sys.argv:
        for t in ("deck", "idx", "cifar", "hdf5"):
            d = os.path.join(CORPUS, t)
            if os.path.isdir(d):
                for f in os.listdir(d):
                    if f.startswith(("ok-", "bad-")):
                        os.remove(os.path.join(d, f))
    decks()
    idxs()
    cifars()
    hdf5s()
