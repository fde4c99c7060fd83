using Histo.Imaging;
using Histo.IO;

namespace Histo.Nuclei;

/// <summary>
/// The settings of <see cref="NucleusDetector"/>, in microns so that one set works at 20x and 40x. The defaults are
/// QuPath's cell detection defaults (WatershedCellDetection: background radius 8 um, sigma 1.5 um, area 10-400 um^2) where
/// QuPath has the setting. Two are Histo's: the threshold is Otsu's per image unless a fixed OD is given, because QuPath's
/// 0.1 OD finds most of a darkly stained TCGA tile (MoNuSeg: foreground Dice 0.40-0.48 at 0.1 OD, 0.66-0.72 with Otsu); and
/// the seed radius (QuPath splits by shape with its own maxima finder).
/// </summary>
public sealed record NucleusDetectorSettings
{
    /// <summary>Radius of the grey opening that estimates the haematoxylin background, subtracted before thresholding.</summary>
    public double BackgroundRadiusMicrons { get; init; } = 8;
    /// <summary>Gaussian smoothing of the background-subtracted haematoxylin.</summary>
    public double SigmaMicrons { get; init; } = 1.5;
    /// <summary>Haematoxylin OD above the background that counts as nucleus; null: Otsu's threshold of each image's (tile's)
    /// smoothed, background-subtracted haematoxylin.</summary>
    public double? Threshold { get; init; }
    /// <summary>Seeds of the watershed are distance-transform maxima at least this far apart (a square window of this
    /// radius); smaller splits more.</summary>
    public double SeedRadiusMicrons { get; init; } = 2;
    public double MinAreaMicrons { get; init; } = 10;
    public double MaxAreaMicrons { get; init; } = 400;

    public void Validate()
    {
        Require.Positive("--background-radius", BackgroundRadiusMicrons);
        Require.NonNegative("--sigma", SigmaMicrons);
        if (Threshold is { } t) Require.Positive("--threshold", t);
        Require.Positive("--seed-radius", SeedRadiusMicrons);
        Require.NonNegative("--min-area", MinAreaMicrons);
        if (!(MaxAreaMicrons > MinAreaMicrons) || double.IsInfinity(MaxAreaMicrons))
            throw new UsageException($"--max-area {MaxAreaMicrons} must be a finite number above --min-area {MinAreaMicrons}");
    }

    /// <summary>A length in microns as whole pixels at <paramref name="mpp"/> microns per pixel (at least 1).</summary>
    internal static int Pixels(double microns, double mpp) => Math.Max(1, (int)Math.Round(microns / mpp));
}

/// <summary>The nuclei of one image: instance labels (0 background, 1..N) and the haematoxylin OD they were found in.</summary>
public sealed record NucleusSegmentation(LabelMap Labels, float[] Haematoxylin, int Count);

/// <summary>
/// A nucleus detector that needs no training, after QuPath's cell detection: haematoxylin by colour deconvolution
/// (<see cref="ColourDeconvolution"/>), its background (a grey opening) subtracted, Gaussian smoothing, a threshold (Otsu,
/// or a fixed OD), holes filled; touching nuclei split by a seeded watershed on the distance transform (seeds: its local maxima);
/// nuclei outside the area range dropped. Every step has SciPy/scikit-image semantics, so
/// tools/reference/nuclei_baseline_reference.py can run the same recipe.
/// </summary>
public static class NucleusDetector
{
    /// <param name="stepDone">Called with each step's name as it ends (Histo.Bench nuclei times them).</param>
    public static NucleusSegmentation Detect(RgbaImage image, double mpp, NucleusDetectorSettings settings,
        Action<string>? stepDone = null)
    {
        Require.Positive("--mpp", mpp);
        int w = image.Width, h = image.Height;
        var haematoxylin = ColourDeconvolution.Haematoxylin(image);
        stepDone?.Invoke("colour deconvolution");

        // ============ foreground: background-subtracted, smoothed haematoxylin above a threshold ============
        var background = GreyFilters.Opening(haematoxylin, w, h, NucleusDetectorSettings.Pixels(settings.BackgroundRadiusMicrons, mpp));
        var signal = new float[haematoxylin.Length];
        for (int i = 0; i < signal.Length; i++) signal[i] = haematoxylin[i] - background[i];
        stepDone?.Invoke("background opening");
        var smoothed = GreyFilters.Gaussian(signal, w, h, settings.SigmaMicrons / mpp);
        stepDone?.Invoke("gaussian");
        double threshold = settings.Threshold ?? OtsuThreshold(smoothed);
        var mask = new byte[smoothed.Length];
        for (int i = 0; i < mask.Length; i++) mask[i] = smoothed[i] > threshold ? (byte)255 : (byte)0;
        mask = BinaryMorphology.FillHoles(mask, w, h);
        stepDone?.Invoke("threshold, fill holes");

        // ============ split touching nuclei: watershed of -distance from seeds at the distance's local maxima ============
        var distance = GreyFilters.DistanceTransform(mask, w, h);
        stepDone?.Invoke("distance transform");
        var peaks = GreyFilters.Maximum(distance, w, h, NucleusDetectorSettings.Pixels(settings.SeedRadiusMicrons, mpp));
        var seedMask = new byte[mask.Length];
        for (int i = 0; i < mask.Length; i++) seedMask[i] = mask[i] != 0 && distance[i] >= peaks[i] ? (byte)255 : (byte)0;
        var (seeds, _) = BinaryMorphology.ConnectedComponents(seedMask, w, h); // a plateau of maxima is one seed
        stepDone?.Invoke("seeds (local maxima)");
        var elevation = new float[distance.Length];
        for (int i = 0; i < elevation.Length; i++) elevation[i] = -distance[i];
        var labels = Watershed.Flood(elevation, seeds, mask, w, h);
        stepDone?.Invoke("watershed");

        // ============ size filter, labels renumbered 1..N in order ============
        double pixelArea = mpp * mpp;
        int maxLabel = labels.Length == 0 ? 0 : labels.Max();
        var area = new int[maxLabel + 1];
        foreach (int l in labels) area[l]++;
        var renumbered = new int[maxLabel + 1];
        int count = 0;
        for (int l = 1; l <= maxLabel; l++)
        {
            double microns = area[l] * pixelArea;
            if (area[l] > 0 && microns >= settings.MinAreaMicrons && microns <= settings.MaxAreaMicrons) renumbered[l] = ++count;
        }
        for (int i = 0; i < labels.Length; i++) labels[i] = renumbered[labels[i]];
        stepDone?.Invoke("size filter");
        return new NucleusSegmentation(new LabelMap(w, h, labels), haematoxylin, count);
    }

    /// <summary>
    /// Otsu's threshold as scikit-image's <c>threshold_otsu(values, nbins=256)</c> computes it for floating-point images: a
    /// histogram of 256 equal bins between the minimum and the maximum, the split between bins i and i + 1 that maximises
    /// w1 w2 (m1 - m2)^2, and the centre of bin i returned; foreground is what lies above it.
    /// </summary>
    public static double OtsuThreshold(float[] values)
    {
        const int bins = 256;
        double min = values.Min(), max = values.Max();
        if (!(max > min)) return min;
        var counts = new long[bins];
        double scale = bins / (max - min);
        foreach (float v in values) counts[Math.Min(bins - 1, (int)((v - min) * scale))]++;
        double total = values.Length, sumAll = 0;
        var centre = new double[bins];
        for (int i = 0; i < bins; i++)
        {
            centre[i] = min + (i + 0.5) / scale;
            sumAll += counts[i] * centre[i];
        }
        double weightBelow = 0, sumBelow = 0, best = double.NegativeInfinity;
        int split = 0;
        for (int i = 0; i < bins - 1; i++)
        {
            weightBelow += counts[i];
            sumBelow += counts[i] * centre[i];
            double weightAbove = total - weightBelow;
            double gap = sumBelow / weightBelow - (sumAll - sumBelow) / weightAbove;
            double between = weightBelow * weightAbove * gap * gap;
            if (between > best) { best = between; split = i; }
        }
        return centre[split];
    }
}
