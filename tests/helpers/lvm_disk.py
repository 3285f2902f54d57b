"""An LVM2 disk made by lvm2's own tools, with the facts its tools report (for
tests/_core/test_lvm.py and the LVM benchmark).

One disk image with two LVM partitions is made once per session with the real
tools on loop devices (``losetup -o``), under a private ``LVM_SYSTEM_DIR`` whose
lvm.conf accepts only those two devices, so the host's LVM is never touched.
The sandbox has no device-mapper, so nothing is activated (``--driverloaded n
-an --zero n``): the filesystems are written into the LVs' extents with the
offsets ``lvs`` and ``pvs`` report (a striped LV stripe by stripe), and the
thin pool, thin volume and snapshot, which lvcreate cannot make without
device-mapper, are added to the VG by ``vgcfgrestore --force`` from the VG's
own ``vgcfgbackup``. Churn (lvcreate/lvremove) then leaves several copies in
the metadata ring buffer until the committed one wraps round its end.

Oracles: ``vgs``/``lvs``/``pvs --reportformat json``, ``pvck --dump headers``
(raw_locn), ``pvck --dump metadata`` (the text) and ``blkid -p`` on each LV's
bytes extracted with dd at the oracle's offsets.

For the per-disk caps, :func:`single_pv` makes one PV the same way, and
:func:`cloned_pvs` copies it into every partition of a many-partition GPT disk
(after :func:`pad_metadata`, hand-made, has grown its text if needed).
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers.patchers import lvm_calc_crc

TOOLS = ("lvm", "losetup", "sfdisk", "mkfs.ext4", "pvck", "cryptsetup")

MiB = 1024 * 1024
SECTOR = 512
#: The two partitions (start, size) in sectors; both are PVs of vg0.
PARTS = ((2048, 40960), (43008, 86000))
STRIPE = 64 * 1024
#: Most lvcreate/lvremove commands run until the committed metadata copy wraps round the
#: end of the ring buffer (a 60 KiB metadata area, copies of ~3 KiB: about 20 are needed).
CHURN = 80


def _lvm(conf: Path, *args: str) -> str:
    env = {**os.environ, "LVM_SYSTEM_DIR": str(conf)}
    done = subprocess.run(["lvm", args[0], "--driverloaded", "n", *args[1:]], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"lvm {' '.join(args)}: {done.stderr}")
    return done.stdout


def _report(conf: Path, cmd: str, *args: str) -> list[dict[str, str]]:
    out = json.loads(_lvm(conf, cmd, "--reportformat", "json", "--units", "b", "--nosuffix",
                          *args))
    rows: list[dict[str, str]] = next(iter(out["report"][0].values()))
    return rows


def pvck(partition: Path, *args: str) -> str:
    return subprocess.run(["pvck", "--driverloaded", "n", *args, str(partition)],
                          capture_output=True, text=True, check=False).stdout


def raw_locn(partition: Path) -> dict[str, int]:
    """mda_header_1's size and raw_locn[0] offset and size, as pvck prints them."""
    text = pvck(partition, "--dump", "headers")
    got = dict(re.findall(r"mda_header_1\.(size|raw_locn\[0\]\.offset|raw_locn\[0\]\.size) "
                          r"(\d+)", text))
    return {k: int(v) for k, v in got.items()}


def wraps(partition: Path) -> bool:
    """Whether the committed copy runs past the end of the metadata area (so wraps)."""
    locn = raw_locn(partition)
    return locn["raw_locn[0].offset"] + locn["raw_locn[0].size"] > locn["size"]


def partition_file(disk: Path, work: Path, number: int) -> Path:
    start, size = PARTS[number - 1]
    out = work / f"part{number}.img"
    subprocess.run(["dd", f"if={disk}", f"of={out}", "bs=512", f"skip={start}",
                    f"count={size}", "conv=sparse", "status=none"], check=True)
    return out


#: LVs lvcreate cannot make without device-mapper, written as lvm2's vgcfgbackup writes
#: them (lib/format_text/export.c): name, visible, the one segment's type and its keys.
#: The hidden pool_tdata/pool_tmeta and snapshot0 are lvm's own names for a pool's data
#: and metadata LVs and a snapshot's origin link; snap is the snapshot's COW store.
EXTRA_LVS: tuple[tuple[str, bool, int, str, dict[str, object]], ...] = (
    ("snap", True, 1, "striped", {"stripe_count": 1, "stripes": ("pv1", 3)}),
    ("snapshot0", False, 2, "snapshot", {"chunk_size": 8, "origin": "root",
                                         "cow_store": "snap"}),
    ("pool", True, 1, "thin-pool", {"metadata": "pool_tmeta", "pool": "pool_tdata",
                                    "transaction_id": 1, "chunk_size": 128,
                                    "discards": "passdown", "zero_new_blocks": 1}),
    ("thin", True, 4, "thin", {"thin_pool": "pool", "transaction_id": 0, "device_id": 1}),
    ("pool_tdata", False, 1, "striped", {"stripe_count": 1, "stripes": ("pv1", 4)}),
    ("pool_tmeta", False, 1, "striped", {"stripe_count": 1, "stripes": ("pv1", 5)}),
)


def _metadata_value(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(_metadata_value(v) for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _lv_section(number: int, name: str, visible: bool, extents: int, kind: str,
                keys: dict[str, object]) -> str:
    status = '"READ", "WRITE", "VISIBLE"' if visible else '"READ", "WRITE"'
    segment = "".join(f"\t\t\t\t{k} = {_metadata_value(v)}\n" for k, v in keys.items())
    return (f"\t\t{name} {{\n\t\t\tid = \"aaaaaa-bbbb-cccc-dddd-eeee-ffff-{number:06d}\"\n"
            f"\t\t\tstatus = [{status}]\n\t\t\tflags = []\n\t\t\tsegment_count = 1\n"
            f"\t\t\tsegment1 {{\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = {extents}\n"
            f'\t\t\t\ttype = "{kind}"\n{segment}\t\t\t}}\n\t\t}}\n')


def _add_thin_and_snapshot(conf: Path, work: Path) -> None:
    backup = work / "vg0.txt"
    _lvm(conf, "vgcfgbackup", "-f", str(backup), "vg0")
    text = backup.read_text()
    extra = "".join(_lv_section(i, *lv) for i, lv in enumerate(EXTRA_LVS, 1))
    head, sep, tail = text.partition("\tlogical_volumes {\n")
    backup.write_text(head + sep + extra + tail)
    _lvm(conf, "vgcfgrestore", "--force", "-f", str(backup), "vg0")


def _write_lv(disk: Path, image: Path, pieces: Callable[[int], int], length: int,
              chunk: int) -> None:
    """Writes ``image`` into the disk, chunk ``i`` at disk offset ``pieces(i)``."""
    with open(image, "rb") as src, open(disk, "r+b") as dst:
        for i in range(length // chunk):
            dst.seek(pieces(i))
            dst.write(src.read(chunk))


def _loop(path: Path, offset: int = 0, size: int | None = None) -> str:
    """``losetup`` over ``size`` bytes of ``path`` from ``offset``; the device's name."""
    limit = ["--sizelimit", str(size)] if size is not None else []
    return subprocess.run(["losetup", "-f", "--show", "-o", str(offset), *limit, str(path)],
                          capture_output=True, text=True, check=True).stdout.strip()


def _private_conf(conf: Path, devices: list[str]) -> None:
    """An lvm.conf in ``conf`` (the LVM_SYSTEM_DIR) that sees only ``devices`` and keeps
    its locks, backups and udev hands off the host."""
    accept = ", ".join(f'"a|^{dev}$|"' for dev in devices)
    (conf / "lvm.conf").write_text(
        f'devices {{ filter = [ {accept}, "r|.*|" ] obtain_device_list_from_udev = 0 '
        "use_devicesfile = 0 scan_lvs = 0 }\n"
        "activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }\n"
        "backup { backup = 0 archive = 0 }\n"
        f'global {{ locking_dir = "{conf.parent}/lock" use_lvmpolld = 0 '
        "event_activation = 0 }\n")


def single_pv(work: Path, size: int, *pvcreate: str) -> Path:
    """``work/pv.img``: ``size`` bytes made one PV (``pvcreate -y PVCREATE``) of its own
    VG ``vg1`` by lvm2 on a loop device; the label and the metadata area are what lvm wrote.
    """
    image = work / "pv.img"
    with open(image, "wb") as f:
        f.truncate(size)
    conf = work / "etc"
    conf.mkdir()
    dev = _loop(image)
    try:
        _private_conf(conf, [dev])
        _lvm(conf, "pvcreate", "-y", *pvcreate, dev)
        _lvm(conf, "vgcreate", "vg1", dev)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
    return image


def build(work: Path) -> dict[str, Any]:
    """Makes ``work/disk.img`` and returns it with the oracles' facts (see the module)."""
    disk = work / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(64 * MiB)
    script = "label: dos\n" + "".join(f"start={s},size={n},type=8e\n" for s, n in PARTS)
    subprocess.run(["sfdisk", "-q", str(disk)], input=script, text=True, check=True)
    loops: list[str] = []
    conf = work / "etc"
    conf.mkdir()
    try:
        for start, size in PARTS:
            loops.append(_loop(disk, start * SECTOR, size * SECTOR))
        _private_conf(conf, loops)
        _lvm(conf, "pvcreate", "-y", "--metadatasize", "16k", "--dataalignment", "64k",
             *loops)
        _lvm(conf, "vgcreate", "-s", "4m", "vg0", *loops)
        _lvm(conf, "lvcreate", "-an", "-Zn", "-L", "8m", "-n", "root", "vg0", loops[0])
        _lvm(conf, "lvcreate", "-an", "-Zn", "-i", "2", "-I", "64k", "-L", "8m", "-n", "data",
             "vg0")
        _lvm(conf, "lvcreate", "-an", "-Zn", "-L", "4m", "-n", "secret", "vg0", loops[0])
        _add_thin_and_snapshot(conf, work)
        # Partition 2 as it is now: put back later, it makes a PV with a stale copy.
        stale = partition_file(disk, work, 2).rename(work / "part2-stale.img")
        stale_seqno = _report(conf, "vgs", "-o", "vg_seqno")[0]["vg_seqno"]
        for churn in range(CHURN):
            _lvm(conf, *(("lvremove", "-f", f"vg0/tmp{churn // 2}") if churn % 2 else
                         ("lvcreate", "-an", "-Zn", "-L", "4m", "-n", f"tmp{churn // 2}",
                          "vg0")))
            if wraps(partition_file(disk, work, 1)):
                break
        pvs = _report(conf, "pvs", "-o", "pv_name,pv_uuid,pe_start")
        vgs = _report(conf, "vgs", "-o", "vg_name,vg_uuid,vg_seqno,vg_extent_size")
        segs = _report(conf, "lvs", "-a", "--segments", "-o",
                       "lv_name,segtype,stripes,stripe_size,seg_pe_ranges,seg_size_pe,"
                       "seg_start_pe,lv_size")
        _lvm(conf, "vgchange", "-an", "vg0")
    finally:
        for dev in loops:
            subprocess.run(["losetup", "-d", dev], check=False)
    pv_start = {p["pv_name"]: (PARTS[loops.index(p["pv_name"])][0] * SECTOR
                               + int(p["pe_start"])) for p in pvs}
    extent = int(vgs[0]["vg_extent_size"])

    def pe_offset(rng: str) -> int:  # "/dev/loop1:2-2" -> the extent's disk offset
        dev, first = re.fullmatch(r"(.+):(\d+)-\d+", rng).groups()  # type: ignore[union-attr]
        return pv_start[dev] + int(first) * extent

    by_lv = {s["lv_name"]: s for s in segs}
    files: dict[str, Path] = {}
    for lv, label in (("root", "rootfs"), ("data", "datafs")):
        fs = work / f"{lv}.ext4"
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, str(fs), "8M"], check=True)
        files[lv] = fs
    files["secret"] = work / "secret.luks"
    with open(files["secret"], "wb") as f:
        f.truncate(4 * MiB)
    (work / "key").write_bytes(b"imgscan-test")
    subprocess.run(["cryptsetup", "luksFormat", "--batch-mode", "--type", "luks1",
                    "--iter-time", "1", "--key-file", str(work / "key"),
                    str(files["secret"])], check=True, capture_output=True)
    ranges = [pe_offset(r) for r in by_lv["data"]["seg_pe_ranges"].split()]
    for linear in ("root", "secret"):
        start = pe_offset(by_lv[linear]["seg_pe_ranges"])

        def at(i: int, start: int = start) -> int:
            return start + i * MiB
        _write_lv(disk, files[linear], at, files[linear].stat().st_size, MiB)
    _write_lv(disk, files["data"],
              lambda i: ranges[i % len(ranges)] + (i // len(ranges)) * STRIPE, 8 * MiB, STRIPE)
    return {"disk": disk, "work": work, "pvs": pvs, "vg": vgs[0], "segs": segs,
            "stale": stale, "stale_seqno": int(stale_seqno),
           "files": files}


def pad_metadata(pv: Path, text_size: int, mda_start: int = 4096) -> None:
    """Grows the committed text of ``pv``'s metadata area to ``text_size`` bytes: its NUL
    and then zeros, so lvm's text is unchanged but every reader checksums ``text_size``
    bytes. raw_locn[0].size and both checksums (layout.h) are rewritten; the rest is as
    pvcreate wrote it. Hand-made: lvm never writes a copy over half the area."""
    with open(pv, "r+b") as f:
        f.seek(mda_start)
        header = bytearray(f.read(SECTOR))
        offset, size = struct.unpack_from("<QQ", header, 40)
        f.seek(mda_start + offset)
        text = f.read(size).ljust(text_size, b"\0")
        f.seek(mda_start + offset)
        f.write(text)
        struct.pack_into("<QI", header, 48, text_size, lvm_calc_crc(text))
        struct.pack_into("<I", header, 0, lvm_calc_crc(bytes(header[4:])))
        f.seek(mda_start)
        f.write(header)


def cloned_pvs(work: Path, pv: Path, count: int) -> Path:
    """``work/clones.img``: a GPT disk partitioned by sfdisk into ``count`` partitions the
    size of ``pv``, each a byte copy of it (the many-PV disk no lvm would make: every
    partition carries the same PV label and metadata). Sparse: zeros are not written."""
    size = pv.stat().st_size
    sectors = size // SECTOR
    disk = work / "clones.img"
    with open(disk, "wb") as f:
        f.truncate((2048 + count * sectors + 2048) * SECTOR)
    script = f"label: gpt\ntable-length: {max(count, 128)}\n" + "".join(
        f"start={2048 + i * sectors},size={sectors},type=lvm\n" for i in range(count))
    subprocess.run(["sfdisk", "-q", str(disk)], input=script, text=True, check=True)
    for i in range(count):
        subprocess.run(["dd", f"if={pv}", f"of={disk}", "bs=64K", "conv=sparse,notrunc",
                        f"seek={(2048 + i * sectors) * SECTOR}", "oflag=seek_bytes",
                        "status=none"], check=True)
    return disk
