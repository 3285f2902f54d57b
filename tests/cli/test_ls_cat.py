"""``imgscan ls`` / ``imgscan cat``: listings and bytes of files inside images.

The Windows fixture disks (MBR, two NTFS partitions) are read through a qcow2
made by qemu-img and addressed by partition number; sleuthkit's ``fls`` and
``icat`` on the raw disk (``-o`` the partition's sector, from ``sfdisk
--json``) are the oracle. Error cases check the one-line message and exit 2.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import xfs_images
from oracles import needs_qemu, run

NEUTRAL_CWD = Path(__file__).resolve().parent
needs_tsk = pytest.mark.skipif(not all(shutil.which(t) for t in ("fls", "icat")),
                               reason="sleuthkit (fls/icat) absent")
needs_cryptsetup = pytest.mark.skipif(shutil.which("cryptsetup") is None
                                      or shutil.which("sfdisk") is None,
                                      reason="cryptsetup / sfdisk not installed")


def imgscan(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "imgscan", *args], capture_output=True,
                          check=False, cwd=NEUTRAL_CWD)


def one_error_line(proc: subprocess.CompletedProcess[bytes], pattern: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == b""
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("imgscan: "), lines
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def bios(windows_disks: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[Path, Path, int]:
    """(raw disk, its qcow2 copy, sector of partition 2)."""
    raw = windows_disks["bios"]
    qcow2 = tmp_path_factory.mktemp("ls_cat") / "bios.qcow2"
    run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow2)
    table = json.loads(run("sfdisk", "--json", raw))["partitiontable"]
    return raw, qcow2, int(table["partitions"][1]["start"])


def fls_dir(raw: Path, sector: int, inode: str | None = None) -> dict[str, tuple[str, int]]:
    """{name: (type letter, inode)} of a directory, streams folded into their file."""
    out = run("fls", "-o", str(sector), raw, *([inode] if inode else []))
    found: dict[str, tuple[str, int]] = {}
    for line in out.splitlines():
        m = re.match(r"^(\S)/(\S) (\*? ?)(\d+)-\d+-\d+:\t(.*)$", line)
        if not m or m.group(3).strip() or m.group(5) == "$OrphanFiles":
            continue
        name = m.group(5).split(":", 1)[0]
        found.setdefault(name, (m.group(1), int(m.group(4))))
    return found


@needs_qemu
@needs_tsk
def test_ls_of_a_partition_equals_fls(bios: tuple[Path, Path, int]) -> None:
    raw, qcow2, sector = bios
    proc = imgscan("ls", f"{qcow2}:2", "/")
    assert proc.returncode == 0, proc.stderr
    assert set(proc.stdout.decode().splitlines()) == set(fls_dir(raw, sector))
    windows = fls_dir(raw, sector)["Windows"][1]
    proc = imgscan("ls", f"{qcow2}:2", "\\windows")
    assert set(proc.stdout.decode().splitlines()) == set(fls_dir(raw, sector, str(windows)))


@needs_qemu
@needs_tsk
def test_ls_long_and_json_give_kind_and_size(bios: tuple[Path, Path, int]) -> None:
    raw, qcow2, sector = bios
    root = fls_dir(raw, sector)
    proc = imgscan("ls", "--json", f"{qcow2}:2")
    assert proc.returncode == 0, proc.stderr
    objects = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert {o["name"] for o in objects} == set(root)
    for o in objects:
        letter, inode = root[o["name"]]
        assert o["ino"] == inode
        assert o["kind"] == ("dir" if letter == "d" else "file")
    upcase = subprocess.run(["icat", "-o", str(sector), raw, str(root["$UpCase"][1])],
                            capture_output=True, check=True).stdout
    long = imgscan("ls", "-l", f"{qcow2}:2").stdout.decode().splitlines()
    line = next(x for x in long if x.endswith(" $UpCase"))
    assert re.match(rf"^-rw-r--r-- +{len(upcase)} \d{{4}}-\d\d-\d\d \d\d:\d\d ",
                    line), line
    dates = [re.search(r" (\d{4}-\d\d-\d\d|-{16}) ", x) for x in long]
    widths = {d.start() for d in dates if d is not None}
    assert len(widths) == 1, long          # the size column is aligned


@needs_qemu
@needs_tsk
def test_cat_equals_icat_through_qcow2(bios: tuple[Path, Path, int]) -> None:
    raw, qcow2, sector = bios
    out = run("fls", "-r", "-p", "-o", str(sector), raw)
    m = re.search(r"^r/r (\d+)-128-\d+:\tWindows/System32/config/SYSTEM$", out, re.M)
    assert m, out
    oracle = subprocess.run(["icat", "-o", str(sector), raw, m.group(1)],
                            capture_output=True, check=True).stdout
    proc = imgscan("cat", f"{qcow2}:2", "\\Windows\\System32\\config\\SYSTEM")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == oracle and len(oracle) > 0


@needs_qemu
def test_cat_into_a_closed_pipe_exits_141(bios: tuple[Path, Path, int]) -> None:
    _, qcow2, _ = bios
    with subprocess.Popen([sys.executable, "-m", "imgscan", "cat", f"{qcow2}:2", "/$LogFile"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          cwd=NEUTRAL_CWD) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()         # the reader is gone before the first write
        assert proc.wait(timeout=60) == 141
        assert proc.stderr.read() == b""


@needs_qemu
def test_error_cases_are_one_line_and_exit_2(bios: tuple[Path, Path, int]) -> None:
    _, qcow2, _ = bios
    one_error_line(imgscan("cat", f"{qcow2}:2", "/no/such/file"), r"partition 2: path .*no 'no'")
    one_error_line(imgscan("cat", f"{qcow2}:2", "/Windows"), r"a dir, not a file")
    one_error_line(imgscan("ls", f"{qcow2}:2", "/Windows/nothing"), r"no 'nothing'")
    one_error_line(imgscan("ls", f"{qcow2}:9", "/"),
                   r"no partition 9; partitions: 1 \(ntfs\), 2 \(ntfs\)")
    one_error_line(imgscan("ls", str(qcow2)),
                   r"partitioned: give IMAGE:VOLUME, one of 1 \(ntfs\), 2 \(ntfs\)")
    one_error_line(imgscan("ls", f"{qcow2}:vg0/root"), r"logical volume")
    one_error_line(imgscan("ls", f"{qcow2}x:2"), r"No such file")


def test_an_image_name_holding_a_colon_is_tried_whole_first(
        windows_disks: dict[str, Path], tmp_path: Path) -> None:
    odd = tmp_path / "disk:2"
    os.symlink(windows_disks["bios"], odd)
    one_error_line(imgscan("ls", str(odd)), r"disk:2: .*partitioned")
    proc = imgscan("ls", f"{odd}:2", "/Windows")
    assert proc.returncode == 0 and b"System32" in proc.stdout, proc.stderr


@needs_cryptsetup
def test_an_encrypted_partition_is_refused(tmp_path: Path) -> None:
    luks = tmp_path / "luks.img"
    with open(luks, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["cryptsetup", "luksFormat", "-q", "--type", "luks2", "--pbkdf", "pbkdf2",
                    "--pbkdf-force-iterations", "1000", "--key-file", "-", os.fspath(luks)],
                   input=b"secret", check=True, capture_output=True)
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(20 << 20)
    subprocess.run(["sfdisk", "-q", os.fspath(disk)], input=b"label: dos\n2048,32768,83\n",
                   check=True, capture_output=True)
    with open(disk, "r+b") as f, open(luks, "rb") as src:
        f.seek(1 << 20)
        f.write(src.read())
    one_error_line(imgscan("ls", f"{disk}:1"), r"partition 1: .*crypto_LUKS.*encrypted")


# -- the Linux readers and a logical volume, through the same commands ------------------
#: The tree every Linux filesystem below is made from: a file, a symlink, a nested one.
TREE = {"etc/os-release": b"ID=debian\nVERSION_ID=12\n", "d/numbers": b"1\n2\n3\n" * 700,
        "d/sub/deep.txt": b"deep\n"}


def _tree(root: Path) -> Path:
    for name, data in TREE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "d" / "link").symlink_to("../etc/os-release")
    return root


def _make_ext4(tree: Path, image: Path) -> None:
    run("truncate", "-s", "32M", image)
    run("mkfs.ext4", "-q", "-d", tree, image)


def _make_btrfs(tree: Path, image: Path) -> None:
    run("truncate", "-s", "128M", image)
    run("mkfs.btrfs", "-q", "--rootdir", tree, image)


def _make_xfs(tree: Path, image: Path) -> None:
    xfs_images.mkfs(image)
    with xfs_images.mounted(image) as root:
        shutil.copytree(tree, root, symlinks=True, dirs_exist_ok=True)


MAKERS = {"ext4": ("mkfs.ext4", _make_ext4), "btrfs": ("mkfs.btrfs", _make_btrfs),
          "xfs": ("mkfs.xfs", _make_xfs)}


@needs_qemu
@pytest.mark.parametrize("fs", sorted(MAKERS))
def test_linux_filesystems_through_qcow2(fs: str, tmp_path: Path) -> None:
    """What mkfs (or the kernel, for XFS) wrote from the tree is what ls and cat give."""
    tool, make = MAKERS[fs]
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")
    if fs == "xfs" and os.geteuid() != 0:
        pytest.skip("XFS is populated through a loop mount, which needs root")
    raw = tmp_path / f"{fs}.img"
    make(_tree(tmp_path / "tree"), raw)
    image = tmp_path / f"{fs}.qcow2"
    run("qemu-img", "convert", "-O", "qcow2", raw, image)
    listing = imgscan("ls", "--json", str(image), "/d")
    assert listing.returncode == 0, listing.stderr
    entries = {e["name"]: e for e in map(json.loads, listing.stdout.splitlines())}
    assert set(entries) == {"numbers", "sub", "link"}
    assert (entries["numbers"]["kind"], entries["numbers"]["size"]) == (
        "file", len(TREE["d/numbers"]))
    assert (entries["link"]["kind"], entries["link"]["target"]) == ("symlink", "../etc/os-release")
    for name, data in TREE.items():
        assert imgscan("cat", str(image), "/" + name).stdout == data, name
    assert imgscan("cat", str(image), "/d/link").stdout == TREE["etc/os-release"]


def test_logical_volume_by_name(lvm_disk: dict[str, Any]) -> None:
    """``IMAGE:VG/LV`` opens the filesystem in a logical volume (lvm2 made the VG; the ext4
    in its ``root`` LV was made by mkfs.ext4, with ``lost+found`` as its only entry)."""
    disk = lvm_disk["disk"]
    vg = lvm_disk["vg"]["vg_name"]
    proc = imgscan("ls", "--json", f"{disk}:{vg}/root", "/")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["name"] for line in proc.stdout.splitlines()] == ["lost+found"]
    one_error_line(imgscan("ls", f"{disk}:{vg}/nosuch", "/"), "nosuch")
