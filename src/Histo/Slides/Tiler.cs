using Histo.Imaging;
using Histo.IO;
using SkiaSharp;

namespace Histo.Slides;

/// <summary>Options of tiling one slide.</summary>
public sealed record TilingOptions
{
    /// <summary>Patch side in pixels at the target resolution (256 is CLAM's and TRIDENT's default).</summary>
    public int PatchSize { get; init; } = 256;
    /// <summary>Target microns per pixel; exclusive with <see cref="Magnification"/>.</summary>
    public double? TargetMpp { get; init; }
    /// <summary>Target objective magnification (20 means the slide's 20x view); exclusive with <see cref="TargetMpp"/>.</summary>
    public double? Magnification { get; init; }
    /// <summary>Overlap between neighbouring patches, in target pixels.</summary>
    public int Overlap { get; init; }
    /// <summary>Patches with a smaller tissue fraction are dropped.</summary>
    public double MinTissue { get; init; } = 0.5;
    public TissueDetectionOptions Tissue { get; init; } = new();
    /// <summary>Also write each patch as a PNG (patches/&lt;slide_id&gt;/&lt;x&gt;_&lt;y&gt;.png).</summary>
    public bool SavePatches { get; init; }
    /// <summary>Threads that read patch regions in parallel.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Microns per pixel that a 10x objective gives by convention; 20x = 0.5, 40x = 0.25.</summary>
    public const double MicronsPerPixelAt10x = 1.0;

    public void Validate()
    {
        Require.InRange("--patch-size", PatchSize, 16, 8192);
        if (TargetMpp is null == Magnification is null) throw new UsageException("give exactly one of --mpp and --magnification");
        if (TargetMpp is { } m) Require.Positive("--mpp", m);
        if (Magnification is { } g) Require.Positive("--magnification", g);
        if (Overlap < 0
            || Overlap >= PatchSize) throw new UsageException($"--overlap {Overlap} must be at least 0 and below the patch size "
                + $"{PatchSize}");
        Require.InRange("--min-tissue", MinTissue, 0, 1);
        Require.AtLeast("--threads", Threads, 1);
        Tissue.Validate();
    }
}

/// <summary>
/// Cuts a slide's tissue into a grid of patches at a chosen resolution, as CLAM and TRIDENT do: the grid
/// starts at the slide's origin with a step of (patch size - overlap) target pixels, and keeps patches
/// whose tissue fraction (measured on the tissue mask) reaches the threshold. Patches are read from the
/// closest pyramid level at or above the target resolution and resized.
/// </summary>
public static class Tiler
{
    /// <summary>Level-0 microns per pixel, target microns per pixel and the downsample between them.</summary>
    public static (double Level0Mpp, double TargetMpp, double Downsample) ResolveResolution(WholeSlide slide, TilingOptions options,
        double? mppOverride)
    {
        double? mpp0 = mppOverride ?? (slide.Mpp is { } m ? (m.X + m.Y) / 2 : null);
        if (options.TargetMpp is { } target)
        {
            if (mpp0 is null)
                throw new HistoException($"{slide.Path}: the file states no resolution (mpp); pass --mpp-csv FILE with a line "
                    + $"'{slide.SlideId},<mpp>'");
            return (mpp0.Value, target, target / mpp0.Value);
        }
        double magnification = options.Magnification!.Value;
        if (slide.ObjectivePower is { } power)
        {
            double ds = power / magnification;
            double level0 = mpp0 ?? TilingOptions.MicronsPerPixelAt10x * 10 / power;
            return (level0, level0 * ds, ds);
        }
        if (mpp0 is null)
            throw new HistoException($"{slide.Path}: the file states neither objective power nor mpp; pass --mpp-csv FILE with a line "
                + $"'{slide.SlideId},<mpp>'");
        double targetMpp = TilingOptions.MicronsPerPixelAt10x * 10 / magnification;
        return (mpp0.Value, targetMpp, targetMpp / mpp0.Value);
    }

    /// <summary>Finds tissue and lays the grid; reads no patch pixels.</summary>
    public static (PatchCoordinates Coordinates, TissueMask Mask) Tile(WholeSlide slide, TilingOptions options, double? mppOverride = null)
    {
        options.Validate();
        var (mpp0, targetMpp, downsample) = ResolveResolution(slide, options, mppOverride);
        if (downsample < 0.999)
            throw new HistoException($"{slide.Path}: target {targetMpp:0.###} mpp is finer than the scan ({mpp0:0.###} mpp); choose "
                + $"--mpp of at least {mpp0:0.###}");
        var mask = TissueDetector.Detect(slide, options.Tissue);
        double footprint = options.PatchSize * downsample, step = (options.PatchSize - options.Overlap) * downsample;
        var kept = new List<(long X, long Y)>();
        for (int j = 0; j * step + footprint <= slide.Height + 1e-6; j++)
        {
            double y = j * step;
            for (int i = 0; i * step + footprint <= slide.Width + 1e-6; i++)
            {
                double x = i * step;
                if (mask.Fraction(x, y, x + footprint, y + footprint) >= options.MinTissue)
                    kept.Add(((long)Math.Round(x), (long)Math.Round(y)));
            }
        }
        var coords = new long[kept.Count, 2];
        for (int k = 0; k < kept.Count; k++) { coords[k, 0] = kept[k].X; coords[k, 1] = kept[k].Y; }
        int level = slide.BestLevelForDownsample(downsample);
        var result = new PatchCoordinates(slide.SlideId, coords, options.PatchSize, level, (int)Math.Round(footprint),
            targetMpp, downsample, mpp0, options.Overlap, options.MinTissue);
        return (result, mask);
    }

    /// <summary>
    /// Reads one patch: its level-0 square from the patch level, resized to <paramref name="outputSize"/>
    /// (the patch size by default; an encoder's input size when embedding, so patches are resized once).
    /// Files from CLAM state no level-0 size: there the patch size applies at the patch level.
    /// </summary>
    public static RgbaImage ReadPatch(WholeSlide slide, PatchCoordinates coords, long x, long y, int? outputSize = null)
    {
        var level = slide.Levels[Math.Min(coords.PatchLevel, slide.Levels.Count - 1)];
        double footprint = coords.PatchSizeLevel0 > 0 ? coords.PatchSizeLevel0 : coords.PatchSize * level.Downsample;
        int size = Math.Max(1, (int)Math.Round(footprint / level.Downsample));
        var region = slide.ReadRegion(x, y, level.Index, size, size);
        int output = outputSize ?? coords.PatchSize;
        return region.Resize(output, output);
    }

    /// <summary>Writes every patch as PNG into <paramref name="dir"/>, reading regions on several threads.</summary>
    public static void SavePatches(WholeSlide slide, PatchCoordinates coords, string dir, int threads, Action<int>? progress = null)
    {
        Directory.CreateDirectory(dir);
        int done = 0;
        Parallel.For(0, coords.Count, new ParallelOptions { MaxDegreeOfParallelism = threads }, k =>
        {
            long x = coords.Coords[k, 0], y = coords.Coords[k, 1];
            ReadPatch(slide, coords, x, y).Save(Path.Combine(dir, $"{x}_{y}.png"));
            progress?.Invoke(Interlocked.Increment(ref done));
        });
    }

    /// <summary>A small preview: the thumbnail with every kept patch outlined.</summary>
    public static RgbaImage Preview(TissueMask mask, PatchCoordinates coords, int longestSide = 1024)
    {
        var thumb = mask.Thumbnail;
        double scale = Math.Min(1.0, longestSide / (double)Math.Max(thumb.Width, thumb.Height));
        var preview = thumb.Resize(Math.Max(1, (int)(thumb.Width * scale)), Math.Max(1, (int)(thumb.Height * scale)));
        double sx = preview.Width / (mask.Width * mask.ScaleX), sy = preview.Height / (mask.Height * mask.ScaleY);
        float side = (float)(coords.PatchSizeLevel0 * sx), sideY = (float)(coords.PatchSizeLevel0 * sy);
        preview.Draw(canvas =>
        {
            using var paint = new SKPaint { Color = new SKColor(0, 150, 0, 220), Style = SKPaintStyle.Stroke, StrokeWidth = 1,
                IsAntialias = false };
            for (int k = 0; k < coords.Count; k++)
                canvas.DrawRect((float)(coords.Coords[k, 0] * sx), (float)(coords.Coords[k, 1] * sy), side, sideY, paint);
        });
        return preview;
    }
}
