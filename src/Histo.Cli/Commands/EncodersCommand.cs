using System.CommandLine;
using Histo.Models;
using Spectre.Console;

namespace Histo.Cli.Commands;

/// <summary><c>histo encoders</c>: the encoder registry as a table (the rows <c>--encoder</c> takes).</summary>
static class EncodersCommand
{
    public static Command Create()
    {
        var weightsConfig = new Option<FileInfo?>("--weights-config") { Description = "JSON of encoder name to weights file; "
            + $"default ${WeightsConfig.Variable}." };
        var command = new Command("encoders", "List the registered patch encoders: feature size, input size, weights, the weights "
            + "configured on this machine, and their terms.") { weightsConfig };
        command.SetAction(CliRunner.Guard(parse =>
        {
            string? config = parse.GetValue(weightsConfig)?.FullName;
            var rows = EncoderRegistry.All.Select(e => new[] { e.Name, $"{e.FeatureDim}", $"{e.InputSize}",
                e.ModelCard is null ? e.Weights == "none" ? "random unless --weights" : e.Weights : $"--weights FILE from {e.ModelCard}",
                WeightsConfig.Resolve(e.Name, config) ?? "", e.Terms ?? "", $"{EncoderRegistry.ParameterCount(e) / 1e6:0.0}M",
                ComputePrecision.Name(e.DefaultPrecision) + (ComputePrecision.Resolve("auto", e.Name) == e.DefaultPrecision ? ""
                    : $" (fp32 on this CPU)"), e.Preprocessing }).ToList();
            string[] header = ["name", "features", "input_px", "weights", "configured", "terms", "parameters", "precision", "transform"];
            // Piped or redirected: tab-separated lines a script can cut, not a table wrapped to a terminal's width.
            if (Console.IsOutputRedirected)
            {
                foreach (var row in rows.Prepend(header)) Console.WriteLine(string.Join('\t', row));
                return 0;
            }
            var table = new Table().AddColumns(header);
            foreach (var row in rows) table.AddRow(row.Select(Markup.Escape).ToArray());
            AnsiConsole.Write(table);
            return 0;
        }));
        return command;
    }
}
