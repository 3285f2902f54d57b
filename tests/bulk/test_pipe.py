"""The pipe protocol's frames (imgscan.bulk.pipe), decoded by ``marshal`` itself."""

from __future__ import annotations

import marshal

import pytest

from imgscan.bulk import pipe

WIRES = [
    (pipe.NOT_IMAGE,),
    (pipe.ERROR, None, {"type": "OSError", "structure": "file", "offset": None,
                        "message": "x: No such file or directory"}),
    (pipe.SCANNED, "ab" * 32, {"format": "qcow2", "virtual_size": 1 << 40}, None, None),
]


@pytest.mark.parametrize("seq", [0, 7, (1 << 31) - 1, 1 << 31, 1 << 70])
@pytest.mark.parametrize("elapsed", [0.0, 2.5e-5, 123.456, float("inf"), 0, 3])
def test_answer_seconds_read_without_decoding(seq: int, elapsed: float) -> None:
    """The reader's time is read at a fixed place whatever the sequence number's size
    (marshal writes small and large ints in different lengths) and the answer's, an
    elapsed given as an int included (written as a float all the same)."""
    for wire in WIRES:
        body = bytearray(pipe.result_frame(seq, elapsed, wire))
        assert marshal.loads(body) == (elapsed, seq, wire)
        assert pipe.answer_seconds(body) == elapsed


def test_frames_split_across_reads() -> None:
    """Whole frames come out of the buffer as they complete; a partial one stays."""
    bodies = [pipe.result_frame(seq, seq / 10, WIRES[seq % 3]) for seq in range(5)]
    stream = b"".join(len(b).to_bytes(pipe.FRAME_HEADER, "little") + b for b in bodies)
    buf = bytearray()
    got = []
    for cut in range(0, len(stream), 7):
        buf += stream[cut:cut + 7]
        got += [bytes(b) for b in pipe.read_frames(buf)]
    assert got == bodies and not buf
