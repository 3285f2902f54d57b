from mmap import mmap

REGF_LOG_SEED: int

def marvin32(data: bytes | bytearray | memoryview | mmap, seed: int = ...) -> int: ...
