"""test_plot_xdmf.py — the outputs of the diagnostics as users read them.

- CKA: the value test_cka computes in C (over 2 ranks) equals numpy's evaluation of the same
  definition on the matrices it wrote.
- A run with diagnostics: from ./gnrev_mpi when the training loop calls gn_diag_step, else from
  the files test_diag leaves in $DIAG_TEST_DIR; plus a metrics-only gnrev_mpi run to overlay.
- tools/plot_run.py writes non-empty PNGs for both runs overlaid and names what it skipped.
- run.xmf is well-formed XML; every HDF DataItem names a dataset of run.h5 (relative to the
  .xmf's folder) with the declared dimensions, the topology has one more point than cells, the
  coordinates are unit cells, the NTK snapshots share one place and the CKA table lies beside it, and
  the temporal grids' times are the steps of the saved NTK matrices.
(ParaView itself opening run.xmf: tests/test_paraview.py.)
"""
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "py"))
import gnrun  # noqa: E402
from gnrun import check, finish  # noqa: E402

ROOT = gnrun.ROOT
BUILD = os.environ.get("BUILD", "build")
TEST_BIN = os.path.join(ROOT, BUILD, "tests")
PLOT = os.path.join(ROOT, "tools", "plot_run.py")
PYTHON = os.environ.get("PYTHON", sys.executable)


def mpirun(np_, binary, env_extra):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", **env_extra)
    return subprocess.run([gnrun.MPIRUN, *gnrun.MPIFLAGS, "-np", str(np_), binary], capture_output=True,
                          text=True, timeout=120, env=env)


def cka_numpy(X, Y):
    Xc, Yc = X - X.mean(axis=0), Y - Y.mean(axis=0)
    return np.linalg.norm(Yc.T @ Xc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))


def test_cka_numpy(tmp):
    p = mpirun(2, os.path.join(TEST_BIN, "test_cka"), {"CKA_TEST_DIR": tmp})
    path = os.path.join(tmp, "cka_case.bin")
    if not check(p.returncode == 0 and os.path.exists(path), "test_cka wrote its case", p.stdout[-500:] + p.stderr[-500:]):
        return
    raw = np.fromfile(path, dtype=np.float64)
    n, pp, q = (int(v) for v in raw[:3])
    X = raw[3:3 + n * pp].reshape(n, pp)
    Y = raw[3 + n * pp:3 + n * pp + n * q].reshape(n, q)
    got = raw[3 + n * pp + n * q]
    want = cka_numpy(X, Y)
    check(abs(got - want) <= 1e-12 * want, "cka_from_c_equals_numpy_definition", f"{got!r} vs {want!r}")


def diag_run(tmp):
    """A run folder with /ntk, /cka, /weights, /ggn and run.xmf."""
    out = os.path.join(tmp, "diag_run")
    deck = gnrun.synthetic_deck(out, method="gn", lr=0.5, steps=4,
                                diagnostics__ntk_every=2, diagnostics__ntk_samples=6,
                                diagnostics__cka_every=2, diagnostics__cka_samples=16,
                                diagnostics__weights_every=1, diagnostics__ggn_every=2,
                                diagnostics__ggn_samples=5, diagnostics__ggn_top_k=3)
    p = gnrun.run(deck, np_=2)
    ok = p.returncode == 0
    check(ok, "gnrev_mpi run with every diagnostic on", p.stdout[-800:] + p.stderr[-800:])
    return out if ok else None


def metrics_run(tmp):
    if not os.path.exists(gnrun.BINARY):
        print("# gnrev_mpi not built: no metrics-only run to overlay")
        return None
    out = os.path.join(tmp, "plain_run")
    p = gnrun.run(gnrun.synthetic_deck(out, method="sgd", lr=0.2, steps=6), np_=1)
    check(p.returncode == 0, "gnrev_mpi metrics-only run", p.stderr[-800:])
    return out if p.returncode == 0 else None


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 2000


def check_summary(path, runs):
    """summary.md has one row per run whose end-of-run numbers are those of run.h5."""
    if not check(os.path.exists(path), "plot_run_writes_summary_md"):
        return
    rows = [ln.split("|")[1:-1] for ln in open(path).read().splitlines()[2:]]
    check(len(rows) == len(runs), "summary_has_one_row_per_run", f"{len(rows)} rows for {len(runs)} runs")
    bad = []
    for run, row in zip(runs, rows):
        with h5py.File(os.path.join(run, "run.h5"), "r") as f:
            loss = f["metrics/train_loss"][()]
            loss = loss[np.isfinite(loss)]
            want_loss = float(row[2].split("/")[-1])
            if abs(want_loss - loss[-1]) > 5e-3 * abs(loss[-1]):
                bad.append(f"{run}: end loss {row[2]} vs {loss[-1]}")
            if "ntk" in f:
                sim = f["ntk/similarity"][-1]
                if abs(float(row[6]) - sim) > 5e-3 * abs(sim):
                    bad.append(f"{run}: similarity {row[6]} vs {sim}")
            elif row[6].strip() != "–":
                bad.append(f"{run}: similarity {row[6]} without /ntk")
    check(not bad, "summary_numbers_are_those_of_run_h5", "; ".join(bad))


def test_plots(tmp, runs):
    rep = os.path.join(tmp, "report")
    p = subprocess.run([PYTHON, PLOT, *runs, "-o", rep], capture_output=True, text=True, timeout=120)
    if not check(p.returncode == 0, "plot_run_exits_cleanly", p.stderr[-1500:]):
        return
    want = ["ntk.png", "cka.png", "weights.png", "ggn_spectrum.png"]
    if len(runs) > 1:
        want += ["loss.png", "batch_change.png"]
    missing = [w for w in want if not (os.path.exists(os.path.join(rep, w)) and is_png(os.path.join(rep, w)))]
    check(not missing, "plot_run_writes_nonempty_pngs_for_every_figure", f"missing or empty: {missing}")
    if len(runs) > 1:
        check("has no /ntk" in p.stderr,
              "plot_run_notes_runs_lacking_a_group", p.stderr[-800:])
    check_summary(os.path.join(rep, "summary.md"), runs)
    p2 = subprocess.run([PYTHON, PLOT, os.path.join(tmp, "nowhere"), "-o", rep], capture_output=True, text=True)
    check(p2.returncode != 0 and "no run could be read" in p2.stderr, "plot_run_fails_clearly_without_a_readable_run",
          p2.stderr[-400:])


def test_xmf(run_dir):
    xmf = os.path.join(run_dir, "run.xmf")
    if not check(os.path.exists(xmf), "run_xmf_exists"):
        return
    try:
        root = ET.parse(xmf).getroot()
    except ET.ParseError as e:
        check(False, "run_xmf_is_well_formed_xml", str(e))
        return
    check(root.tag == "Xdmf" and root.get("Version") == "2.0", "run_xmf_is_well_formed_xdmf_2")
    problems, items, times, spans = [], 0, [], {}
    with h5py.File(os.path.join(run_dir, "run.h5"), "r") as f:
        # /ntk/step is the index of snapshots, and every K_ matrix in the file is one of them.
        saved = sorted(int(s) for s in f["ntk/step"][()] if f"K_{int(s):08d}" in f["ntk"]) if "ntk" in f else []
        check(len(saved) == len(f["ntk/step"]), "every_step_in_ntk_step_has_its_matrix", f"{saved}")
        stray = [k for k in (f["ntk"] if "ntk" in f else []) if k.startswith("K_") and int(k[2:]) not in saved]
        check(not stray, "no_ntk_matrix_outside_ntk_step", f"{stray}")
        for grid in root.iter("Grid"):
            if grid.get("GridType") != "Uniform":
                continue
            topo, attr = grid.find("Topology"), grid.find("Attribute")
            item = attr.find("DataItem") if attr is not None else None
            if topo is None or item is None or topo.get("TopologyType") != "2DRectMesh":
                problems.append(f"grid {grid.get('Name')}: no 2DRectMesh topology or attribute")
                continue
            axes = grid.find("Geometry").findall("DataItem") if grid.find("Geometry") is not None else []
            coords = [np.array(a.text.split(), dtype=float) for a in axes]
            fname, _, dpath = item.text.strip().partition(":")
            if os.path.isabs(fname):
                problems.append(f"{fname} is absolute (moving the run folder would break it)")
            if os.path.realpath(os.path.join(run_dir, fname)) != os.path.realpath(os.path.join(run_dir, "run.h5")):
                problems.append(f"{fname} is not run.h5 seen from the .xmf's folder")
            dims = tuple(int(v) for v in item.get("Dimensions").split())
            pts = tuple(int(v) for v in topo.get("Dimensions").split())
            if dpath not in f:
                problems.append(f"{dpath} missing from run.h5")
            elif f[dpath].shape != dims:
                problems.append(f"{dpath}: declared {dims}, stored {f[dpath].shape}")
            if pts != tuple(d + 1 for d in dims):
                problems.append(f"{dpath}: topology {pts} is not cells + 1")
            # VXVY: x has cols + 1 unit-spaced values, y rows + 1 from 0 (one cell per entry).
            if len(coords) != 2 or [len(c) for c in coords] != [pts[1], pts[0]] or \
                    any(np.any(np.diff(c) != 1) for c in coords) or coords[1][0] != 0:
                problems.append(f"{dpath}: coordinates {[c[:3] for c in coords]} are not unit cells from y = 0")
            else:
                spans.setdefault(attr.get("Name"), set()).add((coords[0][0], coords[0][-1]))
            if attr.get("Center") != "Cell":
                problems.append(f"{dpath}: attribute not cell-centred")
            t = grid.find("Time")
            if t is not None:
                times.append(float(t.get("Value")))
            items += 1
    check(items >= 2 and not problems, "run_xmf_datasets_exist_in_run_h5_with_declared_dimensions",
          "; ".join(problems) or f"{items} items")
    # The NTK snapshots share one place; the CKA table has its own, beside it.
    ntk, cka = spans.get("ntk", set()), spans.get("cka", set())
    check(len(ntk) == 1 and len(cka) == 1 and (max(x for _, x in ntk) <= min(x for x, _ in cka)),
          "run_xmf_puts_the_ntk_series_in_one_place_and_the_cka_table_beside_it", f"ntk x {ntk}, cka x {cka}")
    check(sorted(times) == [float(s) for s in saved] and len(saved) >= 2,
          "run_xmf_time_values_are_the_steps_of_the_saved_ntk_matrices", f"{times} vs {saved}")


def main():
    for name in ("test_cka", "test_diag"):
        if not check(os.path.exists(os.path.join(TEST_BIN, name)), f"{name} is built"):
            finish()
    with tempfile.TemporaryDirectory(prefix="gnrev_plot_") as tmp:
        test_cka_numpy(tmp)
        run_dir = diag_run(tmp)
        if run_dir:
            plain = metrics_run(tmp)
            test_plots(tmp, [run_dir] + ([plain] if plain else []))
            test_xmf(run_dir)
    finish()


if __name__ == "__main__":
    main()
