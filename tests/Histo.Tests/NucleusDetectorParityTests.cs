using System.Text.Json;
using Histo.Evaluation;
using Histo.Imaging;
using Histo.IO;
using Histo.Nuclei;

namespace Histo.Tests;

/// <summary>
/// The training-free nucleus detector against tools/reference/nuclei_baseline_reference.py, which runs QuPath's recipe with
/// SciPy's ndimage and scikit-image (Debian's): each step on random inputs (Gaussian, square minimum/maximum and opening,
/// exact distance transform, seeded watershed, Otsu, colour deconvolution) and the whole detector on a synthetic H&amp;E image.
/// </summary>
public class NucleusDetectorParityTests
{
    internal static readonly JsonElement Golden = Load();

    static JsonElement Load()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "nuclei-baseline-golden.json")));
        return doc.RootElement.Clone();
    }

    static byte[] Bytes(JsonElement e, string key) => Convert.FromBase64String(e.GetProperty(key).GetString()!);
    static float[] Floats(JsonElement e, string key) =>
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(Bytes(e, key)).ToArray();
    internal static int[] Ints(JsonElement e, string key) =>
        System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(Bytes(e, key)).ToArray();
    static (int H, int W) Shape(JsonElement e) => (e.GetProperty("shape")[0].GetInt32(), e.GetProperty("shape")[1].GetInt32());

    /// <summary>The golden entry's "rgb" bytes (row-major R, G, B of its "shape") as an opaque image.</summary>
    internal static RgbaImage RgbImage(JsonElement e)
    {
        var (h, w) = Shape(e);
        var rgb = Bytes(e, "rgb");
        var image = new RgbaImage(w, h);
        for (int i = 0; i < h * w; i++)
        {
            for (int c = 0; c < 3; c++) image.Pixels[4 * i + c] = rgb[3 * i + c];
            image.Pixels[4 * i + 3] = 255;
        }
        return image;
    }

    static void Close(float[] expected, float[] actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        Assert.True(worst <= tolerance, $"{what}: largest difference {worst:G3} > {tolerance:G3}");
    }

    [Fact]
    public void GaussianMatchesScipyReflectMode()
    {
        var g = Golden.GetProperty("grey");
        var (h, w) = Shape(g);
        var image = Floats(g, "image");
        Close(Floats(g, "gaussian"), GreyFilters.Gaussian(image, w, h, g.GetProperty("gaussian_sigma").GetDouble()), 1e-6, "sigma 1.7");
        // A kernel wider than the image: SciPy's reflection repeats with period 2n.
        Close(Floats(g, "gaussian_wide"), GreyFilters.Gaussian(image, w, h, g.GetProperty("gaussian_wide_sigma").GetDouble()), 1e-6,
            "sigma 14");
    }

    [Fact]
    public void SquareFiltersMatchScipyExactly()
    {
        var g = Golden.GetProperty("grey");
        var (h, w) = Shape(g);
        var image = Floats(g, "image");
        int r = g.GetProperty("radius").GetInt32();
        Assert.Equal(Floats(g, "minimum"), GreyFilters.Minimum(image, w, h, r));
        Assert.Equal(Floats(g, "maximum"), GreyFilters.Maximum(image, w, h, r));
        Assert.Equal(Floats(g, "opening"), GreyFilters.Opening(image, w, h, r));
    }

    [Fact]
    public void OtsuMatchesScikitImage()
    {
        var g = Golden.GetProperty("grey");
        Assert.Equal(g.GetProperty("otsu").GetDouble(), NucleusDetector.OtsuThreshold(Floats(g, "image")), 1e-9);
    }

    [Fact]
    public void DistanceTransformMatchesScipyEdt()
    {
        var e = Golden.GetProperty("edt");
        var (h, w) = Shape(e);
        Close(Floats(e, "distance"), GreyFilters.DistanceTransform(Bytes(e, "mask"), w, h), 1e-6, "EDT");
    }

    [Fact]
    public void WatershedMatchesScikitImageExactly()
    {
        var e = Golden.GetProperty("watershed");
        var (h, w) = Shape(e);
        var labels = Watershed.Flood(Floats(e, "elevation"), Ints(e, "markers"), Bytes(e, "mask"), w, h);
        Assert.Equal(Ints(e, "labels"), labels);
    }

    [Fact]
    public void HaematoxylinMatchesTheDeconvolutionFormula()
    {
        var e = Golden.GetProperty("deconvolution");
        var image = RgbImage(e);
        Close(Floats(e, "haematoxylin"), ColourDeconvolution.Haematoxylin(image), 1e-5, "haematoxylin");
    }

    [Fact]
    public void DetectorFindsTheReferenceNuclei()
    {
        var e = Golden.GetProperty("detector");
        var (h, w) = Shape(e);
        var image = RgbImage(e);
        var reference = new LabelMap(w, h, Ints(e, "labels"));
        var found = NucleusDetector.Detect(image, e.GetProperty("mpp").GetDouble(), new NucleusDetectorSettings());
        Assert.Equal(e.GetProperty("count").GetInt32(), found.Count);
        // Same instances up to numbering and float32-versus-float64 rounding at a few boundary pixels.
        var scores = InstanceMetrics.Compute(reference, found.Labels, radius: 3);
        Assert.True(scores.PanopticQuality > 0.98, $"PQ against the reference {scores.PanopticQuality:F4}");
        Assert.Equal(found.Count, scores.TruePositives);
    }
}
