#!/usr/bin/env python3
"""Deep Zoom tiles of the shared real slides as openslide-python's DeepZoomGenerator cuts them (the reference for
`histo serve`'s DZI tiles): level sizes, tile grids and, for chosen tiles of every level (the first, the last, which is an
edge tile, and one in the middle), the tile's size and its 8 x 8 grid of block means per RGB channel.

Run with Debian's python3-openslide (1.2.0): /usr/bin/python3 tools/reference/deepzoom_reference.py
Writes tools/reference/golden/deepzoom-golden.json. Only these statistics are kept, never the slides' pixels.
"""
import json
import os
import sys

import numpy as np
import openslide
from openslide.deepzoom import DeepZoomGenerator

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("HISTO_SHARED_DATA", os.path.join(HERE, "..", "..", "..", "shared", "data"))
SLIDES = ["cmu-1-small-region.svs", "tcga-cr-7395-01a-01-ts1.svs"]
TILE_SIZE, OVERLAP = 254, 1  # DeepZoomGenerator's defaults


def block_means(rgb, blocks=8):
    """Mean of each of up to blocks x blocks near-equal blocks (numpy.array_split of rows, then columns; fewer for tiles
    under 8 px), per channel."""
    rows = np.array_split(np.arange(rgb.shape[0]), min(blocks, rgb.shape[0]))
    cols = np.array_split(np.arange(rgb.shape[1]), min(blocks, rgb.shape[1]))
    return [[[float(rgb[np.ix_(r, c)][..., ch].mean()) for ch in range(3)] for c in cols] for r in rows]


def main():
    out = {"tile_size": TILE_SIZE, "overlap": OVERLAP, "openslide_python": openslide.__version__, "slides": {}}
    for name in SLIDES:
        slide = openslide.OpenSlide(os.path.join(DATA, "slides", name))
        dz = DeepZoomGenerator(slide, tile_size=TILE_SIZE, overlap=OVERLAP, limit_bounds=False)
        levels = []
        for level in range(dz.level_count):
            cols, rows = dz.level_tiles[level]
            chosen = sorted({(0, 0), (cols - 1, rows - 1), (cols // 2, rows // 2), (cols - 1, 0)})
            tiles = []
            for col, row in chosen:
                tile = np.asarray(dz.get_tile(level, (col, row)).convert("RGB"), dtype=np.float64)
                tiles.append({"col": col, "row": row, "width": tile.shape[1], "height": tile.shape[0],
                              "blocks": block_means(tile)})
            levels.append({"width": dz.level_dimensions[level][0], "height": dz.level_dimensions[level][1],
                           "cols": cols, "rows": rows, "tiles": tiles})
        out["slides"][name] = {"dzi": dz.get_dzi("jpeg"), "levels": levels}
    path = os.path.join(HERE, "golden", "deepzoom-golden.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
