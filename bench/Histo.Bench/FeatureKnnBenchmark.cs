using Histo.Evaluation;
using Histo.Imaging;
using Histo.IO;
using Histo.Models;
using Histo.Pipeline;
using Histo.Slides;
using Histo.Synthesis;

namespace Histo.Bench;

/// <summary>
/// Are the features useful? On patches of the synthetic cohort labelled tumour / non-tumour from the
/// ground-truth masks, kNN (cosine, k = 20, DINO's weighted vote) on resnet18-imagenet features versus on
/// raw pixels, training on some cases and testing on the others.
/// </summary>
static class FeatureKnnBenchmark
{
    const int RawSide = 64; // raw-pixel baseline: the 224 px patch downsampled to 64 x 64 RGB (12,288 values)

    public static int Run(bool quick)
    {
        int slides = quick ? 9 : 18;
        string cohort = Path.Combine(BenchEnvironment.WorkDir, $"knn-cohort-{slides}");
        var specs = SyntheticCohort.Generate(new SyntheticCohortOptions { Slides = slides, Seed = 5 }, cohort);
        string tiles = Path.Combine(cohort, "tiles"), embedded = Path.Combine(cohort, "embedded");
        var tiling = new TilingOptions { TargetMpp = 0.5, PatchSize = 224 };
        TilingJob.Run(new TilingJobOptions { Slides = [Path.Combine(cohort, "slides")], OutputDir = tiles, Tiling = tiling });
        EmbeddingJob.Run(new EmbeddingJobOptions { Slides = [Path.Combine(cohort, "slides")], CoordsDir = tiles, OutputDir = embedded });

        var caseIds = specs.Select(s => s.CaseId).Distinct().Order().ToList();
        // Half of each diagnosis's cases for testing (stratified by case, never by slide).
        var testCases = specs.GroupBy(s => s.Label)
            .SelectMany(g => g.Select(s => s.CaseId).Distinct().Order().Where((_, i) => i % 2 == 1)).ToHashSet();
        var train = (Features: new List<float[]>(), Raw: new List<float[]>(), Labels: new List<int>());
        var test = (Features: new List<float[]>(), Raw: new List<float[]>(), Labels: new List<int>());
        foreach (var spec in specs)
        {
            var truthFile = Path.Combine(cohort, "slides", spec.SlideId + ".tumor-mask.png");
            var tumour = RgbaImage.Load(truthFile);
            int md = SyntheticCohort.MaskDownsampleFor(spec.Width, spec.Height);
            var features = PatchFeatures.Read(Path.Combine(embedded, "features", spec.SlideId + ".h5"));
            var coords = PatchCoordinates.Read(Path.Combine(tiles, "coords", spec.SlideId + ".h5"));
            using var slide = WholeSlide.Open(Path.Combine(cohort, "slides", spec.SlideId + ".tif"));
            var target = testCases.Contains(spec.CaseId) ? test : train;
            for (int k = 0; k < features.Count; k++)
            {
                long x = features.Coords[k, 0], y = features.Coords[k, 1];
                double fraction = AttentionLocalisation.MaskFraction(tumour, md, x, y, coords.PatchSizeLevel0);
                int label = fraction >= 0.5 ? 1 : fraction == 0 ? 0 : -1; // ambiguous patches are left out
                if (label < 0) continue;
                target.Features.Add(Enumerable.Range(0, features.Dim).Select(j => features.Features[k, j]).ToArray());
                var raw = Tiler.ReadPatch(slide, coords, x, y, RawSide);
                target.Raw.Add(Enumerable.Range(0, RawSide * RawSide * 4).Where(i => i % 4 != 3).Select(i => raw.Pixels[i] / 255f).ToArray());
                target.Labels.Add(label);
            }
        }
        Console.WriteLine($"Synthetic cohort of {slides} slides: {train.Labels.Count} training patches ({train.Labels.Count(l => l == 1)} tumour) from {caseIds.Count - testCases.Count} cases, " +
                          $"{test.Labels.Count} test patches ({test.Labels.Count(l => l == 1)} tumour) from {testCases.Count} other cases");
        foreach (var (name, trainX, testX) in new[] { ("resnet18-imagenet features (512-d)", train.Features, test.Features), ($"raw pixels ({RawSide}x{RawSide} RGB)", train.Raw, test.Raw) })
        {
            using var knn = new KnnClassifier(ToMatrix(trainX), train.Labels.ToArray());
            var predicted = knn.Predict(ToMatrix(testX));
            var m = ClassificationMetrics.Compute(test.Labels, predicted, 2);
            Console.WriteLine($"  kNN (cosine, k={KnnClassifier.DefaultK}, weighted) on {name,-36}: accuracy {m.Accuracy:F3}, balanced accuracy {m.BalancedAccuracy:F3}");
        }
        return 0;
    }

    static float[,] ToMatrix(List<float[]> rows)
    {
        var m = new float[rows.Count, rows[0].Length];
        for (int i = 0; i < rows.Count; i++) for (int j = 0; j < rows[i].Length; j++) m[i, j] = rows[i][j];
        return m;
    }
}
