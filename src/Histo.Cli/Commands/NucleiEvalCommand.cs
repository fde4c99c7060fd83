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
        var scores = new Option<DirectoryInfo?>("--scores") { Description = "Folder of NAME.csv with nucleus_id and score columns, "
            + "the detections' confidences for AP (without it every nucleus scores 1)." };
        var maxDetections = new Option<int>("--max-detections") { Description = "COCO's maxDets per image (COCO's 100 is too few for "
            + "nuclei).", DefaultValueFactory = _ => CocoAveragePrecision.DenseMaxDetections };
        var types = new Option<DirectoryInfo?>("--types") { Description = "Folder of NAME.csv with nucleus_id and type columns for the "
            + "true nuclei (histo synth --nuclei-regions writes types/): typed scores with --pred-types." };
        var predTypes = new Option<DirectoryInfo?>("--pred-types") { Description = "The same for the predicted nuclei." };
        var command = new Command("nuclei-eval", "Score predicted nuclei against the truth as HoVer-Net does: Dice, Dice 2, AJI, AJI+, "
            + "DQ/SQ/PQ, detection F1; COCO mask and box AP at IoU 0.50:0.95; per image, the mean over images and COCO's dataset AP.")
            { pred, truth, radius, output, scores, maxDetections, types, predTypes };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var result = NucleiEvaluation.Run(parse.GetValue(pred)!.FullName, parse.GetValue(truth)!.FullName, parse.GetValue(radius),
                parse.GetValue(output)?.FullName, parse.GetValue(scores)?.FullName, parse.GetValue(maxDetections),
                parse.GetValue(types)?.FullName, parse.GetValue(predTypes)?.FullName);
            var columns = NucleiEvaluation.ColumnsFor(result.Typed is not null);
            string TypedLine() => result.Typed is not { } t ? "" : string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"Typed over the dataset: type accuracy {t.TypeAccuracy:0.0000}, F_c {string.Join(", ", t.Types.Select(c => $"{c}: "
                + $"{t.F1ByType[c]:0.0000}"))}, mPQ {t.MultiClassPq:0.0000}, bPQ {t.BinaryPq:0.0000}");
            string Coco(string format) => string.Format(System.Globalization.CultureInfo.InvariantCulture, format,
                result.MaskAp.Ap, result.MaskAp.Ap50, result.MaskAp.Ap75, result.BoxAp.Ap, result.BoxAp.Ap50, result.BoxAp.Ap75);
            string[] header = ["image", .. columns.Select(c => c.Name)];
            if (Console.IsOutputRedirected)
            {
                // Piped: tab-separated lines with full precision, as the CSV.
                string R(double v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
                Console.WriteLine(string.Join('\t', header));
                foreach (var image in result.Images)
                    Console.WriteLine(string.Join('\t', [image.Name, .. columns.Select(c => R(c.Value(image)))]));
                Console.WriteLine(string.Join('\t', ["mean", .. columns.Select(c => R(result.Mean[c.Name]))]));
                Console.WriteLine(Coco("# dataset\tmask AP {0:R}\tAP50 {1:R}\tAP75 {2:R}\tbox AP {3:R}\tAP50 {4:R}\tAP75 {5:R}"));
                if (result.Typed is not null) Console.WriteLine("# " + TypedLine());
                return 0;
            }
            var table = new Table().AddColumns(header);
            string F(double v) => v.ToString(Math.Abs(v) >= 10 || v == Math.Floor(v) ? "0" : "0.0000", System.Globalization.CultureInfo.InvariantCulture);
            foreach (var image in result.Images)
                table.AddRow([Markup.Escape(image.Name), .. columns.Select(c => F(c.Value(image)))]);
            table.AddRow(["[bold]mean[/]", .. columns.Select(c => F(result.Mean[c.Name]))]);
            AnsiConsole.Write(table);
            Console.WriteLine(Coco("COCO over the dataset: mask AP {0:0.0000} (AP50 {1:0.0000}, AP75 {2:0.0000}), "
                + "box AP {3:0.0000} (AP50 {4:0.0000}, AP75 {5:0.0000})"));
            if (result.Typed is not null) Console.WriteLine(TypedLine());
            return 0;
        }));
        return command;
    }
}
