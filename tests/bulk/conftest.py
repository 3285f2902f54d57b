"""Fixtures of the bulk-scan tests: the generated library (tests/helpers/scan_library.py)
and, for the distributed scan, a real Dask cluster on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from helpers.scan_library import Library, build_library

if TYPE_CHECKING:
    from distributed import Client


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    return build_library(tmp_path_factory.mktemp("library"),
                         tmp_path_factory.mktemp("templates"))


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Client]:
    """A client of a real ``distributed.LocalCluster`` of two worker processes (one
    thread each) on 127.0.0.1, for the whole session, stopped at its end.

    Two settings make the worker-death tests exact and quick: a task is given up
    (KilledWorker) the first time a worker dies running it (allowed-failures 0; the
    default, 3, only multiplies the deaths), and a worker holds only the task it runs
    (worker-saturation 1.0), so a death is blamed on that task alone. And one keeps the
    cluster whole: the cluster closes a worker's nanny for good when, lost-worker-timeout
    (15 s) after a worker of that name was removed, none is back; the tests kill the same
    workers again and again, and a later death's restart still under way when an earlier
    death's delay ran out lost that worker for the rest of the session (a heavily loaded
    machine). That delay is read when a worker is removed, so it is set for the session.
    """
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.worker-saturation": 1.0,
                          "distributed.deploy.lost-worker-timeout": "1 hour"}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=":0",
                               silence_logs=logging.CRITICAL)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
