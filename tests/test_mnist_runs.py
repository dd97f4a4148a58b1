"""gnrev_mpi on the real MNIST that `make data` installs: a deck without `path` finds it in
/usr/share/datasets/mnist, a tiny GN run on it trains, the paper's MNIST decks load, and a source
that does not match its files is refused on the command line with one message (Fashion-MNIST's
files under source = 'mnist', as `-P data:source=mnist input/deck.nml` asks, and the reverse)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "py"))
import h5py  # noqa: E402
import numpy as np  # noqa: E402

import gnrun  # noqa: E402
from gnrun import ROOT, check, finish, metrics, plan, run  # noqa: E402

plan(7)

MNIST = "/usr/share/datasets/mnist"
FASHION = "/usr/share/datasets/fashion-mnist"
NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def installed(folder):
    return all(os.path.exists(os.path.join(folder, n)) or os.path.exists(os.path.join(folder, n + ".gz"))
               for n in NAMES)


tmp = gnrun.scratch("gnrev_mnist_")
if not installed(MNIST):
    print(f"# skip: no MNIST in {MNIST} (make data installs it): the MNIST runs")
else:
    # A deck with no path: the default folder is found.
    out = os.path.join(tmp, "tiny_gn")
    deck = {
        "run": {"name": "mnist-tiny", "out_dir": out, "seed": 3, "epochs": 6, "log_every": 1},
        "data": {"source": "mnist", "n_train": 64, "n_test": 200, "batch_size": 0},
        "model": {"blocks": 2, "hidden": 64},
        "optim": {"method": "gn", "lr": 0.5},
        "checkpoint": {"every": 0},
        "diagnostics": {"eval_every": 1},
    }
    p = run(deck, np_=2, args=("--check",))
    check(p.returncode == 0 and f"path = '{MNIST}'" in p.stdout,
          "test_mnist_deck_without_path_finds_the_default_folder",
          f"rc={p.returncode} {p.stderr[-400:]}")

    # A tiny GN run on the real files: the loss on its 64 images falls, labels are MNIST's.
    p = run(deck, np_=2, timeout=240)
    ok = p.returncode == 0
    m = metrics(out) if ok else {}
    loss = m.get("train_loss", np.array([np.nan]))
    acc = m.get("train_acc", np.array([np.nan]))
    test_acc = m.get("test_acc", np.array([np.nan]))
    check(ok and loss[-1] < 0.5 * loss[0] and acc[-1] > 0.5,
          "test_mnist_tiny_gn_run_trains (64 images, 6 full-batch steps: loss halves, accuracy > 0.5)",
          f"rc={p.returncode} loss={loss} acc={acc} {p.stderr[-500:]}")
    # Images and labels that belong together in both files: what 64 images teach carries over to
    # 200 test images far above chance (0.1); shuffled labels or another set's test files would not.
    check(ok and test_acc[-1] > 0.3, "test_mnist_tiny_gn_run_generalises_above_chance (test accuracy > 0.3)",
          f"test_acc={test_acc}")
    if ok:
        with h5py.File(os.path.join(out, "run.h5"), "r") as f:
            text = f.attrs["deck"]
            text = text.decode() if isinstance(text, bytes) else str(text)
        check("source = 'mnist'" in text and f"path = '{MNIST}'" in text,
              "test_mnist_run_records_source_and_default_path_in_run_h5")

    # The paper's MNIST decks load MNIST from the default folder as they are. Their out_dir goes to
    # the scratch folder: --check also judges how a run would start there, and runs/<name> of this
    # clone may hold a run of another setting.
    paper = sorted(f for f in os.listdir(os.path.join(ROOT, "input", "paper")) if f.startswith("mnist_"))
    bad = []
    for name in paper:
        p = run(open(os.path.join(ROOT, "input", "paper", name)).read(), np_=1,
                args=("--check", "-P", f"run:out_dir={os.path.join(tmp, name)}"))
        if p.returncode != 0 or "source = 'mnist'" not in p.stdout or f"path = '{MNIST}'" not in p.stdout:
            bad.append(f"{name}: rc={p.returncode} {p.stderr[-300:]}")
    check(len(paper) == 6 and not bad, f"test_paper_mnist_decks_load_mnist ({len(paper)} decks)", "; ".join(bad))

    # The reverse of the issue below: MNIST's files under source = 'fashion-mnist'.
    p = run(deck, np_=2, args=("--check", "-P", "data:source='fashion-mnist'", "-P", f"data:path='{MNIST}'"))
    check(p.returncode == 2 and f"{MNIST}/train-images-idx3-ubyte is MNIST's train-images-idx3-ubyte"
          in p.stderr, "test_mnist_files_refused_under_source_fashion_mnist", f"rc={p.returncode} {p.stderr[-400:]}")

if installed(FASHION):
    # -P data:source=mnist on the default deck (whose path is Fashion-MNIST's) used to train
    # Fashion-MNIST with MNIST's statistics under the name mnist.
    p = run(open(os.path.join(ROOT, "input", "deck.nml")).read(), np_=2,
            args=("--check", "-P", "data:source=mnist", "-P", "model:hidden=64"))
    want = (f"source = 'mnist' but {FASHION}/train-images-idx3-ubyte.gz is Fashion-MNIST's "
            "train-images-idx3-ubyte")
    check(p.returncode == 2 and want in p.stderr and p.stderr.count("gnrev_mpi:") == 1,
          "test_source_mnist_on_the_fashion_deck_is_refused_once_with_exit_2",
          f"rc={p.returncode} {p.stderr[-400:]}")
else:
    print(f"# skip: no Fashion-MNIST in {FASHION}: the refusal of source = 'mnist' on the default deck")

finish()
