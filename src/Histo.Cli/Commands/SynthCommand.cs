using System.CommandLine;
using Histo.Synthesis;
using Spectre.Console;

namespace Histo.Cli.Commands;

static class SynthCommand
{
    public static Command Create()
    {
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Output folder (slides/ and labels.csv go here).", Required = true };
        var slides = new Option<int>("--slides") { Description = "Number of slides.", DefaultValueFactory = _ => SyntheticCohortOptions.DefaultSlides };
        var seed = new Option<ulong>("--seed") { Description = "Random seed: the same seed gives the same cohort.", DefaultValueFactory = _ => 0UL };
        var width = new Option<int>("--width") { Description = "Level-0 width in pixels.", DefaultValueFactory = _ => new SyntheticCohortOptions().Width };
        var height = new Option<int>("--height") { Description = "Level-0 height in pixels.", DefaultValueFactory = _ => new SyntheticCohortOptions().Height };
        var mpp = new Option<double>("--mpp") { Description = "Microns per pixel at level 0.", DefaultValueFactory = _ => new SyntheticCohortOptions().Mpp };
        var coarse = new Option<bool>("--coarse") { Description = "Tissue texture without cells: fast, for size and memory benchmarks." };
        var nucleiRegions = new Option<int>("--nuclei-regions") { Description = "Regions per slide with nucleus ground truth "
            + "(nuclei-truth/images, inst, types) for histo nuclei-eval." };
        var nucleiRegion = new Option<int>("--nuclei-region") { Description = "Side of those regions in pixels.",
            DefaultValueFactory = _ => SyntheticNucleiTruth.DefaultRegionSize };
        var captions = new Option<int>("--captions") { Description = "Captioned patches per slide (captions/captions.csv, images/, "
            + "prompts.json) for histo clip-train." };
        var captionSize = new Option<int>("--caption-size") { Description = "Side of the captioned patches in pixels (read over 4x "
            + "that at level 0).", DefaultValueFactory = _ => 64 };
        var command = new Command("synth", "Generate the built-in synthetic H&E cohort: pyramidal TIFF slides, tumour masks and labels.csv (CLAM format).")
        {
            output, slides, seed, width, height, mpp, coarse, nucleiRegions, nucleiRegion, captions, captionSize,
        };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var options = new SyntheticCohortOptions
            {
                Slides = parse.GetValue(slides), Seed = parse.GetValue(seed), Width = parse.GetValue(width),
                Height = parse.GetValue(height), Mpp = parse.GetValue(mpp), Coarse = parse.GetValue(coarse),
                NucleiRegions = parse.GetValue(nucleiRegions), NucleiRegionSize = parse.GetValue(nucleiRegion),
                Captions = parse.GetValue(captions), CaptionSize = parse.GetValue(captionSize),
            };
            string dir = parse.GetValue(output)!.FullName;
            IReadOnlyList<SyntheticSlideSpec> specs = [];
            Progress.Run($"Synthesising {options.Slides} slides", options.Slides, report =>
                specs = SyntheticCohort.Generate(options, dir, new Histo.Pipeline.InlineProgress<(string SlideId, double Fraction)>(p => report(p.SlideId, p.Fraction))));
            var counts = specs.GroupBy(s => s.Label).Select(g => $"{g.Key} {g.Count()}");
            Console.WriteLine($"Wrote {specs.Count} slides of {specs.Select(s => s.CaseId).Distinct().Count()} cases ({string.Join(", ", counts)}) to {dir}");
            return 0;
        }));
        return command;
    }
}
