using Histo.Imaging;
using Histo.IO;
using Histo.Slides;
using SkiaSharp;

namespace Histo.Reports;

/// <summary>
/// Attention (or instance-score) heatmaps: each patch's score, turned into its percentile within the slide
/// (as CLAM does, so a few extreme scores do not wash out the rest), coloured with a perceptual colour map
/// and blended over the slide thumbnail, with a colour bar; and the scored tiles as QuPath GeoJSON
/// (detections with an "attention" measurement). Memory follows the thumbnail and the patch count.
/// </summary>
public static class Heatmap
{
    public static void Write(WholeSlide slide, PatchCoordinates coords, float[] scores, string pngPath, string geoJsonPath, string title, int longestSide = 2048)
    {
        if (scores.Length != coords.Count) throw new HistoException($"{slide.Path}: {scores.Length} scores for {coords.Count} patches; features and coordinates disagree");
        var percentile = Percentiles(scores);
        var thumb = SlideThumbnail.Read(slide, longestSide);
        double sx = thumb.Width / (double)slide.Width, sy = thumb.Height / (double)slide.Height;
        double footprint = coords.PatchSizeLevel0 > 0 ? coords.PatchSizeLevel0 : coords.PatchSize * slide.Levels[Math.Min(coords.PatchLevel, slide.Levels.Count - 1)].Downsample;
        int barHeight = 60;
        var canvasImage = RgbaImage.Filled(thumb.Width, thumb.Height + barHeight, 255, 255, 255);
        canvasImage.Draw(canvas =>
        {
            using var thumbBitmap = thumb.AsBitmap();
            canvas.DrawBitmap(thumbBitmap, 0, 0);
            using var fill = new SKPaint { Style = SKPaintStyle.Fill, IsAntialias = false };
            for (int k = 0; k < coords.Count; k++)
            {
                var (r, g, b) = Viridis(percentile[k]);
                fill.Color = new SKColor(r, g, b, 150);
                canvas.DrawRect((float)(coords.Coords[k, 0] * sx), (float)(coords.Coords[k, 1] * sy), (float)(footprint * sx), (float)(footprint * sy), fill);
            }
            // Colour bar: low to high percentile of attention within the slide.
            int barWidth = Math.Min(thumb.Width - 40, 512), x0 = 20, y0 = thumb.Height + 12;
            for (int i = 0; i < barWidth; i++)
            {
                var (r, g, b) = Viridis(i / (double)(barWidth - 1));
                fill.Color = new SKColor(r, g, b);
                canvas.DrawRect(x0 + i, y0, 1, 16, fill);
            }
            using var font = new SKFont(SKTypeface.Default, 13);
            using var text = new SKPaint { Color = SKColors.Black, IsAntialias = true };
            canvas.DrawText("low", x0, y0 + 32, SKTextAlign.Left, font, text);
            canvas.DrawText("high", x0 + barWidth, y0 + 32, SKTextAlign.Right, font, text);
            canvas.DrawText(title, x0 + barWidth / 2f, y0 + 32, SKTextAlign.Center, font, text);
        });
        canvasImage.Save(pngPath);

        var features = Enumerable.Range(0, coords.Count).Select(k =>
        {
            double x = coords.Coords[k, 0], y = coords.Coords[k, 1];
            var ring = new[] { (x, y), (x + footprint, y), (x + footprint, y + footprint), (x, y + footprint) };
            var (r, g, b) = Viridis(percentile[k]);
            return new GeoJson.Feature([ring], "Attention", (r, g, b), "detection",
                new Dictionary<string, double> { ["attention"] = scores[k], ["attention_percentile"] = percentile[k] });
        });
        AtomicFile.WriteAllText(geoJsonPath, GeoJson.FeatureCollection(features));
    }

    /// <summary>Rank of each score in [0, 1] (ties share their mean rank).</summary>
    public static double[] Percentiles(float[] scores)
    {
        if (scores.Length == 1) return [1.0];
        return Evaluation.SlideMetrics.AverageRanks(scores.Select(s => (double)s).ToList()).Select(r => (r - 1) / (scores.Length - 1)).ToArray();
    }

    /// <summary>Viridis (matplotlib's perceptually uniform map), linearly interpolated between 9 anchors.</summary>
    public static (byte R, byte G, byte B) Viridis(double t)
    {
        (double, double, double)[] anchors =
        [
            (68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
            (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37),
        ];
        t = Math.Clamp(t, 0, 1) * (anchors.Length - 1);
        int i = Math.Min((int)t, anchors.Length - 2);
        double f = t - i;
        var (r0, g0, b0) = anchors[i];
        var (r1, g1, b1) = anchors[i + 1];
        return ((byte)(r0 + (r1 - r0) * f), (byte)(g0 + (g1 - g0) * f), (byte)(b0 + (b1 - b0) * f));
    }
}
