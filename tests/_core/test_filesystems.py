"""Filesystem and volume identification against ``blkid -p -o export``.

Volumes are made by the real tools (mkfs.*, mkswap, cryptsetup, mkntfs,
genisoimage, pvcreate), as whole-disk files and inside a partition of an
sfdisk-made disk; blkid (with ``--offset`` for partitions) is the oracle for
TYPE, LABEL, UUID and VERSION, dumpe2fs for the ext state, cryptsetup
bitlkDump (recorded in the corpus facts) for BitLocker. Hand-made bytes appear
only in the malformed cases, which start from those real volumes, and where no tool can
make the volume here: MD RAID member superblocks (helpers.md_superblock, each checked by
``mdadm --examine`` and blkid) and a ReFS boot sector (checked by blkid).
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import struct
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import decompress, promptly
from helpers.md_superblock import write_member
from oracles import CORPUS, corpus_facts, needs_corpus, needs_qemu

import imgscan
from imgscan._core.filesystems import Volume, probe_volume
from imgscan.errors import ImageError

MIB = 1 << 20
PART_START = MIB

Reader = Callable[[int, int], bytes]


def _have(*tools: str) -> bool:
    return all(shutil.which(tool) for tool in tools)


def _sh(*args: str | os.PathLike[str], stdin: bytes | None = None) -> str:
    return subprocess.run([str(a) for a in args], input=stdin, check=True,
                          capture_output=True).stdout.decode()


def blkid(path: Path, offset: int = 0, size: int | None = None) -> dict[str, str]:
    """``blkid -p -o export`` as a dict (values unescaped)."""
    cmd = ["blkid", "-p", "-o", "export"]
    if offset:
        cmd += ["--offset", str(offset)]
    if size is not None:
        cmd += ["--size", str(size)]
    out = subprocess.run([*cmd, str(path)], capture_output=True, text=True).stdout
    facts = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        facts[key] = value.replace("\\ ", " ")
    return facts


def file_reader(path: Path) -> tuple[Reader, int]:
    fd = os.open(path, os.O_RDONLY)
    size = os.fstat(fd).st_size

    def read(offset: int, length: int) -> bytes:
        return os.pread(fd, length, offset)

    return read, size


def probe_file(path: Path, offset: int = 0, size: int | None = None) -> Volume | None:
    read, total = file_reader(path)
    return probe_volume(read, offset, total - offset if size is None else size)


def assert_matches_blkid(vol: Volume | None, facts: dict[str, str]) -> None:
    """Every field blkid prints that imgscan reports, compared."""
    assert vol is not None, facts
    mine = {"TYPE": vol.filesystem, "LABEL": vol.label, "UUID": vol.uuid,
            "VERSION": vol.version}
    theirs = {key: facts.get(key) for key in mine}
    assert mine == theirs
    if "UUID_SUB" in facts:
        assert vol.details["uuid_sub"] == facts["UUID_SUB"]
    if "SEC_TYPE" in facts:
        assert vol.details["sec_type"] == facts["SEC_TYPE"]
    if "LABEL_FATBOOT" in facts:
        assert vol.details["label_fatboot"] == facts["LABEL_FATBOOT"]
    if "SUBSYSTEM" in facts:
        assert vol.details["subsystem"] == facts["SUBSYSTEM"]
    if "SYSTEM_ID" in facts:
        assert vol.details["system_id"] == facts["SYSTEM_ID"]
    assert vol.encrypted == (facts.get("USAGE") == "crypto")
    assert vol.usage == facts["USAGE"]


# -- volumes made by the real tools ------------------------------------------------

#: name -> (size in MiB, tools needed, command with {f} for the file, expected
#: filesystem size: "file" = the whole file, "fsck.fat" = as fsck.fat -v reports it,
#: or bytes, or None = not stated).
VOLUMES: dict[str, tuple[int, tuple[str, ...], str, str | int | None]] = {
    "fat12": (8, ("mkfs.fat",), "mkfs.fat -F 12 -n FAT12LBL -i 0000BEEF {f}", "fsck.fat"),
    "fat16": (64, ("mkfs.fat",), "mkfs.fat -F 16 -n FAT16LBL -i 1234ABCD {f}", "fsck.fat"),
    "fat32": (300, ("mkfs.fat",), "mkfs.fat -F 32 -n FAT32LBL -i DEADBEEF {f}", "fsck.fat"),
    "fat16-nolabel": (64, ("mkfs.fat",), "mkfs.fat -F 16 -i 0BADF00D {f}", "fsck.fat"),
    "fat32-4k": (300, ("mkfs.fat",), "mkfs.fat -F 32 -S 4096 -n FAT4K {f}", "fsck.fat"),
    "exfat": (64, ("mkfs.exfat",), "mkfs.exfat -L ExLabel {f}", "file"),
    "ext2": (32, ("mke2fs",),
             "mke2fs -q -F -t ext2 -L ext2lbl -U 11111111-2222-3333-4444-555555555555 {f}",
             "file"),
    "ext3": (32, ("mke2fs",), "mke2fs -q -F -t ext3 -L ext3lbl {f}", "file"),
    "ext4": (64, ("mke2fs",), "mke2fs -q -F -t ext4 -b 4096 -L ext4lbl {f}", "file"),
    "ext4-nojournal": (32, ("mke2fs",), "mke2fs -q -F -t ext4 -O ^has_journal {f}", "file"),
    "xfs": (300, ("mkfs.xfs",), "mkfs.xfs -q -L xfslbl {f}", "file"),
    "btrfs": (128, ("mkfs.btrfs",), "mkfs.btrfs -q -L btrfslbl {f}", "file"),
    "swap": (32, ("mkswap",), "mkswap -L swaplbl -U 01234567-89ab-cdef-0123-456789abcdef {f}",
             "file"),
    # the larger pages' signatures are read apart from the head (16 KiB alone, 32 KiB with
    # the ISO 9660 identifier, 64 KiB with the Btrfs superblock)
    **{f"swap-{page // 1024}k": (32, ("mkswap",), f"mkswap -p {page} -L swaplbl {{f}}", "file")
       for page in (16384, 32768, 65536)},
    "ntfs": (64, ("mkntfs",), "mkntfs -q -F -Q -L ntfslbl {f}", 64 * MIB - 512),
    "luks1": (32, ("cryptsetup",),
              "cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 {f} -",
              None),
    "luks2": (32, ("cryptsetup",),
              "cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations"
              " 1000 --label lukslbl --subsystem sub {f} -", None),
}


def test_the_far_swap_signatures_share_their_reads() -> None:
    """probe_volume reads the 32 KiB-page swap signature with the ISO 9660 identifier,
    and the 64 KiB-page one with the Btrfs superblock, in one read each: right only while
    each page ends where the other structure starts (the swap-32k and swap-64k volumes
    below check the result against blkid)."""
    from imgscan._core.probes.iso9660 import ISO_PVD
    from imgscan._core.probes.linux import BTRFS_SB, SWAP_PAGE_SIZES

    assert (SWAP_PAGE_SIZES[3], SWAP_PAGE_SIZES[4]) == (ISO_PVD, BTRFS_SB)


def _make_volume(name: str, directory: Path) -> Path:
    size_mib, tools, command, _ = VOLUMES[name]
    if not _have(*tools):
        pytest.skip(f"{tools} not installed")
    path = directory / f"{name}.img"
    if not path.exists():
        with open(path, "wb") as f:
            f.truncate(size_mib * MIB)
        _sh(*command.format(f=path).split(), stdin=b"pw")
    return path


@pytest.fixture(scope="session")
def vol_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("filesystems")


@pytest.fixture(scope="session")
def iso_volumes(vol_dir: Path) -> dict[str, Path]:
    if not _have("genisoimage"):
        pytest.skip("genisoimage not installed")
    tree = vol_dir / "isotree"
    (tree / "boot").mkdir(parents=True, exist_ok=True)
    (tree / "hello.txt").write_text("hello\n")
    (tree / "boot" / "boot.img").write_bytes(b"\x00" * 2048)
    (tree / "boot" / "efi.img").write_bytes(b"\x00" * 2048)
    out = {"plain": vol_dir / "plain.iso", "joliet": vol_dir / "joliet.iso",
           "joliet-long": vol_dir / "joliet-long.iso", "eltorito": vol_dir / "eltorito.iso"}
    _sh("genisoimage", "-quiet", "-V", "ISOLABEL", "-o", out["plain"], tree)
    _sh("genisoimage", "-quiet", "-J", "-V", "JOLIETLBL", "-o", out["joliet"], tree)
    _sh("genisoimage", "-quiet", "-J", "-joliet-long", "-V", "Mixed Case Label",
        "-o", out["joliet-long"], tree)
    _sh("genisoimage", "-quiet", "-J", "-V", "BOOTLBL", "-b", "boot/boot.img",
        "-no-emul-boot", "-eltorito-alt-boot", "-e", "boot/efi.img", "-no-emul-boot",
        "-o", out["eltorito"], tree)
    return out


@pytest.mark.parametrize("name", sorted(VOLUMES))
def test_whole_volume_matches_blkid(name: str, vol_dir: Path) -> None:
    path = _make_volume(name, vol_dir)
    vol = probe_file(path)
    assert_matches_blkid(vol, blkid(path))
    assert vol is not None
    assert vol.details.get("checksum", "ok") == "ok"  # ext4, Btrfs, exFAT as made
    if name.startswith("swap-"):  # found at its own page's signature, as mkswap -p made it
        assert vol.details["page_size"] == int(name.removeprefix("swap-")[:-1]) * 1024
    expected = VOLUMES[name][3]
    if expected == "file":
        assert vol.size == path.stat().st_size
    elif expected == "fsck.fat":
        facts = _fsck_fat(path)
        assert vol.size == facts["sectors total"] * facts["bytes per logical sector"]
        assert vol.details["clusters"] == facts["data clusters"]
        assert vol.details["cluster_size"] == facts["bytes per cluster"]
    elif isinstance(expected, int):
        assert vol.size == expected


def _fsck_fat(path: Path) -> dict[str, int]:
    """The numbers ``fsck.fat -n -v`` prints for a FAT boot sector, by their label."""
    out = subprocess.run(["fsck.fat", "-n", "-v", str(path)], capture_output=True,
                         text=True).stdout
    facts = {}
    for line in out.splitlines():
        number, _, label = line.strip().partition(" ")
        if number.isdigit():
            facts[label.split(" (")[0]] = int(number)
    return facts


@pytest.mark.parametrize("kind", ["plain", "joliet", "joliet-long", "eltorito"])
def test_iso9660_matches_blkid(kind: str, iso_volumes: dict[str, Path]) -> None:
    path = iso_volumes[kind]
    vol = probe_file(path)
    assert_matches_blkid(vol, blkid(path))
    assert vol is not None and vol.size == path.stat().st_size
    if kind == "eltorito":
        assert vol.details["el_torito"] == ["bios", "uefi"]
    else:
        assert "el_torito" not in vol.details


def _dumpe2fs(path: Path) -> dict[str, str]:
    out = _sh("dumpe2fs", "-h", path)
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in
                                                  out.splitlines()) if v}


@pytest.mark.skipif(not _have("mke2fs", "debugfs", "dumpe2fs"), reason="e2fsprogs missing")
@pytest.mark.parametrize("change", ["clean", "ssv state 0", "ssv state 3",
                                    "feature needs_recovery"])
def test_ext4_state_matches_dumpe2fs(change: str, vol_dir: Path) -> None:
    path = vol_dir / f"ext4-{change.replace(' ', '-')}.img"
    with open(path, "wb") as f:
        f.truncate(32 * MIB)
    _sh("mke2fs", "-q", "-F", "-t", "ext4", path)
    if change != "clean":
        _sh("debugfs", "-w", "-R", change, path)
    vol = probe_file(path)
    assert_matches_blkid(vol, blkid(path))
    assert vol is not None
    facts = _dumpe2fs(path)
    assert vol.details["state"] == facts["Filesystem state"]
    recovery = "needs_recovery" in facts["Filesystem features"].split()
    assert vol.details["needs_recovery"] == recovery
    assert vol.details["clean"] == (facts["Filesystem state"] == "clean" and not recovery)
    assert vol.details["clean"] == (change == "clean")
    assert vol.details["checksum"] == "ok"
    assert vol.size == int(facts["Block count"]) * int(facts["Block size"])


# -- inside a partition -------------------------------------------------------------

PARTITIONED = ["fat16", "fat32", "exfat", "ext4", "ntfs", "swap", "luks2", "btrfs", "xfs"]


@pytest.mark.skipif(not _have("sfdisk"), reason="sfdisk missing")
@pytest.mark.parametrize("name", PARTITIONED)
@pytest.mark.parametrize("table", ["dos", "gpt"])
def test_volume_in_partition_matches_blkid(name: str, table: str, vol_dir: Path) -> None:
    volume = _make_volume(name, vol_dir)
    vsize = volume.stat().st_size
    disk = vol_dir / f"disk-{table}-{name}.img"
    with open(disk, "wb") as f:
        f.truncate(PART_START + vsize + MIB)
    _sh("sfdisk", "-q", disk, stdin=f"label: {table}\nstart=2048, size={vsize // 512}\n".encode())
    _copy_sparse(volume, disk, PART_START)
    got = probe_file(disk, PART_START, vsize)
    assert_matches_blkid(got, blkid(disk, PART_START, vsize))
    assert got == probe_file(volume)


def _copy_sparse(src: Path, dst: Path, at: int) -> None:
    """Copy ``src`` into ``dst`` at ``at``, skipping holes (the volumes are sparse)."""
    with open(src, "rb") as fin, open(dst, "r+b") as fout:
        fd, end, pos = fin.fileno(), os.fstat(fin.fileno()).st_size, 0
        while pos < end:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            fin.seek(data)
            fout.seek(at + data)
            fout.write(fin.read(hole - data))
            pos = hole


# -- through a container ----------------------------------------------------------------

@needs_qemu
@pytest.mark.parametrize("name", ["ext4", "fat32", "ntfs", "luks1"])
def test_volume_inside_qcow2(name: str, vol_dir: Path) -> None:
    volume = _make_volume(name, vol_dir)
    wrapped = vol_dir / f"{name}.qcow2"
    _sh("qemu-img", "convert", "-f", "raw", "-O", "qcow2", volume, wrapped)
    with imgscan.open(wrapped) as image:
        got = probe_volume(image.read, 0, image.virtual_size)
    assert_matches_blkid(got, blkid(volume))


MD_VERSIONS = ["0.90", "1.0", "1.1", "1.2"]


@needs_qemu
@pytest.mark.parametrize("cluster", [512, 65536])
@pytest.mark.parametrize("name", [*sorted(VOLUMES), *(f"md-{v}" for v in MD_VERSIONS)])
def test_disk_read_from_c_matches_blkid(name: str, cluster: int, vol_dir: Path) -> None:
    """A VirtualDisk's own ``read`` (the layout's), which the probes read from C with no
    Python call per read, finds what a Python reader of the same disk finds, and what
    blkid finds in the raw volume: in qcow2s of 512-byte clusters (the far signatures
    straddle clusters) and of 64 KiB ones."""
    if name.startswith("md-"):
        volume = write_member(vol_dir / f"{name}.img", MD_MEMBER_SIZE, name[3:],
                              uuid.UUID(int=random.getrandbits(128)),
                              uuid.UUID(int=random.getrandbits(128)), "imgscan:md0")
    else:
        volume = _make_volume(name, vol_dir)
    wrapped = vol_dir / f"{name}-{cluster}.qcow2"
    _sh("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", f"cluster_size={cluster}",
        volume, wrapped)
    with imgscan.open(wrapped) as image:
        guest = image.guest()
        assert guest.read is not None
        read = guest.read
        from_c = probe_volume(read, 0, guest.size)
        head = read(0, 8192)
        assert probe_volume(read, 0, guest.size, head) == from_c
        assert probe_volume(lambda off, n: read(off, n), 0, guest.size) == from_c
    assert_matches_blkid(from_c, blkid(volume))
    wrapped.unlink()


# -- LVM2 and MD RAID: made where the kernel lets the tools run ---------------------------

@pytest.fixture
def loop_file(vol_dir: Path) -> Iterator[tuple[Path, str]]:
    path = vol_dir / f"loop-{random.getrandbits(32):08x}.img"
    with open(path, "wb") as f:
        f.truncate(32 * MIB)
    try:
        dev = _sh("losetup", "-f", "--show", path).strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no loop device: {exc}")
    try:
        yield path, dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


@pytest.mark.skipif(not _have("pvcreate", "losetup"), reason="lvm2 / losetup missing")
def test_lvm2_pv_matches_blkid(loop_file: tuple[Path, str]) -> None:
    path, dev = loop_file
    env = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1")
    subprocess.run(["pvcreate", "-q", "-ff", "-y", "--devices", dev, dev], check=True,
                   capture_output=True, env=env)
    subprocess.run(["losetup", "-d", dev], check=False)
    vol = probe_file(path)
    assert_matches_blkid(vol, blkid(path))
    assert vol is not None and vol.size == path.stat().st_size


@pytest.mark.skipif(not _have("mdadm", "losetup"), reason="mdadm / losetup missing")
@pytest.mark.skipif(not Path("/proc/mdstat").exists(),   # before the loop device is asked for
                    reason="the kernel has no md driver: mdadm --create cannot write a superblock")
@pytest.mark.parametrize("metadata", MD_VERSIONS)
def test_md_raid_member_matches_blkid(metadata: str, loop_file: tuple[Path, str]) -> None:
    path, dev = loop_file
    md = f"/dev/md/imgscan{random.getrandbits(16)}"
    made = subprocess.run(["mdadm", "--create", md, "--run", "--level=1", "--raid-devices=2",
                           f"--metadata={metadata}", "--name=imgscan", dev, "missing"],
                          capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"mdadm --create failed here: {made.stderr.strip()}")
    subprocess.run(["mdadm", "--stop", md], check=False, capture_output=True)
    vol = probe_file(path)
    assert_matches_blkid(vol, blkid(path))


#: A member size aligned to neither 64 KiB (0.90) nor 4 KiB (1.0), so each version's
#: placement rule is exercised.
MD_MEMBER_SIZE = 33 * MIB + 70 * 1024 + 3 * 512


def mdadm_examine(path: Path) -> dict[str, str]:
    """``mdadm --examine FILE``'s ``Key : value`` lines (it reads plain files)."""
    out = _sh("mdadm", "--examine", path)
    return {k.strip(): v.strip() for k, _, v in
            (line.partition(" : ") for line in out.splitlines()) if v}


@pytest.mark.skipif(not _have("mdadm", "blkid"), reason="mdadm / blkid missing")
@pytest.mark.parametrize("metadata", MD_VERSIONS)
def test_md_raid_member_image_matches_mdadm_and_blkid(metadata: str, vol_dir: Path) -> None:
    """A member superblock of each version in a plain file (helpers.md_superblock: no tool
    writes one without the md driver), as mdadm --examine and blkid -p read it."""
    path = write_member(vol_dir / f"md-{metadata}.img", MD_MEMBER_SIZE, metadata,
                        uuid.UUID(int=random.getrandbits(128)),
                        uuid.UUID(int=random.getrandbits(128)), "imgscan:md0")
    examined = mdadm_examine(path)
    assert examined["Version"] == ("0.90.00" if metadata == "0.90" else metadata)
    assert examined["Checksum"].endswith(" - correct"), examined
    vol = probe_file(path)
    assert_matches_blkid(vol, blkid(path))
    assert vol is not None
    array_uuid = examined["UUID" if metadata == "0.90" else "Array UUID"]
    assert (vol.uuid or "").replace("-", "") == array_uuid.replace(":", "")
    if metadata != "0.90":
        assert vol.label == examined["Name"]
        assert vol.details["uuid_sub"].replace("-", "") == \
            examined["Device UUID"].replace(":", "")
        assert vol.details["superblock_offset"] == \
            int(examined["Super Offset"].split()[0]) * 512


@pytest.mark.skipif(not _have("blkid"), reason="blkid missing")
def test_refs_boot_sector_matches_blkid(vol_dir: Path) -> None:
    """No tool on Linux makes ReFS and the corpus holds no ReFS volume: the boot sector is
    written from libfsrefs's documented layout (jump, "ReFS" signature, "FSRS", sectors,
    bytes per sector, sectors per cluster, version, serial). blkid recognises it by the
    signature and prints TYPE=ReFS alone (no UUID, no VERSION); imgscan agrees."""
    sector = bytearray(512)
    sector[3:11] = b"ReFS\0\0\0\0"
    sector[16:20] = b"FSRS"
    struct.pack_into("<HHQII", sector, 20, 512, 0, 2 * MIB // 512, 512, 8)
    sector[40:42] = bytes([3, 4])
    struct.pack_into("<Q", sector, 56, 0x1122334455667788)
    path = vol_dir / "refs.img"
    with open(path, "wb") as f:
        f.truncate(2 * MIB)
        f.write(sector)
    facts = blkid(path)
    assert facts["TYPE"] == "ReFS" and not {"UUID", "VERSION", "LABEL"} & set(facts)
    vol = probe_file(path)
    assert_matches_blkid(vol, facts)
    assert vol is not None and vol.size == 2 * MIB


# -- the corpus -----------------------------------------------------------------------------

def _assert_fact(vol: Volume | None, facts: dict[str, str]) -> None:
    facts = {k: v.replace("\\ ", " ") for k, v in facts.items()}
    if not facts:
        assert vol is None
    else:
        assert_matches_blkid(vol, facts)


@needs_corpus
@pytest.mark.parametrize("member", [
    "cryptsetup/img_fs_ext4.img.xz", "cryptsetup/img_fs_vfat.img.xz",
    "cryptsetup/img_fs_xfs.img.xz", "cryptsetup/compatimage.img.xz",
    "cryptsetup/compatimage2.img.xz", "cryptsetup/luks2_valid_hdr.img.xz",
    "dissect.volume/lvm.bin.gz", "dfvfs/iso9660.raw",
])
def test_corpus_whole_disk(member: str, vol_dir: Path) -> None:
    src = CORPUS / member
    path = src if src.suffix not in (".xz", ".gz") else decompress(src, vol_dir / src.stem)
    _assert_fact(probe_file(path), corpus_facts()[member]["whole_disk_blkid"])


@needs_corpus
@pytest.mark.parametrize("member", ["dfvfs/mbr.raw.gz", "dfvfs/tsk_volume_system.raw"])
def test_corpus_partitions(member: str, vol_dir: Path) -> None:
    src = CORPUS / member
    path = src if src.suffix != ".gz" else decompress(src, vol_dir / src.stem)
    checked = 0
    for part in corpus_facts()[member]["partitions"]:
        if "blkid" not in part:
            continue  # the extended partition itself
        vol = probe_file(path, part["start"] * 512, part["size"] * 512)
        _assert_fact(vol, part["blkid"])
        checked += 1
    assert checked >= 2


@needs_corpus
@pytest.mark.parametrize("member", ["sleuthkit/image.qcow", "dfvfs/vsstest.qcow2",
                                    "dfvfs/windows_volume.qcow2"])
def test_corpus_through_container(member: str) -> None:
    with imgscan.open(CORPUS / member) as image:
        vol = probe_volume(image.read, 0, image.virtual_size)
    _assert_fact(vol, corpus_facts()[member]["whole_disk_blkid"])


def _bitlk_dump(lines: list[str]) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines
                                                  if not line.startswith((" ", "\t")))}


@needs_corpus
def test_corpus_bitlocker(tmp_path: Path) -> None:
    """21 Windows-made BitLocker volumes, To Go and 4K-sector ones among them."""
    subprocess.run(["tar", "-xJf", CORPUS / "cryptsetup/bitlk-images.tar.xz", "-C", tmp_path],
                   check=True)
    members = corpus_facts()["cryptsetup/bitlk-images.tar.xz"]["members"]
    seen = {"to_go": 0, "4k": 0}
    for name, facts in members.items():
        vol = probe_file(tmp_path / name)
        _assert_fact(vol, facts["whole_disk_blkid"])
        if "bitlkDump" not in facts:
            continue
        assert vol is not None
        dump = _bitlk_dump(facts["bitlkDump"]["out"])
        assert vol.details["volume_guid"] == dump["GUID"]
        assert f"{vol.details['sector_size']} [bytes]" == dump["Sector size"]
        assert f"{vol.size} [bytes]" == dump["Volume size"]
        assert vol.details["cipher"] == f"{dump['Cipher name']}-{dump['Cipher mode']}"
        assert f"{vol.details['key_bits']} bits" == dump["Cipher key"]
        assert vol.version == dump["Version"]
        seen["to_go"] += vol.details["to_go"]
        seen["4k"] += vol.details["sector_size"] == 4096
    assert seen == {"to_go": 2, "4k": 2}


# -- malformed volumes: no exception, prompt ---------------------------------------------------

MALFORMED_BASES = ["fat12", "fat32", "exfat", "ext4", "ntfs", "swap", "luks1", "luks2", "xfs",
                   "btrfs"]


def _mutations(base: bytes, rng: random.Random, count: int) -> Iterator[bytes]:
    for _ in range(count):
        buf = bytearray(base)
        for _ in range(rng.randint(1, 16)):
            pos = rng.randrange(len(buf))
            buf[pos] = rng.randrange(256)
        yield bytes(buf)


def _probe_bytes(data: bytes, size: int | None = None) -> Volume | None:
    def read(offset: int, length: int) -> bytes:
        return data[offset:offset + length]
    return probe_volume(read, 0, len(data) if size is None else size)


@pytest.mark.parametrize("name", MALFORMED_BASES)
def test_corrupted_and_truncated_volumes(name: str, vol_dir: Path) -> None:
    path = _make_volume(name, vol_dir)
    with open(path, "rb") as f:
        base = f.read(80 * 1024)  # every superblock region probed, the first root dirs
    rng = random.Random(name)
    with promptly(5):
        for mutated in _mutations(base, rng, 300):
            vol = _probe_bytes(mutated)
            assert vol is None or isinstance(vol.filesystem, str)
        for cut in (0, 1, 511, 512, 1023, 1024, 1500, 2047, 4095, 8191, 32 * 1024, 65 * 1024):
            _probe_bytes(base[:cut])
            _probe_bytes(base, size=cut)


def _call(read: Reader, offset: int, length: int) -> bytes:
    return read(offset, length)


@pytest.mark.parametrize("name", [n for n in MALFORMED_BASES if not n.startswith("luks")])
def test_disk_read_from_c_matches_a_python_reader_on_garbage(name: str, vol_dir: Path,
                                                              tmp_path: Path) -> None:
    """The probes find the same in a damaged or truncated volume whether they read the disk
    from C (a raw image's VirtualDisk, its own ``read``) or through a Python reader of it,
    also for a volume said to run past the disk's end (every read short there). (A LUKS
    volume in a file is opened as a LUKS container: test_disk_read_from_c_matches_blkid
    reads them through a qcow2.)"""
    path = _make_volume(name, vol_dir)
    with open(path, "rb") as f:
        base = f.read(80 * 1024)
    rng = random.Random(f"from-c-{name}")
    raw = tmp_path / "volume.img"
    compared = 0
    cuts = (512, 4096, 8192 + 512, 16 * 1024, 32 * 1024 + 8, 65 * 1024)
    for data in [*_mutations(base, rng, 60), *(base[:cut] for cut in cuts)]:
        raw.write_bytes(data)
        try:
            image = imgscan.open(raw)
        except ImageError:
            continue  # a container of its own (a LUKS header), damaged
        with image:
            guest = image.guest()
            if image.format != "raw" or guest.read is None:
                continue  # a container of its own
            read = guest.read
            in_python = functools.partial(_call, read)  # not the disk's own bound method
            for size in (guest.size, 2 * guest.size + 4096):
                from_c = probe_volume(read, 0, size)
                assert probe_volume(in_python, 0, size) == from_c
                compared += 1
    assert compared


def test_random_bytes_and_tiny_volumes() -> None:
    rng = random.Random(4)
    for size in (0, 1, 512, 4096, 70 * 1024):
        assert _probe_bytes(bytes(size)) is None
        _probe_bytes(rng.randbytes(size))
    assert probe_volume(lambda o, n: b"", 0, 1 << 40) is None
    assert probe_volume(lambda o, n: b"", -1, 512) is None


def _patched(base: bytes, *edits: tuple[int, bytes]) -> bytes:
    buf = bytearray(base)
    for offset, value in edits:
        buf[offset:offset + len(value)] = value
    return bytes(buf)


@pytest.mark.parametrize(("name", "edits", "expected"), [
    # FAT: zero bytes per sector, then a cluster count past FAT16's limit.
    ("fat16", [(0x0B, b"\x00\x00")], None),
    ("fat16", [(0x0D, b"\x03")], None),  # sectors per cluster not a power of two
    # NTFS: MFT cluster past the end of the volume; an MFT record size of 2^31.
    ("ntfs", [(0x30, (1 << 62).to_bytes(8, "little"))], None),
    ("ntfs", [(0x40, b"\xe1")], "ntfs"),
    # exFAT: sector shift 255.
    ("exfat", [(0x6C, b"\xff")], None),
    # ext4: block size 2^(10+2^31), a 64-bit block count of 2^64-1.
    ("ext4", [(1024 + 0x18, b"\xff\xff\xff\x7f")], "ext4"),
    ("ext4", [(1024 + 0x04, b"\xff" * 4), (1024 + 0x150, b"\xff" * 4)], "ext4"),
    # swap: last page 0.
    ("swap", [(1024 + 4, b"\x00" * 4)], None),
    # LUKS1 key bytes 2^32-1; LUKS2 claiming a secondary header position.
    ("luks1", [(108, b"\xff" * 4)], "crypto_LUKS"),
    ("luks2", [(256, b"\x00\x00\x00\x00\x00\x00\x40\x00")], None),
    # XFS: agcount 0.
    ("xfs", [(88, b"\x00" * 4)], None),
    # Btrfs: label without a NUL, checksum no longer matches.
    ("btrfs", [(65536 + 0x12B, b"A" * 256)], "btrfs"),
])
def test_impossible_fields(name: str, edits: list[tuple[int, bytes]], expected: str | None,
                           vol_dir: Path) -> None:
    path = _make_volume(name, vol_dir)
    with open(path, "rb") as f:
        base = f.read(80 * 1024)
    vol = _probe_bytes(_patched(base, *edits), size=path.stat().st_size)
    assert (vol.filesystem if vol else None) == expected
    if name == "btrfs":
        assert vol is not None and vol.details["checksum"] == "bad"


def test_hostile_pointers_stay_bounded(vol_dir: Path) -> None:
    """Offsets a volume claims (FVE metadata, El Torito catalog, MD max_dev, FAT32 root
    chain) are read at most once each, inside the volume, a few KiB at a time."""
    calls: list[tuple[int, int]] = []
    fat32 = _make_volume("fat32", vol_dir).read_bytes()[:80 * 1024]
    size = 300 * MIB

    def read(offset: int, length: int) -> bytes:
        calls.append((offset, length))
        return fat32[offset:offset + length] if offset < len(fat32) else bytes(length)

    cases = [
        _patched(fat32, (0, b"\xeb\x58\x90-FVE-FS-"), (176, (1 << 63).to_bytes(8, "little"))),
        _patched(fat32, (0, b"\xeb\x58\x90MSWIN4.1"), (440, b"\xff" * 8)),
        _patched(fat32, (4096, (0xA92B4EFC).to_bytes(4, "little")), (4100, b"\x01\0\0\0"),
                 (4096 + 144, b"\x08" + b"\0" * 7), (4096 + 220, b"\xff" * 4)),
        _patched(fat32, (0x2C, b"\x02\x00\x00\x00")),
    ]
    for case in cases:
        fat32 = case
        calls.clear()
        probe_volume(read, 0, size)
        assert len(calls) < 60
        assert all(off >= 0 and off + n <= size and n <= 64 * 1024 for off, n in calls)
