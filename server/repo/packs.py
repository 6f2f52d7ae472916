"""Git objects written into the clone as one pack file, by this process.

A batch's commits used to be made by ``git fast-import``: a process whose start and set-up
cost 6-8 ms per batch on this machine for what is a few dozen small objects, the largest part
of a lone release's time after the push. The pack format (``gitformat-pack``) is small and
fixed: a header, each object zlib-deflated behind its type and size, a SHA-1 trailer; and
an index (version 2) of sorted names, CRC32s and offsets. Git itself reads, verifies
(``git fsck`` in the tests) and later repacks what is written here.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

COMMIT = 1
TREE = 2
BLOB = 3
_TYPE_NAMES = {COMMIT: b"commit", TREE: b"tree", BLOB: b"blob"}
#: Offsets at or past this need the index's 64-bit table.
_LARGE_OFFSET = 0x80000000


@dataclass(frozen=True)
class _Object:
    kind: int
    data: bytes


def object_name(kind: int, data: bytes) -> bytes:
    """The (binary) name git gives an object of ``kind`` holding ``data``."""
    digest = hashlib.sha1(b"%s %d\0" % (_TYPE_NAMES[kind], len(data)), usedforsecurity=False)
    digest.update(data)
    return digest.digest()


class PackBuilder:
    """Objects collected for one pack (each once), then written with ``write``."""

    def __init__(self) -> None:
        self._objects: dict[bytes, _Object] = {}

    def add(self, kind: int, data: bytes) -> str:
        """Add an object; return its name (hex)."""
        name = object_name(kind, data)
        self._objects.setdefault(name, _Object(kind, data))
        return name.hex()

    def __len__(self) -> int:
        return len(self._objects)

    def write(self, pack_dir: Path) -> str:
        """Write the pack and its index into ``pack_dir``; return the pack's name. The index
        goes in last: git only looks at a pack once its index is there."""
        pack = bytearray(b"PACK" + struct.pack(">II", 2, len(self._objects)))
        entries: list[tuple[bytes, int, int]] = []
        for name, held in self._objects.items():
            raw = _entry_header(held.kind, len(held.data)) + zlib.compress(held.data)
            entries.append((name, zlib.crc32(raw), len(pack)))
            pack += raw
        checksum = hashlib.sha1(pack, usedforsecurity=False).digest()
        pack += checksum
        index = _index(sorted(entries), checksum)
        stem = f"pack-{checksum.hex()}"
        _publish(pack_dir, f"{stem}.pack", bytes(pack))
        _publish(pack_dir, f"{stem}.idx", index)
        return stem


def _entry_header(kind: int, size: int) -> bytes:
    """Type and size: 3 bits of type and 4 of size, then 7 bits of size per byte."""
    out = bytearray()
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def _index(entries: list[tuple[bytes, int, int]], pack_checksum: bytes) -> bytes:
    """A version 2 pack index of ``entries`` (name, crc32, offset), sorted by name."""
    fanout = [0] * 256
    for name, _, _ in entries:
        fanout[name[0]] += 1
    total = 0
    for first in range(256):
        total += fanout[first]
        fanout[first] = total
    small: list[int] = []
    large: list[int] = []
    for _, _, offset in entries:
        if offset < _LARGE_OFFSET:
            small.append(offset)
        else:
            small.append(_LARGE_OFFSET | len(large))
            large.append(offset)
    index = bytearray(b"\377tOc" + struct.pack(">I", 2))
    index += struct.pack(">256I", *fanout)
    index += b"".join(name for name, _, _ in entries)
    index += struct.pack(f">{len(entries)}I", *(crc for _, crc, _ in entries))
    index += struct.pack(f">{len(small)}I", *small)
    index += struct.pack(f">{len(large)}Q", *large)
    index += pack_checksum
    index += hashlib.sha1(index, usedforsecurity=False).digest()
    return bytes(index)


def _publish(directory: Path, name: str, content: bytes) -> None:
    """Write ``content`` under a temporary name (housekeeping removes one a killed worker
    left), flush it to disk as git does for packs, then rename it into place read-only."""
    temporary = directory / f"tmp_pack_{os.getpid()}_{name}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o444)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, directory / name)
