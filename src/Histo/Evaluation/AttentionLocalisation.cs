using Histo.Imaging;
using Histo.IO;

namespace Histo.Evaluation;

/// <summary>
/// Does attention find the tumour? Patch-level ROC AUC of instance scores against a ground-truth tumour
/// mask: patches with at least half their area in the mask are positive, patches with none negative,
/// the ambiguous ones in between left out.
/// </summary>
public static class AttentionLocalisation
{
    /// <param name="mask">Ground-truth tumour mask; one mask pixel covers <paramref name="maskDownsample"/> level-0 pixels.</param>
    public static double PatchAuc(float[] scores, PatchFeatures features, RgbaImage mask, int maskDownsample)
    {
        int size = features.PatchSizeLevel0 > 0 ? features.PatchSizeLevel0 : features.PatchSize;
        var s = new List<double>();
        var positive = new List<bool>();
        for (int k = 0; k < features.Count; k++)
        {
            double fraction = MaskFraction(mask, maskDownsample, features.Coords[k, 0], features.Coords[k, 1], size);
            if (fraction > 0 && fraction < 0.5) continue;
            s.Add(scores[k]);
            positive.Add(fraction >= 0.5);
        }
        return SlideMetrics.RocAuc(s, positive);
    }

    public static double MaskFraction(RgbaImage mask, int downsample, long x, long y, int size)
    {
        int x0 = (int)(x / downsample), y0 = (int)(y / downsample);
        int x1 = (int)Math.Ceiling((x + size) / (double)downsample), y1 = (int)Math.Ceiling((y + size) / (double)downsample);
        int on = 0, total = 0;
        for (int yy = y0; yy < Math.Min(y1, mask.Height); yy++)
            for (int xx = x0; xx < Math.Min(x1, mask.Width); xx++) { total++; if (mask.Pixels[(yy * mask.Width + xx) * 4] > 127) on++; }
        return total == 0 ? 0 : on / (double)total;
    }
}
