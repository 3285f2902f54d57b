"""Dask worker plugins for the cluster scan's tests (tests/bulk/test_dask_scan.py).

They live here, not in the test module, because Dask pickles a plugin by reference to
its class: a worker must be able to import the module that defines it, and
``helpers`` is on every worker's path (the tests' ``pythonpath``, which the local
cluster's processes inherit and the ``dask worker`` processes are given) where a
test module, imported by pytest under a name of its own, is not.
"""

from __future__ import annotations

import os
import time
from typing import Any

from distributed import WorkerPlugin

from imgscan.bulk import worker

from .scan_library import SCAN_IMAGE, misbehave


def slowly(path: str, options: worker.Options,
           identity: tuple[int, int] | None = None) -> tuple[Any, Any, Any] | None:
    """Each image takes 20 ms more: a scan long enough to kill a worker in its middle."""
    time.sleep(0.02)
    return SCAN_IMAGE(path, options, identity)


class Hook(WorkerPlugin):
    """Replaces worker.scan_image in every Dask worker, those started later included;
    the readers a worker keeps between batches were forked with the old one, so they
    are let go (dask_pool.release_readers) each time it changes."""

    def __init__(self, name: str) -> None:
        self.name = f"imgscan-hook-{name}"
        self.hook = name

    def setup(self, worker: Any) -> None:
        from imgscan.bulk import dask_pool
        from imgscan.bulk import worker as scan_worker
        scan_worker.scan_image = {"misbehave": misbehave, "slowly": slowly}[self.hook]
        dask_pool.release_readers()

    def teardown(self, worker: Any) -> None:
        from imgscan.bulk import dask_pool
        from imgscan.bulk import worker as scan_worker
        scan_worker.scan_image = SCAN_IMAGE
        dask_pool.release_readers()


class Environ(WorkerPlugin):
    """Sets environment variables in every Dask worker (the store's credentials, which a
    worker started by an operator would be given), for as long as it is registered."""

    name = "imgscan-environ"

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def setup(self, worker: Any) -> None:
        os.environ.update(self.values)

    def teardown(self, worker: Any) -> None:
        for key in self.values:
            os.environ.pop(key, None)


# -- functions the tests run on every worker (client.run): pickled by reference as the
# plugins are, so they live here, where a worker can import them --------------------
def idle_readers() -> list[int]:
    """The pids of the readers this Dask worker keeps idle (run by ``client.run``)."""
    from imgscan.bulk import dask_pool
    return [reader.pid for reader, _ in dask_pool._READERS._idle]


def set_reader_idle(seconds: float) -> float:
    """Set the workers' READER_IDLE (run on each by ``client.run``) and wake the thread
    that stops idle readers, to count with it; the one before."""
    from imgscan.bulk import dask_pool
    before, dask_pool.READER_IDLE = dask_pool.READER_IDLE, seconds
    with dask_pool._READERS._given:
        dask_pool._READERS._given.notify()
    return before


def periodic_callbacks(dask_worker: Any) -> dict[str, float]:
    """What a Dask worker runs periodically, and how often in ms (run by ``client.run``)."""
    return {name: callback.callback_time
            for name, callback in dask_worker.periodic_callbacks.items()}
