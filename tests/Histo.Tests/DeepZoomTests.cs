using System.Text.Json;
using System.Xml.Linq;
using Histo.Slides;
using Histo.Viewer;

namespace Histo.Tests;

/// <summary>Deep Zoom tiles against openslide-python's DeepZoomGenerator (tools/reference/deepzoom_reference.py).</summary>
public class DeepZoomTests
{
    static JsonDocument Golden() => JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference",
        "golden", "deepzoom-golden.json")));

    /// <summary>Block means of a tile as the reference takes them (numpy.array_split of rows, then columns).</summary>
    static double[,,] BlockMeans(Histo.Imaging.RgbaImage tile, int rows, int cols)
    {
        static int[] Bounds(int length, int parts) =>
            Enumerable.Range(0, parts + 1).Select(i => i * (length / parts) + Math.Min(i, length % parts)).ToArray();
        var (ry, cx) = (Bounds(tile.Height, rows), Bounds(tile.Width, cols));
        var means = new double[rows, cols, 3];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                int n = 0;
                for (int y = ry[r]; y < ry[r + 1]; y++)
                    for (int x = cx[c]; x < cx[c + 1]; x++, n++)
                        for (int ch = 0; ch < 3; ch++) means[r, c, ch] += tile.Pixels[(y * tile.Width + x) * 4 + ch];
                for (int ch = 0; ch < 3; ch++) means[r, c, ch] /= n;
            }
        return means;
    }

    [Theory]
    [InlineData("cmu-1-small-region.svs")]        // one level
    [InlineData("tcga-cr-7395-01a-01-ts1.svs")]   // two levels (downsample 2.0005), not square
    public void SharedData_TilesAtEveryLevelMatchOpenSlidesDeepZoomGenerator(string name)
    {
        using var doc = Golden();
        var golden = doc.RootElement.GetProperty("slides").GetProperty(name);
        using var slide = WholeSlide.Open(SharedData.Path_("slides", name));
        var pyramid = new DeepZoomPyramid(slide);
        var reference = XElement.Parse(golden.GetProperty("dzi").GetString()!);
        var ours = XElement.Parse(pyramid.Dzi());
        foreach (var attribute in new[] { "TileSize", "Overlap", "Format" })
            Assert.Equal(reference.Attribute(attribute)!.Value, ours.Attribute(attribute)!.Value);
        Assert.Equal(reference.Elements().First().ToString(), ours.Elements().First().ToString());
        var levels = golden.GetProperty("levels").EnumerateArray().ToList();
        Assert.Equal(levels.Count, pyramid.LevelCount);

        for (int level = 0; level < levels.Count; level++)
        {
            var l = levels[level];
            Assert.Equal((l.GetProperty("width").GetInt64(), l.GetProperty("height").GetInt64()), pyramid.LevelSize(level));
            Assert.Equal((l.GetProperty("cols").GetInt32(), l.GetProperty("rows").GetInt32()), pyramid.TileGrid(level));
            foreach (var t in l.GetProperty("tiles").EnumerateArray())
            {
                var tile = pyramid.ReadTile(level, t.GetProperty("col").GetInt32(), t.GetProperty("row").GetInt32());
                string where = $"level {level} tile ({t.GetProperty("col")}, {t.GetProperty("row")})";
                Assert.True((t.GetProperty("width").GetInt32(), t.GetProperty("height").GetInt32()) == (tile.Width, tile.Height),
                    $"{where}: {tile.Width} x {tile.Height}");
                var blocks = t.GetProperty("blocks").EnumerateArray().ToList();
                int cols = blocks[0].GetArrayLength();
                var means = BlockMeans(tile, blocks.Count, cols);
                double sum = 0;
                for (int r = 0; r < blocks.Count; r++)
                {
                    var row = blocks[r].EnumerateArray().ToList();
                    for (int c = 0; c < cols; c++)
                        for (int ch = 0; ch < 3; ch++) sum += Math.Abs(row[c][ch].GetDouble() - means[r, c, ch]);
                }
                double mad = sum / (blocks.Count * cols * 3);

                // Tiles read at their level's own resolution are OpenSlide's pixels (measured: 0.00); shrunk tiles differ by the
                // filter, PIL's reduce + Lanczos against Skia's mipmapped linear: under 1.7 grey levels from 100 px up, and up to
                // 24 for the top of the pyramid (1 to 70 px tiles of the whole slide), where both filters average thousands of
                // pixels into one.
                double bound = Math.Max(tile.Width, tile.Height) >= 100 ? 2.0 : 25;
                Assert.True(mad < bound, $"{where}: mean absolute difference of the 8 x 8 block means {mad:0.00} grey levels");
            }
        }
    }

    [Theory]
    [InlineData(300, 200, 255, 255, 255, 170)] // wider than tall: the height follows the ratio
    [InlineData(18, 14, 17, 14, 17, 13)]       // 17 / 14 = 1.214 against 18 / 14 = 1.286: 13 keeps it closer than 14
    [InlineData(100, 100, 200, 200, 100, 100)] // fits: left as it is
    public void ThumbnailSizesFollowPil(int w, int h, int boxW, int boxH, int expectedW, int expectedH)
    {
        // Hand-computed from Pillow's Image.thumbnail: x / y >= aspect rounds the height to the ratio, else the width.
        Assert.Equal((expectedW, expectedH), DeepZoomPyramid.ThumbnailSize(w, h, boxW, boxH));
    }
}
