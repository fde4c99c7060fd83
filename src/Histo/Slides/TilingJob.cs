using System.Diagnostics;
using Histo.IO;

namespace Histo.Slides;

/// <summary>Options of <c>histo tile</c> over a batch of slides.</summary>
public sealed record TilingJobOptions
{
    public required IReadOnlyList<string> Slides { get; init; }
    public required string OutputDir { get; init; }
    public TilingOptions Tiling { get; init; } = new();
    public string? MppCsv { get; init; }
    public (int Index, int Count)? Shard { get; init; }
    /// <summary>Go on past a failing slide (and report it) instead of stopping.</summary>
    public bool SkipErrors { get; init; }
    /// <summary>Redo slides that are already done.</summary>
    public bool Overwrite { get; init; }
    /// <summary>
    /// Slides tiled at once. Each slide's stages are partly serial (OpenSlide's decode of one band, the
    /// component labelling), so overlapping two slides keeps both cores busy; memory is one thumbnail each.
    /// </summary>
    public int ParallelSlides { get; init; } = Math.Min(2, Environment.ProcessorCount);
}


/// <summary>
/// Tiles a batch of slides into <c>coords/&lt;slide_id&gt;.h5</c> and <c>previews/&lt;slide_id&gt;.png</c>.
/// Every output is written atomically, so a slide whose coordinates file exists is complete: a rerun
/// skips it (unless its settings differ) and redoes the rest. A per-slide status list,
/// <c>process_list.csv</c> (one per shard), records what happened, as CLAM's does.
/// </summary>
public static class TilingJob
{
    /// <summary>The tiling settings of an output folder, recorded by its first run.</summary>
    public const string SettingsFile = "tiling.json";

    public static IReadOnlyList<SlideOutcome> Run(TilingJobOptions options, Action<SlideOutcome>? onSlide = null,
        Action<string>? log = null)
    {
        options.Tiling.Validate();
        var mpps = options.MppCsv is null ? new Dictionary<string, double>() : SlideBatch.ReadMppCsv(options.MppCsv);
        var files = SlideBatch.Expand(options.Slides);
        if (options.Shard is { } shard) files = files.Where(f => SlideBatch.InShard(WholeSlide.SlideIdOf(f), shard)).ToList();
        using var folder = JobFolder.Open(options.OutputDir, "histo tile", options.Shard);
        foreach (var removed in folder.RemovedTemporaries) log?.Invoke($"removed {removed}, left by a run that was killed");
        // Threads change nothing in the output; everything else (resolution by mpp or by magnification included) must match.
        folder.RecordOrCheckSettings(SettingsFile, options.Tiling with { Threads = 0 }, options.Overwrite);
        string coordsDir = Path.Combine(options.OutputDir, "coords"), previewDir = Path.Combine(options.OutputDir, "previews");
        Directory.CreateDirectory(coordsDir);
        Directory.CreateDirectory(previewDir);
        return SlideBatch.Run(files, options.ParallelSlides, options.SkipErrors,
            file => TileOne(file, options, mpps, coordsDir, previewDir), onSlide,
            Path.Combine(options.OutputDir, SlideBatch.ProcessListName(options.Shard)));
    }

    static SlideOutcome TileOne(string file, TilingJobOptions options, Dictionary<string, double> mpps, string coordsDir, string previewDir)
    {
        string slideId = WholeSlide.SlideIdOf(file);
        string coordsPath = Path.Combine(coordsDir, slideId + ".h5");
        var clock = Stopwatch.StartNew();
        try
        {
            if (!options.Overwrite && File.Exists(coordsPath))
            {
                var existing = PatchCoordinates.Read(coordsPath);
                if (SameSettings(existing, options.Tiling))
                    return new SlideOutcome(slideId, file, SlideStatus.Skipped, existing.Count, 0, null);
                throw new HistoException($"{coordsPath}: exists with other settings (patch size {existing.PatchSize}, "
                    + $"{existing.TargetMpp:0.###} mpp); pass --overwrite or choose another -o");
            }
            using var slide = WholeSlide.Open(file);
            double? mpp = mpps.TryGetValue(slideId, out double m) ? m : null;
            var (coords, mask) = Tiler.Tile(slide, options.Tiling, mpp);
            if (options.Tiling.SavePatches)
            {
                // Patches go to a temporary folder renamed at the end, so a half-saved slide never looks done.
                string final = Path.Combine(options.OutputDir, "patches", slideId);
                string tmp = AtomicFile.StagingPath(final);
                if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
                Tiler.SavePatches(slide, coords, tmp, options.Tiling.Threads);
                if (Directory.Exists(final)) Directory.Delete(final, true);
                Directory.Move(tmp, final);
            }
            Tiler.Preview(mask, coords).Save(Path.Combine(previewDir, slideId + ".png"));
            coords.Write(coordsPath); // last: its presence marks the slide as done
            return new SlideOutcome(slideId, file, SlideStatus.Done, coords.Count, clock.Elapsed.TotalSeconds, null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return SlideOutcome.Failure(slideId, file, clock.Elapsed.TotalSeconds, e);
        }
    }

    static bool SameSettings(PatchCoordinates existing, TilingOptions options)
    {
        bool resolution = options.TargetMpp is { } t
            ? Math.Abs(existing.TargetMpp - t) < 1e-6
            : true; // magnification runs store the mpp they resolved to; a rerun with the same flags resolves the same way
        return existing.PatchSize == options.PatchSize && existing.Overlap == options.Overlap &&
               (double.IsNaN(existing.MinTissue) || Math.Abs(existing.MinTissue - options.MinTissue) < 1e-9) && resolution;
    }

}
