"""test_paraview.py — run.xmf in ParaView and tools/pv_ntk.py, headless (ParaView and xvfb are
installed by tools/install-deps.sh; a machine without them fails here rather than skipping).

On a small gnrev_mpi run with NTK matrices and CKA rows saved:
- ParaView's XDMF reader, given run.xmf by absolute path from another working directory, reads
  arrays equal to the HDF5 data; every image lies flat in the x-y plane with its columns along x
  and rows along y; the CKA image does not overlap the NTK's; the default representation is a
  surface, not an outline.
- tools/pv_ntk.py, started without a DISPLAY, renders the last NTK snapshot to a PNG that shows
  the matrix: not blank; the coloured block has the matrix's aspect ratio and most of the picture's
  height; each cell's colour, mapped back through the colour map, is the matrix entry (row 0 at the
  top). --all writes one frame per saved snapshot, --step picks one and refuses a step without a
  matrix.
"""
import os
import shutil
import subprocess
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import cm  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "py"))
import gnrun  # noqa: E402
from gnrun import check, finish, plan  # noqa: E402

PV_NTK = os.path.join(gnrun.ROOT, "tools", "pv_ntk.py")
PYTHON = os.environ.get("PYTHON", sys.executable)

READ_SCRIPT = r"""
import sys
from paraview.simple import XDMFReader, GetActiveViewOrCreate, Show
from paraview import servermanager as sm
from vtk.numpy_interface import dataset_adapter as dsa
r = XDMFReader(FileNames=[sys.argv[1]])
r.UpdatePipelineInformation()
for t in list(r.TimestepValues or [0.0]):
    r.UpdatePipeline(t)
    d = sm.Fetch(r)
    it = d.NewIterator()
    it.InitTraversal()
    while not it.IsDoneWithTraversal():
        o = it.GetCurrentDataObject()
        w = dsa.WrapDataObject(o)
        b = o.GetBounds()
        for k in w.CellData.keys():
            a = w.CellData[k]
            print("ARRAY %s %r %d %.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g" % (
                k, float(t), a.shape[0], float(a.sum()), float(a[o.GetNumberOfCells() - 1]), *b))
        it.GoToNextItem()
print("REPRESENTATION", Show(r, GetActiveViewOrCreate("RenderView")).GetProperty("Representation").GetData())
"""


def diag_run(tmp):
    out = os.path.join(tmp, "pv_run")
    deck = gnrun.synthetic_deck(out, method="gn", lr=0.5, steps=4, diagnostics__ntk_every=2,
                                diagnostics__ntk_samples=6, diagnostics__cka_every=2,
                                diagnostics__cka_samples=16)
    p = gnrun.run(deck, np_=2)
    return out if check(p.returncode == 0, "gnrev_mpi run with saved NTK matrices and CKA rows",
                        p.stdout[-600:] + p.stderr[-600:]) else None


def test_reader(tmp, run_dir):
    pv, xvfb = shutil.which("pvpython"), shutil.which("xvfb-run")
    if not check(pv is not None and xvfb is not None, "pvpython_and_xvfb_run_are_installed",
                 "run tools/install-deps.sh (Debian packages python3-paraview and xvfb)"):
        return
    script = os.path.join(tmp, "pv_read.py")
    with open(script, "w") as f:
        f.write(READ_SCRIPT)
    xmf = os.path.abspath(os.path.join(run_dir, "run.xmf"))
    p = subprocess.run([xvfb, "-a", pv, script, xmf], capture_output=True, text=True, timeout=180, cwd="/")
    got = [ln.split() for ln in p.stdout.splitlines() if ln.startswith("ARRAY ")]
    with h5py.File(os.path.join(run_dir, "run.h5"), "r") as f:
        steps = sorted(int(s) for s in f["ntk/step"][()] if f"K_{int(s):08d}" in f["ntk"])
        want = {float(s): f["ntk"][f"K_{s:08d}"][()] for s in steps}
        cka = f["cka/value"][()]
    bad, place = [], {}
    for t, K in want.items():
        rows = [g for g in got if g[1] == "ntk" and float(g[2]) == t]
        if not rows:
            bad.append(f"no ntk array at time {t}")
            continue
        n, s, last = int(rows[0][3]), float(rows[0][4]), float(rows[0][5])
        x0, x1, y0, y1, z0, z1 = (float(v) for v in rows[0][6:12])
        # The last cell is entry (rows-1, cols-1) when columns run along x and rows along y.
        if n != K.size or abs(s - K.sum()) > 1e-9 * np.abs(K).sum() or last != K[-1, -1]:
            bad.append(f"ntk at {t}: {n} values summing to {s}, last {last}; HDF5 {K.size}, {K.sum()}, {K[-1, -1]}")
        if (x1 - x0, y1 - y0, z1 - z0) != (K.shape[1], K.shape[0], 0.0):
            bad.append(f"ntk at {t}: bounds {x0} {x1} / {y0} {y1} / {z0} {z1}, expected {K.shape[1]} wide in x, "
                       f"{K.shape[0]} high in y, flat in z")
        place["ntk"] = (x0, x1)
    crow = [g for g in got if g[1] == "cka"]
    if not crow or int(crow[0][3]) != cka.size or abs(float(crow[0][4]) - np.nansum(cka)) > 1e-9 * cka.size:
        bad.append(f"cka array {crow[:1]} vs {cka.size} values summing to {np.nansum(cka)}")
    else:
        x0, x1, y0, y1, z0, z1 = (float(v) for v in crow[0][6:12])
        if (x1 - x0, y1 - y0, z1 - z0) != (cka.shape[1], cka.shape[0], 0.0):
            bad.append(f"cka bounds {x0} {x1} / {y0} {y1} / {z0} {z1} for a {cka.shape} table")
        place["cka"] = (x0, x1)
    check(p.returncode == 0 and not bad, "paraview_reads_run_xmf_by_absolute_path_with_the_hdf5_values_in_the_xy_plane",
          "; ".join(bad) + p.stderr[-800:])
    if "ntk" in place and "cka" in place:
        (a0, a1), (b0, b1) = place["ntk"], place["cka"]
        check(a1 <= b0 or b1 <= a0, "cka_image_does_not_overlap_the_ntk_image", f"ntk x {a0}..{a1}, cka x {b0}..{b1}")
    rep = [ln.split()[1] for ln in p.stdout.splitlines() if ln.startswith("REPRESENTATION ")]
    check(rep == ["Surface"], "paraview_shows_run_xmf_as_a_surface_by_default", f"{rep}")


def viridis_values(rgb):
    """Pixel colours -> position in [0, 1] on the viridis colour map (nearest of 256 colours) and
    the distance to that colour."""
    lut = cm.get_cmap("viridis")(np.linspace(0, 1, 256))[:, :3]
    d = np.linalg.norm(rgb[..., None, :] - lut, axis=-1)
    k = d.argmin(axis=-1)
    return k / 255.0, d.min(axis=-1)


def widest_run(flags):
    """(first, last) index of the longest run of True in a 1-D boolean array, or None."""
    best, start = None, None
    for i, f in enumerate(list(flags) + [False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            if best is None or i - start > best[1] - best[0] + 1:
                best = (start, i - 1)
            start = None
    return best


def matrix_block(png):
    """Where the matrix is in the picture: the widest block of colour-map pixels (the colour bar
    is narrower and apart from it). Returns (r0, r1, c0, c1, image) or None."""
    img = mpimg.imread(png)[..., :3].astype(float)
    _, dist = viridis_values(img)
    mask = dist < 0.08
    cols = mask.sum(axis=0)
    cr = widest_run(cols >= 0.5 * cols.max()) if cols.max() > 0 else None
    if cr is None:
        return None
    rows = mask[:, cr[0]:cr[1] + 1].mean(axis=1)
    rr = widest_run(rows >= 0.5)
    return (rr[0], rr[1], cr[0], cr[1], img) if rr else None


def test_render(tmp, run_dir):
    with h5py.File(os.path.join(run_dir, "run.h5"), "r") as f:
        steps = sorted(int(s) for s in f["ntk/step"][()] if f"K_{int(s):08d}" in f["ntk"])
        K = f["ntk"][f"K_{steps[-1]:08d}"][()]
    png = os.path.join(tmp, "ntk.png")
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    p = subprocess.run([PYTHON, PV_NTK, run_dir, "-o", png, "--size", "900", "700"], capture_output=True, text=True,
                       timeout=180, env=env, cwd=tmp)
    if not check(p.returncode == 0 and os.path.exists(png), "pv_ntk_renders_the_last_snapshot_without_a_display",
                 p.stdout[-400:] + p.stderr[-1200:]):
        return
    img = mpimg.imread(png)[..., :3]
    check(img.shape[:2] == (700, 900) and img.std() > 0.05, "pv_ntk_png_is_not_blank",
          f"shape {img.shape}, pixel std {img.std():.3g}")
    found = matrix_block(png)
    if not check(found is not None, "pv_ntk_png_has_a_coloured_block"):
        return
    r0, r1, c0, c1, img = found
    h, w = r1 - r0 + 1, c1 - c0 + 1
    aspect, want = w / h, K.shape[1] / K.shape[0]
    check(abs(aspect / want - 1) < 0.05 and h > 0.5 * img.shape[0],
          "pv_ntk_block_has_the_matrix_aspect_and_most_of_the_height",
          f"block {w} x {h} px (aspect {aspect:.3f}, matrix {want:.3f}) in a {img.shape[1]} x {img.shape[0]} picture")
    n, m = K.shape
    ys = (r0 + (np.arange(n) + 0.5) * h / n).astype(int)
    xs = (c0 + (np.arange(m) + 0.5) * w / m).astype(int)
    val, _ = viridis_values(img[np.ix_(ys, xs)])
    ref = (K - K.min()) / (K.max() - K.min())
    err = np.abs(val - ref).max()
    corr = np.corrcoef(val.ravel(), ref.ravel())[0, 1]
    flipped = np.corrcoef(val.ravel(), ref[::-1].ravel())[0, 1]
    print(f"# colour check: max err {err:.4f}, corr {corr:.5f}, flipped {flipped:.4f}")
    check(err < 0.03 and corr > 0.99 and flipped < corr - 0.05, "pv_ntk_cell_colours_are_the_matrix_entries_row_0_on_top",
          f"max |colour value - scaled entry| {err:.3f}, correlation {corr:.4f} (upside down {flipped:.4f})")

    frames = os.path.join(tmp, "frames")
    p = subprocess.run([PYTHON, PV_NTK, run_dir, "--all", "-o", frames, "--size", "300", "240"], capture_output=True,
                       text=True, timeout=180, env=env, cwd=tmp)
    got = sorted(os.listdir(frames)) if os.path.isdir(frames) else []
    check(p.returncode == 0 and got == [f"ntk_{s:08d}.png" for s in steps], "pv_ntk_all_writes_one_frame_per_saved_snapshot",
          f"{got} for steps {steps}: {p.stderr[-600:]}")
    p = subprocess.run([PYTHON, PV_NTK, run_dir, "--step", str(steps[-1] + 1), "-o", os.path.join(tmp, "x.png")],
                       capture_output=True, text=True, timeout=180, env=env, cwd=tmp)
    check(p.returncode != 0 and f"no NTK matrix at step {steps[-1] + 1}" in p.stderr
          and not os.path.exists(os.path.join(tmp, "x.png")), "pv_ntk_refuses_a_step_without_a_matrix",
          p.stderr[-400:])


def main():
    plan(12)
    tmp = gnrun.scratch("gnrev_pv_")
    run_dir = diag_run(tmp)
    if run_dir:
        test_reader(tmp, run_dir)
        test_render(tmp, run_dir)
    finish()


if __name__ == "__main__":
    main()
