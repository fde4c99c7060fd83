using System.CommandLine;
using Histo.Nuclei;
using Histo.Slides;

namespace Histo.Cli.Commands;

/// <summary><c>histo nuclei</c>: nuclei of slides or image tiles as QuPath detections, a measurement table and an overlay.</summary>
static class NucleiCommand
{
    public static Command Create()
    {
        var defaults = new NucleiJobOptions { Inputs = [], OutputDir = "" };
        var detector = defaults.Detector;
        var inputs = new Argument<string[]>("inputs") { Description = "Slides, image tiles (PNG, JPEG) or folders of them.",
            Arity = ArgumentArity.OneOrMore };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Output folder: NAME.geojson (QuPath), NAME.csv, "
            + "NAME.overlay.png; labels/NAME.png (and cells/NAME.png) for image tiles.", Required = true };
        var mpp = new Option<double>("--mpp") { Description = "Resolution to detect at, microns per pixel (slides are read at it; for "
            + "image tiles, their pixel size).", DefaultValueFactory = _ => defaults.Mpp };
        var tile = new Option<int>("--tile") { Description = "Tile side in pixels at --mpp.", DefaultValueFactory = _ => defaults.Tile };
        var overlap = new Option<int?>("--overlap") { Description = $"Overlap of neighbouring tiles in pixels (more than a nucleus' "
            + $"diameter; default {defaults.Overlap}, plus twice the cell expansion)." };
        var cellExpansion = new Option<double>("--cell-expansion") { Description = "Grow each nucleus into a cell by this many microns "
            + $"(QuPath's default is {CellExpansion.DefaultMicrons}): QuPath cell objects with nucleusGeometry; 0 writes nuclei only." };
        var minTissue = new Option<double>("--min-tissue") { Description = "Read tiles with at least this tissue fraction.",
            DefaultValueFactory = _ => defaults.MinTissue };
        var model = new Option<string>("--model") { Description = "Detector: baseline (colour deconvolution, threshold, watershed).",
            DefaultValueFactory = _ => "baseline" };
        var threshold = new Option<double?>("--threshold") { Description = "Haematoxylin OD above background that counts as nucleus "
            + "(QuPath's default is 0.1); without it, Otsu's threshold per tile." };
        var sigma = new Option<double>("--sigma")
            { Description = "Gaussian smoothing, microns.", DefaultValueFactory = _ => detector.SigmaMicrons };
        var background = new Option<double>("--background-radius") { Description = "Background estimate's radius, microns.",
            DefaultValueFactory = _ => detector.BackgroundRadiusMicrons };
        var seedRadius = new Option<double>("--seed-radius") { Description = "Least distance between the watershed's seeds, microns "
            + "(smaller splits more).", DefaultValueFactory = _ => detector.SeedRadiusMicrons };
        var minArea = new Option<double>("--min-area")
            { Description = "Smallest nucleus, um^2.", DefaultValueFactory = _ => detector.MinAreaMicrons };
        var maxArea = new Option<double>("--max-area")
            { Description = "Largest nucleus, um^2.", DefaultValueFactory = _ => detector.MaxAreaMicrons };
        var shard = CommonOptions.Shard();
        var skipErrors = new Option<bool>("--skip-errors") { Description = "Go on past inputs that fail and list them at the end." };
        var overwrite = new Option<bool>("--overwrite") { Description = "Redo inputs already done, or change the settings of a folder." };
        var command = new Command("nuclei", "Detect nuclei (QuPath-style, no training) in slides or tiles: QuPath GeoJSON detections "
            + "with area, perimeter, circularity, eccentricity and haematoxylin OD; a CSV; an overlay picture.")
        {
            inputs, output, mpp, tile, overlap, cellExpansion, minTissue, model, threshold, sigma, background, seedRadius, minArea,
                maxArea, shard,
            skipErrors, overwrite,
        };
        command.SetAction(CliRunner.Guard(parse =>
        {
            if (parse.GetValue(model) is var m && m != "baseline")
                throw new UsageException($"--model '{m}': only 'baseline' is available (the learned detector is not built yet)");
            var options = new NucleiJobOptions
            {
                Inputs = parse.GetValue(inputs)!,
                OutputDir = parse.GetValue(output)!.FullName,
                Mpp = parse.GetValue(mpp), Tile = parse.GetValue(tile),
                Overlap = parse.GetValue(overlap) ?? NucleiJobOptions.OverlapFor(parse.GetValue(cellExpansion), parse.GetValue(mpp)),
                CellExpansionMicrons = parse.GetValue(cellExpansion),
                MinTissue = parse.GetValue(minTissue),
                Shard = parse.GetValue(shard) is { } s ? SlideBatch.ParseShard(s) : null,
                SkipErrors = parse.GetValue(skipErrors), Overwrite = parse.GetValue(overwrite),
                Detector = new NucleusDetectorSettings
                {
                    Threshold = parse.GetValue(threshold), SigmaMicrons = parse.GetValue(sigma),
                    BackgroundRadiusMicrons = parse.GetValue(background), SeedRadiusMicrons = parse.GetValue(seedRadius),
                    MinAreaMicrons = parse.GetValue(minArea), MaxAreaMicrons = parse.GetValue(maxArea),
                },
            };
            options.Validate();
            int count = NucleiJob.Expand(options.Inputs).Count;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            IReadOnlyList<SlideOutcome> outcomes = [];
            long finishedNuclei = 0, currentNuclei = 0;
            Progress.Run("Nuclei", count, report =>
                outcomes = NucleiJob.Run(options, o =>
                {
                    if (o.Status == SlideStatus.Failed) Console.Error.WriteLine($"error: {o.Error}");
                    if (o.Status == SlideStatus.Done) finishedNuclei += o.Patches;
                    currentNuclei = 0;
                    report(o.SlideId, 1);
                },
                p => { currentNuclei = p.Nuclei; report(p.Name, (double)p.TilesDone / p.Tiles); },
                note => Console.Error.WriteLine($"note: {note}")),
                () => $"{finishedNuclei + currentNuclei} nuclei, "
                    + $"{(finishedNuclei + currentNuclei) / Math.Max(clock.Elapsed.TotalSeconds, 1e-3):0}/s");
            long nuclei = outcomes.Sum(o => (long)o.Patches);
            int done = outcomes.Count(o => o.Status == SlideStatus.Done), skipped = outcomes.Count(o => o.Status == SlideStatus.Skipped);
            var failed = outcomes.Where(o => o.Status == SlideStatus.Failed).ToList();
            double seconds = outcomes.Sum(o => o.Seconds);
            Console.WriteLine($"Found {nuclei} nuclei in {done} input(s) ({(seconds > 0 ? nuclei / seconds : 0):0} nuclei/s), skipped "
                + $"{skipped} already done, {failed.Count} failed; outputs in {options.OutputDir}");
            if (failed.Count == 0) return 0;
            Console.Error.WriteLine("Failed inputs:");
            foreach (var f in failed) Console.Error.WriteLine($"  {f.SlideId}: {f.Error}");
            if (!options.SkipErrors)
                Console.Error.WriteLine("Stopped at the first failure; pass --skip-errors to go on past failing inputs.");
            return 1;
        }));
        return command;
    }
}
