using System.Globalization;
using System.Text.Json;
using Histo.Evaluation;
using Histo.Imaging;
using Histo.IO;

namespace Histo.Tests;

/// <summary>
/// `histo nuclei` end to end on the synthetic H&amp;E image of tools/reference/nuclei_baseline_reference.py: the nuclei it writes
/// (GeoJSON, CSV, label map) are the reference's (SciPy/scikit-image), the GeoJSON has the shape QuPath reads, and bad input
/// gets one line and the documented exit code.
/// </summary>
public class NucleiCommandTests
{
    static (RgbaImage Image, LabelMap Reference, double Mpp) SyntheticImage()
    {
        var e = NucleusDetectorParityTests.Golden.GetProperty("detector");
        var image = NucleusDetectorParityTests.RgbImage(e);
        var labels = NucleusDetectorParityTests.Ints(e, "labels");
        return (image, new LabelMap(image.Width, image.Height, labels), e.GetProperty("mpp").GetDouble());
    }

    [Fact]
    public void WritesTheReferenceNucleiAsQuPathDetectionsCsvAndLabels()
    {
        using var dir = new TempDir();
        var (image, reference, mpp) = SyntheticImage();
        Directory.CreateDirectory(dir["in"]);
        image.Save(dir["in/synthetic.png"]);
        int expected = reference.Labels.Max();

        var (code, stdout, stderr) = Cli.Run("nuclei", dir["in/synthetic.png"], "--mpp", mpp.ToString(CultureInfo.InvariantCulture),
            "-o", dir["out"]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"{expected} nuclei", stdout);

        // The label map: the reference's instances (up to numbering and a few float32 boundary pixels).
        var labels = LabelMapFile.Read(dir["out/labels/synthetic.png"]);
        var scores = InstanceMetrics.Compute(reference, labels, radius: 3);
        Assert.True(scores.PanopticQuality > 0.98, $"PQ against the reference {scores.PanopticQuality:F4}");

        // The CSV: one row per nucleus, areas as the reference's pixel counts times the pixel area.
        var rows = File.ReadAllLines(dir["out/synthetic.csv"]);
        var header = rows[0].Split(',').ToList();
        Assert.Equal(expected, rows.Length - 1);
        var areas = rows.Skip(1).Select(r => double.Parse(r.Split(',')[header.IndexOf("area_um2")], CultureInfo.InvariantCulture))
            .Order().ToArray();
        var referenceAreas = reference.Labels.Where(l => l > 0).GroupBy(l => l).Select(g => g.Count() * mpp * mpp).Order().ToArray();
        for (int i = 0; i < expected; i++) Assert.InRange(areas[i], referenceAreas[i] - 2 * mpp * mpp, referenceAreas[i] + 2 * mpp * mpp);

        // The GeoJSON: QuPath's schema (docs "Exporting objects > GeoJSON"): a FeatureCollection of Features, each a closed
        // Polygon, properties.objectType, classification {name, color [r, g, b]}, measurements a name -> number map.
        using var geo = JsonDocument.Parse(File.ReadAllText(dir["out/synthetic.geojson"]));
        Assert.Equal("FeatureCollection", geo.RootElement.GetProperty("type").GetString());
        var features = geo.RootElement.GetProperty("features").EnumerateArray().ToList();
        Assert.Equal(expected, features.Count);
        foreach (var f in features)
        {
            Assert.Equal("Feature", f.GetProperty("type").GetString());
            var geometry = f.GetProperty("geometry");
            Assert.Equal("Polygon", geometry.GetProperty("type").GetString());
            var ring = geometry.GetProperty("coordinates")[0].EnumerateArray().Select(p => (p[0].GetDouble(), p[1].GetDouble())).ToList();
            Assert.True(ring.Count >= 4 && ring[0] == ring[^1], "a GeoJSON linear ring is closed, with at least 4 positions");
            Assert.All(ring, p => Assert.True(p.Item1 >= 0 && p.Item1 <= image.Width && p.Item2 >= 0 && p.Item2 <= image.Height));
            var properties = f.GetProperty("properties");
            Assert.Contains(properties.GetProperty("objectType").GetString(), new[] { "detection", "cell" });
            var classification = properties.GetProperty("classification");
            Assert.Equal(JsonValueKind.String, classification.GetProperty("name").ValueKind);
            Assert.Equal(3, classification.GetProperty("color").GetArrayLength());
            var measurements = properties.GetProperty("measurements");
            Assert.Equal(JsonValueKind.Object, measurements.ValueKind);
            Assert.All(measurements.EnumerateObject(), m => Assert.Equal(JsonValueKind.Number, m.Value.ValueKind));
            Assert.True(measurements.GetProperty("Nucleus: Area µm^2").GetDouble() > 0);
        }
        Assert.True(File.Exists(dir["out/synthetic.overlay.png"]));

        // Done inputs are not redone; outputs made with other settings are refused.
        (code, _, stderr) = Cli.Run("nuclei", dir["in/synthetic.png"], "--mpp", "0.25", "-o", dir["out"]);
        Assert.Equal(1, code);
        Assert.Single(stderr.Trim().Split('\n'));
    }

    /// <summary>
    /// <c>--cell-expansion</c>: QuPath cell objects (the cell as geometry, the nucleus as nucleusGeometry) whose nuclei are the
    /// reference's, each cell its nucleus plus background pixels within the expansion of it (the definition; the algorithm is
    /// checked against scikit-image in CellExpansionTests), cell areas in the CSV as the cell map's pixel counts.
    /// </summary>
    [Fact]
    public void CellExpansionWritesQuPathCellsAroundTheNuclei()
    {
        using var dir = new TempDir();
        var (image, reference, mpp) = SyntheticImage();
        image.Save(dir["synthetic.png"]);
        string mppText = mpp.ToString(CultureInfo.InvariantCulture);
        double expansion = 3 * mpp;   // 3 px
        var (code, _, stderr) = Cli.Run("nuclei", dir["synthetic.png"], "--mpp", mppText, "--cell-expansion",
            expansion.ToString(CultureInfo.InvariantCulture), "-o", dir["out"]);
        Assert.True(code == 0, stderr);
        var nuclei = LabelMapFile.Read(dir["out/labels/synthetic.png"]);
        var cells = LabelMapFile.Read(dir["out/cells/synthetic.png"]);
        int w = cells.Width;
        for (int i = 0; i < cells.Labels.Length; i++)
        {
            if (nuclei.Labels[i] != 0) { Assert.Equal(nuclei.Labels[i], cells.Labels[i]); continue; }
            int id = cells.Labels[i];
            if (id == 0) continue;
            // Within 3 px of its own nucleus.
            int x = i % w, y = i / w;
            bool near = false;
            for (int dy = -3; dy <= 3 && !near; dy++)
                for (int dx = -3; dx <= 3 && !near; dx++)
                    near = dx * dx + dy * dy <= 9 && x + dx >= 0 && x + dx < w && y + dy >= 0 && y + dy < cells.Height
                        && nuclei[y + dy, x + dx] == id;
            Assert.True(near, $"cell pixel ({x}, {y}) of {id} is more than 3 px from its nucleus");
        }
        var rows = File.ReadAllLines(dir["out/synthetic.csv"]);
        var header = rows[0].Split(',').ToList();
        int idColumn = header.IndexOf("nucleus_id"), cellColumn = header.IndexOf("cell_area_um2");
        Assert.True(cellColumn > 0, rows[0]);
        foreach (var row in rows.Skip(1).Select(r => r.Split(',')))
        {
            int id = int.Parse(row[idColumn], CultureInfo.InvariantCulture);
            double expected = cells.Labels.Count(l => l == id) * mpp * mpp;
            Assert.Equal(expected, double.Parse(row[cellColumn], CultureInfo.InvariantCulture), 3);
        }
        using var geo = JsonDocument.Parse(File.ReadAllText(dir["out/synthetic.geojson"]));
        var features = geo.RootElement.GetProperty("features").EnumerateArray().ToList();
        Assert.Equal(reference.Labels.Max(), features.Count);
        foreach (var f in features)
        {
            Assert.Equal("cell", f.GetProperty("properties").GetProperty("objectType").GetString());
            var nucleus = f.GetProperty("nucleusGeometry");
            Assert.Equal("Polygon", nucleus.GetProperty("type").GetString());
            var ring = nucleus.GetProperty("coordinates")[0];
            Assert.True(ring.GetArrayLength() >= 4 && ring[0].ToString() == ring[ring.GetArrayLength() - 1].ToString());
            var m = f.GetProperty("properties").GetProperty("measurements");
            double nucleusArea = m.GetProperty("Nucleus: Area µm^2").GetDouble(), cellArea = m.GetProperty("Cell: Area µm^2").GetDouble();
            Assert.True(cellArea > nucleusArea);
            Assert.True(Math.Abs(nucleusArea / cellArea - m.GetProperty("Nucleus/Cell area ratio").GetDouble()) < 1e-3);
        }

        // An overlap too small for the cells is a usage error naming the overlap needed.
        (code, _, stderr) = Cli.Run("nuclei", dir["synthetic.png"], "--mpp", mppText, "--cell-expansion", "5", "--overlap", "64",
            "-o", dir["out2"]);
        Assert.Equal(2, code);
        Assert.Contains("--overlap 64 is too small for --cell-expansion 5", stderr);
    }

    /// <summary>
    /// A 960 px slide at 0.5 um/px read as 2 x 2 tiles of 512 px overlapping by 64 (seams at 448-512, core boundary 480), with
    /// nuclei drawn on the core boundary, either side of it, on the horizontal seam and on the corner where four tiles meet:
    /// each is found exactly once, whole (its area as drawn).
    /// </summary>
    [Fact]
    public void NucleiOnTileSeamsAreCountedOnceAndWhole()
    {
        using var dir = new TempDir();
        const int side = 960, radius = 7;
        (int X, int Y)[] centres = [(480, 200), (465, 300), (495, 400), (200, 480), (300, 480), (480, 480), (700, 480), (480, 700),
            (650, 650), (200, 720)];
        using (var writer = new PyramidTiffWriter(dir["seams.tif"], side, side, 0.5, "seams"))
        {
            for (int y0 = 0; y0 < side; y0 += 256)
            {
                var strip = new RgbaImage(side, Math.Min(256, side - y0));
                for (int y = 0; y < strip.Height; y++)
                    for (int x = 0; x < side; x++)
                    {
                        int o = (y * side + x) * 4, yy = y0 + y;
                        bool tissue = x >= 80 && x < side - 80 && yy >= 80 && yy < side - 80;
                        bool nucleus = centres.Any(c => (x - c.X) * (x - c.X) + (yy - c.Y) * (yy - c.Y) <= radius * radius);
                        (byte r, byte g, byte b) = nucleus ? ((byte)92, (byte)64, (byte)150) : tissue ? ((byte)236, (byte)196, (byte)220)
                            : ((byte)248, (byte)248, (byte)248);
                        strip.Pixels[o] = r; strip.Pixels[o + 1] = g; strip.Pixels[o + 2] = b; strip.Pixels[o + 3] = 255;
                    }
                writer.WriteLevel0Rows(strip);
            }
            writer.Finish();
        }
        var (code, _, stderr) = Cli.Run("nuclei", dir["seams.tif"], "--mpp", "0.5", "--tile", "512", "--overlap", "64", "-o", dir["out"]);
        Assert.True(code == 0, stderr);
        var rows = File.ReadAllLines(dir["out/seams.csv"]);
        var header = rows[0].Split(',').ToList();
        double Column(string[] fields, string name) => double.Parse(fields[header.IndexOf(name)], CultureInfo.InvariantCulture);
        var found = rows.Skip(1).Select(r => r.Split(','))
            .Select(f => (X: Column(f, "centroid_x"), Y: Column(f, "centroid_y"), Area: Column(f, "area_um2"))).ToList();
        Assert.Equal(centres.Length, found.Count);
        // Whole: every nucleus has the area of the one inside a single tile's core (650, 650); a cut one would be smaller.
        double whole = found.Single(f => Math.Abs(f.X - 650) <= 1.5 && Math.Abs(f.Y - 650) <= 1.5).Area;
        foreach (var c in centres)
        {
            var matches = found.Where(f => Math.Abs(f.X - c.X) <= 1.5 && Math.Abs(f.Y - c.Y) <= 1.5).ToList();
            Assert.True(matches.Count == 1, $"nucleus at ({c.X}, {c.Y}) found {matches.Count} times");
            Assert.InRange(matches[0].Area, whole * 0.95, whole * 1.05);
        }
    }

    [Fact]
    public void BadInputGetsOneLineAndTheRightExitCode()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Cli.Run("nuclei", dir["missing.png"], "-o", dir["out"]);
        Assert.Equal(1, code);
        // The batch convention (as histo embed): the failing input named on the first line, the batch report after it.
        Assert.Contains("missing.png", stderr.Split('\n')[0]);
        Assert.DoesNotContain("   at ", stderr);
        (code, _, _) = Cli.Run("nuclei", dir["missing.png"], "--mpp", "0", "-o", dir["out"]);
        Assert.Equal(2, code);
        (code, _, _) = Cli.Run("nuclei", dir["missing.png"], "--tile", "256", "--overlap", "200", "-o", dir["out"]);
        Assert.Equal(2, code);
        (code, _, _) = Cli.Run("nuclei", dir["missing.png"], "--shard", "3/2", "-o", dir["out"]);
        Assert.Equal(2, code);
        Directory.CreateDirectory(dir["empty"]);
        (code, _, stderr) = Cli.Run("nuclei", dir["empty"], "-o", dir["out2"]);
        Assert.Equal(1, code);
        Assert.Contains("holds no slide or image", stderr);
        Assert.False(Directory.Exists(dir["out2"]), "nothing is written for an empty batch");
    }
}
