using Histo.Imaging;

namespace Histo.Slides;

/// <summary>Options of tissue detection. Sizes are in mask pixels (the mask is at most <see cref="MaskLongestSide"/> per side).</summary>
public sealed record TissueDetectionOptions
{
    /// <summary>Longest side of the thumbnail the mask is computed on; fixed so memory does not grow with slide size.</summary>
    public int MaskLongestSide { get; init; } = 2048;
    /// <summary>Median blur of the saturation channel before thresholding (CLAM's default, 7).</summary>
    public int MedianBlurSize { get; init; } = 7;
    /// <summary>Lowest saturation (0-255) ever called tissue, so Otsu cannot split pure glass noise.</summary>
    public int MinSaturation { get; init; } = 20;
    /// <summary>
    /// Highest threshold Otsu may choose. On a view that is all tissue (no glass), Otsu splits dense from
    /// pale tissue instead of tissue from glass; glass stays below about 25 on every slide seen here.
    /// </summary>
    public int MaxSaturationThreshold { get; init; } = 45;
    /// <summary>Square kernel of the morphological closing that bridges gaps inside tissue.</summary>
    public int CloseSize { get; init; } = 5;
    /// <summary>Components smaller than this fraction of the thumbnail are dust, not tissue.</summary>
    public double MinComponentFraction { get; init; } = 0.0005;
    /// <summary>Ink-coloured blobs smaller than this fraction are red blood cells or stain specks, not pen strokes.</summary>
    public double MinInkFraction { get; init; } = 0.0002;
    /// <summary>Pen strokes are grown by this fraction of the longest side to remove their blurred halo.</summary>
    public double InkMarginFraction { get; init; } = 0.015;
    public bool FillHoles { get; init; } = true;

    public void Validate()
    {
        if (MaskLongestSide < 64) throw new UsageException($"mask size {MaskLongestSide} is too small (at least 64)");
        if (MedianBlurSize < 1 || MedianBlurSize % 2 == 0) throw new UsageException($"median blur size must be odd (got {MedianBlurSize})");
        if (MinSaturation is < 0 or > 255) throw new UsageException($"minimum saturation must be 0-255 (got {MinSaturation})");
    }
}

/// <summary>
/// Finds tissue on a low-resolution view of a slide: HSV saturation, median blur, Otsu's threshold
/// (floored), pen-ink removal, closing, hole filling and removal of small components (the recipe of CLAM,
/// Lu et al. 2021, with histolab's idea of removing red, green and blue marker ink by colour).
/// </summary>
public static class TissueDetector
{
    /// <summary>Detects tissue on a slide from a thumbnail of at most MaskLongestSide pixels per side.</summary>
    public static TissueMask Detect(WholeSlide slide, TissueDetectionOptions? options = null)
    {
        options ??= new TissueDetectionOptions();
        options.Validate();
        var thumbnail = SlideThumbnail.Read(slide, options.MaskLongestSide);
        return Detect(thumbnail, slide.Width, slide.Height, options);
    }

    /// <summary>Detects tissue on an image that shows a region of <paramref name="level0Width"/> x <paramref name="level0Height"/>
    /// level-0 pixels.</summary>
    public static TissueMask Detect(RgbaImage image, long level0Width, long level0Height, TissueDetectionOptions? options = null)
    {
        options ??= new TissueDetectionOptions();
        options.Validate();
        int w = image.Width, h = image.Height, n = w * h;
        var saturation = new byte[n];
        var ink = new byte[n];
        var px = image.Pixels;
        Parallel.For(0, h, y =>
        {
            for (int i = y * w; i < (y + 1) * w; i++)
            {
                int r = px[4 * i], g = px[4 * i + 1], b = px[4 * i + 2];
                int max = Math.Max(r, Math.Max(g, b)), min = Math.Min(r, Math.Min(g, b));
                int s = SaturationTable[(max << 8) | (max - min)];
                saturation[i] = (byte)s;
                ink[i] = IsInk(r, g, b, s) ? (byte)255 : (byte)0;
            }
        });
        // Pen strokes: ink blobs too large to be red blood cells or stray stain specks, grown to swallow
        // their blurred halo.
        int longest = Math.Max(w, h);
        var penInk = new byte[n];
        if (Array.IndexOf(ink, (byte)255) >= 0)
        {
            penInk = BinaryMorphology.RemoveSmallComponents(ink, w, h, Math.Max(4, (int)(options.MinInkFraction * n)));
            int margin = 2 * Math.Max(1, (int)Math.Round(options.InkMarginFraction * longest)) + 1;
            penInk = BinaryMorphology.Dilate(penInk, w, h, margin);
        }

        var blurred = BinaryMorphology.MedianBlur(saturation, w, h, options.MedianBlurSize);
        // Otsu on the pixels that are not ink: vivid ink would otherwise pull the threshold above the tissue.
        var histogram = new long[256];
        for (int i = 0; i < n; i++) if (penInk[i] == 0) histogram[blurred[i]]++;
        int otsu = histogram.Sum() > 0 ? BinaryMorphology.OtsuThreshold(histogram) : 255;
        int threshold = Math.Clamp(otsu, options.MinSaturation, Math.Max(options.MinSaturation, options.MaxSaturationThreshold));
        var mask = new byte[n];
        for (int i = 0; i < n; i++) mask[i] = blurred[i] > threshold && penInk[i] == 0 ? (byte)255 : (byte)0;
        mask = BinaryMorphology.Close(mask, w, h, options.CloseSize);
        if (options.FillHoles) mask = BinaryMorphology.FillHoles(mask, w, h);
        // Ink over tissue stays excluded: the patches under it would show the ink.
        for (int i = 0; i < n; i++) if (penInk[i] != 0) mask[i] = 0;
        mask = BinaryMorphology.RemoveSmallComponents(mask, w, h, Math.Max(1, (int)(options.MinComponentFraction * n)));
        return new TissueMask(mask, w, h, (double)level0Width / w, (double)level0Height / h, threshold, image);
    }

    /// <summary>
    /// Marker ink by colour, from the hues measured on real H&amp;E slides and pen-marked TCGA thumbnails:
    /// haematoxylin lies at 240-300 degrees and eosin at 300-345 with blue well above green, while green
    /// and blue markers lie at 70-235 degrees and red marker at 345-20 degrees with blue close to green.
    /// </summary>
    public static bool IsInk(int r, int g, int b, int saturation)
    {
        if (saturation <= 40) return false;
        double hue = Hue(r, g, b);
        if (hue is >= 70 and < 235) return true;
        if (!(hue >= 330 || hue < 20) || saturation <= 100) return false;
        // Red marker: blue close to green; or dark and clearly redder than blue, which eosin (always
        // light) and haematoxylin (blue at least as strong as red) never are.
        return b - g < 25 || (Math.Max(r, Math.Max(g, b)) < 130 && saturation > 130 && r - b > 25);
    }

    /// <summary>OpenCV's 8-bit HSV saturation, round(255 (max - min) / max), indexed by (max &lt;&lt; 8) | (max - min).</summary>
    static readonly byte[] SaturationTable = BuildSaturationTable();

    static byte[] BuildSaturationTable()
    {
        var table = new byte[256 * 256];
        for (int max = 1; max < 256; max++)
            for (int d = 0; d <= max; d++) table[(max << 8) | d] = (byte)((255 * d + max / 2) / max);
        return table;
    }

    /// <summary>Hue in degrees [0, 360).</summary>
    public static double Hue(int r, int g, int b)
    {
        int max = Math.Max(r, Math.Max(g, b)), min = Math.Min(r, Math.Min(g, b));
        if (max == min) return 0;
        double d = max - min, h;
        if (max == r) h = (g - b) / d;
        else if (max == g) h = 2 + (b - r) / d;
        else h = 4 + (r - g) / d;
        h *= 60;
        return h < 0 ? h + 360 : h;
    }
}
