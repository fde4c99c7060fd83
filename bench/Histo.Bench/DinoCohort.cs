using System.Diagnostics;
using Histo.Evaluation;
using Histo.Imaging;
using Histo.Models;
using Histo.SelfSupervised;
using Histo.Slides;
using Histo.Synthesis;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// Does DINO help on pathology patches? A generated cohort (three subtypes) is tiled; DINO trains on the patches of
/// half of the slides, read straight from the slides (no labels); then patch features of the random-init and the
/// DINO teacher backbones are compared by kNN (cosine, k = 20, weighted) from the training slides' patches to the
/// held-out slides' patches, each patch labelled with its slide's subtype; and per slide by the majority of its
/// patches' predictions.
/// </summary>
static class DinoCohort
{
    public static int Run(bool quick, Func<string, string?> arg)
    {
        double D(string name, double fallback) => arg(name) is { } v ? double.Parse(v, System.Globalization.CultureInfo.InvariantCulture) : fallback;
        string dir = Path.Combine(BenchEnvironment.WorkDir, "dino-cohort");
        int slideCount = (int)D("--slides", quick ? 9 : 18);
        var cohort = new SyntheticCohortOptions { Slides = slideCount, Seed = 11, Width = 4096, Height = 3072 };
        string slidesDir = Path.Combine(dir, $"slides-{slideCount}");
        var clock = Stopwatch.StartNew();
        var specs = SyntheticCohort.Plan(cohort);
        if (!File.Exists(Path.Combine(slidesDir, "labels.csv"))) SyntheticCohort.Generate(cohort, slidesDir);
        var files = specs.Select(s => Path.Combine(slidesDir, "slides", s.SlideId + ".tif")).ToList();
        var tiling = new TilingOptions { TargetMpp = D("--mpp", 2.0), PatchSize = 32, MinTissue = 0.5 };
        string tilesDir = Path.Combine(slidesDir, $"tiles-{tiling.TargetMpp}");
        TilingJob.Run(new TilingJobOptions { Slides = files, OutputDir = tilesDir, Tiling = tiling });
        Console.WriteLine($"Cohort: {slideCount} slides ({string.Join(", ", specs.GroupBy(s => s.Subtype).Select(g => $"{g.Count()} {g.Key}"))}), tiled at {tiling.TargetMpp} mpp, 32 px, in {clock.Elapsed.TotalSeconds:0} s");

        // Split by slide, every subtype on both sides.
        var classes = specs.Select(s => s.Subtype).Distinct().Order().ToList();
        var train = specs.GroupBy(s => s.Subtype).SelectMany(g => g.Where((_, i) => i % 2 == 0)).ToList();
        var test = specs.Except(train).ToList();
        string Path_(SyntheticSlideSpec s) => Path.Combine(slidesDir, "slides", s.SlideId + ".tif");

        var options = new DinoOptions
        {
            Arch = arg("--arch") ?? "vit-micro-32", Epochs = (int)D("--epochs", quick ? 2 : 6), BatchSize = 64, OutDim = (int)D("--out-dim", 1024),
            BaseLearningRate = D("--lr", 2e-3), WarmupEpochs = (int)D("--warmup", 1), TeacherMomentum = D("--momentum", 0.996), FreezeLastLayerEpochs = (int)D("--freeze", 1),
            TeacherTemperature = D("--teacher-temp", 0.02), WarmupTeacherTemperature = D("--teacher-temp", 0.02), WarmupTeacherTemperatureEpochs = 0,
            Augmentation = new DinoAugmentation { GlobalSize = 32, LocalSize = 16, LocalCrops = (int)D("--local", 2), LocalScale = (0.2, 0.5) },
        };
        string run = Path.Combine(dir, $"run-{Guid.NewGuid():N}");
        clock.Restart();
        IReadOnlyList<double> losses;
        using (var source = new SlidePatches(train.Select(Path_).ToList(), tilesDir))
        {
            Console.WriteLine($"DINO on {source.Describe()} ({options.Arch}, {options.Epochs} epochs)");
            losses = DinoTraining.Run(source, options, run, p =>
            {
                if (p.Iteration == p.Iterations) Console.WriteLine($"  epoch {p.Epoch}: loss {p.Loss:0.000}, teacher entropy {p.TeacherEntropy:0.00}, {clock.Elapsed.TotalMinutes:0.0} min");
            });
        }
        double minutes = clock.Elapsed.TotalMinutes;

        using var random = EncoderRegistry.Create(options.Arch);
        using var trained = EncoderRegistry.Create(run);
        Console.WriteLine($"DINO: {minutes:0.0} min, loss per epoch {string.Join(" -> ", losses.Select(l => l.ToString("0.00")))}");
        Console.WriteLine($"kNN (cosine, k=20, weighted) from patches of {train.Count} training slides to patches of {test.Count} held-out slides, subtype labels:");
        foreach (var (name, encoder) in new[] { ("random initialisation", random), ("DINO teacher", trained) })
        {
            var (xTrain, yTrain, _) = Embed(encoder, train, Path_, tilesDir, classes);
            var (xTest, yTest, slideOf) = Embed(encoder, test, Path_, tilesDir, classes);
            using var knn = new KnnClassifier(xTrain, yTrain);
            var predicted = knn.Predict(xTest);
            var patchMetrics = ClassificationMetrics.Compute(yTest, predicted, classes.Count);
            var slideTruth = new List<int>();
            var slidePredicted = new List<int>();
            foreach (var g in Enumerable.Range(0, yTest.Length).GroupBy(i => slideOf[i]))
            {
                slideTruth.Add(yTest[g.First()]);
                slidePredicted.Add(g.GroupBy(i => predicted[i]).OrderByDescending(v => v.Count()).ThenBy(v => v.Key).First().Key);
            }
            var slideMetrics = ClassificationMetrics.Compute(slideTruth, slidePredicted, classes.Count);
            Console.WriteLine($"  {name,-22} patches: accuracy {patchMetrics.Accuracy:0.000}, balanced {patchMetrics.BalancedAccuracy:0.000} ({yTest.Length} patches); slides: {slideTruth.Zip(slidePredicted).Count(p => p.First == p.Second)}/{slideTruth.Count} right");
        }
        return 0;
    }

    static (float[,] Features, int[] Labels, int[] Slide) Embed(PatchEncoder encoder, List<SyntheticSlideSpec> slides, Func<SyntheticSlideSpec, string> path, string tilesDir, List<TissueSubtype> classes)
    {
        var rows = new List<float[]>();
        var labels = new List<int>();
        var slideOf = new List<int>();
        for (int s = 0; s < slides.Count; s++)
        {
            using var source = new SlidePatches([path(slides[s])], tilesDir);
            int size = encoder.InputSize;
            for (int start = 0; start < source.Count; start += 256)
            {
                int count = Math.Min(256, source.Count - start);
                var pixels = new byte[count * size * size * 4];
                Parallel.For(0, count, k => source.Read(start + k).Resize(size, size).Pixels.CopyTo(pixels, k * size * size * 4));
                using var batch = tensor(pixels, [count, size, size, 4]);
                using var features = encoder.Embed(batch);
                var flat = features.data<float>().ToArray();
                for (int k = 0; k < count; k++)
                {
                    rows.Add(flat.AsSpan(k * encoder.FeatureDim, encoder.FeatureDim).ToArray());
                    labels.Add(classes.IndexOf(slides[s].Subtype));
                    slideOf.Add(s);
                }
            }
        }
        var matrix = new float[rows.Count, encoder.FeatureDim];
        for (int i = 0; i < rows.Count; i++) for (int j = 0; j < encoder.FeatureDim; j++) matrix[i, j] = rows[i][j];
        return (matrix, labels.ToArray(), slideOf.ToArray());
    }
}
