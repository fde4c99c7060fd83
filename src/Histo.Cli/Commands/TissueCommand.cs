using System.CommandLine;
using Histo.Slides;

namespace Histo.Cli.Commands;

static class TissueCommand
{
    public static Command Create()
    {
        var slides = new Argument<FileInfo[]>("slides") { Description = "Slide files.", Arity = ArgumentArity.OneOrMore };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Output folder.", Required = true };
        var maskSize = new Option<int>("--mask-size") { Description = "Longest side of the thumbnail the mask is computed on.",
            DefaultValueFactory = _ => new TissueDetectionOptions().MaskLongestSide };
        var keepInk = new Option<bool>("--keep-ink") { Description = "Do not cut pen and marker ink from the tissue; "
            + "it is still reported (class Ink in the GeoJSON, blue in the overlay)." };
        var command = new Command("tissue", "Detect tissue: writes <slide>.mask.png, <slide>.overlay.png and "
            + "<slide>.tissue.geojson (QuPath, level-0 pixels; classes Tissue and Ink).")
        {
            slides, output, maskSize, keepInk,
        };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var options = new TissueDetectionOptions { MaskLongestSide = parse.GetValue(maskSize), KeepInk = parse.GetValue(keepInk) };
            string dir = parse.GetValue(output)!.FullName;
            int failures = 0;
            foreach (var file in parse.GetValue(slides)!)
            {
                try
                {
                    using var slide = WholeSlide.Open(file.FullName);
                    var result = TissueOutputs.Write(TissueDetector.Detect(slide, options), slide.SlideId, dir);
                    Console.WriteLine($"{slide.SlideId}: tissue {result.TissueFraction:P1} of the slide, {result.Polygons} region(s), "
                        + $"ink {result.InkFraction:P1} -> {result.GeoJsonPath}");
                }
                catch (HistoException e)
                {
                    Console.Error.WriteLine($"error: {e.Message}");
                    failures++;
                }
            }
            return failures == 0 ? 0 : 1;
        }));
        return command;
    }
}
