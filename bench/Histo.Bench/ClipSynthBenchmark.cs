using System.Diagnostics;
using Histo.Evaluation;
using Histo.Imaging;
using Histo.IO;
using Histo.Models;
using Histo.Synthesis;
using Histo.VisionLanguage;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// Does a vision-language model trained here classify unseen patches by prompts? Two synthetic cohorts with different seeds
/// (so the held-out cases were never trained on) with captioned patches (<c>histo synth --captions</c>); <c>clip-train</c>
/// with the transformer and the bag-of-words text tower (LiT: the resnet18-imagenet image tower locked, unless
/// <c>--unlocked</c>); then zero-shot on the held-out patches with the synth's prompt file, worded unlike the captions,
/// beside chance and a supervised linear probe (logistic regression) on the same image tower's features.
/// </summary>
static class ClipSynthBenchmark
{
    /// <summary>--train-slides N (24), --test-slides N (12), --captions N per slide (40), --epochs E (15), --batch B (64),
    /// --lr, --unlocked, --seed.</summary>
    public static int Run(BenchArgs args)
    {
        int trainSlides = (int)args.Number("--train-slides", 24), testSlides = (int)args.Number("--test-slides", 12);
        int perSlide = (int)args.Number("--captions", 40), epochs = (int)args.Number("--epochs", 15);
        bool unlocked = Environment.GetCommandLineArgs().Contains("--unlocked");
        string work = Path.Combine(BenchEnvironment.WorkDir, "clip-synth");
        string Cohort(string name, int slides, ulong seed)
        {
            string dir = Path.Combine(work, name);
            var clock = Stopwatch.StartNew();
            SyntheticCohort.Generate(new SyntheticCohortOptions { Slides = slides, Seed = seed, Captions = perSlide }, dir);
            Console.WriteLine($"{name}: {slides} slides, {perSlide} captioned patches each ({clock.Elapsed.TotalSeconds:0} s)");
            return Path.Combine(dir, "captions");
        }
        string train = Cohort("train", trainSlides, 0), test = Cohort("test", testSlides, 1);
        var (testImages, testLabels) = Labelled(test);
        var (trainImages, trainLabels) = Labelled(train);
        string prompts = Path.Combine(test, "prompts.json");
        var classes = PromptSet.Load(prompts).Classes.ToList();
        var counts = classes.Select((c, i) => $"{c} {testLabels.Count(l => l == i)}");
        Console.WriteLine($"held-out patches: {testImages.Count} ({string.Join(", ", counts)})");

        var rows = new List<(string Name, double Accuracy, double Balanced, double Seconds)>();
        foreach (var text in new[] { ContrastiveConfig.Transformer, ContrastiveConfig.BagOfWords })
        {
            string run = Path.Combine(work, $"run-{text}-{Guid.NewGuid():N}");
            var options = new ContrastiveOptions
            {
                TextEncoder = text, Epochs = epochs, BatchSize = (int)args.Number("--batch", 64), LearningRate = args.Number("--lr", 5e-4),
                LockImage = !unlocked,
                Seed = (int)args.Number("--seed", 0),
            };
            var clock = Stopwatch.StartNew();
            var losses = ContrastiveTraining.Run(Path.Combine(train, "captions.csv"), options, run);
            double seconds = clock.Elapsed.TotalSeconds;
            var (_, metrics, _) = ZeroShot.ClassifyImages(run, prompts, null, testImages, Path.Combine(test, "captions.csv"),
                Path.Combine(run, "zeroshot"));
            Console.WriteLine($"  {text}: InfoNCE {losses[0]:0.000} -> {losses[^1]:0.000} in {seconds:0} s; zero-shot accuracy "
                + $"{metrics!.Accuracy:0.000}, balanced {metrics.BalancedAccuracy:0.000}");
            rows.Add(($"zero-shot, {text} text tower{(options.LockImage ? " (LiT)" : "")}", metrics.Accuracy,
                metrics.BalancedAccuracy, seconds));
        }

        // The supervised reference: a linear probe on the locked image tower's features, trained on the training patches' labels.
        using (var encoder = EncoderRegistry.Create(CntkResNet18.Config.Name, inputSize: 64))
        {
            var probe = Probes.LogisticRegression(DinoPcam.Embed(encoder, trainImages, 64), trainLabels.ToArray(),
                DinoPcam.Embed(encoder, testImages, 64), classes.Count);
            var m = ClassificationMetrics.Compute(testLabels, probe, classes.Count);
            rows.Add(("linear probe on the image features (supervised)", m.Accuracy, m.BalancedAccuracy, 0));
        }
        int majority = Enumerable.Range(0, classes.Count).MaxBy(c => testLabels.Count(l => l == c));
        rows.Add(("chance (majority class)", testLabels.Count(l => l == majority) / (double)testLabels.Count, 1.0 / classes.Count, 0));
        Console.WriteLine($"\nheld-out patches ({testImages.Count}, {testSlides} slides never trained on):");
        Console.WriteLine($"  {"",-52} {"accuracy",9} {"balanced",9}");
        foreach (var r in rows) Console.WriteLine($"  {r.Name,-52} {r.Accuracy,9:0.000} {r.Balanced,9:0.000}");
        return 0;
    }

    static (List<string> Images, List<int> Labels) Labelled(string captionsDir)
    {
        var classes = PromptSet.Load(Path.Combine(captionsDir, "prompts.json")).Classes.ToList();
        var table = CsvTable.Read(Path.Combine(captionsDir, "captions.csv"), "captions");
        int image = table.Column("image"), label = table.Column("label");
        return (table.Rows.Select(r => Path.Combine(captionsDir, r.Cells[image])).ToList(),
            table.Rows.Select(r => classes.IndexOf(r.Cells[label])).ToList());
    }
}
