using System.Globalization;
using Histo.Imaging;
using Histo.Slides;

namespace Histo.Viewer;

/// <summary>
/// A slide as a Deep Zoom image (the DZI format OpenSeadragon reads): level L of N has the slide's size halved N - 1 - L
/// times (rounded up, down to 1 x 1), cut into square tiles of <see cref="TileSize"/> px that overlap their neighbours by
/// <see cref="Overlap"/> px. The same pyramid and tiles as openslide-python's DeepZoomGenerator (tile 254, overlap 1,
/// no bounds limit): each tile is read from the slide level OpenSlide picks for its downsample, composited on white, and
/// shrunk to the tile's size when the level is finer, keeping the read region's aspect ratio as PIL's thumbnail does.
/// Checked against DeepZoomGenerator by <c>tools/reference/deepzoom_reference.py</c>.
/// </summary>
public sealed class DeepZoomPyramid
{
    public const int DefaultTileSize = 254, DefaultOverlap = 1;

    readonly WholeSlide _slide;
    readonly (long Width, long Height)[] _levels;
    readonly int[] _slideLevel;

    public int TileSize { get; }
    public int Overlap { get; }
    public int LevelCount => _levels.Length;

    public DeepZoomPyramid(WholeSlide slide, int tileSize = DefaultTileSize, int overlap = DefaultOverlap)
    {
        _slide = slide;
        (TileSize, Overlap) = (tileSize, overlap);
        var sizes = new List<(long, long)> { (slide.Width, slide.Height) };
        for (var (w, h) = (slide.Width, slide.Height); w > 1 || h > 1;)
        {
            (w, h) = (Math.Max(1, (w + 1) / 2), Math.Max(1, (h + 1) / 2));
            sizes.Add((w, h));
        }
        sizes.Reverse();
        _levels = sizes.ToArray();
        _slideLevel = Enumerable.Range(0, LevelCount).Select(l => slide.OpenSlideBestLevel(Downsample(l))).ToArray();
    }

    public (long Width, long Height) LevelSize(int level) => _levels[level];

    public (int Cols, int Rows) TileGrid(int level) =>
        ((int)((_levels[level].Width + TileSize - 1) / TileSize), (int)((_levels[level].Height + TileSize - 1) / TileSize));

    /// <summary>Level-0 pixels per pixel of Deep Zoom level <paramref name="level"/>.</summary>
    public double Downsample(int level) => Math.Pow(2, LevelCount - 1 - level);

    public bool Contains(int level, int col, int row)
    {
        if (level < 0 || level >= LevelCount) return false;
        var (cols, rows) = TileGrid(level);
        return col >= 0 && col < cols && row >= 0 && row < rows;
    }

    /// <summary>The DZI descriptor OpenSeadragon opens.</summary>
    public string Dzi(string format = "jpeg") => string.Create(CultureInfo.InvariantCulture,
        $"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Image TileSize=\"{TileSize}\" Overlap=\"{Overlap}\" Format=\"{format}\" "
        + $"xmlns=\"http://schemas.microsoft.com/deepzoom/2008\"><Size Width=\"{_slide.Width}\" Height=\"{_slide.Height}\" /></Image>");

    /// <summary>Tile (col, row) of a level, RGB on white.</summary>
    public RgbaImage ReadTile(int level, int col, int row)
    {
        if (!Contains(level, col, row))
            throw new ArgumentOutOfRangeException(nameof(level), $"no tile ({col}, {row}) at Deep Zoom level {level}");
        int slideLevel = _slideLevel[level];
        double levelDownsample = _slide.Levels[slideLevel].Downsample;
        double scale = Downsample(level) / levelDownsample; // slide-level pixels per Deep Zoom pixel
        var (cols, rows) = TileGrid(level);
        var (zx, zw, lx0, lw) = Axis(col, cols, _levels[level].Width, scale, levelDownsample, _slide.Levels[slideLevel].Width);
        var (zy, zh, ly0, lh) = Axis(row, rows, _levels[level].Height, scale, levelDownsample, _slide.Levels[slideLevel].Height);
        var region = _slide.ReadRegion(lx0, ly0, slideLevel, lw, lh);
        if (lw == zw && lh == zh) return region;
        var (tw, th) = ThumbnailSize(lw, lh, zw, zh);
        return tw == lw && th == lh ? region : region.Resize(tw, th);
    }

    /// <summary>One axis of a tile: its size in the level with the overlaps, and where and how much to read from the slide.</summary>
    (long Start, int Size, long Level0Start, int ReadSize) Axis(int t, int tiles, long levelSize, double scale, double levelDownsample,
        long slideLevelSize)
    {
        int before = t > 0 ? Overlap : 0, after = t < tiles - 1 ? Overlap : 0;
        long start = (long)TileSize * t;
        int size = (int)Math.Min(TileSize, levelSize - start) + before + after;
        double inLevel = scale * (start - before);
        long level0 = (long)(levelDownsample * inLevel);
        int read = (int)Math.Min(Math.Ceiling(scale * size), slideLevelSize - Math.Ceiling(inLevel));
        return (start, size, level0, read);
    }

    /// <summary>
    /// PIL's Image.thumbnail size: an image larger than the box on either side is shrunk to fit it, keeping its aspect ratio,
    /// the side that is not bound rounded down or up, whichever keeps the ratio closer; one that fits is left as it is.
    /// </summary>
    public static (int Width, int Height) ThumbnailSize(int width, int height, int boxWidth, int boxHeight)
    {
        if (boxWidth >= width && boxHeight >= height) return (width, height);
        double aspect = (double)width / height;
        int x = boxWidth, y = boxHeight;
        static int Closest(double value, Func<int, double> error)
        {
            int low = (int)Math.Floor(value), high = (int)Math.Ceiling(value);
            return Math.Max(error(low) <= error(high) ? low : high, 1);
        }
        if ((double)x / y >= aspect) x = Closest(y * aspect, n => Math.Abs(aspect - (double)n / y));
        else y = Closest(x / aspect, n => n == 0 ? 0 : Math.Abs(aspect - (double)x / n));
        return (x, y);
    }
}
