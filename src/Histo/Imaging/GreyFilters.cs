using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Imaging;

/// <summary>
/// Filters of one grey image (row-major float [Height, Width]) with SciPy ndimage's semantics, so a reference can check them:
/// a Gaussian with <c>mode='reflect'</c> (edge pixel repeated: d c b a | a b c d) and <c>truncate=3</c>, square minimum and
/// maximum filters (grey erosion and dilation; at the borders only pixels inside the image count, which is what SciPy's
/// reflection gives for these filters), and the exact Euclidean distance transform.
/// </summary>
public static class GreyFilters
{
    /// <summary>SciPy's Gaussian truncation: the kernel reaches int(3 sigma + 0.5) pixels.</summary>
    public const double Truncate = 3.0;

    public static float[] Gaussian(float[] image, int width, int height, double sigma)
    {
        if (sigma <= 0) return (float[])image.Clone();
        int radius = (int)(Truncate * sigma + 0.5);
        var weights = new float[2 * radius + 1];
        for (int i = -radius; i <= radius; i++) weights[i + radius] = (float)Math.Exp(-0.5 * i * i / (sigma * sigma));
        float sum = weights.Sum();
        for (int i = 0; i < weights.Length; i++) weights[i] /= sum;
        using var scope = NewDisposeScope();
        var x = tensor(image, [1, 1, height, width]);
        var kernel = tensor(weights);
        // Rows, then columns: each a reflect-padded 1-D convolution.
        x = nn.functional.conv2d(x.index_select(3, ReflectIndex(width, radius)), kernel.view(1, 1, 1, -1));
        x = nn.functional.conv2d(x.index_select(2, ReflectIndex(height, radius)), kernel.view(1, 1, -1, 1));
        return x.contiguous().data<float>().ToArray();
    }

    /// <summary>
    /// Standard deviation over the (2 radius + 1)^2 square around each pixel, sqrt(E[x^2] - E[x]^2) with SciPy's
    /// <c>uniform_filter</c> (mode 'reflect') for both means: a measure of local texture.
    /// </summary>
    public static float[] LocalStandardDeviation(float[] image, int width, int height, int radius)
    {
        using var scope = NewDisposeScope();
        var x = tensor(image, [1, 1, height, width]);
        x = x.index_select(3, ReflectIndex(width, radius)).index_select(2, ReflectIndex(height, radius));
        long k = 2 * radius + 1;
        var mean = nn.functional.avg_pool2d(x, [k, k], [1, 1]);
        var meanOfSquares = nn.functional.avg_pool2d(x.mul(x), [k, k], [1, 1]);
        return meanOfSquares.sub(mean.mul(mean)).clamp_min(Histo.Models.KeptScalars.Zero).sqrt().contiguous().data<float>().ToArray();
    }

    /// <summary>Maximum over the (2 radius + 1)^2 square around each pixel (grey dilation).</summary>
    public static float[] Maximum(float[] image, int width, int height, int radius) =>
        SquareFilter(image, width, height, radius, max: true);

    /// <summary>Minimum over the (2 radius + 1)^2 square around each pixel (grey erosion).</summary>
    public static float[] Minimum(float[] image, int width, int height, int radius) =>
        SquareFilter(image, width, height, radius, max: false);

    /// <summary>Grey opening (erosion, then dilation) with a (2 radius + 1)^2 square: the background below bright structures
    /// narrower than the square.</summary>
    public static float[] Opening(float[] image, int width, int height, int radius) =>
        Maximum(Minimum(image, width, height, radius), width, height, radius);

    static float[] SquareFilter(float[] image, int width, int height, int radius, bool max)
    {
        if (radius <= 0) return (float[])image.Clone();
        using var scope = NewDisposeScope();
        var x = tensor(image, [height, width]);
        if (!max) x = x.neg();
        // Separable: the square's maximum is the maximum over rows of the maxima over columns.
        x = SlidingMaximum(SlidingMaximum(x, 1, radius), 0, radius);
        if (!max) x = x.neg();
        return x.contiguous().data<float>().ToArray();
    }

    /// <summary>
    /// Maximum over the window of 2 radius + 1 along <paramref name="dim"/>, centred, with pixels beyond the image not counted.
    /// By doubling (a sparse table): maxima over 1, 2, 4, ... 2^K pixels, K = floor(log2 L), each from two shifted copies of the
    /// last, then the window's maximum as that of its first and last 2^K pixels. log2 L whole-image operations, where a
    /// max-pool costs L comparisons per pixel (a 65 px window: 7 instead of 65).
    /// </summary>
    static Tensor SlidingMaximum(Tensor x, int dim, int radius)
    {
        long n = x.shape[dim];
        int window = 2 * radius + 1;
        var padShape = x.shape.ToArray();
        padShape[dim] = radius;
        var padding = full(padShape, Models.KeptScalars.Of(double.NegativeInfinity), dtype: x.dtype);
        var padded = cat([padding, x, padding], dim);                // length n + 2 radius
        var span = padded;
        long length = padded.shape[dim];
        int covered = 1;
        while (2 * covered <= window)
        {
            length -= covered;                                      // span[i] = max over [i, i + 2 covered)
            span = maximum(span.narrow(dim, 0, length), span.narrow(dim, covered, length));
            covered *= 2;
        }
        // Window starting at padded index j (original j - radius .. j + radius): its first and its last `covered` pixels.
        return maximum(span.narrow(dim, 0, n), span.narrow(dim, window - covered, n));
    }

    /// <summary>Indices of a length-n axis padded by r on each side, mirrored with the edge repeated (SciPy's 'reflect').</summary>
    static Tensor ReflectIndex(int n, int r)
    {
        var index = new long[n + 2 * r];
        for (int i = -r; i < n + r; i++)
        {
            long j = i;
            // Repeat the reflection for pads wider than the axis (a period of 2n).
            j = ((j % (2L * n)) + 2L * n) % (2L * n);
            index[i + r] = j < n ? j : 2L * n - 1 - j;
        }
        return tensor(index);
    }

    /// <summary>
    /// Euclidean distance from each foreground pixel to the nearest background pixel (0 on background), exact:
    /// Felzenszwalb and Huttenlocher's lower envelope of parabolas, along rows, then along columns (Theory of Computing 2012).
    /// As SciPy's distance_transform_edt, pixels beyond the image are not background; an image with no background gets +inf.
    /// </summary>
    public static float[] DistanceTransform(byte[] mask, int width, int height) => FeatureTransform(mask, width, height).Distance;

    /// <summary>
    /// <see cref="DistanceTransform"/> with, for every pixel, the index (y * width + x) of a nearest background pixel (SciPy's
    /// return_indices; -1 where there is no background). Equidistant background pixels may be chosen differently from SciPy.
    /// </summary>
    public static (float[] Distance, int[] Nearest) FeatureTransform(byte[] mask, int width, int height)
    {
        var squared = new double[mask.Length];
        for (int i = 0; i < mask.Length; i++) squared[i] = mask[i] != 0 ? double.PositiveInfinity : 0;
        var line = new double[Math.Max(width, height)];
        var result = new double[line.Length];
        var vertices = new int[line.Length];
        var bounds = new double[line.Length + 1];
        var source = new int[line.Length];
        // Along rows: the column of each pixel's nearest background pixel in its row; then along columns: the row whose
        // row-nearest pixel is nearest, which gives the 2-D nearest pixel.
        var nearestColumn = new int[mask.Length];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++) line[x] = squared[y * width + x];
            Envelope(line, width, result, vertices, bounds, source);
            for (int x = 0; x < width; x++) { squared[y * width + x] = result[x]; nearestColumn[y * width + x] = source[x]; }
        }
        var nearest = new int[mask.Length];
        for (int x = 0; x < width; x++)
        {
            for (int y = 0; y < height; y++) line[y] = squared[y * width + x];
            Envelope(line, height, result, vertices, bounds, source);
            for (int y = 0; y < height; y++)
            {
                squared[y * width + x] = result[y];
                nearest[y * width + x] = source[y] < 0 ? -1 : source[y] * width + nearestColumn[source[y] * width + x];
            }
        }
        var distance = new float[mask.Length];
        for (int i = 0; i < mask.Length; i++) distance[i] = (float)Math.Sqrt(squared[i]);
        return (distance, nearest);
    }

    /// <summary>d(p) = min_q (p - q)^2 + f(q) for p in [0, n): the 1-D squared distance transform of sampled function f.</summary>
    static void Envelope(double[] f, int n, double[] d, int[] v, double[] z, int[] argmin)
    {
        int k = -1;
        for (int q = 0; q < n; q++)
        {
            if (double.IsPositiveInfinity(f[q])) continue;
            while (true)
            {
                if (k < 0) { k = 0; v[0] = q; z[0] = double.NegativeInfinity; z[1] = double.PositiveInfinity; break; }
                double s = ((f[q] + (double)q * q) - (f[v[k]] + (double)v[k] * v[k])) / (2.0 * q - 2.0 * v[k]);
                if (s <= z[k]) { k--; continue; }
                k++; v[k] = q; z[k] = s; z[k + 1] = double.PositiveInfinity;
                break;
            }
        }
        if (k < 0) { Array.Fill(d, double.PositiveInfinity, 0, n); Array.Fill(argmin, -1, 0, n); return; }
        int j = 0;
        for (int q = 0; q < n; q++)
        {
            while (z[j + 1] < q) j++;
            double dq = q - v[j];
            d[q] = dq * dq + f[v[j]];
            argmin[q] = v[j];
        }
    }
}
