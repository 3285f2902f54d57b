"""CompactOS (WOF) decoding throughput: XPRESS Huffman 4/8/16 KiB and LZX 32 KiB chunks.

Run with ``pytest benchmarks/test_bench_wof.py --benchmark-enable``; ``python
benchmarks/test_bench_wof.py [--runs N]`` times the same decoding beside wimlib's.

The data is 8 MiB of what a system volume compresses (x86 code full of E8 calls,
text, incompressible stretches: tests/helpers/ntfs_images.py), compressed by
wimlib's ``wimcapture`` into a WIM whose non-solid resource is a WofCompressedData
stream (chunk table, then chunks), built once into ``images.CACHE``. A round decodes
every chunk of it through the nogil decoders (imgscan._core.wof); MB/s is the 8 MiB
over the median. The peer (``main``) is whole-process: ``wimlib-imagex extract
--to-stdout`` (wimlib's own decoders, plus its SHA-1 check of the result) beside
``python -c`` decoding the same chunks with imgscan (interpreter start-up included),
alternately, medians and the median ratio, as benchmarks/peer.py does.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import images
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.ntfs_images import WOF_FORMATS, mixed, text, wim_resources, x86_code

from imgscan._core.wof import lzx_decompress, xpress_huffman_decompress

SIZE = 8 << 20
NAME = "system.bin"


def content() -> bytes:
    third = SIZE // 3
    return (x86_code(third) + text("bench", third) + mixed(SIZE - 2 * third))[:SIZE]


def wim(fmt: str) -> Path:
    """``images.CACHE / wof-FORMAT.wim`` holding :func:`content` as ``system.bin``."""
    path = images.CACHE / f"wof-{fmt}.wim"
    if not path.exists():
        src = images.CACHE / "wof-src"
        src.mkdir(parents=True, exist_ok=True)
        (src / NAME).write_bytes(content())
        codec = "LZX" if fmt == "lzx" else "XPRESS"
        subprocess.run(["wimcapture", src, path, f"--compress={codec}",
                        f"--chunk-size={WOF_FORMATS[fmt][1]}"], check=True, capture_output=True)
    return path


def chunks(fmt: str) -> list[tuple[bytes, int]]:
    """(stored bytes, output size) of every chunk of the resource (the WIM's largest)."""
    chunk = WOF_FORMATS[fmt][1]
    _, stored, size = max(wim_resources(wim(fmt)).values(), key=lambda r: r[2])
    n = -(-size // chunk)
    table = 4 * (n - 1)
    starts = [0, *(struct.unpack_from("<I", stored, 4 * i)[0] for i in range(n - 1))]
    ends = [*starts[1:], len(stored) - table]
    return [(stored[table + a:table + b], min(chunk, size - k * chunk))
            for k, (a, b) in enumerate(zip(starts, ends, strict=True))]


def decode_all(fmt: str, pieces: list[tuple[bytes, int]]) -> int:
    decode = lzx_decompress if fmt == "lzx" else xpress_huffman_decompress
    total = 0
    for piece, size in pieces:
        total += len(decode(piece, size) if len(piece) < size else piece)
    return total


@pytest.mark.skipif(shutil.which("wimcapture") is None, reason="wimtools (wimcapture) absent")
@pytest.mark.parametrize("fmt", list(WOF_FORMATS))
def test_wof_decode_throughput(benchmark: object, fmt: str) -> None:
    pieces = chunks(fmt)
    assert decode_all(fmt, pieces) == SIZE
    assert benchmark(decode_all, fmt, pieces) == SIZE   # type: ignore[operator]


#: The whole-process side of imgscan: decode every chunk of a resource saved as
#: (u64 size, chunk size, stored bytes), importing nothing but the decoders.
DECODE_SCRIPT = """
import struct, sys
from imgscan._core.wof import lzx_decompress, xpress_huffman_decompress
raw = open(sys.argv[1], "rb").read()
size, chunk = struct.unpack_from("<QQ", raw)
stored = raw[16:]
decode = lzx_decompress if chunk == 32768 else xpress_huffman_decompress
n = -(-size // chunk)
table = 4 * (n - 1)
starts = [0, *(struct.unpack_from("<I", stored, 4 * i)[0] for i in range(n - 1))]
ends = [*starts[1:], len(stored) - table]
total = 0
for k in range(n):
    piece, out = stored[table + starts[k]:table + ends[k]], min(chunk, size - k * chunk)
    total += len(decode(piece, out) if len(piece) < out else piece)
assert total == size
"""


def main(runs: int) -> None:
    import peer
    for fmt, (_, chunk) in WOF_FORMATS.items():
        path = wim(fmt)
        _, stored, size = max(wim_resources(path).values(), key=lambda r: r[2])
        res = images.CACHE / f"wof-{fmt}.res"
        res.write_bytes(struct.pack("<QQ", size, chunk) + stored)
        ours = [sys.executable, "-c", DECODE_SCRIPT, str(res)]
        theirs = ["wimlib-imagex", "extract", str(path), "1", f"/{NAME}", "--to-stdout"]
        print(peer.compare(f"{fmt}: 8 MiB, every chunk decoded", ours, theirs, runs))


if __name__ == "__main__":
    main(int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == "--runs" else 9)
