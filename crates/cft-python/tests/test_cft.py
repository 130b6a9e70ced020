"""The `cft` package on numpy arrays: the same numbers as the `cft` command bit for bit,
scikit-learn's metrics, the reference's label masks, progress, Ctrl-C and bad input."""

import io
import os
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

import cft
from conftest import OWN, ROOT, read_safetensors


def same_bits(a, b):
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize("method", ["bp-asl", "bp-bce", "ga"])
def test_finetune_equals_the_cft_command_bit_for_bit(tmp_path, own, cft_bin, method):
    train, test, head = own
    out = tmp_path / "head.safetensors"
    args = ["--method", method, "--epochs", "150", "--patience", "30", "--seed", "7", "--lr", "0.01"]
    subprocess.run(
        [str(cft_bin), "finetune", "--train", str(OWN / "train.safetensors"), "--valid", str(OWN / "test.safetensors"),
         "--head", str(OWN / "head.safetensors"), "--out", str(out), *args],
        check=True, capture_output=True,
    )
    cli = read_safetensors(out)
    r = cft.finetune(train["features"], train["labels"], test["features"], test["labels"], head["weight"], head["bias"],
                     method=method, max_epochs=150, patience=30, seed=7, lr=0.01)
    assert same_bits(r.weight, cli["weight"]) and same_bits(r.bias, cli["bias"])
    improved = [o for o in r.outcomes if o["best_epoch"] >= 0]
    assert improved, "the comparison covers fine-tuned categories, not only kept ones"
    for o in improved:
        assert o["best_score"] > o["original_score"]


def test_evaluate_equals_scikit_learn_with_ties_and_unknown_labels():
    sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn is not installed")
    rng = np.random.default_rng(3)
    n, c = 400, 5
    scores = rng.integers(0, 6, size=(n, c)).astype(np.float32)  # many ties
    labels = (rng.random((n, c)) < 0.3).astype(np.float32)
    labels[rng.random((n, c)) < 0.4] = np.nan
    labels[:, 4] = np.where(np.isnan(labels[:, 4]), np.nan, 0.0)  # no positive: undefined
    for metric, fn in [("ap", sk.average_precision_score), ("auc", sk.roc_auc_score)]:
        got = cft.evaluate(scores, labels, metric=metric)
        want = []
        for k in range(c):
            known = ~np.isnan(labels[:, k])
            y = labels[known, k]
            want.append(fn(y, scores[known, k]) if 0 < y.sum() < len(y) else None)
        assert got["per_category"][4] is None
        for g, w in zip(got["per_category"][:4], want[:4]):
            assert abs(g - w) <= 1e-12, (metric, g, w)
        assert abs(got["mean"] - np.mean(want[:4])) <= 1e-12


def test_evaluate_with_a_head_scores_the_features(own):
    train, test, head = own
    direct = cft.evaluate(test["features"] @ head["weight"].T + head["bias"], test["labels"])
    with_head = cft.evaluate(test["features"], test["labels"], head={"weight": head["weight"], "bias": head["bias"]})
    assert np.allclose(direct["per_category"], with_head["per_category"], atol=1e-6)


def test_drop_labels_keeps_the_proportion_and_is_seeded():
    rng = np.random.default_rng(0)
    y = (rng.random((2000, 8)) < 0.2).astype(np.float32)
    a, b, c = cft.drop_labels(y, 0.3), cft.drop_labels(y, 0.3), cft.drop_labels(y, 0.3, seed=1)
    assert np.array_equal(a, b, equal_nan=True) and not np.array_equal(a, c, equal_nan=True)
    known = ~np.isnan(a)
    assert abs(known.mean() - 0.3) < 0.02
    assert np.array_equal(a[known], y[known])
    assert np.isnan(cft.drop_labels(y, 0.0)).all() and np.array_equal(cft.drop_labels(y, 1.0), y)


def test_train_head_learns_and_returns_a_state_dict(own):
    train, test, _ = own
    h = cft.train_head(train["features"], train["labels"], mode="an", epochs=100)
    assert h["weight"].shape == (6, 72) and h["bias"].shape == (6,)
    assert cft.evaluate(test["features"], test["labels"], head=h)["mean"] > 0.5


def test_progress_reaches_the_total_and_never_goes_back(own):
    train, test, head = own
    seen = []
    cft.finetune(train["features"], train["labels"], test["features"], test["labels"], head["weight"], head["bias"],
                 method="ga", max_epochs=40, patience=40, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (6 * 40, 6 * 40)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_a_tqdm_bar_is_driven():
    tqdm = pytest.importorskip("tqdm", reason="tqdm is not installed").tqdm
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    y = (x[:, :3] > 0).astype(np.float32)
    with tqdm(file=io.StringIO()) as bar:
        cft.finetune(x, y, x, y, np.zeros((3, 8), np.float32), method="bp-bce", max_epochs=20, patience=20, lr=0.01,
                     progress=bar)
        assert bar.n == bar.total == 3 * 20


def test_ctrl_c_stops_between_epochs_and_the_interpreter_carries_on():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 64)).astype(np.float32)
    y = (x[:, :16] + rng.normal(size=(3000, 16)) > 1).astype(np.float32)
    w = np.zeros((16, 64), np.float32)
    # Python installs its Ctrl-C handler only when SIGINT is not ignored at start-up, and a shell
    # without job control starts background commands with SIGINT ignored (a runner may also
    # block it); the test installs the handler an interactive interpreter has and unblocks the
    # signal. 2000 GA epochs take about 45 s on 2 cores: a signal that is not honoured fails the
    # test ("DID NOT RAISE") instead of hanging it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            cft.finetune(x, y, x, y, w, method="ga", max_epochs=2000, patience=2000)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    assert time.monotonic() - start < 5, "stopped within a few epochs of the signal"
    r = cft.finetune(x[:500], y[:500], x[:500], y[:500], w, method="bp-asl", max_epochs=5, patience=5, lr=0.01)
    assert r.weight.shape == (16, 64)


def test_bad_input_raises_the_one_line_messages():
    x = np.zeros((10, 4), np.float32)
    y = np.zeros((10, 2), np.float32)
    w = np.zeros((2, 4), np.float32)
    cases = [
        (lambda: cft.finetune(x.astype(np.int32), y, x, y, w), TypeError,
         "train_features: dtype int32; expected float32 (the `cft` package converts float16, bfloat16 and float64)"),
        (lambda: cft.finetune(np.where(np.eye(10, 4) > 0, np.nan, x), y, x, y, w), ValueError,
         "train_features: row 0, column 0 is NaN: features must be finite"),
        (lambda: cft.finetune(x, y, x, y, w, method="sgd"), ValueError,
         'method = "sgd": expected one of "bp-asl", "bp-bce", "ga"'),
        (lambda: cft.finetune(x, y[:5], x, y, w), ValueError,
         "train_labels: 5 rows but `train_features` has 10: one label row per feature row is required"),
        (lambda: cft.finetune(x, y + 0.5, x, y, w), ValueError,
         "train_labels: row 0, column 0 is 0.5; expected 1, 0, -1 or NaN"),
        (lambda: cft.finetune(x, y, x, y, w[:, :3]), ValueError,
         "weight: shape [2, 3] does not fit features of width 4 and 2 label columns: expected [2, 4]"),
        (lambda: cft.finetune(x, y, x, y, w, lr=0.0), ValueError, "lr = 0: expected a learning rate in (0, 1]"),
        (lambda: cft.finetune(x[0], y, x, y, w), ValueError, "train_features: shape [4]; expected a 2-D array [rows, columns]"),
        (lambda: cft.finetune("x", y, x, y, w), TypeError, "train_features: expected a numpy array or a torch tensor, got str"),
        (lambda: cft.drop_labels(y, 1.5), ValueError, "proportion = 1.5: expected a proportion of known labels in [0, 1]"),
        (lambda: cft.finetune(x, y, x, y, w, categories=[1, 2]), ValueError,
         "categories = 2: not a category index (the data has 2 categories)"),
        (lambda: cft.train_head(x, y, mode="full"), ValueError,
         'mode = "full": expected one of "an", "ignore", "an-ls", "wan", "epr", "role", "em", "em-apl", "ll-r", '
         '"ll-ct", "ll-cp"'),
        (lambda: cft.train_head(x, y, mode="em-apl", beta=-1.0), ValueError,
         "beta = -1: expected a finite number ≥ 0"),
        (lambda: cft.finetune(x, y, x, y, w, ga_elite_ties="last"), ValueError,
         'ga_elite_ties = "last": expected one of "first", "torch-cpu"'),
        (lambda: cft.finetune(x, y, x, y, w, engine="gpu"), ValueError,
         'engine = "gpu": expected one of "auto", "per-category", "batched", "cuda"'),
        (lambda: cft.finetune(x, y, x, y, w, device="tpu"), ValueError,
         'device = "tpu": "tpu" is not a device: expected cpu, cuda or cuda:N'),
        (lambda: cft.finetune(x, y, x, y, w, gemm_precision="bf16"), ValueError,
         'engine = "auto": gemm_precision = "bf16": only the CUDA engine has a GEMM precision; the batched engine computes in f32'),
        (lambda: cft.finetune(x, y, x, y, w, max_epochs=-1), ValueError, "max_epochs = -1: expected an integer ≥ 1"),
        (lambda: cft.finetune(x, y, x, y, w, patience=0), ValueError, "patience = 0: expected an integer ≥ 1"),
        (lambda: cft.finetune(x, y, x, y, w, seed=-3), ValueError, "seed = -3: expected an integer from 0 to 2**64 - 1"),
        (lambda: cft.finetune(x, y, x, y, w, threads=-2), ValueError,
         f"threads = -2: expected an integer from 1 to {max(64, 8 * os.cpu_count())}"),
        (lambda: cft.finetune(x, y, x, y, w, threads=100000), ValueError,
         f"threads = 100000: expected an integer from 1 to {max(64, 8 * os.cpu_count())}"),
        (lambda: cft.finetune(x, y, x, y, w, categories=[]), ValueError,
         "categories = []: expected at least one category (leave it out for all)"),
        (lambda: cft.finetune(x, y, x, y, w, categories=[True]), TypeError,
         "categories: True is a boolean; expected category indices"),
        (lambda: cft.finetune(x, y, x, y, w, progress=42), TypeError,
         "progress: expected a callable progress(done, total) or a tqdm bar, got int"),
        (lambda: cft.evaluate(x, y, head=w), TypeError,
         "head: expected a {\"weight\", \"bias\"} dict or an nn.Linear, got ndarray"),
        (lambda: cft.finetune(x, y, x, y, w, engine="cuda"), ValueError,
         'engine = "cuda": this `cft` package was built without CUDA support; use engine="auto" (the CPU engine)'),
    ]
    for call, kind, message in cases:
        with pytest.raises(kind) as e:
            call()
        assert str(e.value) == message
    # A fraction among the categories is refused by the argument's conversion, naming it.
    with pytest.raises(TypeError, match="categories"):
        cft.finetune(x, y, x, y, w, categories=[1.5])


def test_float16_and_float64_inputs_are_converted(own):
    train, test, head = own
    args = dict(method="bp-asl", max_epochs=20, patience=20, lr=0.01)
    as32 = lambda a: a.astype(np.float16).astype(np.float32)
    r16 = cft.finetune(train["features"].astype(np.float16), train["labels"], test["features"], test["labels"],
                       head["weight"], head["bias"], **args)
    r32 = cft.finetune(as32(train["features"]), train["labels"], test["features"], test["labels"], head["weight"],
                       head["bias"], **args)
    assert same_bits(r16.weight, r32.weight)
    r64 = cft.finetune(train["features"].astype(np.float64), train["labels"].astype(np.float64),
                       test["features"], test["labels"], head["weight"], head["bias"], **args)
    r = cft.finetune(train["features"], train["labels"], test["features"], test["labels"], head["weight"], head["bias"],
                     **args)
    assert same_bits(r64.weight, r.weight)


def test_threads_do_not_change_the_numbers(own):
    train, test, head = own
    runs = [cft.finetune(train["features"], train["labels"], test["features"], test["labels"], head["weight"],
                         head["bias"], method="ga", max_epochs=30, patience=30, threads=t) for t in (1, 2)]
    assert same_bits(runs[0].weight, runs[1].weight)


def test_run_writes_the_same_report_as_cft_run(tmp_path, cft_bin):
    spec = ROOT / "experiments" / "own-features.toml"
    subprocess.run([str(cft_bin), "run", str(spec), "--out", str(tmp_path / "cli")], check=True, capture_output=True)
    got = cft.run(spec, out=str(tmp_path / "py"), frame=False)
    assert str(got["dir"]) == str(tmp_path / "py" / "own-features")
    for name in ("table.csv", "table.md", "results.json"):
        cli = (tmp_path / "cli" / "own-features" / name).read_bytes()
        assert (tmp_path / "py" / "own-features" / name).read_bytes() == cli, name
    cells = [c for r in got["rows"] for c in r["cells"]]
    assert len(got["rows"]) >= 4 and all(0 < c["mean"] < 1 for c in cells)


def test_the_readme_shows_the_example_file_verbatim():
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "crates" / "cft-python" / "examples" / "readme_example.py").read_text()
    assert "```python\n" + example + "```" in readme


def _interrupt_after(seconds, call):
    """Runs ``call`` with a SIGINT sent ``seconds`` in (the handler an interactive interpreter
    has, the signal unblocked: see the finetune Ctrl-C test); returns the seconds it took."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            call()
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return time.monotonic() - start


def test_ctrl_c_stops_train_head_and_run(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 64)).astype(np.float32)
    y = (x[:, :16] > 1).astype(np.float32)
    # 10^6 epochs would take hours: the signal must end it between two epochs.
    assert _interrupt_after(0.5, lambda: cft.train_head(x, y, mode="an", epochs=1_000_000)) < 5
    assert _interrupt_after(0.5, lambda: cft.train_head(x, y, mode="ll-r", epochs=1_000_000, delta_rel=1e-7)) < 5
    spec = tmp_path / "long.toml"
    spec.write_text('[data]\ndataset = "scene"\n[labels]\nproportions = [0.5]\n[cft]\nmax_epochs = 1000000\n'
                    'patience = 1000000\nmethods = ["ga"]\n')
    took = _interrupt_after(1.0, lambda: cft.run(spec, out=str(tmp_path / "out"), datasets_dir=str(ROOT / "datasets")))
    assert took < 10
    assert not (tmp_path / "out" / "scene" / "results.json").exists(), "an interrupted run writes no results"


def _finetune_in_child(queue):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 16)).astype(np.float32)
    y = (x[:, :4] > 0).astype(np.float32)
    r = cft.finetune(x, y, x, y, np.zeros((4, 16), np.float32), method="ga", max_epochs=10, patience=10)
    queue.put(r.weight.shape)


def test_a_forked_child_runs_after_the_parent_used_the_engine():
    import multiprocessing

    _finetune_in_child(type("Q", (), {"put": lambda self, v: None})())  # the parent's pool is up
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_finetune_in_child, args=(queue,))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in cft.finetune")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == (4, 16)


def test_train_head_with_a_field_loss_equals_cft_train_head_bit_for_bit(tmp_path, cft_bin, own):
    train, _, _ = own
    for mode, extra, flags in [
        ("ll-r", dict(delta_rel=0.002), ["--delta-rel", "0.002"]),
        ("role", dict(expected_positives=2.0), ["--expected-positives", "2"]),
        ("em-apl", dict(warmup_epoch=20), ["--warmup-epoch", "20"]),
    ]:
        out = tmp_path / f"{mode}.safetensors"
        subprocess.run([str(cft_bin), "train-head", "--train", str(OWN / "train.safetensors"), "--mode", mode,
                        "--epochs", "40", "--out", str(out), *flags], check=True, capture_output=True)
        cli = read_safetensors(out)
        py = cft.train_head(train["features"], train["labels"], mode=mode, epochs=40, **extra)
        assert same_bits(py["weight"], cli["weight"]), mode
        assert same_bits(py["bias"], cli["bias"]), mode
