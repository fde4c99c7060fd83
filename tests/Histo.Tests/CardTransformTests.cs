using System.Text.Json;
using Histo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>
/// The model cards' resize and crop against torchvision on PIL images (tools/reference/transforms_reference.py: Resize with
/// PIL's antialiased bilinear and bicubic filters, rounded to bytes, then CenterCrop). PIL works in fixed point, so a few
/// pixels may differ by a level or two; a one-pass resize (17% of pixels off by one) or a shifted crop fails.
/// </summary>
public class CardTransformTests
{
    public static TheoryData<string> Cases => new() { "bilinear", "bicubic", "bicubic-crop", "upsample-bicubic", "bilinear-wide" };

    [Theory]
    [MemberData(nameof(Cases))]
    public void MatchesTorchvisionOnPil(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "transforms-golden.json")));
        var c = doc.RootElement.GetProperty(name);
        int h = c.GetProperty("height").GetInt32(), w = c.GetProperty("width").GetInt32();
        var transform = new CardTransform(c.GetProperty("resize").GetInt32(), c.GetProperty("crop").GetInt32(),
            c.GetProperty("interpolation").GetString() == "bicubic" ? InterpolationMode.Bicubic : InterpolationMode.Bilinear);
        var source = Convert.FromBase64String(c.GetProperty("source").GetString()!);
        var expected = Convert.FromBase64String(c.GetProperty("output").GetString()!);
        var shape = c.GetProperty("output_shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
        using var rgb = tensor(source, [1, h, w, 3]).permute(0, 3, 1, 2).to_type(ScalarType.Float32);
        using var output = PatchEncoder.ApplyCardTransform(rgb, transform);
        Assert.Equal(new long[] { 1, 3, shape[0], shape[1] }, output.shape);
        var ours = output.permute(0, 2, 3, 1).contiguous().data<float>().ToArray();
        var differences = ours.Zip(expected, (a, b) => Math.Abs(a - b)).ToArray();
        Assert.True(differences.Max() <= 2, $"{name}: max difference {differences.Max()} levels from PIL");
        Assert.True(differences.Average() < 0.05, $"{name}: mean difference {differences.Average():F3} levels from PIL");
    }
}
