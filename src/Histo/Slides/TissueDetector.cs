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
    /// <summary>Certain-ink blobs smaller than this fraction are red blood cells or stain specks, not pen strokes.</summary>
    public double MinInkFraction { get; init; } = 0.0002;
    /// <summary>
    /// How far (a fraction of the longest side) a pen stroke is followed through ink-coloured pixels around it, its
    /// blurred halo. The growth follows the ink's own shape: pixels that are not ink-coloured are never taken.
    /// </summary>
    public double InkMarginFraction { get; init; } = 0.015;
    /// <summary>
    /// ... but at least this many mask pixels: on a small image (a tile rather than a thumbnail) a blurred stroke's halo
    /// spans far more than 1.5% of the side (the shared red-pen tile's, about 100 of its 512 pixels).
    /// </summary>
    public int MinInkReachPixels { get; init; } = 32;
    /// <summary>Ink is finally dilated by this many mask pixels, for the anti-aliased rim of a stroke.</summary>
    public int InkEdgePixels { get; init; } = 2;
    /// <summary>
    /// Red marker carries no haematoxylin: its colour lies beyond eosin, so colour deconvolution gives it a negative
    /// haematoxylin share of the optical density (median -0.32 on the red-pen thumbnail), while tissue of any shade,
    /// however eosinophilic, stays near or above zero (NCT-CRC muscle and stroma, the frozen section's dense margin).
    /// </summary>
    public double RedInkMaxHaematoxylinShare { get; init; } = -0.15;
    /// <summary>
    /// Ink is smooth where tissue has texture: a stained pixel whose 5 x 5 neighbourhood varies by less than this (grey
    /// levels, standard deviation) is followed as part of a pen stroke next to it (dark or blurred marker that has no
    /// telling colour). Stained tissue next to pen on the shared thumbnails varies by 3.6 or more (5th percentile).
    /// </summary>
    public double SmoothInkTexture { get; init; } = 2.5;
    /// <summary>Report ink without cutting it from the tissue (the mask is then CLAM's, ink over glass included).</summary>
    public bool KeepInk { get; init; }
    public bool FillHoles { get; init; } = true;

    public void Validate()
    {
        if (MaskLongestSide < 64) throw new UsageException($"mask size {MaskLongestSide} is too small (at least 64)");
        if (MedianBlurSize < 1 || MedianBlurSize % 2 == 0)
            throw new UsageException($"median blur size must be odd (got {MedianBlurSize})");
        if (MinSaturation is < 0 or > 255) throw new UsageException($"minimum saturation must be 0-255 (got {MinSaturation})");
    }
}

/// <summary>
/// Finds tissue on a low-resolution view of a slide: HSV saturation, median blur, Otsu's threshold
/// (floored), removal of pen ink where it lies, closing, hole filling and removal of small components (the recipe of CLAM,
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
        var certainInk = new byte[n];
        var px = image.Pixels;
        Parallel.For(0, h, y =>
        {
            for (int i = y * w; i < (y + 1) * w; i++)
            {
                int r = px[4 * i], g = px[4 * i + 1], b = px[4 * i + 2];
                int s = Saturation(r, g, b);
                saturation[i] = (byte)s;
                if (IsCertainInk(r, g, b, s, options.RedInkMaxHaematoxylinShare)) certainInk[i] = 255;
            }
        });
        var ink = FindInk(image, saturation, certainInk, options);

        var blurred = BinaryMorphology.MedianBlur(saturation, w, h, options.MedianBlurSize);
        // Otsu on the pixels that are not ink: vivid ink would otherwise pull the threshold above the tissue.
        var histogram = new long[256];
        for (int i = 0; i < n; i++) if (ink[i] == 0) histogram[blurred[i]]++;
        int otsu = histogram.Sum() > 0 ? BinaryMorphology.OtsuThreshold(histogram) : 255;
        int threshold = Math.Clamp(otsu, options.MinSaturation, Math.Max(options.MinSaturation, options.MaxSaturationThreshold));
        bool cut = !options.KeepInk;
        var mask = new byte[n];
        for (int i = 0; i < n; i++) mask[i] = blurred[i] > threshold && (ink[i] == 0 || !cut) ? (byte)255 : (byte)0;
        mask = BinaryMorphology.Close(mask, w, h, options.CloseSize);
        if (options.FillHoles) mask = BinaryMorphology.FillHoles(mask, w, h);
        // Ink over tissue stays excluded: the patches under it would show the ink.
        if (cut) for (int i = 0; i < n; i++) if (ink[i] != 0) mask[i] = 0;
        mask = BinaryMorphology.RemoveSmallComponents(mask, w, h, Math.Max(1, (int)(options.MinComponentFraction * n)));
        return new TissueMask(mask, w, h, (double)level0Width / w, (double)level0Height / h, threshold, image, ink);
    }

    /// <summary>
    /// Pen strokes: blobs of certain ink too large to be red blood cells or stain specks, followed through the
    /// ink-coloured or smooth stained pixels around them (the stroke's blurred halo) and dilated by a few pixels for
    /// its rim.
    /// </summary>
    static byte[] FindInk(RgbaImage image, byte[] saturation, byte[] certainInk, TissueDetectionOptions options)
    {
        int w = image.Width, h = image.Height, n = w * h;
        if (Array.IndexOf(certainInk, (byte)255) < 0) return new byte[n];
        var strokes = BinaryMorphology.RemoveSmallComponents(certainInk, w, h, Math.Max(4, (int)(options.MinInkFraction * n)));
        if (Array.IndexOf(strokes, (byte)255) < 0) return strokes;
        // Only on a slide with pen strokes: the pixels a stroke may be followed through, ink-coloured or smooth and stained.
        var px = image.Pixels;
        var grey = new float[n];
        for (int i = 0; i < n; i++) grey[i] = (px[4 * i] + px[4 * i + 1] + px[4 * i + 2]) / 3f;
        var texture = GreyFilters.LocalStandardDeviation(grey, w, h, 2);
        var followed = new byte[n];
        Parallel.For(0, h, y =>
        {
            for (int i = y * w; i < (y + 1) * w; i++)
                if ((saturation[i] > 40 && texture[i] < options.SmoothInkTexture)
                    || IsInkColoured(px[4 * i], px[4 * i + 1], px[4 * i + 2], saturation[i]))
                    followed[i] = 255;
        });
        int halo = Math.Max(options.MinInkReachPixels, (int)Math.Round(options.InkMarginFraction * Math.Max(w, h)));
        var ink = BinaryMorphology.GrowWithin(strokes, followed, w, h, halo);
        return options.InkEdgePixels > 0 ? BinaryMorphology.Dilate(ink, w, h, 2 * options.InkEdgePixels + 1) : ink;
    }

    /// <summary>
    /// Ink that no tissue looks like: green or blue marker by hue; or red marker (red hue, blue no higher than green)
    /// that has no haematoxylin (<see cref="TissueDetectionOptions.RedInkMaxHaematoxylinShare"/>) or is a dark pure
    /// red. Strongly eosinophilic tissue (keratin, muscle, dense inflamed stroma) shares red marker's hue but carries
    /// haematoxylin, and eosin keeps blue above green.
    /// </summary>
    public static bool IsCertainInk(int r, int g, int b, int saturation, double redInkMaxHaematoxylinShare)
    {
        double hue = Hue(r, g, b);
        if (IsGreenOrBlueInk(hue, saturation)) return true;
        if (saturation <= 100 || !IsRedInkColoured(r, g, b, saturation, hue)) return false;
        return ColourDeconvolution.HaematoxylinShareAt(r, g, b) < redInkMaxHaematoxylinShare || (b - g <= 10 && g < 60);
    }

    /// <summary>
    /// Ink-coloured, marker ink or not: the pixels a pen stroke is followed through. Green and blue marker lie at
    /// 70-235 degrees, where haematoxylin (240-300) and eosin (300-345, blue well above green) do not; red marker
    /// lies at 330-20 degrees with blue close to green, vivid, or as a pale tint without haematoxylin (its halo).
    /// </summary>
    public static bool IsInkColoured(int r, int g, int b, int saturation)
    {
        double hue = Hue(r, g, b);
        return IsGreenOrBlueInk(hue, saturation) || IsRedInkColoured(r, g, b, saturation, hue);
    }

    static bool IsGreenOrBlueInk(double hue, int saturation) => saturation > 40 && hue is >= 70 and < 235;

    static bool IsRedInkColoured(int r, int g, int b, int saturation, double hue) =>
        saturation > 25 && b - g < 25 && (hue is >= 330 or < 20)
        && (saturation > 100 || ColourDeconvolution.HaematoxylinAt(r, g, b) < 0);

    /// <summary>OpenCV's 8-bit HSV saturation of a pixel.</summary>
    static int Saturation(int r, int g, int b)
    {
        int max = Math.Max(r, Math.Max(g, b)), min = Math.Min(r, Math.Min(g, b));
        return SaturationTable[(max << 8) | (max - min)];
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
