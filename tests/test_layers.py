#!/usr/bin/python3
"""test_layers.py — the source tree keeps its layers (README "Layout").

The layers are the folders of src/ in the order of the Makefile's LAYERS line. A module
(src/<layer>/<mod>.c with include/gnrev/<layer>/<mod>.h) may include headers of its own layer or
of earlier layers only, and no two modules may include each other's headers. The same rules are
checked on what the objects really call: the symbols each build/obj/<layer>/<mod>.o leaves
undefined are matched with the module that defines them (nm), which also sees calls made
through a header of another name. The checkers run on the real tree and on small trees made here
with one known violation each, so that a checker that finds nothing cannot pass.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "py"))
from gnrun import check, finish, plan, require  # noqa: E402

ROOT = os.environ.get("GNREV_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
INCLUDE = re.compile(r'^\s*#\s*include\s+"gnrev/(\w+)/(\w+)\.h"', re.MULTILINE)

def layers_of(root):
    with open(os.path.join(root, "Makefile")) as f:
        m = re.search(r"^LAYERS\s*:=\s*(.+)$", f.read(), re.MULTILINE)
    return m.group(1).split() if m else []


def violations(root, layers):
    """Upward includes, includes of unknown layers and pairs of modules that include each other."""
    rank = {name: i for i, name in enumerate(layers)}
    uses, bad = {}, []
    for top in ("src", os.path.join("include", "gnrev")):
        for layer in layers:
            folder = os.path.join(root, top, layer)
            if not os.path.isdir(folder):
                continue
            for name in sorted(os.listdir(folder)):
                if not name.endswith((".c", ".h")):
                    continue
                mod = (layer, name[:-2])
                with open(os.path.join(folder, name)) as f:
                    text = f.read()
                for l2, m2 in INCLUDE.findall(text):
                    if l2 not in rank:
                        bad.append(f"{top}/{layer}/{name} includes unknown layer {l2}")
                    elif rank[l2] > rank[layer]:
                        bad.append(f"{top}/{layer}/{name} includes {l2}/{m2}.h from a later layer")
                    if (l2, m2) != mod:
                        uses.setdefault(mod, set()).add((l2, m2))
    for a, used in uses.items():
        for b in used:
            if a < b and a in uses.get(b, ()):
                bad.append(f"{a[0]}/{a[1]} and {b[0]}/{b[1]} include each other")
    return bad


def call_violations(objdir, layers):
    """The same rules on the call graph of the objects objdir/<layer>/<mod>.o."""
    rank = {name: i for i, name in enumerate(layers)}
    defined, undefined = {}, {}
    for layer in layers:
        folder = os.path.join(objdir, layer)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if not name.endswith(".o"):
                continue
            mod, path = (layer, name[:-2]), os.path.join(folder, name)
            out = subprocess.run(["nm", "-g", path], capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == "U":
                    undefined.setdefault(mod, set()).add(parts[1])
                elif len(parts) == 3 and parts[1] in "TDBR":
                    defined[parts[2]] = mod
    calls, bad = {}, []
    for mod, syms in undefined.items():
        for sym in syms:
            target = defined.get(sym)
            if target and target != mod:
                calls.setdefault(mod, set()).add(target)
                if rank[target[0]] > rank[mod[0]]:
                    bad.append(f"{mod[0]}/{mod[1]} calls {sym} of the later layer's {target[0]}/{target[1]}")
    for a, used in calls.items():
        for b in used:
            if a < b and a in calls.get(b, ()):
                bad.append(f"{a[0]}/{a[1]} and {b[0]}/{b[1]} call each other")
    return bad, len(defined)


def compile_toy(root, sources):
    """Compiles {layer/mod: C text} into root/obj/layer/mod.o."""
    for rel, text in sources.items():
        src = os.path.join(root, rel + ".c")
        write(root, rel + ".c", text)
        obj = os.path.join(root, "obj", rel + ".o")
        os.makedirs(os.path.dirname(obj), exist_ok=True)
        subprocess.run(["cc", "-c", "-o", obj, src], check=True)


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def toy_tree(root, extra):
    write(root, "Makefile", "LAYERS   := low high\n")
    write(root, "src/low/a.c", '#include "gnrev/low/a.h"\n')
    write(root, "include/gnrev/low/a.h", "")
    write(root, "src/high/b.c", '#include "gnrev/high/b.h"\n#include "gnrev/low/a.h"\n')
    write(root, "include/gnrev/high/b.h", "")
    for rel, text in extra.items():
        write(root, rel, text)


def main():
    plan(10)
    layers = layers_of(ROOT)
    check(len(layers) >= 5 and layers[0] == "core" and layers[-1] == "run",
          "the Makefile lists the layers from core to run", " ".join(layers))
    listed = set(layers)
    on_disk = {d for d in os.listdir(os.path.join(ROOT, "src")) if os.path.isdir(os.path.join(ROOT, "src", d))}
    check(on_disk == listed, "every folder of src/ is a layer and every layer a folder",
          f"folders {sorted(on_disk)}, layers {sorted(listed)}")
    bad = violations(ROOT, layers)
    check(not bad, "no module includes a later layer, and no two modules include each other", "; ".join(bad))

    with tempfile.TemporaryDirectory() as tmp:
        toy_tree(tmp, {})
        check(violations(tmp, ["low", "high"]) == [], "checker: a clean toy tree passes")
    with tempfile.TemporaryDirectory() as tmp:
        toy_tree(tmp, {"src/low/a.c": '#include "gnrev/high/b.h"\n'})
        bad = violations(tmp, ["low", "high"])
        check(any("later layer" in b for b in bad), "checker: an upward include is found", repr(bad))
    with tempfile.TemporaryDirectory() as tmp:
        toy_tree(tmp, {"src/low/c.c": '#include "gnrev/low/a.h"\n', "src/low/a.c": '#include "gnrev/low/c.h"\n'})
        bad = violations(tmp, ["low", "high"])
        check(any("include each other" in b for b in bad), "checker: two modules including each other are found",
              repr(bad))

    objdir = os.path.join(ROOT, os.environ.get("BUILD", "build"), "obj")
    bad, nsyms = call_violations(objdir, layers)
    # Without the objects the check below would pass on nothing.
    require(nsyms > 100, f"the library's objects were found and read ({nsyms} symbols under {objdir})")
    check(not bad, "no module calls a later layer, and no two modules call each other", "; ".join(bad))
    with tempfile.TemporaryDirectory() as tmp:
        compile_toy(tmp, {"low/a": "int a(void) { return 1; }\n",
                          "high/b": "int a(void); int b(void) { return a(); }\n"})
        bad, _ = call_violations(os.path.join(tmp, "obj"), ["low", "high"])
        check(bad == [], "call checker: a downward call passes", repr(bad))
    with tempfile.TemporaryDirectory() as tmp:
        compile_toy(tmp, {"low/a": "int b(void); int a(void) { return b(); }\n",
                          "high/b": "int b(void) { return 2; }\n"})
        bad, _ = call_violations(os.path.join(tmp, "obj"), ["low", "high"])
        check(any("later layer" in b for b in bad), "call checker: an upward call is found", repr(bad))
    with tempfile.TemporaryDirectory() as tmp:
        compile_toy(tmp, {"low/a": "int c(void); int a(void) { return c(); }\n",
                          "low/c": "int a(void); int c(void) { return a(); }\n"})
        bad, _ = call_violations(os.path.join(tmp, "obj"), ["low", "high"])
        check(any("call each other" in b for b in bad), "call checker: two modules calling each other are found",
              repr(bad))
    finish()


if __name__ == "__main__":
    main()
