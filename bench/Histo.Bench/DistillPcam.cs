using System.Diagnostics;
using Histo.Distillation;
using Histo.Evaluation;
using Histo.Models;
using Histo.SelfSupervised;
using static TorchSharp.torch;

namespace Histo.Bench;

/// <summary>
/// Does a distilled student keep its teacher's knowledge at a fraction of the cost? PatchCamelyon from ../shared/data/pcam:
/// <c>histo distill</c> on the training patches without their labels (teacher resnet18-imagenet at 224 px, student at the
/// patches' own 96 px), then kNN (cosine, k = 20) on the validation patches with the training patches' features and labels,
/// for the teacher, the same student untrained (random initialisation: the lower bound), the student distilled with
/// cosine only and with cosine + attention transfer; and every encoder's patches/s on the same decoded patches.
/// Targets (the distillation issue): student patches/s at least 3x the teacher's, kNN at least 95% of the teacher's.
/// </summary>
static class DistillPcam
{
    /// <summary>--student ARCH (resnet18-half), --size S (96), --train N (2000), --valid N (1000), --epochs E (10),
    /// --views V (4), --batch B (64), --lr, --warmup (1), --seed, --losses "cosine;cosine,at" ("" for the baselines only).</summary>
    public static int Run(BenchArgs args)
    {
        string studentArch = args.String("--student") ?? "resnet18-half";
        int size = (int)args.Number("--size", 96);
        var (trainFiles, trainLabels) = DinoPcam.Split("train", (int)args.Number("--train", 2000));
        var (validFiles, validLabels) = DinoPcam.Split("valid", (int)args.Number("--valid", 1000));
        var options = new DistillOptions
        {
            Student = studentArch, InputSize = size, Epochs = (int)args.Number("--epochs", 10), Views = (int)args.Number("--views", 4),
            BatchSize = (int)args.Number("--batch", 64), LearningRate = args.Number("--lr", 1e-3), Seed = (int)args.Number("--seed", 0),
            WarmupEpochs = (int)args.Number("--warmup", 1),
        };
        Console.WriteLine(options);

        var rows = new List<(string Name, double Knn, double PatchesPerSecond, double TrainMinutes)>();
        void Evaluate(string name, PatchEncoder encoder, double trainMinutes)
        {
            int s = encoder.Spec.InputSize;
            var train = DinoPcam.Embed(encoder, trainFiles, s);
            var valid = DinoPcam.Embed(encoder, validFiles, s);
            using var knn = new KnnClassifier(train, trainLabels);
            var predicted = knn.Predict(valid, k: 20);
            double accuracy = predicted.Zip(validLabels).Count(p => p.First == p.Second) / (double)validLabels.Length;
            rows.Add((name, accuracy, Throughput(encoder), trainMinutes));
            Console.WriteLine($"  {name}: kNN {accuracy:0.000}, {rows[^1].PatchesPerSecond:0} patches/s at {s} px");
        }

        using (var teacher = EncoderRegistry.Create(options.Teacher)) Evaluate($"teacher {options.Teacher}", teacher, 0);
        // The teacher at the student's input side too: how much of the speed comes from the smaller input alone.
        using (var small = EncoderRegistry.Create(options.Teacher, inputSize: size)) Evaluate($"teacher at {size} px", small, 0);
        manual_seed(options.Seed); // the student's initialisation as EncoderDistillation builds it, projection included
        var spec = EncoderRegistry.Get(studentArch);
        using (var random = new PatchEncoder(spec with { InputSize = size, FeatureDim = EncoderRegistry.Get(options.Teacher).FeatureDim },
            new DistilledEncoder(spec.Create(), spec.FeatureDim, EncoderRegistry.Get(options.Teacher).FeatureDim)))
            Evaluate($"student {studentArch}, random initialisation", random, 0);

        string[][] lossSets = args.String("--losses") is { } l ? l.Split(';', StringSplitOptions.RemoveEmptyEntries)
                .Select(s => s.Split(',')).ToArray()
            : [[DistillOptions.Cosine], [DistillOptions.Cosine, DistillOptions.Attention]];
        using var patches = new ImageFolderPatches(trainFiles);
        foreach (var losses in lossSets)
        {
            string run = Path.Combine(BenchEnvironment.WorkDir, "distill", $"run-{string.Join("-", losses)}-{Guid.NewGuid():N}");
            var clock = Stopwatch.StartNew();
            int lastEpoch = 0;
            var epochLosses = EncoderDistillation.Run(patches, options with { Losses = losses }, run, p =>
            {
                if (!p.Teacher && p.Epoch != lastEpoch && p.Iteration == p.Iterations)
                {
                    lastEpoch = p.Epoch;
                    Console.WriteLine($"    epoch {p.Epoch}/{p.Epochs}: loss {p.Loss:0.000} "
                        + string.Join(" ", p.Terms.Select(t => $"{t.Key} {t.Value:0.000}")) + $", {clock.Elapsed.TotalMinutes:0.0} min");
                }
            });
            double minutes = clock.Elapsed.TotalMinutes;
            using var student = EncoderRegistry.Create(run);
            Evaluate($"student {studentArch}, distilled ({string.Join(" + ", losses)})", student, minutes);
        }

        var (_, teacherKnn, teacherSpeed, _) = rows[0];
        Console.WriteLine($"Distillation on PatchCamelyon: {trainFiles.Count} unlabelled training patches, kNN (cosine, k = 20) on "
            + $"{validFiles.Count} validation patches; {options.Epochs} epochs, {options.Views} views per patch");
        Console.WriteLine($"  {"encoder",-52} {"kNN",6} {"of teacher",10} {"patches/s",10} {"x teacher",9} {"training",9}");
        foreach (var (name, knn, speed, minutes) in rows)
            Console.WriteLine($"  {name,-52} {knn,6:0.000} {knn / teacherKnn,10:P1} {speed,10:0} {speed / teacherSpeed,9:0.0} "
                + (minutes > 0 ? $"{minutes,5:0.0} min" : ""));
        Console.WriteLine("  targets: at least 3x the teacher's patches/s and 95% of its kNN accuracy");
        return 0;
    }

    /// <summary>Patches per second of <see cref="PatchEncoder.Embed"/> on 256 decoded patches at the encoder's input side
    /// (batches of 64, best of three: decoding is the same for every encoder and left out).</summary>
    static double Throughput(PatchEncoder encoder)
    {
        int s = encoder.Spec.InputSize;
        using var batch = randint(0, 256, [64, s, s, 4], dtype: ScalarType.Byte);
        using (var warm = encoder.Embed(batch)) { }
        double best = double.MaxValue;
        for (int trial = 0; trial < 3; trial++)
        {
            var clock = Stopwatch.StartNew();
            for (int k = 0; k < 4; k++) using (var f = encoder.Embed(batch)) { }
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return 256 / best;
    }
}
