using System.CommandLine;
using Histo.Pipeline;
using Histo.Synthesis;

namespace Histo.Cli.Commands;

static class DemoCommand
{
    public static Command Create()
    {
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Output folder.", DefaultValueFactory = _ => new DirectoryInfo("out/demo") };
        var slides = new Option<int>("--slides") { Description = "Slides in the synthetic cohort.", DefaultValueFactory = _ => SyntheticCohortOptions.DefaultSlides };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the cohort.", DefaultValueFactory = _ => 0UL };
        var command = new Command("demo", "Run the whole pipeline on a synthetic cohort Histo generates: synth -> tile -> embed -> train (k-fold) -> predict -> heatmaps, with a report.")
        {
            output, slides, seed,
        };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var options = new DemoOptions
            {
                OutputDir = parse.GetValue(output)!.FullName,
                Cohort = new SyntheticCohortOptions { Slides = parse.GetValue(slides), Seed = parse.GetValue(seed) },
            };
            DemoPipeline.Report report = null!;
            Progress.Run("Demo", 3 * options.Cohort.Slides + 13, r => report = DemoPipeline.Run(options, (stage, slide, f) => r($"{stage} {slide}", f)));
            Console.WriteLine($"Demo: {report.Slides} slides ({report.Cases} cases) synthesised, tiled into {report.Patches} patches and embedded ({report.FeatureDim}-d).");
            Console.WriteLine($"ABMIL subtyping, 5-fold CV by case: mean test AUC {report.MeanAuc:0.000}; attention vs tumour masks, patch AUC {report.AttentionAuc:0.000}.");
            Console.WriteLine($"Report: {report.ReportPath}");
            return 0;
        }));
        return command;
    }
}
