import dataclasses
import queue
import re
import threading
import time

import grpc
import numpy as np
import pytest

from serving.batching import (
    Batcher,
    BatcherClosedError,
    BatchingConfig,
    BatchInputError,
    BatchKey,
    BatchOutputError,
    BatchQueueFullError,
    load_batching_parameters,
)

KEY = BatchKey("ranking", 1, "serving_default")
#: Generous bound for anything that should happen "at once" on a loaded 2-core machine.
PROMPT_S = 10.0


class Recorder:
    """A model call that records the rows of every batch and answers from the merged inputs."""

    def __init__(self, fn=None, block: threading.Event | None = None):
        self.batches: list[dict[str, np.ndarray]] = []
        self.started = threading.Event()
        self._fn = fn or (lambda b: {"double": b["x"] * 2, "row_sum": b["x"].sum(axis=1)})
        self._block = block
        self._lock = threading.Lock()

    def __call__(self, batch):
        with self._lock:
            self.batches.append({name: array.copy() for name, array in batch.items()})
        self.started.set()
        if self._block is not None:
            assert self._block.wait(PROMPT_S)
        return self._fn(batch)

    @property
    def sizes(self) -> list[int]:
        with self._lock:
            return [len(next(iter(b.values()))) for b in self.batches]


def run_in_threads(fns):
    """Runs each callable in its own thread at once; returns results or raised exceptions."""
    barrier = threading.Barrier(len(fns))
    results = [None] * len(fns)

    def call(i):
        barrier.wait()
        try:
            results[i] = fns[i]()
        except Exception as e:  # noqa: BLE001  (the test inspects it)
            results[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a submit never returned"
    return results


def wait_until(predicate, what: str):
    deadline = time.monotonic() + PROMPT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)


def config(**kwargs) -> BatchingConfig:
    defaults = {"max_batch_size": 8, "batch_timeout_micros": 1000, "num_batch_threads": 2}
    return BatchingConfig(**{**defaults, **kwargs})


# --- BatchingConfig and the parameters file ---------------------------------------------------


def test_config_defaults_are_tf_servings():
    c = BatchingConfig()
    assert (c.max_batch_size, c.batch_timeout_micros, c.max_enqueued_batches) == (1000, 0, 10)
    assert c.num_batch_threads >= 1
    assert c.allowed_batch_sizes == () and not c.pad_variable_length_inputs
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.max_batch_size = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_batch_size": 0}, ValueError, "max_batch_size=0"),
        ({"num_batch_threads": 0}, ValueError, "num_batch_threads=0"),
        ({"max_enqueued_batches": -1}, ValueError, "max_enqueued_batches=-1"),
        ({"batch_timeout_micros": -5}, ValueError, "batch_timeout_micros=-5"),
        ({"max_batch_size": True}, TypeError, "max_batch_size=True"),
        ({"max_batch_size": 8, "allowed_batch_sizes": (4, 2, 8)}, ValueError, "increasing"),
        ({"max_batch_size": 8, "allowed_batch_sizes": (0, 8)}, ValueError, "positive"),
        ({"max_batch_size": 8, "allowed_batch_sizes": (2, 4)}, ValueError, "max_batch_size=8"),
        ({"pad_variable_length_inputs": 1}, TypeError, "pad_variable_length_inputs=1"),
    ],
)
def test_config_rejects_bad_values_naming_them(kwargs, error, match):
    with pytest.raises(error, match=match):
        BatchingConfig(**kwargs)


def test_load_batching_parameters_reads_tf_serving_text(tmp_path):
    path = tmp_path / "batching_parameters.txt"
    path.write_text(
        "max_batch_size { value: 32 }\n"
        "batch_timeout_micros { value: 500 }\n"
        "max_enqueued_batches { value: 3 }\n"
        "num_batch_threads { value: 2 }\n"
        'thread_pool_name { value: "ranking_batch" }\n'
        "allowed_batch_sizes: 8\nallowed_batch_sizes: 32\n"
        "pad_variable_length_inputs: true\n"
    )
    assert load_batching_parameters(str(path)) == BatchingConfig(
        max_batch_size=32,
        batch_timeout_micros=500,
        max_enqueued_batches=3,
        num_batch_threads=2,
        thread_pool_name="ranking_batch",
        allowed_batch_sizes=(8, 32),
        pad_variable_length_inputs=True,
    )


def test_load_batching_parameters_fills_omitted_fields_with_defaults(tmp_path):
    path = tmp_path / "b.txt"
    path.write_text("max_batch_size { value: 16 }\n")
    assert load_batching_parameters(str(path)) == dataclasses.replace(
        BatchingConfig(), max_batch_size=16
    )


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("max_batch_size { value: 8 }\nbatch_size { value: 8 }\n", 'no field named "batch_size"'),
        ("max_batch_size: 8\n", "max_batch_size { value: 64 }"),
        ("max_batch_size { value: 0 }\n", "max_batch_size=0"),
        ("allowed_batch_sizes: 4\n", r"max_batch_size=1000"),
        ("enable_large_batch_splitting { value: true }\n", "enable_large_batch_splitting"),
        ("max_execution_batch_size { value: 8 }\n", "max_execution_batch_size"),
    ],
)
def test_load_batching_parameters_rejects_bad_files_naming_file_and_fix(tmp_path, text, match):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        load_batching_parameters(str(path))
    assert str(path) in str(info.value)


def test_load_batching_parameters_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="--batching_parameters_file"):
        load_batching_parameters(str(tmp_path / "nope.txt"))


# --- Batcher: merging and splitting -----------------------------------------------------------


def test_concurrent_requests_each_get_exactly_their_own_rows():
    run = Recorder()
    rng = np.random.default_rng(0)
    requests = [rng.normal(size=(int(rng.integers(1, 5)), 3)) for _ in range(40)]
    with Batcher(config(max_batch_size=16, batch_timeout_micros=50_000)) as batcher:
        results = run_in_threads([lambda x=x: batcher.submit(KEY, {"x": x}, run) for x in requests])
    for x, result in zip(requests, results, strict=True):
        assert not isinstance(result, Exception), result
        np.testing.assert_allclose(result["double"], x * 2)
        np.testing.assert_allclose(result["row_sum"], [sum(row) for row in x.tolist()])
    assert sum(run.sizes) == sum(len(x) for x in requests)
    assert max(run.sizes) <= 16
    assert len(run.batches) < len(requests), "no two requests were ever merged"


def test_batches_never_exceed_max_batch_size():
    run = Recorder()
    with Batcher(config(max_batch_size=8, batch_timeout_micros=20_000)) as batcher:
        results = run_in_threads(
            [lambda i=i: batcher.submit(KEY, {"x": np.full((3, 1), i)}, run) for i in range(20)]
        )
    assert [r["double"].ravel().tolist() for r in results] == [[2 * i] * 3 for i in range(20)]
    assert run.sizes and all(size <= 8 for size in run.sizes)
    assert sum(run.sizes) == 60


def test_lone_request_runs_after_the_timeout_not_forever():
    run = Recorder()
    with Batcher(config(max_batch_size=64, batch_timeout_micros=200_000)) as batcher:
        start = time.monotonic()
        result = batcher.submit(KEY, {"x": np.ones((1, 2))}, run)
        elapsed = time.monotonic() - start
    assert result["row_sum"].tolist() == [2.0]
    assert 0.15 <= elapsed < PROMPT_S
    assert run.sizes == [1]


def test_full_batch_runs_without_waiting_for_the_timeout():
    run = Recorder()
    with Batcher(config(max_batch_size=4, batch_timeout_micros=600_000_000)) as batcher:
        start = time.monotonic()
        results = run_in_threads(
            [lambda i=i: batcher.submit(KEY, {"x": np.full((2, 1), i)}, run) for i in range(2)]
        )
        assert time.monotonic() - start < PROMPT_S
    assert [r["double"].ravel().tolist() for r in results] == [[0, 0], [2, 2]]
    assert run.sizes == [4]


def test_allowed_batch_sizes_pad_the_batch_with_a_real_row():
    run = Recorder(fn=lambda b: {"y": b["x"] + 1})
    with Batcher(config(max_batch_size=8, allowed_batch_sizes=(4, 8))) as batcher:
        result = batcher.submit(KEY, {"x": np.array([[1], [2], [3]])}, run)
    assert run.batches[0]["x"].ravel().tolist() == [1, 2, 3, 1]
    assert result["y"].ravel().tolist() == [2, 3, 4]


def test_pad_variable_length_inputs_pads_trailing_dims_as_tf_serving_does():
    # Two requests fill max_batch_size=2, so they share one batch whatever the timing.
    run = Recorder(fn=lambda b: {"ids": b["ids"], "tokens": b["tokens"]})
    short = {"ids": np.array([[5, 6]]), "tokens": np.array([[b"a", b"b"]], dtype=object)}
    long = {"ids": np.array([[7, 8, 9]]), "tokens": np.array([[b"c", b"d", b"e"]], dtype=object)}
    padded = Batcher(
        config(max_batch_size=2, batch_timeout_micros=600_000_000, pad_variable_length_inputs=True)
    )
    with padded as batcher:
        got_short, got_long = run_in_threads(
            [lambda r=r: batcher.submit(KEY, r, run) for r in (short, long)]
        )
    assert run.sizes == [2]
    # TF Serving pads with each tensor's first value (batching_util.cc), numbers and strings.
    assert got_short["ids"].tolist() == [[5, 6, 5]]
    assert got_short["tokens"].tolist() == [[b"a", b"b", b"a"]]
    assert got_long["ids"].tolist() == [[7, 8, 9]]
    assert got_long["tokens"].tolist() == [[b"c", b"d", b"e"]]


def test_zero_width_inputs_are_not_padded_but_batched_apart():
    # TF Serving fails a batch mixing [1, 0] and [1, 2] ("Got empty tensor in batch of
    # non-empty tensors"); here the empty one runs in its own batch.
    run = Recorder(fn=lambda b: {"n": np.full(len(b["ex"]), b["ex"].shape[1])})
    padded = config(max_batch_size=8, batch_timeout_micros=100_000, pad_variable_length_inputs=True)
    requests = [{"ex": np.empty((1, 0), dtype=object)}, {"ex": np.array([[b"i1", b"i2"]])}]
    with Batcher(padded) as batcher:
        results = run_in_threads([lambda r=r: batcher.submit(KEY, r, run) for r in requests])
    assert [r["n"].tolist() for r in results] == [[0], [2]]
    assert sorted(batch["ex"].shape for batch in run.batches) == [(1, 0), (1, 2)]


def test_without_padding_different_trailing_shapes_run_in_separate_batches():
    run = Recorder(fn=lambda b: {"n": np.full(len(b["ids"]), b["ids"].shape[1])})
    requests = [{"ids": np.zeros((1, 2))}, {"ids": np.zeros((1, 3))}, {"ids": np.zeros((2, 3))}]
    with Batcher(config(max_batch_size=8, batch_timeout_micros=100_000)) as batcher:
        results = run_in_threads([lambda r=r: batcher.submit(KEY, r, run) for r in requests])
    assert [r["n"].tolist() for r in results] == [[2], [3], [3, 3]]
    assert (1, 2) in [batch["ids"].shape for batch in run.batches]  # alone in its batch
    assert sum(run.sizes) == 4


def test_fixed_width_strings_of_different_widths_share_a_batch():
    run = Recorder(fn=lambda b: {"s": b["s"]})
    requests = [{"s": np.array([b"ab"])}, {"s": np.array([b"abcdef"])}]
    with Batcher(config(max_batch_size=2, batch_timeout_micros=600_000_000)) as batcher:
        results = run_in_threads([lambda r=r: batcher.submit(KEY, r, run) for r in requests])
    assert [r["s"].tolist() for r in results] == [[b"ab"], [b"abcdef"]]
    assert run.sizes == [2]


# --- Batcher: errors --------------------------------------------------------------------------


def test_request_larger_than_max_batch_size_is_rejected_as_invalid_argument():
    run = Recorder()
    with Batcher(config(max_batch_size=4)) as batcher:
        with pytest.raises(BatchInputError, match=r"5 rows.*max_batch_size=4") as info:
            batcher.submit(KEY, {"x": np.ones((5, 1))}, run)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert run.batches == []


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        ({}, "non-empty dict"),
        ({"x": np.float32(1.0)}, "'x' is a scalar"),
        ({"x": np.ones((2, 1)), "y": np.ones((3,))}, r"\{'x': 2, 'y': 3\}"),
        ({"x": np.ones((0, 2))}, "0 rows"),
    ],
)
def test_inputs_that_cannot_be_batched_are_rejected(inputs, match):
    with Batcher(config()) as batcher:
        with pytest.raises(BatchInputError, match=match):
            batcher.submit(KEY, inputs, Recorder())


def test_model_error_fails_every_request_of_its_batch_and_no_other():
    def fn(batch):
        if (batch["x"] < 0).any():
            raise RuntimeError("model failed on a negative input")
        return {"double": batch["x"] * 2}

    run = Recorder(fn=fn)
    bad, good = BatchKey("ranking", 1, "bad"), BatchKey("ranking", 1, "good")
    calls = [
        (bad, np.array([[-1.0]])),
        (bad, np.array([[1.0]])),
        (good, np.array([[2.0]])),
        (good, np.array([[3.0]])),
    ]
    with Batcher(config(max_batch_size=2, batch_timeout_micros=600_000_000)) as batcher:
        results = run_in_threads(
            [lambda k=k, x=x: batcher.submit(k, {"x": x}, run) for k, x in calls]
        )
        assert all(isinstance(r, RuntimeError) for r in results[:2])
        assert [r["double"].tolist() for r in results[2:]] == [[[4.0]], [[6.0]]]
        # The failed batch left nothing behind: the next batch of the same key runs.
        later = run_in_threads([lambda: batcher.submit(bad, {"x": np.ones((2, 1))}, run)])
        assert later[0]["double"].tolist() == [[2.0], [2.0]]


@pytest.mark.parametrize(
    ("outputs", "match"),
    [
        ({"total": np.float32(3.0)}, r"'total' has shape \(\)"),
        ({"total": np.ones(1)}, r"'total' has shape \(1,\), but the batch has 2 rows"),
        ([np.ones(2)], "returned a list"),
    ],
)
def test_outputs_without_the_batch_dimension_fail_with_a_clear_error(outputs, match):
    run = Recorder(fn=lambda b: outputs)
    with Batcher(config(max_batch_size=2, batch_timeout_micros=600_000_000)) as batcher:
        results = run_in_threads(
            [lambda: batcher.submit(KEY, {"x": np.ones((1, 1))}, run) for _ in range(2)]
        )
    for result in results:
        assert isinstance(result, BatchOutputError)
        assert result.code == grpc.StatusCode.FAILED_PRECONDITION
        assert re.search(match, str(result))


def test_queue_full_is_unavailable():
    release = threading.Event()
    run = Recorder(block=release)
    one_at_a_time = config(max_batch_size=1, num_batch_threads=1, max_enqueued_batches=1)
    done: queue.Queue = queue.Queue()

    def submit(value):
        try:
            done.put(batcher.submit(KEY, {"x": np.array([[value]])}, run))
        except Exception as e:  # noqa: BLE001  (the test inspects it)
            done.put(e)

    with Batcher(one_at_a_time) as batcher:
        threading.Thread(target=submit, args=(1.0,)).start()
        assert run.started.wait(PROMPT_S)  # the only thread is busy with request 1
        threading.Thread(target=submit, args=(2.0,)).start()
        wait_until(lambda: batcher.queued_requests() == 1, "request 2 waits in the queue")
        with pytest.raises(BatchQueueFullError, match="max_enqueued_batches") as info:
            batcher.submit(KEY, {"x": np.array([[3.0]])}, run)
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        release.set()
        answers = sorted(done.get(timeout=PROMPT_S)["double"].item() for _ in range(2))
    assert answers == [2.0, 4.0]


def test_close_runs_waiting_requests_at_once_then_refuses_new_ones():
    run = Recorder()
    batcher = Batcher(config(batch_timeout_micros=600_000_000, thread_pool_name="close_test"))
    done: queue.Queue = queue.Queue()
    threading.Thread(
        target=lambda: done.put(batcher.submit(KEY, {"x": np.ones((1, 1))}, run))
    ).start()
    wait_until(lambda: batcher.queued_requests() == 1, "the request waits for its timeout")
    closer = threading.Thread(target=batcher.close)
    closer.start()
    closer.join(PROMPT_S)
    assert not closer.is_alive(), "close() waited for the 10-minute batch timeout"
    assert done.get(timeout=PROMPT_S)["double"].tolist() == [[2.0]]
    assert not [t for t in threading.enumerate() if t.name.startswith("close_test")]
    with pytest.raises(BatcherClosedError) as info:
        batcher.submit(KEY, {"x": np.ones((1, 1))}, run)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    batcher.close()  # a second close is a no-op
