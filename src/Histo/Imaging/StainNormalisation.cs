using Histo.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Imaging;

/// <summary>The stain normalisation methods of <c>--stain-norm</c>.</summary>
public enum StainMethod { Macenko, Reinhard }

/// <summary>
/// Maps H&amp;E images onto a target image's staining, as torchstain's NumPy normalisers do (the reference the field uses; checked
/// against tools/reference/stain_reference.py). Fitted once on the target; <see cref="Normalise"/> then works on RGB bytes
/// [N, 3] of one image. Numbers meet tensors only as kept Scalars: this runs while reader threads allocate (KeptScalars).
/// </summary>
public abstract class StainNormaliser : IDisposable
{
    public abstract StainMethod Method { get; }

    /// <summary>One image's RGB bytes [N, 3] (uint8) to the target's staining, uint8 [N, 3].</summary>
    public abstract Tensor Normalise(Tensor rgb);

    public abstract void Dispose();

    public static StainNormaliser Fit(StainMethod method, RgbaImage target)
    {
        using var rgb = Rgb(target);
        return method == StainMethod.Macenko ? new MacenkoNormaliser(rgb) : new ReinhardNormaliser(rgb);
    }

    /// <summary>Fitted on an image file; a target without stained pixels is one line naming the file and the option.</summary>
    public static StainNormaliser Fit(StainMethod method, string targetPath, string option)
    {
        var image = RgbaImage.Load(targetPath);
        try { return Fit(method, image); }
        catch (HistoException e) { throw new HistoException($"{targetPath}: {e.Message} ({option})", e); }
    }

    /// <summary>An RGBA image's RGB bytes [H * W, 3].</summary>
    public static Tensor Rgb(RgbaImage image)
    {
        using var rgba = tensor(image.Pixels, [image.Height * image.Width, 4]);
        return rgba.narrow(1, 0, 3).contiguous();
    }

    /// <summary>RGBA patches [B, S, S, 4] normalised one by one (alpha kept).</summary>
    public Tensor NormaliseBatch(Tensor rgba)
    {
        using var scope = NewDisposeScope();
        long b = rgba.shape[0], h = rgba.shape[1], w = rgba.shape[2];
        var images = new List<Tensor>();
        for (long i = 0; i < b; i++)
        {
            var rgb = Normalise(rgba[i].narrow(2, 0, 3).reshape(h * w, 3)).reshape(h, w, 3);
            images.Add(cat([rgb, rgba[i].narrow(2, 3, 1)], 2));
        }
        return stack(images).MoveToOuterDisposeScope();
    }

    /// <summary>A normalised copy of an image (for looking at, and for `histo stain`).</summary>
    public RgbaImage Normalise(RgbaImage image)
    {
        using var scope = NewDisposeScope();
        var rgba = tensor(image.Pixels, [1, image.Height, image.Width, 4]);
        return new RgbaImage(image.Width, image.Height, NormaliseBatch(rgba).contiguous().data<byte>().ToArray());
    }

    /// <summary>Source, target and the normalised source side by side (each scaled to the source's height), to look at.</summary>
    public RgbaImage BeforeAfter(RgbaImage source, RgbaImage target)
    {
        var normalised = Normalise(source);
        int h = source.Height, gap = 8;
        var scaledTarget = target.Resize(Math.Max(1, target.Width * h / target.Height), h);
        var panels = new[] { source, scaledTarget, normalised };
        var picture = RgbaImage.Filled(panels.Sum(p => p.Width) + gap * (panels.Length - 1), h, 255, 255, 255);
        int x0 = 0;
        foreach (var panel in panels)
        {
            for (int y = 0; y < h; y++)
                Array.Copy(panel.Pixels, y * panel.Width * 4, picture.Pixels, (y * picture.Width + x0) * 4, panel.Width * 4);
            x0 += panel.Width + gap;
        }
        return picture;
    }

    protected static readonly Scalar One = 1.ToScalar(), ByteMax = 255.ToScalar();
}

/// <summary>
/// Macenko et al., "A method for normalizing histology slides for quantitative analysis", ISBI 2009, as torchstain computes
/// it: optical density OD = -log((I + 1) / Io); pixels with any channel's OD below beta dropped; the plane of the two largest
/// eigenvectors of the OD covariance; the stain vectors at the alpha and 100 - alpha percentiles of the projected angle
/// (haematoxylin first: the larger red OD); concentrations by least squares; each stain's concentrations scaled so their 99th
/// percentile is the target's; I = Io exp(-HE_target C), clipped at 255 and truncated to bytes.
/// </summary>
public sealed class MacenkoNormaliser : StainNormaliser
{
    /// <summary>torchstain's defaults: transmitted light Io 240, angle percentile alpha 1, OD threshold beta 0.15.</summary>
    public const double Io = 240, Alpha = 1, Beta = 0.15;
    /// <summary>Percentile of the concentrations that is matched to the target's.</summary>
    public const double ConcentrationPercentile = 99;

    static readonly Scalar IoScalar = Io.ToScalar(), BetaScalar = Beta.ToScalar(), HalfScalar = 0.5.ToScalar();

    /// <summary>The target's stain vectors [3, 2] (H, E columns) and 99th-percentile concentrations [2].</summary>
    public Tensor StainVectors { get; }
    public Tensor MaxConcentrations { get; }
    public override StainMethod Method => StainMethod.Macenko;

    public MacenkoNormaliser(Tensor targetRgb)
    {
        var fitted = Decompose(targetRgb) ?? throw new HistoException("the stain target has no stained pixels (optical density "
            + $"above {Beta} in every channel); choose a target image with tissue");
        (StainVectors, MaxConcentrations) = (fitted.HE, fitted.MaxC);
        fitted.C.Dispose();
    }

    /// <summary>OD [N, 3] of RGB bytes, float64.</summary>
    static Tensor OpticalDensity(Tensor rgb) => rgb.to_type(ScalarType.Float64).add(One, One).div(IoScalar).log().neg();

    /// <summary>Stain vectors, concentrations [2, N] and their 99th percentiles; null when too few pixels are stained.</summary>
    public static (Tensor HE, Tensor C, Tensor MaxC)? Decompose(Tensor rgb)
    {
        using var scope = NewDisposeScope();
        var od = OpticalDensity(rgb);
        var stained = od.index(new TensorIndex[] { TensorIndex.Tensor(od.ge(BetaScalar).all(1)) });   // ODhat
        if (stained.shape[0] < 3) return null;
        var (_, vectors) = linalg.eigh(stained.T.cov());                  // ascending eigenvalues
        var plane = vectors.narrow(1, 1, 2);                              // second-largest, largest
        // LAPACK picks the signs; with both columns pointing into the positive octant the angles stay away from the cut at
        // +-pi (torchstain's result does not depend on the signs otherwise: tools/reference checks all four).
        plane = plane * plane.sum(0, keepdim: true).sign().add(HalfScalar, One).sign();
        var projected = stained.mm(plane);
        var phi = projected[.., 1].atan2(projected[.., 0]);
        using var q = tensor(new[] { Alpha / 100, 1 - Alpha / 100 }, ScalarType.Float64);
        var angles = phi.quantile(q);
        var directions = stack([angles.cos(), angles.sin()]);             // [2, 2]: columns min, max
        var v = plane.mm(directions);                                     // [3, 2]: vMin, vMax
        var he = v[0, 0].item<double>() > v[0, 1].item<double>() ? v : v.flip(1);
        // Least squares over every pixel (background included, as torchstain): (HE^T HE) C = HE^T OD^T.
        var c = linalg.solve(he.T.mm(he), he.T.mm(od.T));
        using var q99 = tensor(ConcentrationPercentile / 100, ScalarType.Float64);
        var maxC = c.quantile(q99, dim: 1);
        return (he.MoveToOuterDisposeScope(), c.MoveToOuterDisposeScope(), maxC.MoveToOuterDisposeScope());
    }

    public override Tensor Normalise(Tensor rgb)
    {
        using var scope = NewDisposeScope();
        if (Decompose(rgb) is not { } source) return rgb.clone().MoveToOuterDisposeScope();   // background only: unchanged
        var scaled = source.C * (MaxConcentrations / source.MaxC).unsqueeze(1);
        var intensity = StainVectors.mm(scaled).neg().exp().mul(IoScalar).clamp_max(ByteMax);
        return intensity.floor().T.to_type(ScalarType.Byte).contiguous().MoveToOuterDisposeScope();
    }

    public override void Dispose()
    {
        StainVectors.Dispose();
        MaxConcentrations.Dispose();
    }
}

/// <summary>
/// Reinhard et al., "Color transfer between images", IEEE CG&amp;A 2001, as torchstain computes it: RGB to CIE L*a*b* (sRGB,
/// D65, float32), each channel's mean and (population) standard deviation matched to the target's, back to RGB, clipped and
/// truncated to bytes.
/// </summary>
public sealed class ReinhardNormaliser : StainNormaliser
{
    readonly Tensor _targetMean, _targetStd;
    public override StainMethod Method => StainMethod.Reinhard;

    // sRGB (D65) to XYZ, and the white point.
    static readonly double[] RgbToXyz = [0.412453, 0.357580, 0.180423, 0.212671, 0.715160, 0.072169, 0.019334, 0.119193, 0.950227];
    static readonly double[] White = [0.95047, 1.0, 1.08883];
    static readonly Scalar Threshold = 0.04045.ToScalar(), Offset = 0.055.ToScalar(), Scale = 1.055.ToScalar(),
        Gamma = 2.4.ToScalar(), Linear = 12.92.ToScalar(), Epsilon = 0.008856.ToScalar(), Kappa = 7.787.ToScalar(),
        FOffset = (16.0 / 116).ToScalar(), Third = (1.0 / 3).ToScalar(), L116 = 116.ToScalar(), L16 = 16.ToScalar(),
        A500 = 500.ToScalar(), B200 = 200.ToScalar(), Cube = 3.ToScalar(), Delta = 0.2068966.ToScalar(),
        InverseGamma = (1 / 2.4).ToScalar(), LinearLimit = 0.0031308.ToScalar(), Zero = 0.ToScalar();

    public IReadOnlyList<float> TargetMeans => _targetMean.data<float>().ToArray();
    public IReadOnlyList<float> TargetStds => _targetStd.data<float>().ToArray();

    public ReinhardNormaliser(Tensor targetRgb)
    {
        using var lab = Lab(targetRgb);
        _targetMean = lab.mean([0]);
        _targetStd = lab.std(0, unbiased: false);
    }

    /// <summary>RGB bytes [N, 3] to L*a*b* [N, 3], float32 (torchstain's rgb2lab, without its 8-bit scaling round trip).</summary>
    public static Tensor Lab(Tensor rgb)
    {
        using var scope = NewDisposeScope();
        var x = rgb.to_type(ScalarType.Float32).div(ByteMax);
        var linear = where(x.gt(Threshold), x.add(Offset, One).div(Scale).pow(Gamma), x.div(Linear));
        using var matrix = tensor(RgbToXyz, [3, 3]).to_type(ScalarType.Float32);
        using var white = tensor(White).to_type(ScalarType.Float32);
        var xyz = linear.mm(matrix.T).div(white);
        var f = where(xyz.gt(Epsilon), xyz.pow(Third), xyz.mul(Kappa).add(FOffset, One));
        var (fx, fy, fz) = (f[.., 0], f[.., 1], f[.., 2]);
        var lab = stack([fy.mul(L116).sub(L16), fx.sub(fy).mul(A500), fy.sub(fz).mul(B200)], 1);
        return lab.MoveToOuterDisposeScope();
    }

    public override Tensor Normalise(Tensor rgb)
    {
        using var scope = NewDisposeScope();
        var lab = Lab(rgb);
        var mean = lab.mean([0]);
        var std = lab.std(0, unbiased: false);
        var mapped = lab.sub(mean).div(std).mul(_targetStd).add(_targetMean, One);
        // L*a*b* to XYZ (float32), then to linear RGB with the inverse matrix in float64, as torchstain's lab2rgb.
        var (l, a, b) = (mapped[.., 0], mapped[.., 1], mapped[.., 2]);
        var fy = l.add(L16, One).div(L116);
        var f = stack([a.div(A500).add(fy, One), fy, fy.sub(b.div(B200))], 1);
        using var white = tensor(White).to_type(ScalarType.Float32);
        var xyz = where(f.gt(Delta), f.pow(Cube), f.sub(FOffset).div(Kappa)).mul(white);
        using var matrix = tensor(RgbToXyz, [3, 3]);
        var linear = xyz.to_type(ScalarType.Float64).mm(linalg.inv(matrix).T);
        var srgb = where(linear.gt(LinearLimit), linear.pow(InverseGamma).mul(Scale).sub(Offset), linear.mul(Linear));
        return srgb.clamp(Zero, One).mul(ByteMax).floor().to_type(ScalarType.Byte).MoveToOuterDisposeScope();
    }

    public override void Dispose()
    {
        _targetMean.Dispose();
        _targetStd.Dispose();
    }
}
