using Histo.Imaging;

namespace Histo.Tests;

public class MorphologyTests
{
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
