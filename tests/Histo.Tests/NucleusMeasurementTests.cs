using Histo.IO;
using Histo.Nuclei;

namespace Histo.Tests;

/// <summary>Nucleus measurements on hand cases: a rectangle and a disc, whose area, outline, perimeter, circularity and
/// eccentricity are known in closed form.</summary>
public class NucleusMeasurementTests
{
    static NucleusSegmentation Segmentation(int w, int h, Func<int, int, bool> inside, float od = 0.5f)
    {
        var labels = new int[w * h];
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) labels[y * w + x] = inside(x, y) ? 1 : 0;
        return new NucleusSegmentation(new LabelMap(w, h, labels), Enumerable.Repeat(od, w * h).ToArray(), 1);
    }

    [Fact]
    public void RectangleHasItsAreaCornersAndElongation()
    {
        // A 20 x 6 px block at (5, 4), 0.5 um/px, read at downsample 2 from level-0 (100, 200).
        var nucleus = NucleusMeasurements.Measure(Segmentation(40, 20, (x, y) => x >= 5 && x < 25 && y >= 4 && y < 10), 0.5,
            originX: 100, originY: 200, downsample: 2).Single();
        Assert.Equal(120 * 0.25, nucleus.AreaMicrons, 9);
        Assert.Equal(100 + 15 * 2, nucleus.CentroidX, 9);   // centre of pixels 5..24 is 15 (pixel centres at +0.5)
        Assert.Equal(200 + 7 * 2, nucleus.CentroidY, 9);
        Assert.Equal(0.5, nucleus.MeanHaematoxylin, 6);
        // Outline within half a pixel (1 level-0 px at downsample 2) of the block's corners, every point near its sides.
        var box = (X0: 100 + 5 * 2.0, Y0: 200 + 4 * 2.0, X1: 100 + 25 * 2.0, Y1: 200 + 10 * 2.0);
        foreach (var (cx, cy) in new[] { (box.X0, box.Y0), (box.X1, box.Y0), (box.X1, box.Y1), (box.X0, box.Y1) })
            Assert.Contains(nucleus.Outline, p => Math.Abs(p.X - cx) <= 1.0 + 1e-9 && Math.Abs(p.Y - cy) <= 1.0 + 1e-9);
        Assert.All(nucleus.Outline, p => Assert.True(p.X >= box.X0 && p.X <= box.X1 && p.Y >= box.Y0 && p.Y <= box.Y1));
        // Perimeter: between the pixel centres' rectangle, 2 (19 + 5) px, and the pixel edges', 2 (20 + 6) px, less the cut corners.
        Assert.InRange(nucleus.PerimeterMicrons, 2 * (19 + 5) * 0.5, (52 - 2 * (2 - Math.Sqrt(2))) * 0.5);
        // Eccentricity of the pixel coordinates' covariance: variances (20^2 - 1) / 12 and (6^2 - 1) / 12.
        Assert.Equal(Math.Sqrt(1 - 35.0 / 399), nucleus.Eccentricity, 9);
    }

    [Fact]
    public void DiscIsRoundWithPerimeterNearTwoPiR()
    {
        const int r = 20;
        var nucleus = NucleusMeasurements.Measure(Segmentation(60, 60, (x, y) => (x - 30) * (x - 30) + (y - 30) * (y - 30) <= r * r), 1)
            .Single();
        // The outline follows the pixel edges, half a pixel outside the pixel centres: between 2 pi r and 2 pi (r + 0.5), plus
        // what simplification to 0.5 px leaves of the staircase (the midpoints alone gave 2 pi r + 7%).
        Assert.InRange(nucleus.PerimeterMicrons, 2 * Math.PI * r, 2 * Math.PI * (r + 0.5) * 1.02);
        Assert.InRange(nucleus.Circularity, 0.9, 1.0);
        Assert.InRange(nucleus.Eccentricity, 0, 0.05);
    }
}
