using System.CommandLine;
using Histo.Slides;
using Spectre.Console;

namespace Histo.Cli.Commands;

static class TileCommand
{
    public static Command Create()
    {
        var defaults = new TilingOptions();
        var slides = new Argument<string[]>("slides") { Description = "Slide files or folders of slides.",
            Arity = ArgumentArity.OneOrMore };
        var output = new Option<DirectoryInfo>("--output",
            "-o") { Description = "Output folder (coords/, previews/, process_list.csv).", Required = true };
        var patchSize = new Option<int>("--patch-size") { Description = "Patch side in pixels at the target resolution.",
            DefaultValueFactory = _ => defaults.PatchSize };
        var mpp = new Option<double?>("--mpp") { Description = "Target resolution in microns per pixel (0.5 is about 20x)." };
        var magnification = new Option<double?>("--magnification") { Description = "Target magnification (e.g. 20), relative to the "
            + "slide's objective power." };
        var overlap = new Option<int>("--overlap") { Description = "Overlap between patches in target pixels.",
            DefaultValueFactory = _ => 0 };
        var minTissue = new Option<double>("--min-tissue") { Description = "Keep patches with at least this tissue fraction.",
            DefaultValueFactory = _ => defaults.MinTissue };
        var mppCsv = new Option<FileInfo?>("--mpp-csv") { Description = "CSV 'slide_id,mpp' giving or overriding level-0 resolutions." };
        var savePatches = new Option<bool>("--save-patches") { Description = "Also write every patch as PNG under patches/<slide_id>/." };
        var shard = CommonOptions.Shard();
        var skipErrors = new Option<bool>("--skip-errors") { Description = "Go on past slides that fail and list them at the end." };
        var overwrite = new Option<bool>("--overwrite") { Description = "Redo slides that are already tiled." };
        var threads = new Option<int>("--threads") { Description = "Threads reading patches.",
            DefaultValueFactory = _ => defaults.Threads };
        var command = new Command("tile",
            "Cut tissue into patch coordinates: coords/<slide_id>.h5 (CLAM/TRIDENT layout) and a preview PNG per slide.")
        {
            slides, output, patchSize, mpp, magnification, overlap, minTissue, mppCsv, savePatches, shard, skipErrors, overwrite, threads,
        };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var options = new TilingJobOptions
            {
                Slides = parse.GetValue(slides)!,
                OutputDir = parse.GetValue(output)!.FullName,
                MppCsv = parse.GetValue(mppCsv)?.FullName,
                Shard = parse.GetValue(shard) is { } s ? SlideBatch.ParseShard(s) : null,
                SkipErrors = parse.GetValue(skipErrors),
                Overwrite = parse.GetValue(overwrite),
                Tiling = new TilingOptions
                {
                    PatchSize = parse.GetValue(patchSize), TargetMpp = parse.GetValue(mpp), Magnification = parse.GetValue(magnification),
                    Overlap = parse.GetValue(overlap), MinTissue = parse.GetValue(minTissue), SavePatches = parse.GetValue(savePatches),
                    Threads = parse.GetValue(threads),
                },
            };
            int count = SlideBatch.Expand(options.Slides).Count;
            IReadOnlyList<SlideOutcome> outcomes = [];
            Progress.Run("Tiling", count, report =>
                outcomes = TilingJob.Run(options, o =>
                {
                    if (o.Status == SlideStatus.Failed) Console.Error.WriteLine($"error: {o.Error}");
                    report(o.SlideId, 1);
                }, m => Console.Error.WriteLine($"note: {m}")));
            return Summarise(outcomes, options);
        }));
        return command;
    }

    static int Summarise(IReadOnlyList<SlideOutcome> outcomes, TilingJobOptions options)
    {
        int done = outcomes.Count(o => o.Status == SlideStatus.Done), skipped = outcomes.Count(o => o.Status == SlideStatus.Skipped);
        var failed = outcomes.Where(o => o.Status == SlideStatus.Failed).ToList();
        long patches = outcomes.Sum(o => (long)o.Patches);
        Console.WriteLine($"Tiled {done} slide(s), skipped {skipped} already done, {failed.Count} failed; {patches} patches in "
            + $"{options.OutputDir}");
        if (failed.Count > 0)
        {
            Console.Error.WriteLine("Failed slides:");
            foreach (var f in failed) Console.Error.WriteLine($"  {f.SlideId}: {f.Error}");
            if (!options.SkipErrors) Console.Error.WriteLine("Stopped at the first failure; pass --skip-errors to go on past failing "
                + "slides.");
            return 1;
        }
        return 0;
    }
}
