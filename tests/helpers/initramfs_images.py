"""initramfs images made by the real tools: ``cpio -o -H newc`` over a folder, then
``gzip``, ``xz``, ``zstd``, ``lz4 -l`` or ``bzip2``, concatenated as the kernel takes them
(an uncompressed early-microcode archive first). The oracles are ``lsinitramfs``
(initramfs-tools-core) and ``cpio -t``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

#: The compressors of an initramfs and the command that compresses stdin to stdout.
COMPRESSORS: dict[str, list[str]] = {
    "gzip": ["gzip", "-9", "-n", "-c"],
    "xz": ["xz", "--check=crc32", "-c"],        # the kernel's xz decoder wants crc32
    "lzma": ["xz", "--format=lzma", "-c"],
    "bzip2": ["bzip2", "-c"],
    "zstd": ["zstd", "-q", "-c"],
    "lz4": ["lz4", "-l", "-q", "-c"],             # the legacy frame the kernel decodes
}

needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio is not installed")
needs_lsinitramfs = pytest.mark.skipif(shutil.which("lsinitramfs") is None,
                                       reason="lsinitramfs (initramfs-tools-core) missing")


def needs(tool: str) -> None:
    """Skip the calling test when ``tool`` is not installed."""
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    """``files`` (relative path -> content) under ``root``; a path ending in ``/`` is a
    directory, content starting with ``->`` a symlink to the rest."""
    for rel, content in files.items():
        path = root / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if content.startswith(b"->"):
            path.symlink_to(content[2:].decode())
        else:
            path.write_bytes(content)
    return root


def cpio_archive(root: Path, fmt: str = "newc") -> bytes:
    """``find . | sort | cpio -o -H FMT`` in ``root``, as mkinitramfs and dracut do."""
    names = subprocess.run(["find", "."], cwd=root, check=True, capture_output=True).stdout
    listing = b"\n".join(sorted(names.splitlines())) + b"\n"
    return subprocess.run(["cpio", "-o", "-H", fmt, "--quiet", "--reproducible"], cwd=root,
                          input=listing, check=True, capture_output=True).stdout


def compress(data: bytes, fmt: str) -> bytes:
    """``data`` through the compressor of ``fmt`` (see :data:`COMPRESSORS`)."""
    needs(COMPRESSORS[fmt][0])
    return subprocess.run(COMPRESSORS[fmt], input=data, check=True, capture_output=True).stdout


def cpio_list(archive: bytes) -> list[str]:
    """``cpio -t`` of one uncompressed archive: the oracle for its member names."""
    out = subprocess.run(["cpio", "-t", "--quiet"], input=archive, check=True,
                         capture_output=True).stdout
    return out.decode("utf-8", "surrogateescape").splitlines()


def lsinitramfs(path: Path) -> list[str]:
    """``lsinitramfs`` of an initramfs file: every archive's member names, in file order."""
    out = subprocess.run(["lsinitramfs", str(path)], check=True, capture_output=True).stdout
    return out.decode("utf-8", "surrogateescape").splitlines()


def microcode_archive(tmp: Path) -> bytes:
    """An early-microcode archive as initramfs-tools and dracut put first, uncompressed."""
    root = write_files(tmp / "early", {
        "kernel/x86/microcode/GenuineIntel.bin": bytes(range(256)) * 40,
    })
    return cpio_archive(root)
