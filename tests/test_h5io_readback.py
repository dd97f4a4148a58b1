"""test_h5io_readback.py — what gnrev's HDF5 layer writes, read by h5py as users will read it.

Runs $BUILD/tests/test_h5io (one rank, a singleton MPI process) with H5IO_TEST_DIR set to a fresh
directory, then opens the files it left there with h5py and checks shapes, dtypes, values, string
attributes arriving as str, series layout and the outcome of atomic create/abandon. The values
come from the same formulas as in tests/test_h5io.c (exact in IEEE double on both sides).
Reports in the protocol of tests/run_tests.sh (tests/py/gnrun.py)."""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
from gnrun import check, finish, plan, require  # noqa: E402

ROOT = os.environ.get("GNREV_ROOT", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", "build")
BINARY = os.path.join(ROOT, BUILD, "tests", "test_h5io")  # an absolute BUILD wins in os.path.join

def val(k):
    return 1.0 / (1.0 + float(k))


def vals(n, offset=0):
    return np.array([val(k + offset) for k in range(n)], dtype=np.float64)


def ival(k):
    return (-1 if k % 2 else 1) * ((1 << 60) + k)


def exact(ds, want):
    got = ds[()]
    return got.shape == want.shape and got.dtype == want.dtype and np.array_equal(got, want)


def is_vl_utf8(obj, name):
    t = obj.attrs.get_id(name).get_type()
    return isinstance(t, h5py.h5t.TypeStringID) and t.is_variable_str() and t.get_cset() == h5py.h5t.CSET_UTF8


def main():
    plan(27)
    require(os.path.exists(BINARY), f"the C test binary {BINARY} is built")
    with tempfile.TemporaryDirectory(prefix="gnrev_h5io_py_") as d:
        env = dict(os.environ, H5IO_TEST_DIR=d, OPENBLAS_NUM_THREADS="1")
        run = subprocess.run([BINARY], env=env, capture_output=True, text=True, timeout=120)
        check(run.returncode == 0 and "not ok" not in run.stdout,
              "the C test passes as a singleton MPI process",
              f"exit {run.returncode}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
        p = lambda name: os.path.join(d, name)

        with h5py.File(p("arrays.h5"), "r") as f:
            check(exact(f["arrays/a2"], vals(15).reshape(5, 3)), "h5py reads the replicated 5 x 3 array exactly")
            check(exact(f["arrays/deep/a3"], vals(24, 100).reshape(4, 2, 3)),
                  "h5py reads the 3-D array in its intermediate group exactly")
            check(exact(f["arrays/i64"], np.array([ival(k) for k in range(7)], dtype=np.int64)),
                  "h5py reads the int64 array as int64, beyond 2^53 exactly")
            check(exact(f["arrays/tiny"], vals(2, 200)), "h5py reads the array shorter than the rank count")
            check(f["arrays/empty"].shape == (0, 3) and f["arrays/empty"].dtype == np.float64,
                  "the empty array has shape (0, 3) and dtype float64")

        with h5py.File(p("rows.h5"), "r") as f:
            check(exact(f["dist/r7x3"], vals(21).reshape(7, 3)), "h5py reads the row-distributed 7 x 3 array exactly")
            check(exact(f["dist/r2x4"], vals(8, 1000).reshape(2, 4)), "h5py reads the row-distributed 2 x 4 array exactly")
            check("bad" not in f["dist"] and "short" not in f["dist"], "refused row writes left no dataset")

        with h5py.File(p("run.h5"), "r") as f:
            steps = [0, 1, 2, 6]
            loss, acc = f["metrics/loss"], f["metrics/acc"]
            check(exact(loss, np.array([val(10 * s) for s in steps])) and
                  exact(acc, np.array([val(10 * s + 1) for s in steps])),
                  "series hold 3 kept entries and the one appended after restart")
            check(loss.maxshape == (None,) and loss.chunks is not None and len(loss.chunks) == 1,
                  "series are extendible chunked 1-D datasets", f"maxshape {loss.maxshape} chunks {loss.chunks}")
            a = loss.attrs
            check(a.get("description") == "training loss" and a.get("units") == "nat" and a.get("dims") == "step",
                  "series description, units and dims arrive as str", repr(dict(a)))
            check(exact(f["late/x"], vals(15, 70).reshape(5, 3)) and exact(f["late/y"], vals(4, 9).reshape(2, 2)),
                  "rewritten datasets hold their last values and shapes")

        with h5py.File(p("attrs.h5"), "r") as f:
            a = f.attrs
            strings = {"format": "gnrev-test-1", "utf8": "\u00b5m, \u03a3 \u2713", "empty": "",
                       "note": "second, and longer than the first"}
            check(all(isinstance(a.get(k), str) and a.get(k) == v for k, v in strings.items()),
                  "string attributes arrive as str with their values", repr(dict(a)))
            check(all(is_vl_utf8(f, k) for k in strings), "string attributes are variable-length UTF-8")
            kind = a.get("kind")
            check(isinstance(kind, np.int64) and kind == 7, "an attribute overwritten with an int64 is an int64",
                  repr(kind))
            c = f["Code"].attrs
            check(isinstance(f["Code"], h5py.Group), "an attribute on a missing object made it a group")
            check(isinstance(c.get("big"), np.int64) and int(c.get("big")) == -(2 ** 53 + 1),
                  "int64 attribute arrives as numpy.int64 with -(2^53+1) exactly", repr(c.get("big")))
            check(isinstance(c.get("tenth"), np.float64) and c.get("tenth") == 0.1 and c.get("tiny") == -1e-300,
                  "double attributes arrive as numpy.float64 exactly")
            check(f["Code"].attrs.get_id("big").shape == () and f["Code"].attrs.get_id("tenth").shape == (),
                  "numeric attributes are scalars")
            x = f["data/x"].attrs
            check(x.get("description") == "probe values" and x.get("units") == "1" and x.get("dims") == "sample",
                  "dataset description, units and dims arrive as str")

        names = sorted(os.listdir(d))
        check(not any(".tmp." in n for n in names), "no temporary file is left in the directory", repr(names))
        check("abandoned.h5" not in names, "the abandoned new file does not exist")
        check("plain.h5" in names, "a plain file given to gn_h5_abandon is kept")
        with h5py.File(p("atomic.h5"), "r") as f:
            check(exact(f["x"], vals(6, 50)) and f.attrs.get("format") is None,
                  "atomic.h5 holds the replacement, not the abandoned second replacement")
        for name in ("flushed.h5", "flushed_copy.h5"):
            with h5py.File(p(name), "r") as f:
                check(exact(f["x"], vals(6, 300)) and f["metrics/loss"].shape == (3,) and
                      f.attrs.get("format") == "gnrev-test-1",
                      f"{name} holds the data, series and attributes written before the flush")
    finish()


if __name__ == "__main__":
    main()
