using System.Diagnostics;
using Histo.Evaluation;
using Histo.Imaging;
using Histo.Models;
using Histo.SelfSupervised;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// Does DINO learn on real pathology patches? PatchCamelyon (Veeling et al. 2018; 96 x 96 px lymph-node patches, tumour
/// or not) from ../shared/data/pcam beside the repository: DINO on unlabelled training patches, starting from resnet18-imagenet (continued,
/// domain-adaptive pretraining, <c>histo pretrain --init</c>) or from a random ResNet-18; then kNN (cosine, k = 20,
/// weighted) and a linear probe (logistic regression) on the validation patches, with the training patches' features and
/// labels, before and after. Patches are embedded at the size of DINO's global crops, as the run's teacher does.
/// </summary>
static class DinoPcam
{
    /// <summary>PatchCamelyon under the shared data folder beside the repository ($HISTO_SHARED_DATA overrides it).</summary>
    static string DataDir => Path.Combine(Environment.GetEnvironmentVariable("HISTO_SHARED_DATA")
        ?? Path.Combine(BenchEnvironment.RepoRoot, "..", "shared", "data"), "pcam");

    /// <summary>
    /// --init resnet18-imagenet|none, --minutes M (training time cap; default 10), --train N (2000), --valid N (1000),
    /// --size S (global crops, 64), --epochs E (4), --batch B (32), --local N (4 local crops of S / 2), --lr, --out-dim,
    /// --teacher-temp, --freeze (epochs with the head's last layer frozen; 1), --seed.
    /// </summary>
    public static int Run(BenchArgs args)
    {
        string init = args.String("--init") ?? CntkResNet18.Config.Name;
        int trainCount = (int)args.Number("--train", 2000), validCount = (int)args.Number("--valid", 1000);
        int size = (int)args.Number("--size", 64);
        double minutes = args.Number("--minutes", 10);
        var (trainFiles, trainLabels) = Split("train", trainCount);
        var (validFiles, validLabels) = Split("valid", validCount);
        var options = new DinoOptions
        {
            Arch = init == "none" ? "resnet18" : null, Init = init == "none" ? null : init,
            Epochs = (int)args.Number("--epochs", 4), BatchSize = (int)args.Number("--batch",
                32), OutDim = (int)args.Number("--out-dim", 1024),
            BaseLearningRate = args.Number("--lr", 5e-4), TeacherTemperature = args.Number("--teacher-temp", 0.04),
            WarmupTeacherTemperature = args.Number("--teacher-temp", 0.04), WarmupTeacherTemperatureEpochs = 0,
            Seed = (int)args.Number("--seed", 0), FreezeLastLayerEpochs = (int)args.Number("--freeze", 1),
            Augmentation = new DinoAugmentation { GlobalSize = size, LocalSize = size / 2, LocalCrops = (int)args.Number("--local", 4) },
        };
        Console.WriteLine(options);

        (double Knn, double Probe) Evaluate(PatchEncoder encoder)
        {
            var train = Embed(encoder, trainFiles, size);
            var valid = Embed(encoder, validFiles, size);
            using var knn = new KnnClassifier(train, trainLabels);
            var byKnn = knn.Predict(valid, k: 20);
            var byProbe = Probes.LogisticRegression(train, trainLabels, valid, classes: 2);
            return (Accuracy(byKnn, validLabels), Accuracy(byProbe, validLabels));
        }

        // The baseline is the network DINO starts from: the --init encoder, or the random ResNet-18 built first after
        // manual_seed(seed), as DinoTraining builds its student.
        (double Knn, double Probe) before;
        manual_seed(options.Seed);
        using (var start = EncoderRegistry.Create(options.Init ?? options.Arch!, inputSize: size)) before = Evaluate(start);
        Console.WriteLine($"  {init} before DINO: kNN {before.Knn:0.000}, linear probe {before.Probe:0.000}");

        string run = Path.Combine(BenchEnvironment.WorkDir, "pcam", $"run-{init}-{Guid.NewGuid():N}");
        var clock = Stopwatch.StartNew();
        var training = TimeSpan.Zero;
        var byEpoch = new List<(double Knn, double Probe)>();
        var losses = new List<double>();
        try
        {
            DinoTraining.Run(trainFiles, options, run, p =>
            {
                if (p.Iteration == p.Iterations || p.Iteration % 10 == 0)
                    Console.WriteLine($"  epoch {p.Epoch} it {p.Iteration}/{p.Iterations}: loss {p.Loss:0.000}, teacher entropy "
                        + $"{p.TeacherEntropy:0.00} "
                        + $"(batch mean {p.TeacherMarginalEntropy:0.00}), lr {p.LearningRate:0.0e0}, "
                            + $"{(training + clock.Elapsed).TotalMinutes:0.0} min");
                if ((training + clock.Elapsed).TotalMinutes > minutes) throw new OperationCanceledException();
            }, epoch =>
            {
                training += clock.Elapsed; // evaluation time is not training time
                using var teacher = EncoderRegistry.Create(run);
                byEpoch.Add(Evaluate(teacher));
                Console.WriteLine($"  after epoch {epoch} ({training.TotalMinutes:0.0} min of training): kNN {byEpoch[^1].Knn:0.000}, "
                    + $"linear probe {byEpoch[^1].Probe:0.000} (before: {before.Knn:0.000}, {before.Probe:0.000})");
                clock.Restart();
            });
        }
        catch (OperationCanceledException)
        {
            training += clock.Elapsed;
            Console.WriteLine($"  stopped at the {minutes} min cap after {byEpoch.Count} of {options.Epochs} epochs");
        }
        Console.WriteLine($"DINO on PatchCamelyon: {trainCount} training patches at {size} px, from {init}, {byEpoch.Count} epoch(s) "
            + $"in {training.TotalMinutes:0.0} min of training");
        Console.WriteLine($"  accuracy on {validCount} validation patches (features of the {trainCount} training patches):");
        Console.WriteLine($"    before DINO   kNN {before.Knn:0.000}  linear probe {before.Probe:0.000}");
        if (byEpoch.Count > 0)
            Console.WriteLine($"    DINO teacher  kNN {byEpoch[^1].Knn:0.000}  linear probe {byEpoch[^1].Probe:0.000}  (by epoch: "
                + string.Join(", ", byEpoch.Select(a => $"{a.Knn:0.000}/{a.Probe:0.000}")) + ")");
        return 0;
    }

    /// <summary>The first count / 2 patches (by name) of each class of a split, class 0 then class 1.</summary>
    internal static (List<string> Files, int[] Labels) Split(string split, int count)
    {
        var files = new List<string>();
        var labels = new List<int>();
        foreach (int label in new[] { 0, 1 })
        {
            string dir = Path.Combine(DataDir, split, label.ToString());
            if (!Directory.Exists(dir)) throw new HistoException($"{dir}: PatchCamelyon not found");
            var chosen = Directory.GetFiles(dir, "*.jpg").Order(StringComparer.Ordinal).Take(count / 2).ToList();
            files.AddRange(chosen);
            labels.AddRange(chosen.Select(_ => label));
        }
        return (files, labels.ToArray());
    }

    static double Accuracy(int[] predicted, int[] labels) => predicted.Zip(labels).Count(p => p.First == p.Second) / (double)labels.Length;

    /// <summary>Features [N, D] of patch files resized to <paramref name="size"/>, in batches of 256.</summary>
    /// <summary>Features of image files resized to the given size, as a [files, FeatureDim] array.</summary>
    internal static float[,] Embed(PatchEncoder encoder, IReadOnlyList<string> files, int size)
    {
        var result = new float[files.Count, encoder.FeatureDim];
        for (int start = 0; start < files.Count; start += 256)
        {
            int count = Math.Min(256, files.Count - start);
            var pixels = new byte[count * size * size * 4];
            Parallel.For(0, count, i => RgbaImage.Load(files[start + i]).Resize(size, size).Pixels.CopyTo(pixels, i * size * size * 4));
            using var batch = tensor(pixels, [count, size, size, 4]);
            using var features = encoder.Embed(batch);
            var flat = features.data<float>().ToArray();
            for (int i = 0; i < count; i++)
                for (int j = 0; j < encoder.FeatureDim; j++) result[start + i, j] = flat[i * encoder.FeatureDim + j];
        }
        return result;
    }
}
