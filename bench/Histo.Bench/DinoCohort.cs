using System.Diagnostics;
using Histo.Evaluation;
using Histo.IO;
using Histo.Pipeline;
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
    public static int Run(BenchArgs args)
    {
        bool quick = args.Quick;
        string dir = Path.Combine(BenchEnvironment.WorkDir, "dino-cohort");
        int slideCount = (int)args.Number("--slides", quick ? 9 : 18);
        var cohort = new SyntheticCohortOptions { Slides = slideCount, Seed = 11, Width = 4096, Height = 3072 };
        string slidesDir = Path.Combine(dir, $"slides-{slideCount}");
        var clock = Stopwatch.StartNew();
        var specs = SyntheticCohort.Plan(cohort);
        if (!File.Exists(Path.Combine(slidesDir, "labels.csv"))) SyntheticCohort.Generate(cohort, slidesDir);
        var files = specs.Select(s => Path.Combine(slidesDir, "slides", s.SlideId + ".tif")).ToList();
        var tiling = new TilingOptions { TargetMpp = args.Number("--mpp", 2.0), PatchSize = 32, MinTissue = 0.5 };
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
            Arch = args.String("--arch") ?? "vit-micro-32", Epochs = (int)args.Number("--epochs", quick ? 2 : 6), BatchSize = 64, OutDim = (int)args.Number("--out-dim", 1024),
            BaseLearningRate = args.Number("--lr", 2e-3), WarmupEpochs = (int)args.Number("--warmup", 1), TeacherMomentum = args.Number("--momentum", 0.996), FreezeLastLayerEpochs = (int)args.Number("--freeze", 1),
            TeacherTemperature = args.Number("--teacher-temp", 0.02), WarmupTeacherTemperature = args.Number("--teacher-temp", 0.02), WarmupTeacherTemperatureEpochs = 0,
            Augmentation = new DinoAugmentation { GlobalSize = 32, LocalSize = 16, LocalCrops = (int)args.Number("--local", 2), LocalScale = (0.2, 0.5) },
        };
        string run = Path.Combine(dir, $"run-{Guid.NewGuid():N}");
        clock.Restart();
        IReadOnlyList<double> losses;
        using (var source = new SlidePatches(train.Select(Path_).ToList(), tilesDir))
        {
            Console.WriteLine($"DINO on {source.Describe()} ({options.Arch}, {options.Epochs} epochs)");
            losses = DinoTraining.Run(source, options, run, p =>
            {
                if (p.Iteration == p.Iterations) Console.WriteLine($"  epoch {p.Epoch}: loss {p.Loss:0.000}, teacher entropy {p.TeacherEntropy:0.00} (batch mean {p.TeacherMarginalEntropy:0.00}), {clock.Elapsed.TotalMinutes:0.0} min");
            });
        }
        double minutes = clock.Elapsed.TotalMinutes;

        // The baseline is the network DINO started from (the first thing built after manual_seed(seed)), at the training size.
        manual_seed(options.Seed);
        using var random = EncoderRegistry.Create(options.Arch, inputSize: options.Augmentation.GlobalSize);
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
            Console.WriteLine($"  {name,-22} patches: accuracy {patchMetrics.Accuracy:0.000}, balanced {patchMetrics.BalancedAccuracy:0.000} ({yTest.Length} patches); slides: {slideTruth.Zip(slidePredicted).Count(p => p.First == p.Second)}/{slideTruth.Count} right");
        }
        return 0;
    }

    /// <summary>Patch features of every slide (as <c>histo embed</c> computes them), stacked, with each patch's subtype and slide.</summary>
    static (float[,] Features, int[] Labels, int[] Slide) Embed(PatchEncoder encoder, List<SyntheticSlideSpec> slides, Func<SyntheticSlideSpec, string> path, string tilesDir, List<TissueSubtype> classes)
    {
        var perSlide = slides.Select(spec =>
        {
            using var slide = WholeSlide.Open(path(spec));
            var coords = PatchCoordinates.Read(EmbeddingJob.CoordsPath(tilesDir, spec.SlideId));
            var options = new EmbeddingJobOptions { Slides = [], CoordsDir = tilesDir, OutputDir = "", BatchSize = 256 };
            return EmbeddingJob.EmbedSlide(slide, coords, encoder, options, null, out _);
        }).ToList();
        int rows = perSlide.Sum(f => f.GetLength(0)), dim = encoder.FeatureDim, row = 0;
        var features = new float[rows, dim];
        var labels = new int[rows];
        var slideOf = new int[rows];
        for (int s = 0; s < slides.Count; s++)
            for (int i = 0; i < perSlide[s].GetLength(0); i++, row++)
            {
                for (int j = 0; j < dim; j++) features[row, j] = perSlide[s][i, j];
                labels[row] = classes.IndexOf(slides[s].Subtype);
                slideOf[row] = s;
            }
        return (features, labels, slideOf);
    }
}
