#!/usr/bin/python3
"""pv_ntk.py — render the NTK matrices of a run (run.xmf, written when ntk_save_matrix is on) to PNG
with ParaView, without a display.

    tools/pv_ntk.py runs/x                     # the last saved snapshot -> ntk_SSSSSSSS.png here
    tools/pv_ntk.py runs/x --step 20 -o k.png  # the snapshot of step 20
    tools/pv_ntk.py runs/x --all -o frames/    # every snapshot, frames/ntk_SSSSSSSS.png (an
                                               # animation's frames, one colour scale for all)

The matrix is drawn as a printed matrix reads: row 0 at the top, column 0 at the left, one cell per
entry of K (index i*C + a: sample i, class a), coloured with one scale (default: the smallest to the
largest entry of the snapshots drawn) and a colour bar on the right.

Headless: started with an ordinary Python, the script runs itself again under ParaView's `pvpython`,
inside `xvfb-run -a` (a virtual X server) when no DISPLAY is set. Debian's ParaView 5.11 has no
offscreen (EGL/OSMesa) build: `pvpython --force-offscreen-rendering` still opens an X window and
crashes without a display, so xvfb-run is the way (Debian packages python3-paraview and xvfb,
installed by tools/install-deps.sh). To call it yourself: `xvfb-run -a pvpython tools/pv_ntk.py ...`.
"""
import argparse
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET

CHILD = "GNREV_PV_NTK_CHILD"  # set when the script runs inside pvpython


def relaunch(argv):
    """Runs this script again under pvpython (inside xvfb-run when there is no display)."""
    pv = shutil.which("pvpython")
    if not pv:
        sys.exit("pv_ntk: pvpython not found: install ParaView's Python (Debian: python3-paraview), "
                 "e.g. with tools/install-deps.sh")
    cmd = [pv, os.path.abspath(__file__), *argv]
    if not os.environ.get("DISPLAY"):
        xvfb = shutil.which("xvfb-run")
        if not xvfb:
            sys.exit("pv_ntk: no DISPLAY and no xvfb-run: install xvfb (Debian: xvfb), or run on a "
                     "machine with an X display")
        cmd = [xvfb, "-a", *cmd]
    env = dict(os.environ, **{CHILD: "1"})
    os.execve(cmd[0], cmd, env)


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="run folder (or its run.xmf)")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--step", type=int, help="the snapshot of this step (default: the last saved one)")
    which.add_argument("--all", action="store_true", help="every saved snapshot, one PNG each")
    ap.add_argument("-o", "--out", help="PNG file (one snapshot; default ntk_SSSSSSSS.png) or folder "
                    "(--all; default ntk_frames/)")
    ap.add_argument("--size", type=int, nargs=2, default=(1000, 800), metavar=("W", "H"),
                    help="image size in pixels (default 1000 800)")
    ap.add_argument("--cmap", default="Viridis (matplotlib)", help="ParaView colour map preset")
    ap.add_argument("--range", type=float, nargs=2, metavar=("LO", "HI"),
                    help="colour scale (default: smallest and largest entry of the snapshots drawn)")
    return ap.parse_args(argv)


def xmf_path(run):
    """run.xmf of a run folder (or the file itself), absolute: ParaView 5.11 resolves the HDF5 name
    wrongly from a bare relative name."""
    return os.path.abspath(run if run.endswith(".xmf") else os.path.join(run, "run.xmf"))


def render(a):
    from paraview import simple as pv  # noqa: E402 (only inside pvpython)

    reader = pv.XDMFReader(FileNames=[xmf_path(a.run)])
    reader.UpdatePipelineInformation()
    # The temporal grids are named ntk_<step>: switch off everything else (the CKA table).
    reader.GridStatus = [g for g in reader.GridStatus if re.fullmatch(r"ntk(_\d+)?", g)]
    reader.CellArrayStatus = ["ntk"]
    times = [float(t) for t in reader.TimestepValues] or [0.0]
    steps = [int(round(t)) for t in times]
    if a.all:
        chosen = list(zip(steps, times))
    elif a.step is not None:
        if a.step not in steps:
            sys.exit(f"pv_ntk: no NTK matrix at step {a.step}; saved steps: {' '.join(map(str, steps))}")
        chosen = [(a.step, times[steps.index(a.step)])]
    else:
        chosen = [(steps[-1], times[-1])]

    # One colour scale for every frame, so the frames of an animation compare.
    lo, hi = (a.range if a.range else (float("inf"), float("-inf")))
    rows = cols = x0 = None
    for _, t in chosen:
        reader.UpdatePipeline(t)
        info = reader.GetDataInformation()
        b = info.GetBounds()
        x0, cols, rows = b[0], b[1] - b[0], b[3] - b[2]
        if not a.range:
            r = reader.CellData["ntk"].GetRange()
            lo, hi = min(lo, r[0]), max(hi, r[1])
    if not hi > lo:
        hi = lo + 1.0

    w, h = a.size
    view = pv.GetActiveViewOrCreate("RenderView")
    view.ViewSize = [w, h]
    view.OrientationAxesVisibility = 0
    if hasattr(view, "UseColorPaletteForBackground"):
        view.UseColorPaletteForBackground = 0
    view.Background = [1.0, 1.0, 1.0]
    disp = pv.Show(reader, view)
    disp.Representation = "Surface"
    # Flat, unlit colours: a pixel's colour is the colour map's colour of its entry.
    disp.Ambient, disp.Diffuse, disp.Specular = 1.0, 0.0, 0.0
    pv.ColorBy(disp, ("CELLS", "ntk"))
    lut = pv.GetColorTransferFunction("ntk")
    lut.ApplyPreset(a.cmap, True)
    lut.AutomaticRescaleRangeMode = "Never"
    lut.RescaleTransferFunction(lo, hi)
    disp.SetScalarBarVisibility(view, True)
    bar = pv.GetScalarBar(lut, view)
    bar.Title, bar.ComponentTitle = "K", ""
    bar.TitleColor = bar.LabelColor = [0.0, 0.0, 0.0]
    bar.WindowLocation = "Any Location"
    bar.Orientation = "Vertical"
    bar.Position = [0.86, 0.1]
    bar.ScalarBarLength = 0.8
    title = pv.Text(Text="")
    tdisp = pv.Show(title, view)
    tdisp.WindowLocation = "Upper Center"
    tdisp.Color = [0.0, 0.0, 0.0]
    tdisp.FontSize = 14

    # Looking along +z with y pointing down: row 0 at the top, column 0 at the left. The matrix
    # takes the left part of the picture, the colour bar the right.
    view.CameraParallelProjection = 1
    scale = 0.55 * max(rows, cols * h / (0.8 * w))
    cx = x0 + cols / 2.0 + (scale * w / h) * 0.18
    cy = rows / 2.0
    view.CameraFocalPoint = [cx, cy, 0.0]
    view.CameraPosition = [cx, cy, -10.0 * max(rows, cols)]
    view.CameraViewUp = [0.0, -1.0, 0.0]
    view.CameraParallelScale = scale

    if a.all:
        folder = a.out or "ntk_frames"
        os.makedirs(folder, exist_ok=True)
        targets = [os.path.join(folder, f"ntk_{s:08d}.png") for s, _ in chosen]
    else:
        targets = [a.out or f"ntk_{chosen[0][0]:08d}.png"]
    for (step, t), path in zip(chosen, targets):
        view.ViewTime = t
        title.Text = f"NTK on the probe set, step {step} ({rows:.0f} x {cols:.0f})"
        pv.Render(view)
        pv.SaveScreenshot(path, view, ImageResolution=[w, h])
        print(path)


def saved_steps(xmf):
    """Steps of the NTK matrices run.xmf lists (the Time values of its temporal grid "ntk"), read
    with the standard library so that a wrong --step fails before ParaView starts."""
    if not os.path.exists(xmf):
        sys.exit(f"pv_ntk: {xmf} not found: was the run made with ntk_every > 0 and ntk_save_matrix?")
    try:
        root = ET.parse(xmf).getroot()
    except ET.ParseError as e:
        sys.exit(f"pv_ntk: {xmf} is not XML: {e}")
    steps = [int(round(float(t.get("Value")))) for g in root.iter("Grid") if g.get("Name") == "ntk"
             for t in g.iter("Time")]
    if not steps:
        sys.exit(f"pv_ntk: {xmf} lists no NTK matrix (ntk_save_matrix off, or no NTK snapshot yet)")
    return steps


def in_pvpython():
    exe = os.path.basename(sys.executable)
    return bool(os.environ.get(CHILD)) or exe.startswith(("pvpython", "pvbatch", "vtkpython"))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = parse(argv)  # parse first, so --help and usage errors need no ParaView
    steps = saved_steps(xmf_path(a.run))
    if a.step is not None and a.step not in steps:
        sys.exit(f"pv_ntk: no NTK matrix at step {a.step}; saved steps: {' '.join(map(str, steps))}")
    if not in_pvpython():
        relaunch(argv)
    render(a)


if __name__ == "__main__":
    # No sys.exit() on success: inside pvpython it tears the render window down in an order that
    # makes Xlib report GLXBadContext and exit 1 after the pictures are written.
    main()
