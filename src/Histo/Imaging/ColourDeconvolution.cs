using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Imaging;

/// <summary>
/// Colour deconvolution (Ruifrok and Johnston, Anal. Quant. Cytol. Histol. 2001): optical densities
/// OD_c = -log10(I_c / I_0) are a linear mix of the stains' OD vectors, OD = c M with M's rows the unit stain vectors
/// (haematoxylin, eosin, and their cross product as the residual), so the stain amounts are c = OD M^-1.
/// The vectors are QuPath's "H&amp;E default" ones, those its cell detection starts from.
/// </summary>
public static class ColourDeconvolution
{
    /// <summary>QuPath's default haematoxylin OD vector (R, G, B), before normalisation.</summary>
    public static readonly double[] HaematoxylinVector = [0.651, 0.701, 0.290];
    /// <summary>QuPath's default eosin OD vector (R, G, B), before normalisation.</summary>
    public static readonly double[] EosinVector = [0.216, 0.801, 0.558];
    /// <summary>The bright-field background intensity I_0; zero intensities are read as 1 so OD stays finite (2.41).</summary>
    public const double BackgroundIntensity = 255;

    /// <summary>Haematoxylin amount (OD units) per pixel, row-major [Height, Width].</summary>
    public static float[] Haematoxylin(RgbaImage image)
    {
        var inverse = InverseStainMatrix();
        using var scope = NewDisposeScope();
        using var column = tensor(new[] { (float)inverse[0, 0], (float)inverse[1, 0], (float)inverse[2, 0] });
        var rgb = tensor(image.Pixels, [image.Height, image.Width, 4]).narrow(2, 0, 3).to_type(ScalarType.Float32);
        // -log10(max(I, 1) / I0)
        var od = rgb.clamp_min(Unit).div(I0).log10().neg();
        return od.matmul(column).contiguous().data<float>().ToArray();
    }

    /// <summary>
    /// Haematoxylin amount (OD units) of one 8-bit RGB pixel, the same value <see cref="Haematoxylin(RgbaImage)"/> gives,
    /// from a table of the 256 optical densities (for per-pixel rules inside loops over a thumbnail).
    /// </summary>
    public static float HaematoxylinAt(int r, int g, int b) =>
        OpticalDensity[r] * HaematoxylinColumn[0] + OpticalDensity[g] * HaematoxylinColumn[1] + OpticalDensity[b] * HaematoxylinColumn[2];

    /// <summary>
    /// Haematoxylin's share of a pixel's optical density, H / |OD| (0 for white): independent of how dark the pixel is,
    /// so light and dark shades of one colour score alike.
    /// </summary>
    public static float HaematoxylinShareAt(int r, int g, int b)
    {
        float or = OpticalDensity[r], og = OpticalDensity[g], ob = OpticalDensity[b];
        float norm = MathF.Sqrt(or * or + og * og + ob * ob);
        return norm == 0 ? 0 : HaematoxylinAt(r, g, b) / norm;
    }

    static readonly float[] OpticalDensity =
        Enumerable.Range(0, 256).Select(i => -MathF.Log10(Math.Max(i, 1) / (float)BackgroundIntensity)).ToArray();

    static readonly float[] HaematoxylinColumn = HaematoxylinColumnOfInverse();

    static float[] HaematoxylinColumnOfInverse()
    {
        var inverse = InverseStainMatrix();
        return [(float)inverse[0, 0], (float)inverse[1, 0], (float)inverse[2, 0]];
    }

    /// <summary>M^-1 for M = [h; e; h x e] (unit rows): row c of OD times column k gives stain k.</summary>
    public static double[,] InverseStainMatrix()
    {
        var h = Normalise(HaematoxylinVector);
        var e = Normalise(EosinVector);
        var r = Normalise([h[1] * e[2] - h[2] * e[1], h[2] * e[0] - h[0] * e[2], h[0] * e[1] - h[1] * e[0]]);
        double[,] m = { { h[0], h[1], h[2] }, { e[0], e[1], e[2] }, { r[0], r[1], r[2] } };
        return Invert3(m);
    }

    static double[] Normalise(double[] v)
    {
        double n = Math.Sqrt(v.Sum(x => x * x));
        return v.Select(x => x / n).ToArray();
    }

    static double[,] Invert3(double[,] m)
    {
        double det = m[0, 0] * (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1]) - m[0, 1] * (m[1, 0] * m[2, 2] - m[1, 2] * m[2, 0])
            + m[0, 2] * (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0]);
        var inv = new double[3, 3];
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
            {
                // Cofactor of m[j, i] (the adjugate is the transposed cofactor matrix).
                int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
                inv[i, j] = (m[r0, c0] * m[r1, c1] - m[r0, c1] * m[r1, c0]) / det;
            }
        return inv;
    }

    // Kept alive, not converted on the fly: see KeptScalars.
    static readonly Scalar Unit = 1f.ToScalar(), I0 = ((float)BackgroundIntensity).ToScalar();
}
