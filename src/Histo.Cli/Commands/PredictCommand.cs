using System.CommandLine;
using Histo.Pipeline;

namespace Histo.Cli.Commands;

static class PredictCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Run folder of 'histo train'.", Required = true };
        var features = new Argument<string[]>("inputs") { Description = "Slides (tiled and embedded as the training features were), "
            + "or feature files or folders of them (the -o of 'histo embed').", Arity = ArgumentArity.OneOrMore };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Output folder (predictions.csv).", Required = true };
        var mppCsv = new Option<FileInfo?>("--mpp-csv") { Description = "CSV 'slide_id,mpp' for slides that state no resolution (raw "
            + "slides only)." };
        var skipErrors = new Option<bool>("--skip-errors") { Description = "Go on past slides that fail (raw slides only)." };
        var command = new Command("predict",
            "Predict slides with a trained run: probabilities, label, energy score and out-of-distribution "
                + "flag.") { model, features, output, mppCsv, skipErrors };
        command.SetAction(CliRunner.Guard(parse =>
        {
            string dir = parse.GetValue(output)!.FullName;
            var inputs = parse.GetValue(features)!;
            bool slides = inputs.All(i => Slides.WholeSlide.Extensions.Contains(Path.GetExtension(i).ToLowerInvariant())
                || (Directory.Exists(i)
                    && Directory.EnumerateFiles(i)
                        .Any(f => Slides.WholeSlide.Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))));
            var result = slides
                ? PredictionJob.PredictSlides(parse.GetValue(model)!.FullName, inputs, dir, parse.GetValue(mppCsv)?.FullName,
                    parse.GetValue(skipErrors),
                    m => Console.Error.WriteLine($"note: {m}"))
                : new PredictionJob.SlidesPrediction(PredictionJob.Predict(parse.GetValue(model)!.FullName, inputs, dir), []);
            var predictions = result.Predictions;
            foreach (var p in predictions)
                Console.WriteLine($"{p.SlideId}: {p.Predicted} "
                    + $"({p.Probabilities.Max():P1}){(double.IsFinite(p.Energy) ? $", energy {p.Energy:0.00}" : "")}"
                    + (p.OutOfDistribution == true ? "  OUT OF DISTRIBUTION" : ""));
            Console.WriteLine(predictions.Any(p => p.OutOfDistribution is null)
                ? $"{predictions.Count} slide(s); no out-of-distribution flag: this run's head (coral/corn) has no energy score, or "
                    + $"the run has no fold_*/validation.csv (retrain it) -> {Path.Combine(dir, "predictions.csv")}"
                : $"{predictions.Count} slide(s), {predictions.Count(p => p.OutOfDistribution == true)} flagged -> "
                    + $"{Path.Combine(dir, "predictions.csv")}");
            if (result.Failed.Count == 0) return 0;
            Console.Error.WriteLine($"{result.Failed.Count} slide(s) failed and have no prediction:");
            foreach (var f in result.Failed) Console.Error.WriteLine($"  {f.SlideId}: {f.Error}");
            return 1;
        }));
        return command;
    }
}

static class HeatmapCommand
{
    public static Command Create()
    {
        var model = new Option<DirectoryInfo>("--model") { Description = "Run folder of 'histo train'.", Required = true };
        var slides = new Argument<FileInfo[]>("slides") { Description = "Slide files.", Arity = ArgumentArity.OneOrMore };
        var features = new Option<DirectoryInfo>("--features") { Description = "Output folder of 'histo embed' "
            + "(features/<slide_id>.h5).", Required = true };
        var output = new Option<DirectoryInfo>("--output",
            "-o") { Description = "Output folder (<slide_id>.heatmap.png, <slide_id>.attention.geojson).", Required = true };
        var command = new Command("heatmap",
            "Attention heatmaps over the slide thumbnail, and the scored tiles as QuPath GeoJSON.") { model, slides, features, output };
        command.SetAction(CliRunner.Guard(parse =>
        {
            string featuresDir = parse.GetValue(features)!.FullName;
            string sub = Path.Combine(featuresDir, "features");
            if (Directory.Exists(sub)) featuresDir = sub;
            foreach (var slide in parse.GetValue(slides)!)
            {
                string file = Path.Combine(featuresDir, Slides.WholeSlide.SlideIdOf(slide.FullName) + ".h5");
                var p = PredictionJob.Heatmap(parse.GetValue(model)!.FullName, slide.FullName, file, parse.GetValue(output)!.FullName);
                Console.WriteLine($"{p.SlideId}: {p.Predicted} ({p.Probabilities.Max():P1}) -> "
                    + $"{Path.Combine(parse.GetValue(output)!.FullName, p.SlideId + ".heatmap.png")}");
            }
            return 0;
        }));
        return command;
    }
}
