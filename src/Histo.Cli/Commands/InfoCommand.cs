using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Histo.Slides;
using Spectre.Console;

namespace Histo.Cli.Commands;

static class InfoCommand
{
    public static Command Create()
    {
        var slides = new Argument<FileInfo[]>("slides") { Description = "Slide files.", Arity = ArgumentArity.OneOrMore };
        var json = new Option<bool>("--json") { Description = "Print JSON (one array of objects) instead of tables." };
        var command = new Command("info", "Show a slide's vendor, pyramid levels, resolution (mpp), objective power and associated images.") { slides, json };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var summaries = new List<SlideSummary>();
            int failures = 0;
            foreach (var file in parse.GetValue(slides)!)
            {
                try
                {
                    using var slide = WholeSlide.Open(file.FullName);
                    summaries.Add(SlideSummary.Of(slide));
                }
                catch (HistoException e)
                {
                    Console.Error.WriteLine($"error: {e.Message}");
                    failures++;
                }
            }
            if (parse.GetValue(json))
                Console.WriteLine(JsonSerializer.Serialize(summaries, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }));
            else
                foreach (var s in summaries) Print(s);
            return failures == 0 ? 0 : 1;
        }));
        return command;
    }

    static void Print(SlideSummary s)
    {
        string mpp = s.MppX is null ? "[yellow]unknown (pass --mpp-csv when tiling)[/]" : $"{s.MppX:0.####} x {s.MppY:0.####}";
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(s.Path)}[/]");
        AnsiConsole.MarkupLine($"  vendor [blue]{Markup.Escape(s.Vendor)}[/], mpp {mpp}, objective {(s.ObjectivePower is null ? "unknown" : s.ObjectivePower.Value.ToString("0.##", CultureInfo.InvariantCulture) + "x")}");
        var table = new Table().AddColumns("level", "width", "height", "downsample");
        foreach (var l in s.Levels) table.AddRow(l.Index.ToString(), l.Width.ToString(), l.Height.ToString(), l.Downsample.ToString("0.###", CultureInfo.InvariantCulture));
        AnsiConsole.Write(table);
        if (s.AssociatedImages.Count > 0)
            AnsiConsole.MarkupLine("  associated images: " + Markup.Escape(string.Join(", ", s.AssociatedImages.Select(a => $"{a.Name} ({a.Width}x{a.Height})"))));
    }
}
