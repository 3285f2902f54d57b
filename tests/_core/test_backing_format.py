"""A backing file is opened as the format its child states, never re-probed.

qemu opens a backing file with the format written in the child (qcow2's
backing format extension, QED's no-probe bit) and does not probe it: a raw
backing file that happens to hold a qcow2 header stays raw. A reader that
probed would see a different disk than the hypervisor (format confusion).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from oracles import needs_qemu, qemu_raw_sha256, run, sha256_stream

import imgscan
from imgscan._core import registry

MiB = 1 << 20


@pytest.fixture()
def confused_chain(tmp_path: Path) -> Path:
    """top.qcow2 over base.img stated raw, where base.img is in fact a qcow2 file."""
    base = tmp_path / "base.img"
    run("qemu-img", "create", "-q", "-f", "qcow2", base, "4M")
    run("qemu-io", "-f", "qcow2", "-c", "write -P 0x42 0 1M", base)
    top = tmp_path / "top.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.img", "-F", "raw", top, "4M",
        cwd=tmp_path)
    run("qemu-io", "-f", "qcow2", "-c", "write -P 0x17 2M 64k", top)
    return top


@needs_qemu
def test_stated_raw_backing_is_read_raw(confused_chain: Path, tmp_path: Path) -> None:
    with imgscan.open(confused_chain, external_dir=str(tmp_path)) as img:
        assert img.backing_format == "raw"
        ours = sha256_stream(img.read, img.virtual_size)
    assert ours == qemu_raw_sha256(confused_chain, tmp_path)


@needs_qemu
def test_stated_format_that_does_not_match_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "base.raw"
    run("truncate", "-s", "4M", base)
    top = tmp_path / "top.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "qcow2", "-u", top,
        "4M", cwd=tmp_path)
    with (imgscan.open(top, external_dir=str(tmp_path)) as img,
          pytest.raises(imgscan.CorruptImage, match="not")):
        img.read(0, 512)


def test_every_candidate_names_the_formats_its_module_registers() -> None:
    for candidate in registry.REGISTRY:
        assert {fmt.name for fmt in candidate.formats()} == set(candidate.names)
