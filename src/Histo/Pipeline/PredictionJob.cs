using System.Globalization;
using System.Text;
using Histo.IO;
using Histo.Mil;
using Histo.Reports;
using Histo.Slides;
using static TorchSharp.torch;

namespace Histo.Pipeline;

/// <summary>
/// Slide predictions and heatmaps from a trained run: <c>predictions.csv</c> (probabilities, predicted
/// label, energy score and the out-of-distribution flag) and, per slide, a heatmap PNG and a GeoJSON of
/// scored tiles. For CORAL and CORN runs the energy is NaN and the flag is empty: an ordinal head has no
/// energy score (see <see cref="MilHead.HasEnergy"/>).
/// </summary>
public static class PredictionJob
{
    /// <summary>Feature files given as files or folders (a folder with features/ inside, as `histo embed` writes, works too).</summary>
    public static List<string> ExpandFeatures(IEnumerable<string> inputs)
    {
        var files = new List<string>();
        foreach (var input in inputs)
        {
            if (File.Exists(input)) files.Add(input);
            else if (Directory.Exists(Path.Combine(input, "features"))) files.AddRange(Directory.GetFiles(Path.Combine(input,
                "features"), "*.h5").Order(StringComparer.Ordinal));
            else if (Directory.Exists(input)) files.AddRange(Directory.GetFiles(input, "*.h5").Order(StringComparer.Ordinal));
            else throw new HistoException($"{input}: no such features file or folder; run 'histo embed' first");
        }
        return files;
    }

    public static IReadOnlyList<SlidePrediction> Predict(string runDir, IEnumerable<string> features, string outputDir)
    {
        using var run = TrainedRun.Load(runDir);
        var files = ExpandFeatures(features);
        // Every file is checked before any prediction: features of another encoder or resolution would give confident nonsense.
        foreach (var file in files) PatchFeatures.ReadProvenance(file).CheckMatches(file, run.Config.Features, $"the run {runDir}");
        JobFolder.CreateDirectory(outputDir);
        var predictions = new List<SlidePrediction>();
        foreach (var file in files)
        {
            var f = PatchFeatures.Read(file);
            if (f.Count == 0) throw new HistoException($"{file}: empty bag (no patches); re-tile the slide with a lower --min-tissue");
            f.CheckFinite(file);
            using var bag = tensor(f.Features);
            predictions.Add(run.Predict(Path.GetFileNameWithoutExtension(file), bag));
        }
        var csv = new StringBuilder("slide_id,predicted," + string.Join(",",
            run.Config.ClassNames.Select(c => "p_" + c)) + ",energy,out_of_distribution\n");
        foreach (var p in predictions)
            csv.Append(CultureInfo.InvariantCulture,
                $"{p.SlideId},{p.Predicted},"
                + $"{string.Join(",", p.Probabilities.Select(v => v.ToString("0.######", CultureInfo.InvariantCulture)))},"
                + $"{p.Energy:0.######},{p.OutOfDistribution switch { true => "true", false => "false", null => "" }}\n");
        AtomicFile.WriteAllText(Path.Combine(outputDir, "predictions.csv"), csv.ToString());
        return predictions;
    }

    /// <summary>Predictions of the slides that went through, and the slides that failed (with --skip-errors).</summary>
    public sealed record SlidesPrediction(IReadOnlyList<SlidePrediction> Predictions, IReadOnlyList<SlideOutcome> Failed);

    /// <summary>
    /// Predicts raw slides: tiles and embeds them as the training features were made (encoder, patch size, resolution,
    /// overlap and minimum tissue recorded in the run), into <paramref name="outputDir"/>/tiles and /embeddings, then predicts.
    /// With <paramref name="skipErrors"/> failing slides are returned, not dropped, for the caller to report.
    /// </summary>
    public static SlidesPrediction PredictSlides(string runDir, IReadOnlyList<string> slides, string outputDir, string? mppCsv = null,
        bool skipErrors = false, Action<string>? log = null)
    {
        MilTraining.RunConfig config;
        using (var run = TrainedRun.Load(runDir)) config = run.Config;
        if (config.Encoder is null || config.PatchSize <= 0 || !double.IsFinite(config.TargetMpp))
            throw new HistoException($"{runDir}: the run does not record how its features were made; embed the slides yourself and "
                + $"pass the feature files");
        var tiling = new TilingOptions { PatchSize = config.PatchSize, TargetMpp = config.TargetMpp, Overlap = config.Overlap };
        if (double.IsFinite(config.MinTissue)) tiling = tiling with { MinTissue = config.MinTissue };
        var tiled = TilingJob.Run(new TilingJobOptions
        {
            Slides = slides, OutputDir = Path.Combine(outputDir, "tiles"), MppCsv = mppCsv, SkipErrors = skipErrors, Tiling = tiling,
        }, log: log);
        var failed = tiled.Where(o => o.Status == SlideStatus.Failed).ToList();
        if (failed.Count > 0 && !skipErrors) throw new HistoException(failed[0].Error!);
        var embedded = EmbeddingJob.Run(new EmbeddingJobOptions
        {
            Slides = tiled.Where(t => t.Status != SlideStatus.Failed).Select(t => t.Path).ToList(),
            CoordsDir = Path.Combine(outputDir, "tiles"), OutputDir = Path.Combine(outputDir,
                "embeddings"), Encoder = config.Encoder, SkipErrors = skipErrors,
        }, log: log);
        failed.AddRange(embedded.Where(o => o.Status == SlideStatus.Failed));
        if (failed.Count > 0 && !skipErrors) throw new HistoException(failed[0].Error!);
        var done = embedded.Where(o => o.Status != SlideStatus.Failed).Select(o => Path.Combine(outputDir, "embeddings", "features",
            o.SlideId + ".h5")).ToList();
        return new SlidesPrediction(done.Count == 0 ? [] : Predict(runDir, done, outputDir), failed);
    }

    /// <summary>Heatmap PNG and scored-tile GeoJSON of one slide.</summary>
    /// <param name="fold">Score with this fold's model only (e.g. the one that tested the slide); the fold ensemble by default.</param>
    public static SlidePrediction Heatmap(string runDir, string slidePath, string featuresFile, string outputDir, int? fold = null)
    {
        using var run = TrainedRun.Load(runDir, fold);
        using var slide = WholeSlide.Open(slidePath);
        var provenance = PatchFeatures.ReadProvenance(featuresFile);
        if (provenance.SlideName is { } name && name != slide.SlideId)
            throw new HistoException($"{featuresFile}: holds the features of slide '{name}', not of {slidePath}; pass this slide's "
                + $"features");
        provenance.CheckMatches(featuresFile, run.Config.Features, $"the run {runDir}");
        var f = PatchFeatures.Read(featuresFile);
        if (f.Count == 0) throw new HistoException($"{featuresFile}: empty bag (no patches)");
        f.CheckFinite(featuresFile);
        using var bag = tensor(f.Features);
        var prediction = run.Predict(slide.SlideId, bag);
        if (prediction.InstanceScores is null) throw new HistoException($"{runDir}: model '{run.Config.Model}' gives no per-patch "
            + $"scores; train abmil, gated-abmil, clam-sb, dsmil or max for heatmaps");
        var coords = new PatchCoordinates(slide.SlideId, f.Coords, f.PatchSize, f.PatchLevel, f.PatchSizeLevel0, f.TargetMpp,
            double.NaN, double.NaN, 0, double.NaN);
        Directory.CreateDirectory(outputDir);
        string title = $"{run.Config.Model}: {prediction.Predicted} ({prediction.Probabilities.Max():P0})";
        Reports.Heatmap.Write(slide, coords, prediction.InstanceScores, Path.Combine(outputDir, slide.SlideId + ".heatmap.png"),
            Path.Combine(outputDir, slide.SlideId + ".attention.geojson"), title);
        return prediction;
    }
}
