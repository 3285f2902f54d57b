"""LUKS containers (Linux Unified Key Setup), versions 1 and 2.

Specs: "LUKS On-Disk Format Specification Version 1.2.3" (Clemens Fruhwirth)
for LUKS1, and "LUKS2 On-Disk Format Specification" (Milan Broz, version
1.1.x) for LUKS2, both published with cryptsetup. All binary integers are
big-endian.

* LUKS1 is one 592-byte header at offset 0 (``LUKS1_HEADER`` below): cipher
  name and mode, hash spec, the payload offset in 512-byte sectors, the
  master key length, a master key digest, the UUID as text, and eight key
  slots, each naming where its anti-forensic key material lies.
* LUKS2 is a 4096-byte binary header followed by a JSON metadata area, the
  two together ``hdr_size`` bytes, stored twice: the primary copy at offset 0
  (magic ``LUKS\\xba\\xbe``) and the secondary right after it, at offset
  ``hdr_size`` (magic ``SKUL\\xba\\xbe``). Each copy carries a checksum
  (normally sha256) over its binary header, with the checksum field zeroed,
  followed by its JSON area. The JSON holds keyslots, tokens, *segments* (the
  encrypted data: offset, size or ``"dynamic"`` = up to the end of the
  device, cipher, sector size), digests and config.

What the guest sees is the decrypted payload, and no key is ever given to
imgscan, so the container reports its facts only: ``encrypted`` is true,
``encryption`` is the payload cipher as cryptsetup writes it
(``aes-xts-plain64``), and guest reads raise :class:`EncryptedImage`
(:class:`VirtualDisk` refuses any container whose ``encrypted`` is set).

``virtual_size`` is the payload size. For LUKS1 it follows qemu's ``luks``
driver (qemu's only LUKS format): the file size rounded up to a whole
512-byte sector, less the payload offset. For a LUKS2 ``dynamic`` segment it
is what dm-crypt maps over a loop device of the file: the file size rounded
down to a whole sector, less the segment offset (qemu 7.2 has no LUKS2
support at all and probes such files as raw). A header whose payload starts
past the end of the file (a header backup, or a header for a detached
payload) has a zero-sized payload, reported as ``size-mismatch`` where qemu
refuses to open the file.

The extent map says where the ciphertext lies: the whole payload is one
``data`` run at the payload offset. It is not split at holes in the host
file as raw data is: a hole reads as zero *ciphertext*, which decrypts to
noise rather than zeros, so every payload byte is stored data. qemu's map
(given the key) agrees, one data extent over the whole disk; it prints no
host offset because the bytes there are encrypted. A fixed-size LUKS2
segment cut short by the end of the file maps its missing tail as ``zero``
(no host bytes), with a ``truncated`` finding.

Where the two LUKS2 header copies disagree this decoder chooses as
cryptsetup does (the valid copy, or of two valid copies the one with the
higher sequence id) and reports ``footer-mismatch``; a checksum that does
not match is ``corrupt``. It departs from cryptsetup only where cryptsetup
refuses a header an inspector should still describe: when neither copy's
checksum matches, the primary's fields are reported with an error finding.
"""

from __future__ import annotations

from imgscan import limits
from imgscan.errors import (
    CorruptImage,
    ImageError,
    TruncatedImage,
    UnsupportedFeature,
)
from imgscan.findings import (
    CORRUPT,
    FOOTER_MISMATCH,
    SIZE_MISMATCH,
    TRUNCATED,
    UNKNOWN_FEATURE,
)

from .c_luks import (
    LUKS1_HEADER_SIZE,
    LUKS1_KEY_DISABLED,
    LUKS1_KEY_ENABLED,
    LUKS1_KEYBLOCK,
    LUKS1_NUMKEYS,
    LUKS1_PHDR,
    LUKS2_BACKUP_FLAG_PREFIX,
    LUKS2_BINARY_HEADER_SIZE,
    LUKS2_HDR,
    LUKS2_HDR_SIZES,
    LUKS2_JSON_SECTIONS,
    LUKS2_MAGIC_2ND,
    LUKS_MAGIC,
    LUKS_PREFIX,
    LUKS_SECTOR_SIZE,
)
from .container import Container, Format
from .extents import ExtentMap
from .source import Source

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def _cstr(raw: bytes) -> str:
    """A NUL-terminated ASCII field as text (other bytes escaped, never dropped)."""
    end = raw.find(b"\x00")
    if end >= 0:
        raw = raw[:end]
    return raw.decode("ascii", errors="backslashreplace")


def _qemu_cipher(name: str, mode: str, key_bytes: int) -> dict[str, str]:
    """qemu's names for a LUKS1 cipher spec (its ``format-specific`` keys).

    qemu reports ``aes-256`` for "aes" with a 64-byte XTS key: XTS splits the
    key in two. Only the ciphers and modes qemu knows get names.
    """
    out: dict[str, str] = {}
    mode_name, _, ivgen = mode.partition("-")
    bits = (key_bytes // 2 if mode_name == "xts" else key_bytes) * 8
    known = {"aes": (128, 192, 256), "serpent": (128, 192, 256),
             "twofish": (128, 192, 256), "cast5": (128,), "sm4": (128,)}
    if bits in known.get(name, ()):
        out["cipher-alg"] = f"{name}-{bits}"
    if mode_name in ("ecb", "cbc", "xts", "ctr"):
        out["cipher-mode"] = mode_name
    if ivgen:
        alg, _, hash_alg = ivgen.partition(":")
        out["ivgen-alg"] = alg
        if hash_alg:
            out["ivgen-hash-alg"] = hash_alg
    return out


def _json_u64(value: Any, path: str, where: str, offset: int) -> int:
    """A LUKS2 JSON size or offset: the spec stores them as decimal strings."""
    if isinstance(value, str) and 0 < len(value) <= 20 and value.isascii() \
            and value.isdigit():
        n = int(value)
        if n < 1 << 64:
            return n
    raise CorruptImage(path, f"LUKS2 JSON {where}", offset,
                       f"{value!r} is not a decimal string of a 64-bit number")


def _json_id(key: str, path: str, where: str, offset: int) -> int:
    if key.isascii() and key.isdigit() and len(key) <= 10:
        return int(key)
    raise CorruptImage(path, f"LUKS2 JSON {where}", offset, f"id {key!r} is not a number")


def _opt(obj: Any, key: str, kind: type) -> Any:
    """``obj[key]`` when ``obj`` is an object and the value has the expected type."""
    if isinstance(obj, dict):
        v = obj.get(key)
        if isinstance(v, kind) and not (kind is int and isinstance(v, bool)):
            return v
    return None


class _Luks2Header:
    """One decoded copy of the LUKS2 header (binary fields and raw JSON area)."""

    __slots__ = ("checksum_ok", "csum_alg", "fields", "hdr_offset", "hdr_size",
                 "json_area", "offset", "problem", "seqid")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.fields: dict[str, Any] = {}
        self.json_area = b""
        self.checksum_ok = False
        self.problem: str | None = None
        self.hdr_size = 0
        self.hdr_offset = 0
        self.seqid = 0
        self.csum_alg = ""


# --------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------

class LuksImage(Container):
    """A LUKS1 or LUKS2 container: facts and where the ciphertext lies."""

    format = "luks"
    encrypted = True

    def __init__(self, source: Source) -> None:
        super().__init__(source, 0)
        #: Active payload ranges in guest order: (host offset, length stored in
        #: the file, length the header claims).
        self._runs: list[tuple[int, int, int]] = []
        if source.contains(0, len(LUKS_MAGIC)) and \
                source.read(0, len(LUKS_MAGIC), "LUKS header magic") == LUKS_MAGIC:
            version = LUKS_PREFIX.field(
                source.read(0, LUKS_PREFIX.size, "LUKS header version"), "version")
        else:
            version = 2          # only a LUKS2 secondary header was found
        if version == 1:
            self._read_luks1()
        elif version == 2:
            self._read_luks2()
        else:
            raise UnsupportedFeature(source.path, "LUKS header version",
                                     LUKS_PREFIX.offset("version"),
                                     f"LUKS version {version} is neither 1 nor 2")

    # -- LUKS1 ----------------------------------------------------------------
    def _read_luks1(self) -> None:
        src = self.source
        raw = src.read(0, LUKS1_HEADER_SIZE, "LUKS1 header")
        phdr = LUKS1_PHDR.unpack(raw)
        key_bytes = phdr["keyBytes"]
        self.subformat = "luks1"
        name, mode = _cstr(phdr["cipherName"]), _cstr(phdr["cipherMode"])
        self.encryption = f"{name}-{mode}"
        payload = phdr["payloadOffset"] * LUKS_SECTOR_SIZE
        d = self.details
        d["version"] = 1
        d.update(_qemu_cipher(name, mode, key_bytes))
        d["hash-alg"] = _cstr(phdr["hashSpec"])
        d["cipher-name"] = name
        d["cipher-mode-spec"] = mode
        d["key-bytes"] = key_bytes
        d["payload-offset"] = payload
        d["master-key-iters"] = phdr["mkDigestIterations"]
        d["uuid"] = _cstr(phdr["uuid"])
        if key_bytes == 0:
            self.add_finding(CORRUPT, "error",
                             f"LUKS1 header (offset {LUKS1_PHDR.offset('keyBytes')}): the master "
                             "key has 0 bytes")
        if payload < LUKS1_HEADER_SIZE:
            self.add_finding(
                CORRUPT, "error",
                f"LUKS1 header (offset {LUKS1_PHDR.offset('payloadOffset')}): payload offset "
                f"{payload} lies "
                f"inside the {LUKS1_HEADER_SIZE}-byte header",
            )
        d["slots"] = self._luks1_slots(raw, key_bytes, payload)
        d["active-slots"] = sum(1 for s in d["slots"] if s["active"])
        # qemu counts the file in whole 512-byte sectors, rounding up.
        file_sectors = -(-src.size // LUKS_SECTOR_SIZE) * LUKS_SECTOR_SIZE
        self.virtual_size = self._set_payload(payload, file_sectors - payload,
                                              LUKS1_PHDR.offset("payloadOffset"), "LUKS1")

    def _luks1_slots(self, raw: bytes, key_bytes: int, payload: int) -> list[dict[str, Any]]:
        """qemu's slot list; key material past the payload or the file is reported."""
        src = self.source
        slots: list[dict[str, Any]] = []
        for i in range(LUKS1_NUMKEYS):
            where = LUKS1_PHDR.size + i * LUKS1_KEYBLOCK.size
            slot = LUKS1_KEYBLOCK.unpack(raw, where)
            active, iters, stripes = slot["active"], slot["passwordIterations"], slot["stripes"]
            km = slot["keyMaterialOffset"] * LUKS_SECTOR_SIZE
            if active == LUKS1_KEY_ENABLED:
                slots.append({"active": True, "iters": iters, "key-offset": km,
                              "stripes": stripes})
            else:
                slots.append({"active": False, "key-offset": km})
                if active != LUKS1_KEY_DISABLED:
                    self.add_finding(
                        CORRUPT, "warning",
                        f"LUKS1 key slot {i} (offset {where}): state 0x{active:08x} is "
                        "neither enabled (0x00ac71f3) nor disabled (0x0000dead)",
                    )
                continue
            # The anti-forensic split key: key_bytes * stripes, in whole sectors.
            area = -(-key_bytes * stripes // LUKS_SECTOR_SIZE) * LUKS_SECTOR_SIZE
            if payload and km + area > payload:
                self.add_finding(
                    CORRUPT, "warning",
                    f"LUKS1 key slot {i} (offset {where}): key material at {km} "
                    f"({area} bytes) overlaps the payload at {payload}",
                )
            if not src.contains(km, area):
                self.add_finding(
                    TRUNCATED, "warning",
                    f"LUKS1 key slot {i} (offset {where}): key material at {km} "
                    f"({area} bytes) lies past the end of the file ({src.size}); the slot "
                    "cannot be unlocked",
                )
        return slots

    # -- LUKS2 ----------------------------------------------------------------
    def _read_luks2_header(self, offset: int, magic: bytes) -> _Luks2Header:
        """Decode the copy at ``offset``; raise when it cannot be read at all.

        A checksum that does not match, or a header offset that is not where
        the copy was found, is recorded in ``problem``: such a copy can still
        be described.
        """
        import hashlib

        src = self.source
        path = src.path
        which = "primary" if magic == LUKS_MAGIC else "secondary"
        structure = f"LUKS2 {which} header"
        raw = src.read(offset, LUKS2_BINARY_HEADER_SIZE, structure)
        hdr = LUKS2_HDR.unpack(raw)
        m, version, hdr_size, hdr_offset = (hdr["magic"], hdr["version"], hdr["hdr_size"],
                                            hdr["hdr_offset"])
        if m != magic:
            raise CorruptImage(path, structure, offset, f"magic {m!r} is not {magic!r}")
        if version != 2:
            raise UnsupportedFeature(path, f"{structure} version",
                                     offset + LUKS2_HDR.offset("version"),
                                     f"version {version} in a LUKS2 header")
        limits.enforce(hdr_size, "LUKS2_MAX_HEADER_BYTES", path, f"{structure} size",
                       offset + LUKS2_HDR.offset("hdr_size"), "header size")
        if hdr_size not in LUKS2_HDR_SIZES:
            raise CorruptImage(path, f"{structure} size", offset + LUKS2_HDR.offset("hdr_size"),
                               f"header size {hdr_size} is not one of the spec's sizes "
                               "(16 KiB to 4 MiB, a power of two)")
        h = _Luks2Header(offset)
        h.hdr_size = hdr_size
        h.hdr_offset = hdr_offset
        h.seqid = hdr["seqid"]
        h.csum_alg = _cstr(hdr["checksum_alg"])
        h.json_area = src.read(offset + LUKS2_BINARY_HEADER_SIZE,
                               hdr_size - LUKS2_BINARY_HEADER_SIZE, f"{structure} JSON area")
        h.fields = {"label": _cstr(hdr["label"]), "uuid": _cstr(hdr["uuid"]),
                    "subsystem": _cstr(hdr["subsystem"]), "salt": hdr["salt"].hex()}
        alg = h.csum_alg.lower().replace("-", "_")
        # shake_* digests have no fixed size: no LUKS2 writer uses them
        if alg not in hashlib.algorithms_available or alg.startswith("shake"):
            h.problem = f"checksum algorithm {h.csum_alg!r} is unknown: not verified"
        else:
            digest = hashlib.new(alg)
            # The checksum covers the header with its csum field zeroed.
            digest.update(raw[:LUKS2_HDR.offset("csum")])
            digest.update(bytes(LUKS2_HDR.field_size("csum")))
            digest.update(raw[LUKS2_HDR.end("csum"):])
            digest.update(h.json_area)
            computed = digest.digest()
            stored = hdr["csum"][:len(computed)]
            h.checksum_ok = stored == computed
            if not h.checksum_ok:
                h.problem = (f"{h.csum_alg} checksum {stored.hex()} stored, "
                             f"{computed.hex()} computed")
        if hdr_offset != offset:
            h.checksum_ok = False
            h.problem = f"it says it lies at offset {hdr_offset}"
        return h

    def _find_secondary(self) -> _Luks2Header | None:
        """The secondary header at one of the spec's offsets, for a primary that is gone."""
        src = self.source
        for off in LUKS2_HDR_SIZES:
            if src.contains(off, len(LUKS2_MAGIC_2ND)) and \
                    src.read(off, len(LUKS2_MAGIC_2ND), "LUKS2 secondary header") \
                    == LUKS2_MAGIC_2ND:
                try:
                    return self._read_luks2_header(off, LUKS2_MAGIC_2ND)
                except ImageError:
                    continue
        return None

    def _choose_luks2_header(self) -> _Luks2Header:
        """cryptsetup's choice between the two copies, with findings for the loser."""
        src = self.source
        primary: _Luks2Header | None = None
        primary_error: ImageError | None = None
        try:
            primary = self._read_luks2_header(0, LUKS_MAGIC)
        except ImageError as exc:
            primary_error = exc
        secondary: _Luks2Header | None = None
        secondary_error: ImageError | None = None
        if primary is not None:
            off = primary.hdr_size
            try:
                secondary = self._read_luks2_header(off, LUKS2_MAGIC_2ND)
            except ImageError as exc:
                secondary_error = exc
        else:
            secondary = self._find_secondary()
        if primary is None:
            if secondary is None or not secondary.checksum_ok:
                assert primary_error is not None
                raise primary_error
            self.add_finding(
                CORRUPT, "error",
                f"the LUKS2 primary header is unusable ({primary_error}); the secondary "
                f"header at offset {secondary.offset} is used, as cryptsetup does",
            )
            return secondary
        if secondary is None:
            where = primary.hdr_size
            if isinstance(secondary_error, TruncatedImage):
                self.add_finding(
                    TRUNCATED, "warning",
                    f"the LUKS2 secondary header at offset {where} is cut short by the end "
                    f"of the file ({src.size})",
                )
            else:
                self.add_finding(
                    CORRUPT, "warning",
                    f"the LUKS2 secondary header at offset {where} is unusable "
                    f"({secondary_error and secondary_error.problem})",
                )
        for h in (primary, secondary):
            if h is not None and not h.checksum_ok:
                which = "primary" if h is primary else "secondary"
                self.add_finding(CORRUPT, "error" if h is primary else "warning",
                                 f"LUKS2 {which} header at offset {h.offset}: {h.problem}")
        if secondary is None or not secondary.checksum_ok:
            if not primary.checksum_ok:
                self.add_finding(
                    CORRUPT, "error",
                    "no LUKS2 header copy is valid (cryptsetup refuses the device); the "
                    "primary header's fields are reported as they are",
                )
            return primary
        if not primary.checksum_ok:
            return secondary
        # Both valid: the higher sequence id wins; otherwise they must agree.
        chosen = secondary if secondary.seqid > primary.seqid else primary
        if primary.seqid != secondary.seqid:
            self.add_finding(
                FOOTER_MISMATCH, "warning",
                f"LUKS2 header copies differ: sequence id {primary.seqid} (primary) vs "
                f"{secondary.seqid} (secondary at offset {secondary.offset}); cryptsetup "
                f"uses the {'secondary' if chosen is secondary else 'primary'} and rewrites "
                "the other",
            )
        else:
            differ = [k for k in ("label", "uuid", "subsystem")
                      if primary.fields[k] != secondary.fields[k]]
            if primary.hdr_size != secondary.hdr_size:
                differ.append("hdr_size")
            if primary.json_area != secondary.json_area:
                differ.append("JSON metadata")
            if differ:
                self.add_finding(
                    FOOTER_MISMATCH, "error",
                    f"LUKS2 header copies with the same sequence id {primary.seqid} differ in "
                    f"{', '.join(differ)}; a reader may use either (the primary is reported)",
                )
        return chosen

    def _parse_json(self, h: _Luks2Header) -> dict[str, Any]:
        import json

        path = self.source.path
        where = h.offset + LUKS2_BINARY_HEADER_SIZE
        area = h.json_area
        end = area.find(b"\x00")
        if end < 0:
            raise CorruptImage(path, "LUKS2 JSON area", where,
                               f"the {len(area)}-byte area holds no terminating NUL")
        try:
            meta = json.loads(area[:end].decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            # ValueError covers bad UTF-8, bad JSON and over-long integers.
            raise CorruptImage(path, "LUKS2 JSON area", where,
                               f"not valid JSON metadata: {exc}") from None
        if not isinstance(meta, dict):
            raise CorruptImage(path, "LUKS2 JSON area", where, "the metadata is not an object")
        for section in LUKS2_JSON_SECTIONS:
            if not isinstance(meta.get(section), dict):
                raise CorruptImage(path, "LUKS2 JSON area", where,
                                   f"the metadata has no {section!r} object")
        return meta

    def _read_luks2(self) -> None:
        src = self.source
        path = src.path
        h = self._choose_luks2_header()
        meta = self._parse_json(h)
        jpos = h.offset + LUKS2_BINARY_HEADER_SIZE
        self.subformat = "luks2"
        d = self.details
        d["version"] = 2
        d["uuid"] = h.fields["uuid"]
        d["label"] = h.fields["label"]
        d["subsystem"] = h.fields["subsystem"]
        d["seqid"] = h.seqid
        d["header-size"] = h.hdr_size
        d["checksum-alg"] = h.csum_alg
        d["active-header"] = "primary" if h.offset == 0 else "secondary"
        d["header-offset"] = h.offset
        config = meta["config"]
        json_size = config.get("json_size")
        if json_size is not None:
            d["json-size"] = _json_u64(json_size, path, "config json_size", jpos)
            if d["json-size"] != h.hdr_size - LUKS2_BINARY_HEADER_SIZE:
                self.add_finding(
                    CORRUPT, "warning",
                    f"LUKS2 config json_size {d['json-size']} does not match the header size "
                    f"{h.hdr_size} less the {LUKS2_BINARY_HEADER_SIZE}-byte binary header",
                )
        keyslots_size = config.get("keyslots_size")
        if keyslots_size is not None:
            d["keyslots-size"] = _json_u64(keyslots_size, path, "config keyslots_size", jpos)
        flags = _opt(config, "flags", list) or []
        d["flags"] = [f for f in flags if isinstance(f, str)]
        mandatory = _opt(_opt(config, "requirements", dict), "mandatory", list) or []
        d["requirements"] = [r for r in mandatory if isinstance(r, str)]
        if d["requirements"]:
            self.add_finding(
                UNKNOWN_FEATURE, "warning",
                f"the LUKS2 header has mandatory requirements {d['requirements']} (e.g. an "
                "interrupted reencryption): the payload may be half in one cipher, half in "
                "another",
            )
        d["keyslots"] = self._luks2_keyslots(meta["keyslots"], jpos)
        d["active-slots"] = len(d["keyslots"])
        d["tokens"] = [{"id": k, "type": _opt(v, "type", str)}
                       for k, v in meta["tokens"].items()]
        d["digests"] = [{"id": k, "type": _opt(v, "type", str),
                         "keyslots": [x for x in _opt(v, "keyslots", list) or []
                                      if isinstance(x, str)],
                         "segments": [x for x in _opt(v, "segments", list) or []
                                      if isinstance(x, str)]}
                        for k, v in meta["digests"].items()]
        self._luks2_segments(meta["segments"], h, jpos)

    def _luks2_keyslots(self, keyslots: dict[str, Any], jpos: int) -> list[dict[str, Any]]:
        src = self.source
        path = src.path
        out: list[dict[str, Any]] = []
        for key in sorted(keyslots, key=lambda k: _json_id(k, path, "keyslots", jpos)):
            ks = keyslots[key]
            area = _opt(ks, "area", dict) or {}
            slot: dict[str, Any] = {
                "id": key, "type": _opt(ks, "type", str), "key-size": _opt(ks, "key_size", int),
                "priority": _opt(ks, "priority", int),
                "encryption": _opt(area, "encryption", str),
                "kdf": _opt(_opt(ks, "kdf", dict), "type", str),
            }
            if "offset" in area and "size" in area:
                off = _json_u64(area["offset"], path, f"keyslot {key} area offset", jpos)
                size = _json_u64(area["size"], path, f"keyslot {key} area size", jpos)
                slot["area-offset"], slot["area-size"] = off, size
                if not src.contains(off, size):
                    self.add_finding(
                        TRUNCATED, "warning",
                        f"LUKS2 keyslot {key}: its area at {off} ({size} bytes) lies past the "
                        f"end of the file ({src.size}); the slot cannot be unlocked",
                    )
            out.append(slot)
        return out

    def _luks2_segments(self, segments: dict[str, Any], h: _Luks2Header, jpos: int) -> None:
        """Segments in id order; the active ones (no ``backup-*`` flag) are the payload."""
        src = self.source
        path = src.path
        out: list[dict[str, Any]] = []
        file_sectors = src.size // LUKS_SECTOR_SIZE * LUKS_SECTOR_SIZE
        total = 0
        active = 0
        for key in sorted(segments, key=lambda k: _json_id(k, path, "segments", jpos)):
            seg = segments[key]
            if not isinstance(seg, dict):
                raise CorruptImage(path, f"LUKS2 JSON segment {key}", jpos, "not an object")
            offset = _json_u64(seg.get("offset"), path, f"segment {key} offset", jpos)
            size_field = seg.get("size")
            dynamic = size_field == "dynamic"
            size = 0 if dynamic else _json_u64(size_field, path, f"segment {key} size", jpos)
            flags = [f for f in _opt(seg, "flags", list) or [] if isinstance(f, str)]
            entry: dict[str, Any] = {
                "id": key, "type": _opt(seg, "type", str), "offset": offset,
                "size": "dynamic" if dynamic else size,
                "encryption": _opt(seg, "encryption", str),
                "sector-size": _opt(seg, "sector_size", int), "flags": flags,
            }
            out.append(entry)
            if any(f.startswith(LUKS2_BACKUP_FLAG_PREFIX) for f in flags):
                continue
            if offset < 2 * h.hdr_size:
                self.add_finding(
                    CORRUPT, "error",
                    f"LUKS2 segment {key} starts at {offset}, inside the two "
                    f"{h.hdr_size}-byte header copies",
                )
            active += 1
            if active == 1:
                self.details["payload-offset"] = offset
                self.encryption = entry["encryption"]
            if dynamic:
                length = file_sectors - offset
                sector = entry["sector-size"]
                if length > 0 and sector and length % sector:
                    self.add_finding(
                        SIZE_MISMATCH, "warning",
                        f"LUKS2 segment {key}: the {length}-byte payload is not a whole "
                        f"number of {sector}-byte encryption sectors (cryptsetup refuses "
                        "to activate it)",
                    )
            else:
                length = size
            total += self._set_payload(offset, length, jpos, f"LUKS2 segment {key}",
                                       dynamic=dynamic)
            if dynamic:
                break     # a dynamic segment runs to the end of the device
        self.details["segments"] = out
        if not active:
            self.add_finding(CORRUPT, "warning", "the LUKS2 header has no active data segment")
        self.details["cipher"] = self.encryption
        limits.enforce(total, "MAX_VIRTUAL_SIZE", path, "LUKS2 segments", jpos,
                       "payload bytes")
        self.virtual_size = total

    def _set_payload(self, offset: int, length: int, where: int, what: str,
                     dynamic: bool = True) -> int:
        """Record one payload range; returns its guest length (0 if it is empty)."""
        src = self.source
        if length <= 0:
            if offset >= src.size:
                self.add_finding(
                    SIZE_MISMATCH, "warning",
                    f"{what}: the payload offset {offset} is at or past the end of the file "
                    f"({src.size}): a header without its data (a header backup or detached "
                    "header); the payload is empty here",
                )
            else:
                self.add_finding(SIZE_MISMATCH, "warning", f"{what}: the payload is empty")
            return 0
        limits.enforce(length, "MAX_VIRTUAL_SIZE", src.path, f"{what} size", where,
                       "payload bytes")
        # A payload running to the end of the file ends on a whole sector
        # (qemu rounds the file up): like qemu, the part sector is all stored.
        stored = length if dynamic else max(0, min(length, src.size - offset))
        if stored < length:
            self.add_finding(
                TRUNCATED, "error",
                f"{what}: {length} bytes at offset {offset} but the file ends at {src.size}; "
                f"{length - stored} bytes of ciphertext are missing",
            )
        self._runs.append((offset, stored, length))
        return length

    # -- extent map -------------------------------------------------------------
    def build_extent_map(self) -> ExtentMap:
        emap = ExtentMap(self.virtual_size)
        guest = 0
        for host, stored, length in self._runs:
            if stored:
                emap._append(guest, stored, "data", host)
            if length > stored:
                emap._append(guest + stored, length - stored, "zero")
            guest += length
        return emap


def probe(source: Source) -> bool:
    """The LUKS magic at offset 0, or a LUKS2 secondary header where the spec puts one."""
    if source.contains(0, len(LUKS_MAGIC)) and \
            source.read(0, len(LUKS_MAGIC), "LUKS header") == LUKS_MAGIC:
        return True
    for off in LUKS2_HDR_SIZES:
        if not source.contains(off, LUKS_PREFIX.size):
            break
        if LUKS_PREFIX.unpack(source.read(off, LUKS_PREFIX.size, "LUKS2 secondary header")) \
                == {"magic": LUKS2_MAGIC_2ND, "version": 2}:
            return True
    return False


FORMAT = Format("luks", probe, LuksImage)
