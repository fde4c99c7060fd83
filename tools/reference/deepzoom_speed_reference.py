#!/usr/bin/env python3
"""Deep Zoom tiles per second of openslide-python's DeepZoomGenerator (what its deepzoom_server example serves): get_tile,
then PIL's JPEG encoding at quality 85, one thread, over the tiles listed on stdin as "level col row" lines.

Usage: /usr/bin/python3 tools/reference/deepzoom_speed_reference.py SLIDE < tiles.txt   (prints "tiles_per_second N")
"""
import io
import sys
import time

import openslide
from openslide.deepzoom import DeepZoomGenerator


def main():
    dz = DeepZoomGenerator(openslide.OpenSlide(sys.argv[1]), tile_size=254, overlap=1, limit_bounds=False)
    tiles = [tuple(int(v) for v in line.split()) for line in sys.stdin if line.strip()]
    start = time.perf_counter()
    total = 0
    for level, col, row in tiles:
        buffer = io.BytesIO()
        dz.get_tile(level, (col, row)).save(buffer, "jpeg", quality=85)
        total += buffer.tell()
    seconds = time.perf_counter() - start
    print(f"tiles_per_second {len(tiles) / seconds:.2f}")
    print(f"bytes {total}")


if __name__ == "__main__":
    main()
