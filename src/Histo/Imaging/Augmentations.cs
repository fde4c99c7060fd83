using TorchSharp;
using static Histo.Models.KeptScalars;
using static TorchSharp.torch;

namespace Histo.Imaging;

/// <summary>
/// Image augmentations on batches of float tensors [B, 3, H, W] in [0, 1], written to match torchvision's
/// functional definitions (adjust_brightness/contrast/saturation/hue, rgb_to_grayscale, solarize,
/// gaussian_blur), which DINO's recipe uses. Randomness is the caller's: each op takes its factor.
/// </summary>
public static class Augmentations
{
    /// <summary>ITU-R 601-2 luma as torchvision computes it: 0.2989 R + 0.587 G + 0.114 B.</summary>
    public static Tensor Grayscale(Tensor x)
    {
        using var scope = NewDisposeScope();
        var luma = x.select(-3, 0).mul(Of(0.2989)).add(x.select(-3, 1).mul(Of(0.587)), One)
            .add(x.select(-3, 2).mul(Of(0.114)), One);
        return luma.unsqueeze(-3).MoveToOuterDisposeScope();
    }

    static Tensor Blend(Tensor a, Tensor b, double ratio)
    {
        using var scope = NewDisposeScope();
        using Scalar weight = ratio.ToScalar(), rest = (1 - ratio).ToScalar();
        return a.mul(weight).add(b.mul(rest), One).clamp(Zero, One).MoveToOuterDisposeScope();
    }

    /// <summary>x * factor, clamped.</summary>
    public static Tensor Brightness(Tensor x, double factor) => Blend(x, zeros_like(x), factor);

    /// <summary>Blend with the image's mean grey level (per image).</summary>
    public static Tensor Contrast(Tensor x, double factor)
    {
        using var mean = Grayscale(x).mean([-3, -2, -1], keepdim: true);
        return Blend(x, mean.expand_as(x), factor);
    }

    /// <summary>Blend with the grayscale image.</summary>
    public static Tensor Saturation(Tensor x, double factor)
    {
        using var gray = Grayscale(x);
        return Blend(x, gray.expand_as(x), factor);
    }

    /// <summary>Rotate hue by <paramref name="shift"/> of a full turn (in [-0.5, 0.5]) through HSV, as torchvision.</summary>
    public static Tensor Hue(Tensor x, double shift)
    {
        using var scope = NewDisposeScope();
        var r = x.select(-3, 0); var g = x.select(-3, 1); var b = x.select(-3, 2);
        var maxc = x.amax([-3]); var minc = x.amin([-3]);
        var eqc = maxc.eq(minc);
        var cr = maxc - minc;
        var ones = ones_like(maxc);
        var s = cr / where(eqc, ones, maxc);
        var crDivisor = where(eqc, ones, cr);
        var rc = (maxc - r) / crDivisor; var gc = (maxc - g) / crDivisor; var bc = (maxc - b) / crDivisor;
        var hr = maxc.eq(r).to_type(x.dtype) * (bc - gc);
        var hg = (maxc.eq(g) & maxc.ne(r)).to_type(x.dtype) * (rc.add(Of(2.0), One) - bc);
        var hb = (maxc.ne(g) & maxc.ne(r)).to_type(x.dtype) * (gc.add(Of(4.0), One) - rc);
        var h = hr.add(hg, One).add(hb, One).div(Of(6.0)).add(Of(1.0), One).fmod(Of(1.0));
        using Scalar hueShift = shift.ToScalar();
        h = h.add(hueShift, One).fmod(Of(1.0));
        h = where(h.lt(Zero), h.add(One, One), h);
        // HSV back to RGB (torchvision's _hsv2rgb).
        var v = maxc;
        var i = h.mul(Of(6.0)).floor();
        var f = h.mul(Of(6.0)) - i;
        var iInt = i.to_type(ScalarType.Int32).remainder(Of(6L));
        var p = (v * OneMinus(s)).clamp(Zero, One); var q = (v * OneMinus(s * f)).clamp(Zero, One);
        var t = (v * OneMinus(s * OneMinus(f))).clamp(Zero, One);
        Tensor Pick(params Tensor[] options)
        {
            var result = zeros_like(v);
            for (int k = 0; k < 6; k++) result = where(iInt.eq(Of((long)k)), options[k], result);
            return result;
        }
        var rgb = stack([Pick(v, q, p, p, t, v), Pick(t, v, v, q, p, p), Pick(p, p, t, v, v, q)], -3);
        return rgb.MoveToOuterDisposeScope();
    }

    /// <summary>Invert pixels at or above the threshold (DINO: 0.5 on [0, 1] images).</summary>
    public static Tensor Solarize(Tensor x, double threshold = 0.5)
    {
        using var scope = NewDisposeScope();
        using Scalar limit = threshold.ToScalar();
        return where(x.ge(limit), OneMinus(x), x).MoveToOuterDisposeScope();
    }

    /// <summary>1 - x (exactly: -x + 1 rounds as 1 - x).</summary>
    static Tensor OneMinus(Tensor x) => x.neg().add(Of(1.0), One);

    /// <summary>Flip along the width (horizontal) or height (vertical).</summary>
    public static Tensor Flip(Tensor x, bool horizontal) => x.flip(horizontal ? -1 : -2);

    /// <summary>
    /// Normalised 1-D Gaussian kernel: G(x) = exp(-x^2 / (2 sigma^2)), x = -radius..radius, divided by its sum.
    /// The 2-D kernel is the outer product, so blurring is two 1-D passes.
    /// </summary>
    public static float[] GaussianKernel1D(double sigma, int radius)
    {
        var k = Enumerable.Range(-radius, 2 * radius + 1).Select(x => Math.Exp(-x * x / (2 * sigma * sigma))).ToArray();
        double sum = k.Sum();
        return k.Select(v => (float)(v / sum)).ToArray();
    }

    /// <summary>Gaussian blur as two 1-D convolutions with reflect padding (torchvision's gaussian_blur, kernel size 2 radius + 1).</summary>
    public static Tensor GaussianBlur(Tensor x, double sigma, int radius)
    {
        using var scope = NewDisposeScope();
        var kernel = tensor(GaussianKernel1D(sigma, radius), dtype: x.dtype);
        int channels = (int)x.shape[^3];
        var batch = x.dim() == 3 ? x.unsqueeze(0) : x;
        var padded = nn.functional.pad(batch, [radius, radius, radius, radius], TorchSharp.PaddingModes.Reflect);
        var horizontal = nn.functional.conv2d(padded, kernel.reshape(1, 1, 1, -1).expand(channels, 1, 1, 2 * radius + 1), groups: channels);
        var both = nn.functional.conv2d(horizontal, kernel.reshape(1, 1, -1, 1).expand(channels, 1, 2 * radius + 1, 1), groups: channels);
        return (x.dim() == 3 ? both.squeeze(0) : both).MoveToOuterDisposeScope();
    }
}
