using System.CommandLine;
using Histo.Evaluation;
using Spectre.Console;

namespace Histo.Cli.Commands;

/// <summary><c>histo nuclei-eval</c>: nuclei instance metrics of predicted against true label maps.</summary>
static class NucleiEvalCommand
{
    public static Command Create()
    {
        var pred = new Option<DirectoryInfo>("--pred") { Description = "Folder of predicted label maps (.png 8/16-bit grey, .tif, .npy).",
            Required = true };
        var truth = new Option<DirectoryInfo>("--truth") { Description = "Folder of true label maps, named as the predictions.",
            Required = true };
        var radius = new Option<double>("--radius") { Description = "Detection radius in pixels for F1 by centroids (HoVer-Net: 12 px "
            + "at 0.25 um/px, 6 at 0.5).", DefaultValueFactory = _ => 12 };
        var output = new Option<DirectoryInfo?>("--output", "-o") { Description = "Folder for nuclei-metrics.csv and .json." };
        var command = new Command("nuclei-eval", "Score predicted nuclei against the truth as HoVer-Net does: Dice, Dice 2, AJI, AJI+, "
            + "DQ/SQ/PQ, detection F1; per image and the mean over images.") { pred, truth, radius, output };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var result = NucleiEvaluation.Run(parse.GetValue(pred)!.FullName, parse.GetValue(truth)!.FullName, parse.GetValue(radius),
                parse.GetValue(output)?.FullName);
            string[] header = ["image", .. NucleiEvaluation.Columns.Select(c => c.Name)];
            if (Console.IsOutputRedirected)
            {
                // Piped: tab-separated lines with full precision, as the CSV.
                string R(double v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
                Console.WriteLine(string.Join('\t', header));
                foreach (var (name, scores) in result.Images)
                    Console.WriteLine(string.Join('\t', [name, .. NucleiEvaluation.Columns.Select(c => R(c.Value(scores)))]));
                Console.WriteLine(string.Join('\t', ["mean", .. NucleiEvaluation.Columns.Select(c => R(result.Mean[c.Name]))]));
                return 0;
            }
            var table = new Table().AddColumns(header);
            string F(double v) => v.ToString(Math.Abs(v) >= 10 || v == Math.Floor(v) ? "0" : "0.0000", System.Globalization.CultureInfo.InvariantCulture);
            foreach (var (name, scores) in result.Images)
                table.AddRow([Markup.Escape(name), .. NucleiEvaluation.Columns.Select(c => F(c.Value(scores)))]);
            table.AddRow(["[bold]mean[/]", .. NucleiEvaluation.Columns.Select(c => F(result.Mean[c.Name]))]);
            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }
}
