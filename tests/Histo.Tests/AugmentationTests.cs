using System.Text.Json;
using Histo.Imaging;
using static TorchSharp.torch;

namespace Histo.Tests;

/// <summary>Augmentations against torchvision (tools/reference/augment_reference.py) and the methods reference.</summary>
public class AugmentationTests
{
    static Tensor Image()
    {
        using var j = arange(2 * 3 * 20 * 24, dtype: ScalarType.Float64);
        return (0.5 + 0.45 * sin(0.013 * j) * cos(0.0071 * j + 1)).reshape(2, 3, 20, 24).to_type(ScalarType.Float32);
    }

    [Theory]
    [InlineData("brightness")]
    [InlineData("contrast")]
    [InlineData("saturation")]
    [InlineData("hue")]
    [InlineData("hue_negative")]
    [InlineData("grayscale")]
    [InlineData("solarize")]
    [InlineData("blur")]
    public void MatchesTorchvision(string op)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "augment-golden.json")));
        var expected = doc.RootElement.GetProperty(op).EnumerateArray().Select(e => e.GetSingle()).ToArray();
        using var x = Image();
        using var y = op switch
        {
            "brightness" => Augmentations.Brightness(x, 1.3),
            "contrast" => Augmentations.Contrast(x, 0.6),
            "saturation" => Augmentations.Saturation(x, 1.4),
            "hue" => Augmentations.Hue(x, 0.08),
            "hue_negative" => Augmentations.Hue(x, -0.1),
            "grayscale" => Augmentations.Grayscale(x),
            "solarize" => Augmentations.Solarize(x),
            _ => Augmentations.GaussianBlur(x, 1.3, 3),
        };
        var ours = y.flatten().data<float>().ToArray();
        Assert.Equal(expected.Length, ours.Length);
        double worst = expected.Zip(ours).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(worst < 1e-5, $"{op}: max |difference| {worst:E2}");
    }

    [Fact]
    public void GaussianKernelOfTorchvisionAndTheMethodsReference()
    {
        // torchvision's _get_gaussian_kernel1d(3, 1.5): exp(-x^2 / (2 sigma^2)) at x = -1, 0, 1, normalised; by hand:
        // exp(-1 / 4.5) = 0.8007374, sum 2.6014748, so 0.3078013, 0.3843973, 0.3078013.
        var k = Augmentations.GaussianKernel1D(1.5, 1);
        Assert.Equal([0.3078013, 0.3843973, 0.3078013], k.Select(v => (double)v), new Tol(2e-7)); // float32, 7 digits
        // The methods reference: the nine unnormalised 2-D weights sum to 0.4787147, so the normalised centre weight is
        // (1 / (2 pi 1.5^2)) / 0.4787147; the separable kernel's outer product must give it.
        Assert.Equal(1 / (2 * Math.PI * 1.5 * 1.5) / 0.4787147, k[1] * k[1], 6);
    }

    sealed class Tol(double t) : IEqualityComparer<float>, IEqualityComparer<double>
    {
        public bool Equals(float a, float b) => Math.Abs(a - b) <= t;
        public int GetHashCode(float f) => 0;
        public bool Equals(double a, double b) => Math.Abs(a - b) <= t;
        public int GetHashCode(double d) => 0;
    }
}
