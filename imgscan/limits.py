"""Every cap imgscan applies to values an untrusted image claims.

Memory and time spent on an image are bounded by its file size and by these
numbers, never by a count or size the file merely states. Each cap is named
after the structure it protects and is tested at its boundary.
"""

from __future__ import annotations

from imgscan.errors import LimitExceeded

# qcow2 / qcow / QED ------------------------------------------------------
#: Largest L1 table, in bytes (qemu's QCOW_MAX_L1_SIZE).
QCOW2_MAX_L1_BYTES = 32 * 1024 * 1024
#: Largest refcount table, in bytes (qemu's QCOW_MAX_REFTABLE_SIZE).
QCOW2_MAX_REFTABLE_BYTES = 8 * 1024 * 1024
#: Most internal snapshots (qemu's QCOW_MAX_SNAPSHOTS).
QCOW2_MAX_SNAPSHOTS = 65536
#: Most bytes of snapshot table read (qemu's QCOW_MAX_SNAPSHOTS_SIZE).
QCOW2_MAX_SNAPSHOT_TABLE_BYTES = 64 * 1024 * 1024
#: Most header extensions walked before giving up.
QCOW2_MAX_HEADER_EXTENSIONS = 1024
#: Longest backing file name (qemu's limit is 1023 bytes).
QCOW2_MAX_BACKING_NAME = 1023
#: Cluster bits accepted (512 B to 2 MiB, as qemu).
QCOW2_MIN_CLUSTER_BITS = 9
QCOW2_MAX_CLUSTER_BITS = 21
#: Most extra-data bytes in one snapshot table entry (qemu's QCOW_MAX_SNAPSHOT_EXTRA_DATA).
QCOW2_MAX_SNAPSHOT_EXTRA_DATA = 1024
#: Most persistent dirty bitmaps (qemu's QCOW2_MAX_BITMAPS).
QCOW2_MAX_BITMAPS = 65535
#: Largest bitmap directory, in bytes (qemu's QCOW2_MAX_BITMAP_DIRECTORY_SIZE).
QCOW2_MAX_BITMAP_DIRECTORY_BYTES = 1024 * QCOW2_MAX_BITMAPS
#: Largest virtual size accepted for any container (qemu's 2^63 - 2^30 rounded down to 32 EiB is
#: not practical to walk; 2^56 bytes covers every real image with a wide margin).
MAX_VIRTUAL_SIZE = 1 << 56

# QCOW version 1 ------------------------------------------------------------
#: Cluster bits qemu's qcow driver accepts (512 B to 64 KiB clusters).
QCOW_MIN_CLUSTER_BITS = 9
QCOW_MAX_CLUSTER_BITS = 16
#: L2 entries per table as a power of two (qemu: 512 B to 64 KiB tables of 8-byte entries).
QCOW_MIN_L2_BITS = 6
QCOW_MAX_L2_BITS = 13
#: Largest L1 table, in bytes: the qcow2 cap (4 Mi entries) reused, since qemu's qcow limit
#: (INT_MAX / 8 entries) is not practical. 4 Mi entries map 8 TiB at qemu-img's default
#: geometry (4 KiB clusters, 512-entry L2 tables) and 2 PiB at the largest.
QCOW_MAX_L1_BYTES = QCOW2_MAX_L1_BYTES
#: Longest backing file name (qemu's qcow limit, 1023 bytes, as for qcow2).
QCOW_MAX_BACKING_NAME = 1023

# VHD ---------------------------------------------------------------------
#: Most BAT entries (a 2 TiB VHD with 512 KiB blocks has 4 Mi entries).
VHD_MAX_BAT_ENTRIES = 1 << 24
#: Largest VHD block size accepted (the spec's blocks are 512 KiB or 2 MiB; Hyper-V allows 256 MiB).
VHD_MAX_BLOCK_SIZE = 256 * 1024 * 1024
#: Largest VHD virtual size (qemu's VHD_MAX_SECTORS, 0xff000000 sectors = 2040 GiB, the spec's
#: maximum); qemu refuses larger images.
VHD_MAX_VIRTUAL_SIZE = 0xFF000000 * 512
#: Most bytes of one parent locator read (a UTF-16 Windows path of 32767 characters fits).
VHD_MAX_LOCATOR_BYTES = 65536

# VDI ---------------------------------------------------------------------
#: Most block map entries (blocks_in_image): 64 Mi entries, a 256 MiB block map, 64 TiB at
#: VirtualBox's default 1 MiB blocks (qemu allows 0x3fffffff entries, 4 GiB of map).
VDI_MAX_BLOCKS = 1 << 26
#: Largest VDI block size accepted (VirtualBox's default and qemu's only size is 1 MiB;
#: VirtualBox lets AllocationBlockSize be any power of two).
VDI_MAX_BLOCK_SIZE = 256 * 1024 * 1024
#: Largest per-block extra data (cbBlockExtra) accepted: VirtualBox never writes any.
VDI_MAX_BLOCK_EXTRA = 1024 * 1024

# QED ---------------------------------------------------------------------
#: Cluster sizes the QED spec allows (qemu's QED_MIN/MAX_CLUSTER_SIZE: 4 KiB to 64 MiB).
QED_MIN_CLUSTER_SIZE = 4096
QED_MAX_CLUSTER_SIZE = 64 * 1024 * 1024
#: L1/L2 table sizes in clusters the QED spec allows (qemu's QED_MIN/MAX_TABLE_SIZE).
QED_MIN_TABLE_SIZE = 1
QED_MAX_TABLE_SIZE = 16
#: Longest backing file name: qemu reads it into a PATH_MAX (4096) buffer with its NUL.
QED_MAX_BACKING_NAME = 4095

# LUKS --------------------------------------------------------------------
#: Largest LUKS2 header copy (binary header + JSON area), in bytes: the spec's largest hdr_size,
#: 4 MiB, so the JSON metadata read and parsed is at most 4 MiB - 4 KiB.
LUKS2_MAX_HEADER_BYTES = 4 * 1024 * 1024

# ISO 9660 ------------------------------------------------------------------
#: Most volume descriptors walked from sector 16 before a terminator (real discs have 3 to 6:
#: primary, El Torito boot record, Joliet, enhanced, terminator).
ISO_MAX_VOLUME_DESCRIPTORS = 64
#: Most 32-byte entries read from an El Torito boot catalog (xorriso writes at most 32 boot
#: images; one 2048-byte sector holds 64 entries, this allows four sectors).
ISO_MAX_BOOT_CATALOG_ENTRIES = 256

# ZVHD / ZVHD2 (Huawei) ----------------------------------------------------------
#: Largest padded record (header, payload, "end"): Huawei's writers refuse a
#: payload of 4 MiB (ZVHD) or 2 blocks + 1/1000 + 128 bytes (ZVHD2), so a
#: record never exceeds 4 MiB plus two 4 KiB pages.
ZVHD_MAX_RECORD_BYTES = 4 * 1024 * 1024 + 8192
#: ZVHD's records form one zlib stream: a copy of the inflater (about 45 KiB)
#: is kept every this many records, so a backward read re-inflates at most
#: this many 2 MiB blocks...
ZVHD_CHECKPOINT_SPACING = 64
#: ...and at most this many copies are kept (about 11 MiB).
ZVHD_MAX_CHECKPOINTS = 256
#: Largest ZVHD2 index or bitmap read (64 MiB of index maps 4 Mi stored
#: blocks = 8 TiB of 2 MiB blocks).
ZVHD2_MAX_TABLE_BYTES = 64 * 1024 * 1024

# Extent maps and guest reads -----------------------------------------------
#: Most extents one map may hold (each costs 32 bytes): 64 Mi extents = 2 GiB.
MAX_EXTENTS = 64 * 1024 * 1024
#: Largest single guest read through the Python API.
MAX_READ = 1 << 31
#: Largest decompressed cluster (qcow2's biggest cluster is 2 MiB).
MAX_DECOMPRESSED_CLUSTER = 2 * 1024 * 1024
#: Most bytes a backing chain may be deep before it is refused.
MAX_BACKING_DEPTH = 16
#: Most 1 MiB chunks of a disk one content fingerprint covers: 64 Mi chunks = a 64 TiB
#: disk (VHDX's largest), whose chunk digests take 1 GiB and whose stream digest hashes
#: 64 TiB even where the disk is all holes (a header claiming 64 PiB is refused).
MAX_FINGERPRINT_CHUNKS = 64 * 1024 * 1024

# VMDK --------------------------------------------------------------------
#: Largest descriptor read, in bytes: a whole descriptor file, or an embedded one (qemu reads at
#: most 1 MiB - 1 of a descriptor file; real descriptors are a few hundred bytes).
VMDK_MAX_DESCRIPTOR_BYTES = 1024 * 1024 - 1
#: Most lines in a descriptor, and the longest line (an extent line names one file of up to
#: 511 bytes in qemu; ddb.* values such as encryption key safes are longer but bounded).
VMDK_MAX_DESCRIPTOR_LINES = 20000
VMDK_MAX_DESCRIPTOR_LINE = 65536
#: Most extent lines in a descriptor (a twoGbMaxExtent disk of 62 TiB has 31744 extents; each
#: extent file is one open file descriptor, so the cap is lower).
VMDK_MAX_EXTENTS = 4096
#: Most grain directory entries of one sparse extent (qemu's "L1 size too big": 32 Mi).
VMDK_MAX_GD_ENTRIES = 32 * 1024 * 1024
#: Most grain table entries per grain table (qemu's "L2 table size too big": 512, the spec's value).
VMDK_MAX_GTES_PER_GT = 512
#: Largest grain, in sectors (qemu's 0x200000 sectors = 1 GiB "Invalid granularity").
VMDK_MAX_GRAIN_SECTORS = 0x200000
#: Largest descriptor key count kept in ``details`` (ddb.* and the header lines).
VMDK_MAX_DDB_ENTRIES = 1024


# Partition tables (MBR / GPT) ----------------------------------------------
#: Most extended boot records followed in one MBR's chain of logical partitions. Linux shows at
#: most 256 partitions per disk (DISK_MAX_PARTS); a longer chain is cut there with a finding.
MBR_MAX_EBR_CHAIN = 256
#: Largest GPT partition entry array read, in bytes: 32768 entries of 128 bytes (the spec's
#: minimum array is 16 KiB; no partitioner writes more than a few thousand entries).
GPT_MAX_ENTRY_ARRAY_BYTES = 4 * 1024 * 1024
#: Largest GPT partition entry (the spec allows 128 * 2^n bytes; every tool writes 128).
GPT_MAX_ENTRY_SIZE = 4096
#: Most findings of one kind (overlap, out of range, ...) reported per partition table; the rest
#: are counted in one summary finding, so a hostile table cannot flood the report.
PARTITION_MAX_FINDINGS = 16

# VHDX --------------------------------------------------------------------
#: Largest VHDX virtual size: the spec's maximum, 64 TiB (qemu-img refuses to create larger).
VHDX_MAX_VIRTUAL_SIZE = 64 << 40
#: Most region table entries (the spec's and qemu's limit: 2047 fit in 64 KiB).
VHDX_MAX_REGION_ENTRIES = 2047
#: Most metadata table entries (the spec's and qemu's limit: 2047 fit in 64 KiB).
VHDX_MAX_METADATA_ENTRIES = 2047
#: Largest log region read (the header's LogLength is 32-bit; Hyper-V and qemu-img write
#: 1 MiB by default). Only the part inside the file is read; the rest is zeros.
VHDX_MAX_LOG_BYTES = 1 << 30
#: Most log entry validations in one scan for the active sequence, and most bytes
#: checksummed: a hostile log of overlapping entries cannot make the scan quadratic.
VHDX_MAX_LOG_SCAN_STEPS = 1 << 20
VHDX_MAX_LOG_SCAN_BYTES = 4 << 30
#: Largest parent locator metadata item, and most key/value entries in it (Hyper-V writes
#: five keys of a few hundred bytes).
VHDX_MAX_PARENT_LOCATOR_BYTES = 1 << 20
VHDX_MAX_PARENT_LOCATOR_ENTRIES = 1024

# Registry hives (regf) ------------------------------------------------------
# Each subkey costs a list element (4-8 bytes) and an nk cell (>= 80 bytes) of
# the hive and each value a list element and a vk cell, and every count is
# also checked against the cell holding its list, so the hive's size bounds
# the work; these caps are the ceiling for a legitimately huge hive (a real
# SOFTWARE hive's Classes key has tens of thousands of subkeys).
#: Most subkeys of one key.
REGF_MAX_SUBKEYS = 1 << 20
#: Most values of one key.
REGF_MAX_VALUES = 1 << 20
#: Largest value data assembled (hivex stops at 8 MB; the largest values seen in
#: real hives are a few hundred KiB of binary blobs). Also bounded by the hive size.
REGF_MAX_VALUE_DATA = 64 * 1024 * 1024
#: Most big-data (db) segments of one value: enough for REGF_MAX_VALUE_DATA in
#: 16344-byte segments (the on-disk count is 16-bit: at most 65535).
REGF_MAX_DB_SEGMENTS = (REGF_MAX_VALUE_DATA + 16343) // 16344
#: Deepest key tree walked (MSDN: a registry tree can be 512 levels deep).
REGF_MAX_DEPTH = 512
#: Largest hive bins size a transaction log (a log entry, an old log's base block) may
#: claim: the replayed hive is a buffer of that size, so it gets the cap of a hive read
#: from disk (NTFS_MAX_FILE_READ; real SOFTWARE hives reach 100-200 MiB). The log files
#: themselves are read under WINDOWS_MAX_HIVE_BYTES, as their hive.
REGF_LOG_MAX_HIVE_BINS = 256 * 1024 * 1024

# Filesystem probes (imgscan/_core/filesystems.pyx) ------------------------------
#: Most bytes of one FAT or exFAT root directory scanned for the volume label entry
#: (the label is normally among the first entries; libblkid reads up to 256 MiB).
FS_MAX_DIRECTORY_SCAN = 64 * 1024
#: Directory bytes read at a time while looking for the label (stops at end-of-directory).
FS_DIRECTORY_CHUNK = 4096
#: Most FAT32 / exFAT clusters followed through the FAT for a root directory (libblkid: 100).
FS_MAX_FAT_CHAIN = 100
#: Largest NTFS MFT record read for the $Volume label (real volumes use 1 or 4 KiB).
FS_MAX_MFT_RECORD = 4096
#: ISO 9660 volume descriptors read at first, and at most (libblkid walks 16).
FS_ISO_FIRST_DESCRIPTORS = 4
FS_ISO_MAX_DESCRIPTORS = 16

# NTFS (imgscan/_core/ntfs.pyx) ----------------------------------------------------
#: Largest MFT or index record (Windows writes 1 or 4 KiB MFT records and 4 KiB index
#: records; the boot sector's encoding allows more).
NTFS_MAX_RECORD_SIZE = 64 * 1024
#: Most runs in one attribute's run list, extents joined (a badly fragmented hive
#: has thousands; each run costs a tuple).
NTFS_MAX_RUNS = 1 << 20
#: Most entries, and bytes, of one $ATTRIBUTE_LIST (an entry is at least 32 bytes).
NTFS_MAX_ATTRIBUTE_LIST_ENTRIES = 1 << 18
NTFS_MAX_ATTRIBUTE_LIST_BYTES = 8 * 1024 * 1024
#: Most MFT records and index nodes read while resolving one path (each component costs
#: its record, its extension records and one node per index level).
NTFS_MAX_LOOKUP_STEPS = 65536
#: Most components in one path (Windows paths are at most 32767 UTF-16 units).
NTFS_MAX_PATH_COMPONENTS = 16384
#: Deepest directory B+tree descended (a tree of 4 KiB nodes holding millions of names
#: is about 6 levels deep).
NTFS_MAX_INDEX_DEPTH = 32
#: Most index nodes, and entries, read when listing one directory.
NTFS_MAX_INDEX_NODES = 1 << 20
NTFS_MAX_DIRECTORY_ENTRIES = 1 << 22
#: Largest compression unit decompressed at once (Windows: 16 clusters of at most 4 KiB).
NTFS_MAX_COMPRESSION_UNIT_BYTES = 1024 * 1024
#: Largest single NtfsFile.read (registry hives are tens of MiB; read bigger files in pieces).
NTFS_MAX_FILE_READ = 256 * 1024 * 1024
#: Most reparse points (junctions, symbolic links) followed while resolving one NTFS path
#: (Windows gives up after 63: STATUS_REPARSE_POINT_NOT_RESOLVED).
NTFS_MAX_REPARSE_FOLLOWS = 63
#: Largest reparse point read ([MS-FSCC] 2.1.2: MAXIMUM_REPARSE_DATA_BUFFER_SIZE is 16 KiB).
NTFS_MAX_REPARSE_BYTES = 16 * 1024
#: Largest CompactOS / WOF chunk decoded at once (XPRESS 4, 8 or 16 KiB, LZX 32 KiB; one
#: XPRESS Huffman table covers 64 KiB of output, [MS-XCA] 2.2.4).
WOF_MAX_CHUNK_BYTES = 64 * 1024
#: Deepest ext4 extent tree (the kernel's EXT4_MAX_EXTENT_DEPTH is 5: 4 index levels cover
#: 2^32 blocks even with 1 KiB blocks).
EXT4_MAX_EXTENT_DEPTH = 5
#: Most ext4 map blocks (extent tree nodes, indirect blocks) read for one read: a whole
#: FS_MAX_FILE_READ read of a 1 KiB-block ext2 file needs about 1030 indirect blocks.
EXT4_MAX_MAP_BLOCKS = 65536
#: Largest ext4 directory read for one listing or lookup (a million entries with 40-byte
#: names is about 48 MiB; a directory is read whole, so this bounds the memory it takes).
EXT4_MAX_DIRECTORY_BYTES = 64 * 1024 * 1024
#: Parsed MFT records kept per volume (a Windows inspection opens a few dozen files),
#: and as many (directory, name) -> record entries found by path lookups.
NTFS_INODE_CACHE = 1024

# Filesystem readers (imgscan/_core/fsapi.py and each reader) ----------------------------
#: Most symlinks followed while resolving one path (Linux's MAXSYMLINKS is 40).
FS_MAX_SYMLINK_FOLLOWS = 40
#: Most path components walked while resolving one path, symlink targets included
#: (PATH_MAX is 4096 bytes, so a real path has fewer than 2048 components).
FS_MAX_PATH_COMPONENTS = 4096
#: Largest single read of a file (read bigger files in pieces).
FS_MAX_FILE_READ = 256 * 1024 * 1024
#: Most extents decoded for one XFS fork (32 bytes each in memory: 32 MiB at the cap). A
#: file in a million pieces is far past anything a guest's system files are; the on-disk
#: count (2^31 or 2^48 with nrext64) would otherwise size the map.
XFS_MAX_FORK_EXTENTS = 1024 * 1024
#: Most levels of an XFS bmap btree: a 4 KiB-block fork of 2^31 extents needs 5 (about 250
#: pointers a node); 12 still covers 2^48 extents in half-full 512-byte v4 blocks.
XFS_MAX_BMBT_DEPTH = 12
#: Most directory data bytes read for one XFS listing or lookup index (a million entries
#: of 32-byte names fill about 64 MiB of data blocks).
XFS_MAX_DIRECTORY_BYTES = 256 * 1024 * 1024
#: Largest LVM2 metadata area a PV may claim (mda_header.size): lvm's default is 1 MiB
#: and ``pvcreate --metadatasize`` rarely goes past a few hundred MiB.
LVM_MAX_METADATA_AREA_BYTES = 1024 * 1024 * 1024
#: Largest LVM2 text metadata copy read (raw_locn.size): a VG of hundreds of LVs writes
#: a few hundred KiB, and lvm2 itself refuses more than half of the metadata area.
LVM_MAX_METADATA_BYTES = 16 * 1024 * 1024
#: Deepest ``section { }`` nesting in LVM2 text metadata (lvm writes four levels: VG,
#: logical_volumes, LV, segment).
LVM_MAX_NESTING = 16
#: Most values, sections and list items in one LVM2 metadata text.
LVM_MAX_ITEMS = 1024 * 1024
#: Most logical volumes in one volume group (lvm2's own max_lv is unlimited by default;
#: real VGs hold tens, thin-provisioned ones a few thousand).
LVM_MAX_LVS = 65536
#: Most segments of one logical volume (each lvextend onto a new PV range adds one).
LVM_MAX_SEGMENTS = 65536
#: Most stripes (or mirror/raid images) of one segment (lvm2 caps stripes at 128).
LVM_MAX_STRIPES = 128
#: Most PV labels read on one disk: Linux shows at most 256 partitions of a disk
#: (DISK_MAX_PARTS), so no guest's lvm sees more PVs on it (real system disks have 1 to 4).
#: Partitions past it keep their blkid facts; their labels and metadata are not read.
LVM_MAX_PHYSICAL_VOLUMES = 256
#: Most metadata-area bytes (mda_headers and text copies) read and checksummed on one disk,
#: each PV's copies counted although they hold the same text: four copies of the largest
#: LVM_MAX_METADATA_BYTES text, or two copies (lvm's most) of a 128 KiB text, a VG of
#: hundreds of LVs, on each of LVM_MAX_PHYSICAL_VOLUMES PVs. Past it no further copy is read.
LVM_MAX_METADATA_BYTES_PER_DISK = 64 * 1024 * 1024
#: Deepest Btrfs tree read: btrfs builds at most BTRFS_MAX_LEVEL (8) levels, 0..7.
BTRFS_MAX_TREE_LEVEL = 7
#: Most Btrfs tree blocks visited for one lookup, listing or file read: 65536 leaves of
#: 16 KiB list a directory of some 15 million entries; a tree whose nodes share children
#: (a DAG made by hand) costs no more than that.
BTRFS_MAX_NODES_VISITED = 65536
#: Most Btrfs chunks mapped: one chunk is 256 MiB to 10 GiB of data (1 GiB typically), so
#: 65536 chunks cover well over 16 TiB; each costs a few dozen bytes of memory.
BTRFS_MAX_CHUNKS = 65536
#: Largest Btrfs inline extent (file bytes kept in the leaf): under one sector, at most
#: 64 KiB (the largest sector and node size btrfs allows).
BTRFS_MAX_INLINE_EXTENT = 64 * 1024
#: Largest Btrfs compressed extent, stored or decompressed: the kernel compresses at most
#: 128 KiB per extent (BTRFS_MAX_UNCOMPRESSED).
BTRFS_MAX_DECOMPRESSED_EXTENT = 128 * 1024
#: Most Btrfs subvolumes and snapshots listed (a snapshotting distribution keeps hundreds).
BTRFS_MAX_SUBVOLUMES = 65536

# Windows guest inspection (imgscan/guest/) ------------------------------------------
#: Largest registry hive, or transaction log of one, read into memory (real SOFTWARE
#: hives reach 100-200 MiB; NtfsFile.read refuses more than NTFS_MAX_FILE_READ in one
#: read anyway).
WINDOWS_MAX_HIVE_BYTES = NTFS_MAX_FILE_READ
#: Largest cloudbase-init.conf parsed (real ones are a few KiB).
WINDOWS_MAX_CONFIG_BYTES = 1024 * 1024
#: Most Tcpip interfaces / BCD objects / MountedDevices values looked at.
WINDOWS_MAX_ENTRIES = 4096
#: Largest NTFS $Bitmap counted for the Windows volume's free space (one bit per
#: cluster: 64 MiB covers 2 TiB of 4 KiB clusters); it is read in 1 MiB pieces.
WINDOWS_MAX_BITMAP_BYTES = 64 * 1024 * 1024
#: Largest file read from a FAT volume (the BCD store on an ESP is 32-64 KiB).
FAT_MAX_FILE_BYTES = 64 * 1024 * 1024
#: Largest FAT directory read (65536 entries of 32 bytes, the FAT maximum).
FAT_MAX_DIRECTORY_BYTES = 65536 * 32
#: Directory entries a FAT volume keeps decoded (its directories' listings, newest kept,
#: and the entries met in them): one directory of the FAT maximum fits, so every path
#: lookup in it is a dictionary probe instead of a decode of up to 2 MiB of entries.
FAT_ENTRY_CACHE = 65536

# OVA / OVF packages (imgscan/_core/tar.py, ovf.py, ova.py) -----------------------------
#: Most headers of an OVA's tar archive walked (members, pax and long-name headers, the
#: refused ones included): a package holds its descriptor, manifest, certificate and a few
#: disks (DSP0243); this bounds a walk over a file of tiny members.
OVA_MAX_MEMBERS = 4096
#: Largest pax extended header read (records for one member: path, size, times).
OVA_MAX_PAX_BYTES = 64 * 1024
#: Largest OVF descriptor read: ovftool's are a few KiB, one with many virtual systems and
#: their annotations tens of KiB.
OVF_MAX_DESCRIPTOR_BYTES = 4 * 1024 * 1024
#: Deepest element nesting in an OVF descriptor (Envelope > VirtualSystem > section > item
#: > property is five; VirtualSystemCollections add a level each).
OVF_MAX_DEPTH = 64
#: Most elements in an OVF descriptor: each hardware item is a dozen.
OVF_MAX_ELEMENTS = 100000
#: Largest manifest (.mf) read: one line of about 100 bytes per file of the package.
OVA_MAX_MANIFEST_BYTES = 1024 * 1024
#: Largest certificate file (.cert) read: a signature line and a PEM certificate are
#: 2-3 KiB; a few chain certificates after it stay well under this.
OVA_MAX_CERT_BYTES = 64 * 1024
#: Most disks of one package described and opened (each a window of the archive).
OVF_MAX_DISKS = 64

# Linux guest inspection (imgscan/guest/linux/) ----------------------------------------
#: Largest configuration file read whole (fstab, os-release, grub.cfg, ifcfg, shadow...):
#: real ones are a few KiB; a generated grub.cfg with hundreds of kernels stays under 1 MiB.
LINUX_MAX_CONFIG_BYTES = 4 * 1024 * 1024
#: Most entries of one configuration directory looked at (network configs, BLS entries,
#: udev rules, kernels in /boot, module trees).
LINUX_MAX_ENTRIES = 4096
#: Boot loader configuration (imgscan/guest/linux/boot/): most configuration files one
#: menu reads (GRUB ``configfile``/``source``, SYSLINUX ``INCLUDE``): an EFI stub and the
#: real grub.cfg are two; a loop of files stops here.
BOOT_MAX_CONFIG_FILES = 16
#: Most menu entries and submenus of one boot menu: a grub.cfg lists two or three per
#: installed kernel, and distributions keep a handful of kernels.
BOOT_MAX_MENU_ENTRIES = 1024
#: Deepest nesting of GRUB blocks (``if``, ``menuentry``, ``submenu``, loops) and of
#: submenu levels in a ``default`` path: generated configurations nest three deep.
BOOT_MAX_NESTING = 32
#: Most GRUB commands run while reading one menu (its entries' bodies included): a
#: generated grub.cfg runs a few thousand; this bounds the work of a hostile one.
BOOT_MAX_COMMANDS = 100000
#: Longest GRUB word after variable expansion: ``set a=$a$a`` doubles a value each
#: line; a kernel command line is at most 4 KiB (COMMAND_LINE_SIZE on x86, arm64).
BOOT_MAX_WORD_BYTES = 16384
#: Most syntax errors reported for one GRUB script before it is given up on.
BOOT_MAX_SCRIPT_ERRORS = 64
#: Bytes decompressed from one initramfs, all its segments together (the cpio stream is
#: walked, never held): Debian's cloud initramfs is 50 MiB, a dracut one with every
#: firmware file a few hundred MiB. Walking 1 GiB of gzip costs about 4 s.
LINUX_INITRAMFS_MAX_BYTES = 1024 * 1024 * 1024
#: cpio headers read in one initramfs, trailers included: Debian's has 429 members, a
#: generic dracut one a few thousand. Bounds the walk of an endless run of empty members.
LINUX_INITRAMFS_MAX_MEMBERS = 1 << 17
#: Longest cpio member name, its NUL included: the kernel refuses names over PATH_MAX.
LINUX_INITRAMFS_MAX_NAME = 4096
#: Segments of one initramfs (runs of uncompressed archives, compressed streams): real
#: ones have one to four (early microcode for each CPU vendor, firmware, the main one).
LINUX_INITRAMFS_MAX_SEGMENTS = 64
#: Compressed blocks walked one at a time (zstd blocks, lz4 legacy chunks): a zstd frame
#: of LINUX_INITRAMFS_MAX_BYTES in its usual 128 KiB blocks has 8192; this allows blocks
#: averaging 1 KiB, while a file of empty blocks cannot keep the walk going for minutes.
LINUX_INITRAMFS_MAX_BLOCKS = 1 << 20
#: Memory a decoder may use for its window, as the stream's header asks for it: liblzma's
#: memory limit for xz and lzma, the frame's window size for zstd (``xz -9`` needs 65 MiB,
#: ``zstd --long=31`` 2 GiB, which no initramfs tool uses).
LINUX_INITRAMFS_MAX_WINDOW = 256 * 1024 * 1024

# Bulk scanning (imgscan/bulk/runner.py) ---------------------------------------------
# Budgets of one worker process per image, enforced from outside the decoder so that
# even a bug in it (a loop, a leak) costs one image, not the scan.
#: Seconds one image may take in its worker before the worker is killed (``Timeout``).
SCAN_TIME_LIMIT = 60.0
#: With ``--fingerprint`` the limit grows by the bytes the file really stores on its host
#: (st_blocks, never a size the image claims: holes and zero clusters cost nothing) read
#: at this rate, which is far below any local or network disk.
SCAN_FINGERPRINT_MIN_RATE = 32 * 1024 * 1024
#: Address space one worker may add to what it had when it started (RLIMIT_AS); an
#: allocation beyond it fails as ``MemoryLimit``. Large images are memory-mapped only
#: when the budget allows; otherwise they are read with pread, as small ones are.
SCAN_MEMORY_LIMIT = 1024 * 1024 * 1024


# Remote images (imgscan/remote/) -------------------------------------------------------
#: Bytes one image may make imgscan fetch from object storage or HTTP (every range request
#: of its inspection together): a Windows system disk's check fetches under 16 MiB, a Linux
#: one its initramfs (tens of MiB) besides. A hostile image whose tables send the decoders
#: all over a 40 GB object stops here instead of downloading it. A fingerprint, which reads
#: every stored byte by design, may fetch the object's size on top.
REMOTE_MAX_FETCH_BYTES = 512 * 1024 * 1024


#: This module's namespace: the dict ``monkeypatch.setattr(limits, ...)`` writes to, read
#: without calling ``globals()`` on each of the tens of checks an inspection makes.
_CAPS = globals()


def enforce(value: int, cap: str, path: str, structure: str, offset: int | None,
            what: str) -> None:
    """Refuse ``value`` when it is over the cap named ``cap`` (a name of this module).

    The one place a cap is compared and worded: ``LimitExceeded`` naming the
    file, the structure and the byte offset of the field that claimed
    ``value``, e.g. ``l1_size 5000000 exceeds limits.QCOW2_MAX_L1_BYTES=33554432``.
    ``what`` says what ``value`` counts. The cap is looked up when called, so
    a test that moves it (``monkeypatch.setattr(limits, ...)``) reaches every
    decoder, the Cython ones included.
    """
    limit = _CAPS[cap]
    if value > limit:
        raise LimitExceeded(path, structure, offset, f"{what} {value} exceeds limits.{cap}={limit}")
