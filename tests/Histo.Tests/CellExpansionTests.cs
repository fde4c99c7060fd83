using System.Text.Json;
using Histo.IO;
using Histo.Nuclei;

namespace Histo.Tests;

/// <summary>
/// Cell expansion against scikit-image's expand_labels (tools/reference/cell_expansion_reference.py): identical maps except
/// where two labels are exactly equally near a pixel, where either is right (checked by brute force).
/// </summary>
public class CellExpansionTests
{
    static double NearestDistance(LabelMap map, int label, int px, int py)
    {
        double best = double.PositiveInfinity;
        for (int y = 0; y < map.Height; y++)
            for (int x = 0; x < map.Width; x++)
                if (map.Labels[y * map.Width + x] == label) best = Math.Min(best,
                    Math.Sqrt((double)(x - px) * (x - px) + (double)(y - py) * (y - py)));
        return best;
    }

    [Fact]
    public void MatchesScikitImagesExpandLabels()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "cell-expansion-golden.json")));
        int ties = 0, cases = 0, pixels = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            var shape = c.GetProperty("shape");
            var nuclei = InstanceMetricsParityTests.Decode(shape, c.GetProperty("labels").GetString()!);
            var expected = InstanceMetricsParityTests.Decode(shape, c.GetProperty("expanded").GetString()!);
            var cells = CellExpansion.Expand(nuclei, c.GetProperty("distance").GetDouble());
            for (int i = 0; i < cells.Labels.Length; i++)
            {
                if (cells.Labels[i] == expected.Labels[i]) continue;
                int x = i % nuclei.Width, y = i / nuclei.Width;
                Assert.True(cells.Labels[i] != 0 && expected.Labels[i] != 0, $"{c.GetProperty("name")}: ({x}, {y}) is "
                    + $"{cells.Labels[i]}, scikit-image {expected.Labels[i]}");
                double ours = NearestDistance(nuclei, cells.Labels[i], x, y), theirs = NearestDistance(nuclei, expected.Labels[i], x, y);
                Assert.True(Math.Abs(ours - theirs) < 1e-12, $"{c.GetProperty("name")}: ({x}, {y}) took label {cells.Labels[i]} at "
                    + $"{ours}, scikit-image {expected.Labels[i]} at {theirs}");
                ties++;
            }
            cases++;
            pixels += cells.Labels.Length;
        }
        Assert.Equal(7, cases);
        // Ties are common on a pixel grid (402 of 66,241 pixels here), but they stay a small share.
        Assert.True(ties < pixels / 100, $"{ties} tie pixels of {pixels}");
    }

    [Fact]
    public void HandCase()
    {
        // Two one-pixel nuclei 8 px apart, grown by 4 px: (6, 2) is 4 px from both; (6, 0) is 4.47 px from both, left out.
        var labels = new int[5 * 13];
        labels[2 * 13 + 2] = 3;
        labels[2 * 13 + 10] = 8;
        var cells = CellExpansion.Expand(new LabelMap(13, 5, labels), 4);
        Assert.Equal(3, cells[2, 5]);
        Assert.Equal(8, cells[2, 7]);
        Assert.Contains(cells[2, 6], new[] { 3, 8 });
        Assert.Equal(0, cells[0, 6]);
        Assert.Equal(8, cells[4, 12]);
        Assert.Equal(3, cells[2, 2]);   // a nucleus keeps its own pixels
    }
}
