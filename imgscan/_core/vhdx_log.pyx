"""VHDX log search and in-memory replay (MS-VHDX 2.3; qemu's block/vhdx-log.c).

The log holds metadata writes that may not have reached their place in the
file. :class:`LogScan` finds the active sequence of entries the way qemu's
``vhdx_log_search`` does and replays it into an :class:`Overlay`, never into
the file: the container (:mod:`imgscan._core.vhdx`) reads its region tables,
metadata, BAT and sector bitmaps through the overlay, and its nogil BAT walk
maps guest reads of a replayed sector to that sector's bytes inside the log.
This is its own module because it is its own job: the container does not
need it for a clean image.
"""

from array import array
from bisect import bisect_right

from libc.stdint cimport uint8_t, uint32_t, uint64_t

from imgscan import limits
from imgscan.errors import CorruptImage, TruncatedImage

from .crc32c cimport crc32c_update, crc32c_zeroed
from .c_vhdx import (
    DATA_DESCRIPTOR, DATA_SECTOR, DESC_SIGNATURE_DATA, DESC_SIGNATURE_ZERO, LOG_DESCRIPTOR_SIZE,
    LOG_ENTRY_HEADER, LOG_ENTRY_SIGNATURE, LOG_SECTOR_SIZE, MiB, ZERO_DESCRIPTOR,
)

#: Descriptors per 4 KiB log sector, and the slots the entry header takes.
DESCRIPTORS_PER_SECTOR = LOG_SECTOR_SIZE // LOG_DESCRIPTOR_SIZE
HEADER_SLOTS = LOG_ENTRY_HEADER.size // LOG_DESCRIPTOR_SIZE

# The overlay's record kinds (OV_ZERO, OV_DATA) are C constants in vhdx_log.pxd,
# shared with the container's nogil walk.


class Overlay:
    """File sectors replaced by log replay: disjoint, sorted, 4 KiB-aligned runs.

    A run is ``zero`` (a zero descriptor) or one replayed data sector, kept
    both as its 4096 bytes and as where those bytes lie in the log (the
    descriptor holds the first 8 and last 4, the data sector the rest), so
    the extent map can point guest reads at them. Later writes replace
    earlier ones, as replay in order would.
    """

    def __init__(self):
        self.starts = []
        self.ends = []
        self.recs = []          # (kind, desc_pos, data_pos, sector bytes or None)
        self.end_of_writes = 0

    def __len__(self):
        return len(self.starts)

    def write(self, uint64_t start, uint64_t end, rec):
        starts, ends, recs = self.starts, self.ends, self.recs
        i = bisect_right(ends, start)       # first run ending after start
        new_s, new_e, new_r = [], [], []
        j = i
        while j < len(starts) and starts[j] < end:
            if starts[j] < start:           # keep the head of a zero run
                new_s.append(starts[j]); new_e.append(start); new_r.append(recs[j])
            if ends[j] > end:               # keep its tail
                new_s.append(end); new_e.append(ends[j]); new_r.append(recs[j])
            j += 1
        # keep order: heads before the new run, tails after it
        heads = [k for k in range(len(new_s)) if new_s[k] < start]
        tails = [k for k in range(len(new_s)) if new_s[k] >= end]
        s = [new_s[k] for k in heads] + [start] + [new_s[k] for k in tails]
        e = [new_e[k] for k in heads] + [end] + [new_e[k] for k in tails]
        r = [new_r[k] for k in heads] + [rec] + [new_r[k] for k in tails]
        starts[i:j] = s
        ends[i:j] = e
        recs[i:j] = r
        if end > self.end_of_writes:
            self.end_of_writes = end

    def apply(self, uint64_t offset, buf):
        """Patch ``buf`` (the file's bytes at ``offset``) with the replayed sectors."""
        cdef uint64_t end = offset + len(buf)
        cdef uint64_t s, e
        i = bisect_right(self.ends, offset)
        while i < len(self.starts) and self.starts[i] < end:
            s = max(self.starts[i], offset)
            e = min(self.ends[i], end)
            rec = self.recs[i]
            if rec[0] == OV_ZERO:
                buf[s - offset:e - offset] = bytes(e - s)
            else:
                base = self.starts[i]
                buf[s - offset:e - offset] = rec[3][s - base:e - base]
            i += 1

    def arrays(self):
        """The runs as flat arrays for the nogil BAT walk."""
        return (array("Q", self.starts), array("Q", self.ends),
                array("B", [r[0] for r in self.recs]),
                array("Q", [r[1] for r in self.recs]),
                array("Q", [r[2] for r in self.recs]))


class LogScan:
    """The circular log, read once; its entries validated as qemu validates them."""

    def __init__(self, img, uint64_t log_offset, uint64_t log_length, bytes log_guid):
        src = img.source
        self.img = img
        self.path = src.path
        self.offset = log_offset
        self.nsect = log_length // LOG_SECTOR_SIZE
        self.guid = log_guid
        # only the part of the log inside the file is read; the rest is zeros
        avail = 0
        if log_offset < src.size:
            avail = min(log_length, src.size - log_offset)
        self.avail = avail
        self.buf = src.view(log_offset, avail, "VHDX log") if avail else b""
        self.memo = {}
        self.steps = 0
        self.crc_bytes = 0

    def sector(self, uint64_t i):
        """Log sector ``i`` (4096 bytes)."""
        cdef uint64_t s = i * LOG_SECTOR_SIZE
        if s + LOG_SECTOR_SIZE <= self.avail:
            return self.buf[s:s + LOG_SECTOR_SIZE]
        if s >= self.avail:
            return bytes(LOG_SECTOR_SIZE)
        return bytes(self.buf[s:self.avail]) + bytes(s + LOG_SECTOR_SIZE - self.avail)

    def file_pos(self, uint64_t i):
        return self.offset + i * LOG_SECTOR_SIZE

    def header(self, uint64_t i):
        """The entry header at sector ``i`` as a dict, or None where qemu finds it invalid."""
        h = LOG_ENTRY_HEADER.unpack(self.sector(i))
        if h["signature"] != LOG_ENTRY_SIGNATURE:
            return None
        entry_length = h["entry_length"]
        count = h["descriptor_count"]
        seq = h["sequence_number"]
        if (entry_length > self.nsect * LOG_SECTOR_SIZE or entry_length % LOG_SECTOR_SIZE
                or seq == 0 or h["log_guid"] != self.guid
                or count * LOG_DESCRIPTOR_SIZE > entry_length):
            return None
        return {"seq": seq, "entry_length": entry_length, "count": count,
                "checksum": h["checksum"],
                "flushed_file_offset": h["flushed_file_offset"],
                "last_file_offset": h["last_file_offset"]}

    def descriptors(self, uint64_t i, hdr):
        """The entry's descriptor sectors (bytes) and their count; CorruptImage if invalid."""
        count = hdr["count"]
        # the header takes the room of two descriptors in the first sector
        dsect = -(-(count + HEADER_SLOTS) // DESCRIPTORS_PER_SECTOR)
        raw = b"".join(bytes(self.sector((i + k) % self.nsect)) for k in range(dsect))
        descs = []
        for k in range(count):
            p = LOG_ENTRY_HEADER.size + k * LOG_DESCRIPTOR_SIZE
            # both kinds of descriptor share the zero descriptor's layout but
            # for the bytes a data descriptor keeps of its sector
            d = ZERO_DESCRIPTOR.unpack(raw, p)
            sig = d["zero_signature"]
            foff = d["file_offset"]
            zero_length = d["zero_length"] if sig == DESC_SIGNATURE_ZERO else 0
            ok = (d["sequence_number"] == hdr["seq"] and foff % LOG_SECTOR_SIZE == 0
                  and (sig == DESC_SIGNATURE_DATA
                       or (sig == DESC_SIGNATURE_ZERO and zero_length % LOG_SECTOR_SIZE == 0)))
            if not ok:
                raise CorruptImage(self.path, "VHDX log descriptor",
                                   self.file_pos((i + p // LOG_SECTOR_SIZE) % self.nsect)
                                   + p % LOG_SECTOR_SIZE,
                                   f"descriptor {k} of log entry {hdr['seq']} is invalid "
                                   "(signature, sequence number or alignment); qemu refuses "
                                   "the image")
            descs.append((sig, foff, zero_length, p))
        return raw, dsect, descs

    def _entry(self, uint64_t i):
        """Sequence-independent validation of the entry at ``i``, memoised.

        Returns ``(hdr or None, next sector, checksum ok, descriptor error)``.
        """
        cdef const uint8_t[::1] view
        cdef uint32_t crc
        got = self.memo.get(i)
        if got is not None:
            return got
        hdr = self.header(i)
        if hdr is None:
            got = (None, (i + 1) % self.nsect, False, None)
        else:
            try:
                raw, dsect, _ = self.descriptors(i, hdr)
            except CorruptImage as exc:
                got = (hdr, None, False, exc)
            else:
                total = hdr["entry_length"] // LOG_SECTOR_SIZE
                view = raw
                crc = crc32c_zeroed(&view[0], len(raw), LOG_ENTRY_HEADER.offset("checksum")) \
                    ^ <uint32_t>0xFFFFFFFF
                for k in range(dsect, total):
                    view = bytes(self.sector((i + k) % self.nsect))
                    crc = crc32c_update(crc, &view[0], LOG_SECTOR_SIZE)
                crc ^= <uint32_t>0xFFFFFFFF
                self.crc_bytes += max(total, dsect) * LOG_SECTOR_SIZE
                limits.enforce(self.crc_bytes, "VHDX_MAX_LOG_SCAN_BYTES", self.path, "VHDX log",
                               self.offset, "bytes checksummed checking the log's entries")
                got = (hdr, (i + max(total, dsect)) % self.nsect, crc == hdr["checksum"], None)
        self.memo[i] = got
        return got

    def validate(self, uint64_t i, uint64_t seq):
        """qemu's vhdx_validate_log_entry: (valid, hdr, next sector)."""
        self.steps += 1
        limits.enforce(self.steps, "VHDX_MAX_LOG_SCAN_STEPS", self.path, "VHDX log", self.offset,
                       "steps of the search for the active log sequence")
        hdr, nxt, crc_ok, desc_error = self._entry(i)
        if hdr is None or (seq > 0 and hdr["seq"] != seq + 1):
            return False, None, (i + 1) % self.nsect
        if desc_error is not None:
            raise desc_error
        return crc_ok, hdr, nxt

    def search(self):
        """The active sequence, as qemu's vhdx_log_search finds it.

        Returns ``(first sector, entry count, first sequence number)`` or None.
        qemu compares sequences by their first entry's number and, after the
        first entry, does not check the second's number; both are kept. Where
        qemu would scan forever (a pass that ends exactly where it began), the
        scan is refused.
        """
        cdef uint64_t pos = 0, tail, curr_seq
        candidate = None
        seen = set()
        while True:
            tail = pos
            if tail in seen:
                raise CorruptImage(self.path, "VHDX log", self.file_pos(tail),
                                   "the log's entries lead the search for the active sequence "
                                   "round in a circle (qemu never finishes opening this image)")
            seen.add(tail)
            curr_seq = 0
            valid, hdr, pos = self.validate(pos, 0)
            if valid:
                first_seq = hdr["seq"]
                count = 1
                while True:
                    valid, hdr2, nxt = self.validate(pos, curr_seq)
                    pos = nxt
                    if not valid:
                        break
                    count += 1
                    curr_seq = hdr2["seq"]
                if candidate is None or first_seq > candidate[2]:
                    candidate = (tail, count, first_seq)
            if pos < tail:
                break
        return candidate

    def replay(self, uint64_t start, uint64_t count):
        """Apply the sequence's descriptors in order to the image's overlay."""
        img = self.img
        ov = img._overlay
        cdef uint64_t pos = start, foff, n, k
        for _ in range(count):
            entry_start = pos
            hdr = self.header(pos)
            if hdr is None:
                raise CorruptImage(self.path, "VHDX log entry", self.file_pos(pos),
                                   "an entry of the active sequence is not where replay finds "
                                   "it; qemu refuses the image")
            if hdr["flushed_file_offset"] > img._eff_size:
                raise TruncatedImage(self.path, "VHDX log entry", self.file_pos(pos),
                                     f"entry {hdr['seq']} was written when the file was "
                                     f"{hdr['flushed_file_offset']} bytes long, but it is "
                                     f"{img._eff_size}: the file has been truncated (qemu "
                                     "refuses it)")
            raw, dsect, descs = self.descriptors(pos, hdr)
            pos = (pos + dsect) % self.nsect
            for sig, foff, zero_length, p in descs:
                if sig == DESC_SIGNATURE_DATA:
                    data = DATA_SECTOR.unpack(self.sector(pos))
                    dpos = self.file_pos(pos)
                    pos = (pos + 1) % self.nsect
                    dseq = (data["sequence_high"] << 32) | data["sequence_low"]
                    if dseq != hdr["seq"]:
                        raise CorruptImage(self.path, "VHDX log data sector", dpos,
                                           f"sequence number {dseq} is not the entry's "
                                           f"{hdr['seq']}; qemu refuses the image")
                    desc = DATA_DESCRIPTOR.unpack(raw, p)
                    sector = desc["leading_bytes"] + data["data"] + desc["trailing_bytes"]
                    desc_file = self._desc_file_pos(entry_start, p)
                    ov.write(foff, foff + LOG_SECTOR_SIZE, (OV_DATA, desc_file, dpos, sector))
                    end = foff + LOG_SECTOR_SIZE
                else:
                    if foff + zero_length >= 1 << 63:
                        raise CorruptImage(self.path, "VHDX log descriptor",
                                           self._desc_file_pos(entry_start, p),
                                           f"zero descriptor of {zero_length} bytes at "
                                           f"{foff} overflows")
                    if zero_length:
                        ov.write(foff, foff + zero_length, (OV_ZERO, 0, 0, None))
                    end = foff + zero_length
                if end > img._eff_size:
                    img._eff_size = end
            last = hdr["last_file_offset"]
            if img._eff_size < last and last % MiB:
                img._eff_size = (last // MiB + 1) * MiB
        return None

    def _desc_file_pos(self, uint64_t entry_start, uint64_t p):
        """File offset of byte ``p`` of the descriptor sectors of the entry at ``entry_start``."""
        return self.file_pos((entry_start + p // LOG_SECTOR_SIZE) % self.nsect) \
            + p % LOG_SECTOR_SIZE
