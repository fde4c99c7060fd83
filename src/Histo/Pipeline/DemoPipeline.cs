using System.Globalization;
using System.Text;
using Histo.IO;
using Histo.Slides;
using Histo.Synthesis;

namespace Histo.Pipeline;

/// <summary>Options of <c>histo demo</c>: the end-to-end job on the built-in synthetic cohort.</summary>
public sealed record DemoOptions
{
    public required string OutputDir { get; init; }
    public SyntheticCohortOptions Cohort { get; init; } = new();
    public TilingOptions Tiling { get; init; } = new() { TargetMpp = 0.5, PatchSize = 256 };
    public string Encoder { get; init; } = Models.EncoderRegistry.Default;
}

/// <summary>
/// The main job, on a cohort Histo generates itself: synthesise slides, tile them, embed the patches,
/// train ABMIL with 5-fold cross-validation by case, check that attention finds the ground-truth tumour,
/// compare CORAL with a plain classifier on grades, predict and draw heatmaps; then a markdown report. Each stage resumes:
/// rerunning the demo redoes only what is missing.
/// </summary>
public static class DemoPipeline
{
    public sealed record Report(int Slides, int Cases, long Patches, int FeatureDim, double MeanAuc, double AttentionAuc,
        string ReportPath);

    public static Report Run(DemoOptions options, Action<string, string, double>? progress = null)
    {
        string cohortDir = Path.Combine(options.OutputDir, "cohort");
        var specs = SyntheticCohort.Generate(options.Cohort, cohortDir,
            new InlineProgress<(string SlideId, double Fraction)>(p => progress?.Invoke("synth", p.SlideId, p.Fraction)));
        var outcomes = TilingJob.Run(new TilingJobOptions
        {
            Slides = [Path.Combine(cohortDir, "slides")],
            OutputDir = Path.Combine(options.OutputDir, "tiles"),
            Tiling = options.Tiling,
        }, o => progress?.Invoke("tile", o.SlideId, 1));
        var failed = outcomes.Where(o => o.Status == SlideStatus.Failed).ToList();
        if (failed.Count > 0) throw new HistoException($"demo: tiling failed for {failed[0].SlideId}: {failed[0].Error}");
        var embedded = EmbeddingJob.Run(new EmbeddingJobOptions
        {
            Slides = [Path.Combine(cohortDir, "slides")],
            CoordsDir = Path.Combine(options.OutputDir, "tiles"),
            OutputDir = Path.Combine(options.OutputDir, "embeddings"),
            Encoder = options.Encoder,
        }, o => progress?.Invoke("embed", o.SlideId, 1));
        failed = embedded.Where(o => o.Status == SlideStatus.Failed).ToList();
        if (failed.Count > 0) throw new HistoException($"demo: embedding failed for {failed[0].SlideId}: {failed[0].Error}");
        int featureDim = Models.EncoderRegistry.Get(options.Encoder).FeatureDim;

        // Subtyping with ABMIL, 5-fold cross-validation by case.
        string embeddings = Path.Combine(options.OutputDir, "embeddings"), labels = Path.Combine(cohortDir, "labels.csv");
        string runDir = Path.Combine(options.OutputDir, "train-abmil");
        var data = Mil.MilDataset.Load(labels, embeddings, Mil.MilTask.Subtype);
        var folds = Mil.MilTraining.Run(data, new Mil.MilTrainingOptions { Model = "abmil", Seed = (int)options.Cohort.Seed }, runDir,
            line => progress?.Invoke("train", line, 1));

        // Attention against the tumour masks, each tumour slide scored by the fold that tested it.
        var slidesDir = Path.Combine(cohortDir, "slides");
        var attentionAucs = new List<double>();
        var heatmaps = new List<string>();
        var splits = Mil.CaseSplits.Read(Path.Combine(runDir, "splits"), data.Bags);
        foreach (var fold in splits)
        {
            using var model = Mil.TrainedRun.Load(runDir, fold.Index);
            foreach (var slideId in fold.Test)
            {
                var spec = specs.First(s => s.SlideId == slideId);
                var features = PatchFeatures.Read(Path.Combine(embeddings, "features", slideId + ".h5"));
                using var bag = TorchSharp.torch.tensor(features.Features);
                var prediction = model.Predict(slideId, bag);
                if (spec.Subtype != Synthesis.TissueSubtype.Normal && prediction.InstanceScores is not null)
                {
                    var mask = Imaging.RgbaImage.Load(Path.Combine(slidesDir, slideId + ".tumor-mask.png"));
                    double auc = Evaluation.AttentionLocalisation.PatchAuc(prediction.InstanceScores, features, mask,
                        SyntheticCohort.MaskDownsampleFor(spec.Width, spec.Height));
                    if (!double.IsNaN(auc)) attentionAucs.Add(auc);
                }
                // One heatmap per diagnosis, from the model that never saw the slide.
                if (heatmaps.Count < 3 && !heatmaps.Any(h => specs.First(s => s.SlideId == h).Subtype == spec.Subtype))
                {
                    PredictionJob.Heatmap(runDir, Path.Combine(slidesDir, slideId + ".tif"), Path.Combine(embeddings, "features",
                        slideId + ".h5"), Path.Combine(options.OutputDir, "heatmaps"), fold.Index);
                    heatmaps.Add(slideId);
                }
            }
        }
        double attentionAuc = attentionAucs.Count == 0 ? double.NaN : attentionAucs.Average();

        // Grading: CORAL against the plain classifier on the same folds (3, as the rarer grades have few cases).
        var grades = Mil.MilDataset.Load(labels, embeddings, Mil.MilTask.Grade);
        var gradeRuns = new Dictionary<string, IReadOnlyList<Mil.FoldMetrics>>();
        foreach (var head in new[] { Mil.HeadKind.Coral, Mil.HeadKind.Softmax })
            gradeRuns[head.ToString().ToLowerInvariant()] = Mil.MilTraining.Run(grades,
                new Mil.MilTrainingOptions { Model = "abmil", Task = Mil.MilTask.Grade, Head = head, Folds = 3,
                    Seed = (int)options.Cohort.Seed },
                Path.Combine(options.OutputDir, $"train-grade-{head.ToString().ToLowerInvariant()}"), line => progress?.Invoke("grade",
                    line, 1));

        var predictions = PredictionJob.Predict(runDir, [embeddings], options.OutputDir);

        var md = new StringBuilder();
        md.AppendLine("# Histo demo report").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture,
            $"Synthetic cohort: {specs.Count} slides of {specs.Select(s => s.CaseId).Distinct().Count()} cases, seed "
                + $"{options.Cohort.Seed}, {options.Cohort.Width}x{options.Cohort.Height} px at {options.Cohort.Mpp} mpp.").AppendLine();
        md.AppendLine("| label | slides |").AppendLine("|---|---|");
        foreach (var g in specs.GroupBy(s => s.Label).OrderBy(g => g.Key)) md.AppendLine(CultureInfo.InvariantCulture,
            $"| {g.Key} | {g.Count()} |");
        md.AppendLine().AppendLine(CultureInfo.InvariantCulture,
            $"Tiling: {options.Tiling.PatchSize} px patches at {options.Tiling.TargetMpp} mpp, min tissue {options.Tiling.MinTissue}; "
                + $"{outcomes.Sum(o => (long)o.Patches)} patches.").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture,
            $"Embedding: {options.Encoder}, {featureDim}-d features per patch in embeddings/features/<slide_id>.h5.").AppendLine();
        md.AppendLine("## Subtyping: ABMIL, 5-fold cross-validation by case").AppendLine();
        md.AppendLine(File.ReadAllText(Path.Combine(runDir, "summary.md")).Split('\n', 2)[1].Trim()).AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture,
            $"Attention finds the tumour: patch-level AUC of attention against the tumour masks, mean over {attentionAucs.Count} "
                + $"tumour slides scored by the fold that tested them: **{attentionAuc:0.000}**.").AppendLine();
        md.AppendLine("![ROC curves](train-abmil/roc.png) ![training curves](train-abmil/training_curves.png)").AppendLine();
        foreach (var h in heatmaps) md.AppendLine(CultureInfo.InvariantCulture, $"![heatmap {h}](heatmaps/{h}.heatmap.png)");
        md.AppendLine().AppendLine("## Grading (0-3): CORAL vs plain classifier, ABMIL, 3 folds").AppendLine();
        md.AppendLine("| head | quadratic kappa | MAE | balanced accuracy |").AppendLine("|---|---|---|---|");
        foreach (var (name, runs) in gradeRuns)
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {name} | {runs.Average(r => r.Kappa):0.000} ± "
                    + $"{Evaluation.SlideMetrics.MeanAndStd(runs.Select(r => r.Kappa)).Std:0.000} | {runs.Average(r => r.Mae):0.000} "
                        + $"| {runs.Average(r => r.BalancedAccuracy):0.000} |");
        md.AppendLine().AppendLine(CultureInfo.InvariantCulture,
            $"Predictions of all slides by the 5-fold ensemble (in-sample for most folds): predictions.csv; "
                + $"{predictions.Count(p => p.OutOfDistribution == true)} flagged out of distribution by energy.").AppendLine();
        md.AppendLine("## Slides").AppendLine();
        md.AppendLine("| slide | label | grade | patches | preview |").AppendLine("|---|---|---|---|---|");
        foreach (var (spec, o) in specs.Zip(outcomes.OrderBy(o => o.SlideId, StringComparer.Ordinal)))
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {spec.SlideId} | {spec.Label} | {spec.Grade} | {o.Patches} | ![](tiles/previews/{spec.SlideId}.png) |");
        string reportPath = Path.Combine(options.OutputDir, "report.md");
        AtomicFile.WriteAllText(reportPath, md.ToString());
        return new Report(specs.Count, specs.Select(s => s.CaseId).Distinct().Count(), outcomes.Sum(o => (long)o.Patches), featureDim,
            folds.Average(f => f.Auc), attentionAuc, reportPath);
    }
}
