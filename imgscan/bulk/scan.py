"""The bulk scan's entry point: ``imgscan.scan`` and ``imgscan scan``.

It picks the pool: the local one (:mod:`.runner`) or, given a cluster, Dask's
(:mod:`.dask_pool`, imported only then: a local scan never imports dask). Both
pools' modules import the runner; only this one chooses between them.
"""

from __future__ import annotations

from .. import limits
from .runner import ScanRun

TYPE_CHECKING = False
if TYPE_CHECKING:
    from distributed import Client

    from .catalog import Catalog
    from .runner import Paths


def scan(paths: Paths, *, jobs: int | None = None, profile: str | None = None,
         info_only: bool = False, fingerprint: bool = False,
         catalog: str | Catalog | None = None,
         time_limit: float = limits.SCAN_TIME_LIMIT,
         memory_limit: int | None = limits.SCAN_MEMORY_LIMIT,
         external_dir: str | None = None, verify_manifest: bool = False,
         cluster: str | Client | None = None) -> ScanRun:
    """Scan every image under ``paths`` (one path or several) with ``jobs`` worker
    processes (default: every core this process may use), or on the Dask cluster
    ``cluster`` (a scheduler's address, ``local`` / ``local:N``, or a connected
    ``distributed.Client``; ``jobs`` is then ignored: see :mod:`.dask_pool`).

    Yields a :class:`~.result.ScanResult` per image as it finishes; files that are not
    images are counted in ``skipped``, not yielded. Each image is judged with
    ``profile`` (a name or TOML file, several separated by commas, or ``all``; default
    the default profile) unless ``info_only``, by every profile from its facts read
    once (the result's ``check`` is then the object ``check --json`` prints for them);
    ``fingerprint`` adds its content fingerprint. ``catalog``
    (a path, or an open :class:`~imgscan.bulk.catalog.Catalog`) records every
    result and lets unchanged files be skipped. ``time_limit`` (seconds) and
    ``memory_limit`` (bytes of address space, None for none) bound each image's
    worker. ``verify_manifest`` verifies each OVF package's manifest and signature
    (``--verify-manifest``: reads the whole package). Raises
    :class:`~imgscan.policy.ProfileError` at once for a bad profile,
    :class:`~.runner.ClusterError` for a cluster that cannot be reached.
    """
    if cluster is not None:
        from .dask_pool import DaskScanRun  # only now: a local scan never imports dask
        return DaskScanRun(paths, cluster=cluster, profile=profile, info_only=info_only,
                           fingerprint=fingerprint, catalog=catalog, time_limit=time_limit,
                           memory_limit=memory_limit, external_dir=external_dir,
                           verify_manifest=verify_manifest)
    return ScanRun(paths, jobs=jobs, profile=profile, info_only=info_only,
                   fingerprint=fingerprint, catalog=catalog, time_limit=time_limit,
                   memory_limit=memory_limit, external_dir=external_dir,
                   verify_manifest=verify_manifest)
