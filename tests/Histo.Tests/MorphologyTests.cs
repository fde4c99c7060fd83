using Histo.Imaging;

namespace Histo.Tests;

public class MorphologyTests
{
    [Fact]
    public void LocalStandardDeviationReflectsAtTheBorderAsScipy()
    {
        // Every row 0 1 5 7 2, radius 2. At x = 0 SciPy's 'reflect' window is 1 0 | 0 1 5: mean 1.4, mean of squares
        // 5.4, std sqrt(3.44); at x = 2 it is the whole row: mean 3, mean of squares 15.8, std sqrt(6.8). (A mirror
        // without the edge repeated, 5 1 | 0 1 5, would give sqrt(4.64) at x = 0.)
        float[] row = [0, 1, 5, 7, 2];
        var image = Enumerable.Range(0, 5).SelectMany(_ => row).ToArray();
        var std = GreyFilters.LocalStandardDeviation(image, 5, 5, 2);
        Assert.Equal(Math.Sqrt(3.44), std[0], 4);
        Assert.Equal(Math.Sqrt(6.8), std[2 * 5 + 2], 4);
    }

    [Fact]
    public void GrowWithinFollowsAllowedPixelsForAtMostTheGivenSteps()
    {
        // A seed at the left end of an allowed row of 7 pixels and an allowed pixel cut off from it: three steps reach
        // x = 3 along the row, nothing else.
        int w = 7, h = 3;
        var seeds = new byte[w * h];
        var allowed = new byte[w * h];
        seeds[w] = 255;
        for (int x = 0; x < w; x++) allowed[w + x] = 255;
        allowed[0 * w + 6] = 0;
        allowed[2 * w + 6] = 255; // touches (5, 1) diagonally, beyond reach
        var grown = BinaryMorphology.GrowWithin(seeds, allowed, w, h, 3);
        var row = Enumerable.Range(0, w).Select(x => grown[w + x] != 0).ToArray();
        Assert.Equal(new[] { true, true, true, true, false, false, false }, row);
        Assert.Equal(4, grown.Count(v => v != 0));
    }

    [Fact]
    public void OtsuSplitsTwoModes()
    {
        var values = Enumerable.Repeat((byte)20, 500).Concat(Enumerable.Repeat((byte)200, 300)).ToArray();
        int t = BinaryMorphology.OtsuThreshold(values);
        Assert.InRange(t, 20, 199);
    }

    [Fact]
    public void MedianRemovesSaltNoise()
    {
        var img = new byte[20 * 20];
        img[10 * 20 + 10] = 255;
        Assert.All(BinaryMorphology.MedianBlur(img, 20, 20, 3), v => Assert.Equal(0, v));
    }

    [Fact]
    public void ClosingBridgesAGapAndHoleFillingFillsARing()
    {
        int w = 30, h = 30;
        var ring = new byte[w * h];
        for (int y = 5; y < 25; y++) for (int x = 5; x < 25; x++) if (x < 8 || x > 21 || y < 8 || y > 21) ring[y * w + x] = 255;
        var filled = BinaryMorphology.FillHoles(ring, w, h);
        Assert.Equal(20 * 20, filled.Count(v => v != 0));
        var gap = new byte[w * h];
        for (int x = 2; x < 28; x++) if (x != 15) gap[15 * w + x] = 255;
        Assert.Equal(255, BinaryMorphology.Close(gap, w, h, 3)[15 * w + 15]);
    }

    [Fact]
    public void ContoursOfDiagonalPixelsAreSeparateSquares()
    {
        var mask = new byte[] { 255, 0, 0, 255 }; // 2x2 checkerboard
        var polygons = MaskContours.Trace(mask, 2, 2);
        Assert.Equal(2, polygons.Count);
        Assert.All(polygons, p => Assert.Equal(1.0, MaskContours.SignedArea(p[0])));
    }

    [Fact]
    public void ContourOfAnAnnulusHasAHole()
    {
        int w = 10;
        var mask = new byte[w * w];
        for (int y = 1; y < 9; y++) for (int x = 1; x < 9; x++) if (x < 3 || x > 6 || y < 3 || y > 6) mask[y * w + x] = 255;
        var polygons = MaskContours.Trace(mask, w, w);
        var p = Assert.Single(polygons);
        Assert.Equal(2, p.Count);
        Assert.Equal(64, MaskContours.SignedArea(p[0]));
        Assert.Equal(-16, MaskContours.SignedArea(p[1]));
    }
}

public class MorphologyAgainstNaiveTests
{
    static byte[] Naive(byte[] m, int w, int h, int k, bool dilate)
    {
        int before = (k - 1) / 2;
        var r = new byte[m.Length];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                bool any = false, all = true;
                for (int dy = 0; dy < k; dy++)
                    for (int dx = 0; dx < k; dx++)
                    {
                        int yy = y - before + dy, xx = x - before + dx;
                        bool inside = yy >= 0 && yy < h && xx >= 0 && xx < w;
                        // Outside counts as background for dilation and as foreground for erosion (OpenCV's convention).
                        bool on = inside ? m[yy * w + xx] != 0 : !dilate;
                        any |= on; all &= on;
                    }
                r[y * w + x] = (dilate ? any : all) ? (byte)255 : (byte)0;
            }
        return r;
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(8)]
    [InlineData(13)]
    public void DilateAndErodeMatchTheDefinition(int k)
    {
        var random = new Random(k);
        int w = 37, h = 23;
        var m = new byte[w * h];
        for (int i = 0; i < m.Length; i++) m[i] = random.NextDouble() < 0.3 ? (byte)255 : (byte)0;
        Assert.Equal(Naive(m, w, h, k, true), Histo.Imaging.BinaryMorphology.Dilate(m, w, h, k));
        Assert.Equal(Naive(m, w, h, k, false), Histo.Imaging.BinaryMorphology.Erode(m, w, h, k));
        Assert.All(Histo.Imaging.BinaryMorphology.Close(new byte[w * h], w, h, k), v => Assert.Equal(0, v));
    }
}
