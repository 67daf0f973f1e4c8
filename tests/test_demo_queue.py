"""Classification on the served demo while renders are queued: it must not wait behind them.

The demo runs renders (generate, transfer, fuse) one at a time in a shared slot; a classification takes well
under a second, so it has a slot group of its own. Measured here the way a person meets it: the bundled
UniEmo-Tiny served as ``app.py`` serves it, six generations queued through ``gradio_client``, then one
classification, whose wait must stay within 2 s of what the same classification takes on an idle server.
"""

import socket
import statistics
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from gradio_client import Client, handle_file  # noqa: E402

from uniemo import UniEmoPipeline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "assets" / "uniemo-tiny"
EXAMPLE = min((ROOT / "assets" / "examples").glob("*.png"))
QUEUED = 6
STEPS = 40  # a few seconds per generation on a CPU: six of them queue for far longer than the 2 s allowed
SLACK_S = 2.0

pytestmark = pytest.mark.skipif(not (BUNDLED / "uniemo.json").is_file(), reason="needs the bundled UniEmo-Tiny")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from demo.ui import MAX_FILE_SIZE, QUEUE_MAX_SIZE, build_demo

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path_factory.mktemp("examples_cache")))
        page = build_demo(UniEmoPipeline.from_pretrained(BUNDLED))
        page.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=1)
        _, url, _ = page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                                quiet=True, max_file_size=MAX_FILE_SIZE)
        try:
            yield Client(url, verbose=False)
        finally:
            page.close()


def timed_classify(client) -> float:
    start = time.perf_counter()
    label = client.predict(handle_file(str(EXAMPLE)), api_name="/classify")[0]
    assert label["label"]
    return time.perf_counter() - start


def test_classify_does_not_wait_behind_queued_generations(client):
    timed_classify(client)  # warm-up: first-call costs are not the queue's
    own = statistics.median(timed_classify(client) for _ in range(3))

    jobs = [client.submit("awe", 1, seed, STEPS, 7.5, api_name="/generate") for seed in range(QUEUED)]
    try:
        deadline = time.monotonic() + 60
        while not any(job.status().code.name == "PROCESSING" for job in jobs):
            assert time.monotonic() < deadline, "no generation started"
            time.sleep(0.05)
        loaded = timed_classify(client)
        unfinished = sum(not job.done() for job in jobs)
    finally:
        for job in jobs:
            job.cancel()
        for job in jobs:
            try:
                job.result(timeout=120)
            except Exception:  # a cancelled job ends without a result
                pass
    print(f"classify: {own:.3f} s alone, {loaded:.3f} s behind {QUEUED} queued generations")
    assert loaded <= own + SLACK_S
    # and the queue was real: the generations were still waiting or running when the classification came back
    assert unfinished >= QUEUED - 1
