#!/usr/bin/env python3
"""vmlinux.py VMLINUZ OUT: write the ELF kernel packed inside a bzImage."""
import lzma
import sys
import zlib

packers = {
    b'\xfd7zXZ\x00': lambda b: lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(b),
    b'\x1f\x8b\x08': lambda b: zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(b),
}

image = open(sys.argv[1], 'rb').read()
for magic, unpack in packers.items():
    at = image.find(magic)
    while at >= 0:
        try:
            elf = unpack(image[at:])
        except (lzma.LZMAError, zlib.error):
            elf = b''
        if elf.startswith(b'\x7fELF'):
            open(sys.argv[2], 'wb').write(elf)
            sys.exit(0)
        at = image.find(magic, at + 1)
sys.exit(1)
