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
/// The main job, on a cohort Histo generates itself: synthesise slides, tile them, embed the patches.
/// Later stages (multiple-instance training, prediction, heatmaps) extend this pipeline. Each stage resumes:
/// rerunning the demo redoes only what is missing.
/// </summary>
public static class DemoPipeline
{
    public sealed record Report(int Slides, int Cases, long Patches, int FeatureDim, string ReportPath);

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

        var md = new StringBuilder();
        md.AppendLine("# Histo demo report").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Synthetic cohort: {specs.Count} slides of {specs.Select(s => s.CaseId).Distinct().Count()} cases, seed {options.Cohort.Seed}, {options.Cohort.Width}x{options.Cohort.Height} px at {options.Cohort.Mpp} mpp.").AppendLine();
        md.AppendLine("| label | slides |").AppendLine("|---|---|");
        foreach (var g in specs.GroupBy(s => s.Label).OrderBy(g => g.Key)) md.AppendLine(CultureInfo.InvariantCulture, $"| {g.Key} | {g.Count()} |");
        md.AppendLine().AppendLine(CultureInfo.InvariantCulture, $"Tiling: {options.Tiling.PatchSize} px patches at {options.Tiling.TargetMpp} mpp, min tissue {options.Tiling.MinTissue}; {outcomes.Sum(o => (long)o.Patches)} patches.").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Embedding: {options.Encoder}, {featureDim}-d features per patch in embeddings/features/<slide_id>.h5.").AppendLine();
        md.AppendLine("| slide | label | grade | patches | preview |").AppendLine("|---|---|---|---|---|");
        foreach (var (spec, o) in specs.Zip(outcomes.OrderBy(o => o.SlideId, StringComparer.Ordinal)))
            md.AppendLine(CultureInfo.InvariantCulture, $"| {spec.SlideId} | {spec.Label} | {spec.Grade} | {o.Patches} | ![](tiles/previews/{spec.SlideId}.png) |");
        string reportPath = Path.Combine(options.OutputDir, "report.md");
        AtomicFile.WriteAllText(reportPath, md.ToString());
        return new Report(specs.Count, specs.Select(s => s.CaseId).Distinct().Count(), outcomes.Sum(o => (long)o.Patches), featureDim, reportPath);
    }

    sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
