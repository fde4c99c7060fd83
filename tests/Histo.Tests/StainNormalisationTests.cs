using System.Text.Json;
using Histo.Imaging;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>
/// Macenko and Reinhard against torchstain's NumPy normalisers (tools/reference/stain_reference.py, written from torchstain
/// 1.4.1's code): formula H&amp;E images with background and a glare patch, the target fitted, the source normalised. Macenko
/// runs in float64 like NumPy and must match every byte (the reference's nearest value to a byte boundary is 7e-6 away);
/// Reinhard runs in float32 like torchstain, so a few pixels may differ by one level.
/// </summary>
public class StainNormalisationTests
{
    static JsonElement Golden()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "stain-golden.json")));
        return doc.RootElement.Clone();
    }

    static Tensor Image(JsonElement golden, string name)
    {
        var bytes = golden.GetProperty("images").GetProperty(name).EnumerateArray().Select(e => (byte)e.GetInt32()).ToArray();
        return tensor(bytes, [bytes.Length / 3, 3]);
    }

    static double[] Flat(JsonElement e) => e.ValueKind == JsonValueKind.Array
        ? e.EnumerateArray().SelectMany(Flat).ToArray() : [e.GetDouble()];

    [Fact]
    public void MacenkoMatchesTorchstain()
    {
        var golden = Golden();
        var macenko = golden.GetProperty("macenko");
        using var target = Image(golden, "target");
        using var source = Image(golden, "source");
        using var normaliser = new MacenkoNormaliser(target);
        var he = normaliser.StainVectors.data<double>().ToArray();
        var expectedHe = Flat(macenko.GetProperty("HERef"));
        Assert.All(he.Zip(expectedHe), p => Assert.Equal(p.Second, p.First, 1e-9));
        Assert.All(normaliser.MaxConcentrations.data<double>().ToArray().Zip(Flat(macenko.GetProperty("maxCRef"))),
            p => Assert.Equal(p.Second, p.First, 1e-9));
        using var normalised = normaliser.Normalise(source);
        var ours = normalised.data<byte>().ToArray();
        var expected = macenko.GetProperty("normalised").EnumerateArray().Select(e => (byte)e.GetInt32()).ToArray();
        Assert.Equal(expected.Length, ours.Length);
        int differing = ours.Zip(expected).Count(p => p.First != p.Second);
        Assert.True(differing == 0, $"{differing} of {ours.Length} channel values differ from torchstain");
    }

    [Fact]
    public void ReinhardMatchesTorchstain()
    {
        var golden = Golden();
        var reinhard = golden.GetProperty("reinhard");
        using var target = Image(golden, "target");
        using var source = Image(golden, "source");
        using var normaliser = new ReinhardNormaliser(target);
        Assert.All(normaliser.TargetMeans.Zip(Flat(reinhard.GetProperty("target_means"))), p => Assert.Equal(p.Second, p.First, 1e-3));
        Assert.All(normaliser.TargetStds.Zip(Flat(reinhard.GetProperty("target_stds"))), p => Assert.Equal(p.Second, p.First, 1e-3));
        using var normalised = normaliser.Normalise(source);
        var ours = normalised.data<byte>().ToArray();
        var expected = reinhard.GetProperty("normalised").EnumerateArray().Select(e => (byte)e.GetInt32()).ToArray();
        var differences = ours.Zip(expected, (a, b) => Math.Abs(a - b)).ToArray();
        Assert.True(differences.Max() <= 1, $"max difference {differences.Max()} levels");
        Assert.True(differences.Count(d => d > 0) <= ours.Length / 100, $"{differences.Count(d => d > 0)} values differ by one");
    }
}

/// <summary>
/// The shared data's real H&amp;E pair (stain/source.png to stain/target.png, torchstain's own example) against torchstain's
/// algorithms (tools/reference/stain_real_reference.py, which keeps only the fitted vectors, the output's SHA-256 and its
/// histograms): Macenko byte for byte, Reinhard within one level on a few pixels.
/// </summary>
public class SharedData_StainPairTests
{
    [Fact]
    public void SharedData_StainPairMatchesTorchstain()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "stain-shared-pair-golden.json")));
        var golden = doc.RootElement;
        var source = RgbaImage.Load(SharedData.Path_("stain", "source.png"));
        var target = RgbaImage.Load(SharedData.Path_("stain", "target.png"));
        foreach (var method in new[] { StainMethod.Macenko, StainMethod.Reinhard })
        {
            var expected = golden.GetProperty(method.ToString().ToLowerInvariant());
            using var normaliser = StainNormaliser.Fit(method, target);
            var normalised = normaliser.Normalise(source);
            var rgb = Enumerable.Range(0, normalised.Width * normalised.Height)
                .SelectMany(p => new[] { normalised.Pixels[4 * p], normalised.Pixels[4 * p + 1], normalised.Pixels[4 * p + 2] }).ToArray();
            string sha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(rgb));
            long histogramDistance = 0;
            for (int c = 0; c < 3; c++)
            {
                var ours = new long[256];
                for (int p = c; p < rgb.Length; p += 3) ours[rgb[p]]++;
                var theirs = expected.GetProperty("histograms")[c].EnumerateArray().Select(e => e.GetInt64()).ToArray();
                histogramDistance += ours.Zip(theirs).Sum(q => Math.Abs(q.First - q.Second));
            }
            if (method == StainMethod.Macenko) Assert.Equal(expected.GetProperty("sha256").GetString(), sha);
            else Assert.True(histogramDistance <= rgb.Length / 100, $"Reinhard: histograms differ by {histogramDistance} counts");
        }
    }
}
