using System.Diagnostics;
using System.Globalization;
using System.Text;
using Histo.Imaging;
using Histo.IO;
using Histo.Slides;

namespace Histo.Nuclei;

/// <summary>Options of <c>histo nuclei</c> over slides or image tiles.</summary>
public sealed record NucleiJobOptions
{
    public required IReadOnlyList<string> Inputs { get; init; }
    public required string OutputDir { get; init; }
    /// <summary>Resolution nuclei are detected at (slides are read at it); for image tiles, their pixel size.</summary>
    public double Mpp { get; init; } = 0.25;
    /// <summary>Tile side in pixels at <see cref="Mpp"/>, overlap included.</summary>
    public int Tile { get; init; } = 1024;
    /// <summary>Overlap of neighbouring tiles: nuclei are owned by the tile whose core (the tile less half the overlap on each
    /// side that has a neighbour) holds their centroid, so it must exceed a nucleus' diameter.</summary>
    public int Overlap { get; init; } = NucleusOverlap;
    const int NucleusOverlap = 64;

    /// <summary>The least overlap that keeps whole cells in the tile that owns them: the nuclei's 64 px plus the expansion on
    /// both sides.</summary>
    public static int OverlapFor(double cellExpansionMicrons, double mpp) =>
        NucleusOverlap + 2 * (int)Math.Ceiling(cellExpansionMicrons / mpp);
    /// <summary>Tiles with less tissue than this (in the tissue mask) are not read.</summary>
    public double MinTissue { get; init; } = 0.05;
    public NucleusDetectorSettings Detector { get; init; } = new();
    /// <summary>Grow each nucleus into a cell by this many microns (QuPath: 5); 0 writes nuclei only.</summary>
    public double CellExpansionMicrons { get; init; }
    public (int Index, int Count)? Shard { get; init; }
    public bool SkipErrors { get; init; }
    public bool Overwrite { get; init; }

    public void Validate()
    {
        Require.Positive("--mpp", Mpp);
        Require.AtLeast("--tile", Tile, 64);
        Require.AtLeast("--overlap", Overlap, 0);
        if (Overlap >= Tile / 2) throw new UsageException($"--overlap {Overlap} must be less than half of --tile {Tile}");
        Require.InRange("--min-tissue", MinTissue, 0, 1);
        Require.NonNegative("--cell-expansion", CellExpansionMicrons);
        // A cell owned by a tile (its nucleus' centroid in the core) must lie inside the tile: the overlap's half covers
        // the nucleus' radius (up to 32 px) plus the expansion.
        if (CellExpansionMicrons > 0 && Overlap < OverlapFor(CellExpansionMicrons, Mpp))
            throw new UsageException($"--overlap {Overlap} is too small for --cell-expansion {CellExpansionMicrons} um at {Mpp} um/px: "
                + $"cells would be cut at tile seams; use --overlap {OverlapFor(CellExpansionMicrons, Mpp)} or more");
        Detector.Validate();
    }
}

/// <summary>Progress within one input: tiles done of all, nuclei so far.</summary>
public sealed record NucleiProgress(string Name, int TilesDone, int Tiles, long Nuclei);

/// <summary>
/// <c>histo nuclei</c>: detects nuclei (<see cref="NucleusDetector"/>) in whole slides, tile by tile over the tissue, or in image
/// tiles, and writes per input <c>NAME.geojson</c> (QuPath detections: nucleus polygon in level-0 pixels and QuPath's nucleus
/// measurements), <c>NAME.csv</c> (one row per nucleus) and <c>NAME.overlay.png</c> (outlines over a region); for image tiles
/// also <c>labels/NAME.png</c>, a 16-bit label map <c>histo nuclei-eval</c> scores. Outputs are streamed to temporary files and
/// renamed, the GeoJSON last, so an input whose GeoJSON exists is done and a rerun skips it; memory is one tile's, whatever
/// the slide's size.
/// </summary>
public static class NucleiJob
{
    public const string SettingsFile = "nuclei.json";
    static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg", ".bmp"];

    public static IReadOnlyList<SlideOutcome> Run(NucleiJobOptions options, Action<SlideOutcome>? onInput = null,
        Action<NucleiProgress>? progress = null, Action<string>? log = null)
    {
        options.Validate();
        var files = Expand(options.Inputs);
        if (options.Shard is { } shard) files = files.Where(f => SlideBatch.InShard(WholeSlide.SlideIdOf(f), shard)).ToList();
        using var folder = JobFolder.Open(options.OutputDir, "histo nuclei", options.Shard);
        foreach (var removed in folder.RemovedTemporaries) log?.Invoke($"removed {removed}, left by a run that was killed");
        folder.RecordOrCheckSettings(SettingsFile, options with { Inputs = [], OutputDir = "", Shard = null, SkipErrors = false,
            Overwrite = false }, options.Overwrite);
        return SlideBatch.Run(files, 1, options.SkipErrors, file => ProcessOne(file, options, progress), onInput,
            Path.Combine(options.OutputDir, SlideBatch.ProcessListName(options.Shard)));
    }

    /// <summary>Slides and image tiles, folders expanded (sorted).</summary>
    public static List<string> Expand(IEnumerable<string> inputs) =>
        SlideBatch.Expand(inputs, f => IsImage(f) || WholeSlide.Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()));

    static bool IsImage(string path) => ImageExtensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    static SlideOutcome ProcessOne(string file, NucleiJobOptions options, Action<NucleiProgress>? progress)
    {
        string name = WholeSlide.SlideIdOf(file);
        string geojsonPath = Path.Combine(options.OutputDir, name + ".geojson");
        var clock = Stopwatch.StartNew();
        try
        {
            if (!options.Overwrite && File.Exists(geojsonPath))
                return new SlideOutcome(name, file, SlideStatus.Skipped, 0, 0, null);
            long count = IsImage(file) ? DetectImage(file, name, options, progress) : DetectSlide(file, name, options, progress);
            return new SlideOutcome(name, file, SlideStatus.Done, (int)Math.Min(int.MaxValue, count), clock.Elapsed.TotalSeconds, null);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return SlideOutcome.Failure(name, file, clock.Elapsed.TotalSeconds, e);
        }
    }

    static long DetectImage(string file, string name, NucleiJobOptions options, Action<NucleiProgress>? progress)
    {
        var image = RgbaImage.Load(file);
        var segmentation = NucleusDetector.Detect(image, options.Mpp, options.Detector);
        var cells = Cells(segmentation, options);
        var nuclei = NucleusMeasurements.Measure(segmentation, options.Mpp, cells: cells);
        Directory.CreateDirectory(Path.Combine(options.OutputDir, "labels"));
        LabelMapFile.WritePng(Path.Combine(options.OutputDir, "labels", name + ".png"), segmentation.Labels);
        if (cells is not null)
        {
            Directory.CreateDirectory(Path.Combine(options.OutputDir, "cells"));
            LabelMapFile.WritePng(Path.Combine(options.OutputDir, "cells", name + ".png"), cells);
        }
        using (var output = new NucleiOutput(options.OutputDir, name, cells is not null))
        {
            output.Add(nuclei);
            Overlay(image, segmentation.Labels, cells).Save(Path.Combine(options.OutputDir, name + ".overlay.png"));
            output.Commit();
        }
        progress?.Invoke(new NucleiProgress(name, 1, 1, nuclei.Count));
        return nuclei.Count;
    }

    static long DetectSlide(string file, string name, NucleiJobOptions options, Action<NucleiProgress>? progress)
    {
        using var slide = WholeSlide.Open(file);
        var tiling = new TilingOptions { PatchSize = options.Tile, Overlap = options.Overlap, TargetMpp = options.Mpp,
            MinTissue = options.MinTissue };
        var (coords, _) = Tiler.Tile(slide, tiling);
        double downsample = coords.Downsample, step = (options.Tile - options.Overlap) * downsample;
        var tiles = new HashSet<(long, long)>();
        for (int k = 0; k < coords.Count; k++) tiles.Add((coords.Coords[k, 0], coords.Coords[k, 1]));
        bool Has(long x, long y) => tiles.Contains((x, y));
        long total = 0;
        (int Count, RgbaImage Image, LabelMap Labels, LabelMap? Cells)? densest = null;
        using var output = new NucleiOutput(options.OutputDir, name, options.CellExpansionMicrons > 0);
        for (int k = 0; k < coords.Count; k++)
        {
            long x = coords.Coords[k, 0], y = coords.Coords[k, 1];
            var image = Tiler.ReadPatch(slide, coords, x, y);
            var segmentation = NucleusDetector.Detect(image, options.Mpp, options.Detector);
            var cells = Cells(segmentation, options);
            // The tile's core: half the overlap in from each side that has a neighbouring tile; the whole side where none does.
            double half = options.Overlap / 2.0;
            long sx = (long)Math.Round(step), sy = sx;
            double left = Has(x - sx, y) ? half : 0, top = Has(x, y - sy) ? half : 0;
            double right = options.Tile - (Has(x + sx, y) ? half : 0), bottom = options.Tile - (Has(x, y + sy) ? half : 0);
            var nuclei = NucleusMeasurements.Measure(segmentation, options.Mpp, x, y, downsample,
                (cx, cy) => cx + 0.5 >= left && cx + 0.5 < right && cy + 0.5 >= top && cy + 0.5 < bottom, cells);
            output.Add(nuclei);
            total += nuclei.Count;
            if (densest is null || nuclei.Count > densest.Value.Count) densest = (nuclei.Count, image, segmentation.Labels, cells);
            progress?.Invoke(new NucleiProgress(name, k + 1, coords.Count, total));
        }
        if (densest is { } d) Overlay(d.Image, d.Labels, d.Cells).Save(Path.Combine(options.OutputDir, name + ".overlay.png"));
        output.Commit();
        return total;
    }

    static LabelMap? Cells(NucleusSegmentation segmentation, NucleiJobOptions options) => options.CellExpansionMicrons > 0
        ? CellExpansion.Expand(segmentation.Labels, options.CellExpansionMicrons / options.Mpp) : null;

    /// <summary>The image with each nucleus' boundary pixels (those with a 4-neighbour of another label) in green, and each
    /// cell's in yellow.</summary>
    public static RgbaImage Overlay(RgbaImage image, LabelMap labels, LabelMap? cells = null)
    {
        var overlay = new RgbaImage(image.Width, image.Height, (byte[])image.Pixels.Clone());
        if (cells is not null) DrawBoundaries(overlay, cells, (255, 220, 0));
        DrawBoundaries(overlay, labels, (0, 255, 0));
        return overlay;
    }

    static void DrawBoundaries(RgbaImage overlay, LabelMap labels, (byte R, byte G, byte B) colour)
    {
        int w = labels.Width, h = labels.Height;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int l = labels.Labels[y * w + x];
                if (l == 0) continue;
                bool edge = x == 0 || y == 0 || x == w - 1 || y == h - 1 || labels.Labels[y * w + x - 1] != l
                    || labels.Labels[y * w + x + 1] != l || labels.Labels[(y - 1) * w + x] != l || labels.Labels[(y + 1) * w + x] != l;
                if (!edge) continue;
                int o = (y * w + x) * 4;
                overlay.Pixels[o] = colour.R; overlay.Pixels[o + 1] = colour.G; overlay.Pixels[o + 2] = colour.B;
            }
    }

    /// <summary>The GeoJSON and CSV of one input, streamed to temporary files; <see cref="Commit"/> renames them (GeoJSON last).</summary>
    sealed class NucleiOutput : IDisposable
    {
        readonly string _geojson, _csv, _geojsonTmp, _csvTmp;
        readonly StreamWriter _geojsonWriter, _csvWriter;
        readonly GeoJson.Writer _features;
        bool _committed;

        readonly bool _cells;

        public NucleiOutput(string dir, string name, bool cells)
        {
            _cells = cells;
            _geojson = Path.Combine(dir, name + ".geojson");
            _csv = Path.Combine(dir, name + ".csv");
            _geojsonTmp = AtomicFile.StagingPath(_geojson);
            _csvTmp = AtomicFile.StagingPath(_csv);
            _geojsonWriter = new StreamWriter(_geojsonTmp, false, new UTF8Encoding(false));
            _csvWriter = new StreamWriter(_csvTmp, false, new UTF8Encoding(false));
            _features = new GeoJson.Writer(_geojsonWriter);
            _csvWriter.Write("nucleus_id,centroid_x,centroid_y,area_um2,perimeter_um,circularity,eccentricity,hematoxylin_od_mean"
                + (cells ? ",cell_area_um2\n" : "\n"));
        }

        long _id;

        public void Add(IEnumerable<Nucleus> nuclei)
        {
            foreach (var n in nuclei)
            {
                _id++;
                _features.Add(_cells
                    ? new GeoJson.Feature([n.CellOutline!], "Cell", (200, 160, 0), "cell", n.Measurements(), [n.Outline])
                    : new GeoJson.Feature([n.Outline], "Nucleus", (0, 200, 0), "detection", n.Measurements()));
                _csvWriter.Write(string.Create(CultureInfo.InvariantCulture, $"{_id},{n.CentroidX:0.##},{n.CentroidY:0.##},"
                    + $"{n.AreaMicrons:0.###},{n.PerimeterMicrons:0.###},{n.Circularity:0.####},{n.Eccentricity:0.####},"
                    + $"{n.MeanHaematoxylin:0.####}"));
                _csvWriter.Write(_cells ? string.Create(CultureInfo.InvariantCulture, $",{n.CellAreaMicrons:0.###}\n") : "\n");
            }
        }

        public void Commit()
        {
            _features.Close();
            _geojsonWriter.Dispose();
            _csvWriter.Dispose();
            File.Move(_csvTmp, _csv, overwrite: true);
            File.Move(_geojsonTmp, _geojson, overwrite: true); // last: its presence marks the input as done
            _committed = true;
        }

        public void Dispose()
        {
            if (_committed) return;
            _geojsonWriter.Dispose();
            _csvWriter.Dispose();
            File.Delete(_geojsonTmp);
            File.Delete(_csvTmp);
        }
    }
}
