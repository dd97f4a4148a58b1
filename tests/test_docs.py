"""test_docs.py — the documentation stands on its own and names what exists.

- No file of the repository (sources included) points into a design folder a user's clone
  does not have (the parent folder's shared/ tree, its DESIGN or STYLE notes, its papers/).
- Every function docs/algorithm.md names as the one implementing an equation is defined in src/,
  and every source path it names exists: a rename in the code fails here until the page follows.
- Every repository path the user documents name (README.md, INSTALL, docs/*.md, jobs/README.md)
  exists.
- Every deck key the deck reader knows (the effective deck `gnrev_mpi --check` prints, every key
  with its default) has a row in its group's table of docs/deck-reference.md.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "py"))
import gnrun  # noqa: E402
from gnrun import check, finish, plan  # noqa: E402

ROOT = gnrun.ROOT
# Spelled in pieces so that this file does not match itself.
FORBIDDEN = [re.compile(p) for p in (r"\.\./" + "shared", "shared/" + "DESIGN", "DESIGN" + r"\.md",
                                     "STYLE" + r"\.md", "shared/" + "papers")]


def repo_files():
    p = subprocess.run(["git", "-C", ROOT, "ls-files"], capture_output=True, text=True)
    if p.returncode == 0 and p.stdout.strip():
        return [f for f in p.stdout.splitlines() if os.path.isfile(os.path.join(ROOT, f))]
    out = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith((".", "build", "runs", "report"))]
        out += [os.path.relpath(os.path.join(folder, f), ROOT) for f in files]
    return out


def text(path):
    try:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            return f.read()
    except (UnicodeDecodeError, OSError):
        return None


def c_functions():
    """Names of the functions defined in src/ (a name followed by "(" at the start of a definition
    line, after its return type)."""
    names = set()
    pat = re.compile(r"^[A-Za-z_][\w \*]*?\b([A-Za-z_]\w*)\s*\([^;]*$", re.MULTILINE)
    for folder, _, files in os.walk(os.path.join(ROOT, "src")):
        for f in files:
            if f.endswith(".c"):
                names.update(m.group(1) for m in pat.finditer(open(os.path.join(folder, f)).read()))
    return names


def reader_keys():
    """group:key of every key in the effective deck gnrev_mpi --check prints for a tiny deck."""
    out = gnrun.scratch("gnrev_docs_")
    deck = gnrun.synthetic_deck(os.path.join(out, "run"))
    p = gnrun.run(deck, np_=1, args=("--check",))
    effective = p.stdout.split("effective deck:\n", 1)[-1] if p.returncode == 0 else ""
    keys, group = set(), None
    for line in effective.splitlines():
        if line.startswith("&"):
            group = line[1:].strip()
        elif group and re.match(r"^\s+\w+\s*=", line):
            keys.add(f"{group}:{line.split('=')[0].strip()}")
    return keys, p


def documented_keys(reference):
    """group:key of every key named in the first column of a table under "## `&group`"."""
    keys, group = set(), None
    for line in reference.splitlines():
        m = re.match(r"^## `&(\w+)`", line)
        if m or line.startswith("## "):
            group = m.group(1) if m else None
        elif group and line.startswith("|"):
            first = line.split("|")[1]
            keys.update(f"{group}:{k}" for k in re.findall(r"`(\w+)`", first))
    return keys


def main():
    plan(4)
    files = repo_files()
    hits = []
    for f in files:
        if f.startswith("tests/fuzz/corpus/"):
            continue
        t = text(f)
        if t is None:
            continue
        for i, line in enumerate(t.splitlines(), 1):
            if any(p.search(line) for p in FORBIDDEN):
                hits.append(f"{f}:{i}: {line.strip()[:80]}")
    check(len(files) > 20 and not hits, "no_file_points_into_the_design_folder",
          "; ".join(hits[:10]))

    algo = text("docs/algorithm.md") or ""
    defined = c_functions()
    # Functions are cited in square brackets: [`gn_sweep_direction`, src/optim/gn_sweep.c].
    cited = set()
    for group in re.findall(r"\[([^\]]*`[^\]]*)\]", algo):
        cited.update(re.findall(r"`([A-Za-z_]\w*)`", group))
    for row in re.findall(r"^\|[^|]*\|([^|]*)\|[^|]*\|$", algo, re.MULTILINE):  # the table of section 10
        cited.update(n for n in re.findall(r"`([A-Za-z_]\w*)`", row))
    missing = sorted(n for n in cited if n not in defined)
    print(f"# {len(cited)} functions cited: {' '.join(sorted(cited))}")
    check(len(cited) >= 40 and not missing, "every_function_docs_algorithm_md_cites_is_defined_in_src",
          f"{len(cited)} cited; not found: {missing}")

    docs = ["README.md", "INSTALL", "jobs/README.md", "docs/algorithm.md"] + \
        [os.path.join("docs", f) for f in sorted(os.listdir(os.path.join(ROOT, "docs"))) if f.endswith(".md")] + \
        ["docs/results/README.md"]
    path_pat = re.compile(r"\b((?:src|include|tests|tools|jobs|docs|input)/[\w./-]*\w\.(?:c|h|py|sh|md|slurm|nml))\b")
    gone = []
    for d in docs:
        for p in path_pat.findall(text(d) or ""):
            if not os.path.exists(os.path.join(ROOT, p)):
                gone.append(f"{d}: {p}")
    check(not gone, "every_repository_path_the_user_documents_name_exists", "; ".join(sorted(set(gone))))

    known, p = reader_keys()
    undocumented = sorted(known - documented_keys(text("docs/deck-reference.md") or ""))
    check(len(known) >= 50 and not undocumented, "every_deck_key_the_reader_knows_is_in_docs_deck_reference_md",
          f"{len(known)} keys; not documented: {undocumented}" + ("" if known else f"; --check: {p.stderr[-300:]}"))
    finish()


if __name__ == "__main__":
    main()
