using System.Globalization;
using Histo.IO;
using Histo.Mil;

namespace Histo.Tests;

/// <summary><c>histo train --distill-from</c>: a MIL student learns from a teacher run's soft targets.</summary>
[Collection(TorchRandomCollection.Name)]
public class MilDistillationTests(ToyBagsFixture toy) : IClassFixture<ToyBagsFixture>
{
    static MilTrainingOptions Options => new() { Folds = 3, MaxEpochs = 15, MinEpochs = 15, Seed = 1 };

    /// <summary>Predicted class of every test slide of a run, over all folds.</summary>
    static Dictionary<string, string> Predicted(string run) => Directory.GetDirectories(run, "fold_*")
        .SelectMany(f => File.ReadAllLines(Path.Combine(f, "predictions.csv")).Skip(1)).Select(l => l.Split(','))
        .ToDictionary(r => r[0], r => r[3]);

    [Fact]
    public void AStudentFollowsItsTeachersSoftTargetsAndAlphaZeroIsLabelTraining()
    {
        using var dir = new TempDir();
        // A teacher taught wrong on purpose: every slide's label moved to the next class (a -> b -> c -> a). A student that
        // learns from it alone (alpha 1) must predict what the teacher predicts, not the true labels it also has.
        var rotated = File.ReadAllLines(toy.Labels).Select((l, i) => i == 0 ? l
            : string.Join(',', l.Split(',').Select((c, j) => j == 2 ? ((char)('a' + (c[0] - 'a' + 1) % 3)).ToString() : c)));
        File.WriteAllLines(dir["rotated.csv"], rotated);
        var teacherData = MilDataset.Load(dir["rotated.csv"], toy.Features, MilTask.Subtype);
        MilTraining.Run(teacherData, Options, dir["teacher"]);
        var truth = MilDataset.Load(toy.Labels, toy.Features, MilTask.Subtype);
        var student = MilTraining.Run(truth, Options with { Distillation = new MilDistillation(dir["teacher"], Alpha: 1, Temperature: 1) },
            dir["student"]);
        var (teacherSays, studentSays) = (Predicted(dir["teacher"]), Predicted(dir["student"]));
        double agreement = teacherSays.Count(kv => studentSays[kv.Key] == kv.Value) / (double)teacherSays.Count;
        Assert.True(agreement >= 0.9, $"student agrees with the teacher on {agreement:P0} of test slides");
        Assert.True(student.Average(f => f.Auc) < 0.5, $"AUC against the true labels {student.Average(f => f.Auc):0.000}");
        Assert.Equal(File.ReadAllText(dir["teacher/splits/splits_0.csv"]), File.ReadAllText(dir["student/splits/splits_0.csv"]));

        // alpha 0: the soft targets weigh nothing, so the run is plain label training on the teacher's splits, to the byte.
        MilTraining.Run(truth, Options with { Distillation = new MilDistillation(dir["teacher"], Alpha: 0) }, dir["alpha0"]);
        MilTraining.Run(truth, Options with { SplitsDir = dir["teacher/splits"] }, dir["labels"]);
        foreach (var fold in new[] { "fold_0", "fold_1", "fold_2" })
            Assert.Equal(File.ReadAllText(dir[$"labels/{fold}/predictions.csv"]), File.ReadAllText(dir[$"alpha0/{fold}/predictions.csv"]));
    }

    [Fact]
    public void ATeacherOnOtherFeaturesNeedsThemAndMismatchesAreRefused()
    {
        using var dir = new TempDir();
        var truth = MilDataset.Load(toy.Labels, toy.Features, MilTask.Subtype);
        MilTraining.Run(truth, Options with { MaxEpochs = 2, MinEpochs = 1 }, dir["teacher"]);
        // The student's features: the first four dimensions, from another "encoder".
        Directory.CreateDirectory(dir["small/features"]);
        foreach (var bag in truth.Bags)
        {
            var f = PatchFeatures.Read(bag.FeaturesPath);
            var small = new float[f.Features.GetLength(0), 4];
            for (int i = 0; i < small.GetLength(0); i++) for (int d = 0; d < 4; d++) small[i, d] = f.Features[i, d];
            new PatchFeatures(bag.SlideId, small, f.Coords, "toy-small", 224, 0.5).Write(dir[$"small/features/{bag.SlideId}.h5"]);
        }
        var smallData = MilDataset.Load(toy.Labels, dir["small"], MilTask.Subtype);
        var short2 = Options with { MaxEpochs = 2, MinEpochs = 1 };
        var error = Assert.Throws<HistoException>(() => MilTraining.Run(smallData,
            short2 with { Distillation = new MilDistillation(dir["teacher"]) }, dir["s1"]));
        Assert.Contains("pass --teacher-features", error.Message);
        Assert.False(Directory.Exists(dir["s1"])); // refused before the run folder is made
        Assert.Equal(3, MilTraining.Run(smallData, short2 with { Distillation = new MilDistillation(dir["teacher"], toy.Features) },
            dir["s2"]).Count);

        Assert.Throws<UsageException>(() => (short2 with { Task = MilTask.Grade, Head = HeadKind.Coral,
            Distillation = new MilDistillation(dir["teacher"]) }).Validate());
        Assert.Throws<UsageException>(() => MilTraining.Run(truth, short2 with { SplitsDir = dir["teacher/splits"],
            Distillation = new MilDistillation(dir["teacher"]) }, dir["s3"]));
        var twoClasses = File.ReadAllLines(toy.Labels).Select((l, i) => i == 0 ? l : l.Replace(",c,", ",b,"));
        File.WriteAllLines(dir["two.csv"], twoClasses);
        Assert.Contains("teacher's classes", Assert.Throws<HistoException>(() => MilTraining.Run(
            MilDataset.Load(dir["two.csv"], toy.Features, MilTask.Subtype),
            short2 with { Distillation = new MilDistillation(dir["teacher"]) }, dir["s4"])).Message);
    }

    [Fact]
    public void TheCliTrainsAStudent()
    {
        using var dir = new TempDir();
        string[] common = ["train", "--features", toy.Features, "--labels", toy.Labels, "--folds", "3", "--epochs", "2"];
        var (code, _, stderr) = Cli.Run([.. common, "-o", dir["teacher"]]);
        Assert.True(code == 0, stderr);
        (code, var stdout, stderr) = Cli.Run([.. common, "--model", "mean", "--distill-from", dir["teacher"], "--alpha", "0.7",
            "-o", dir["student"]]);
        Assert.True(code == 0, stderr);
        Assert.Contains("AUC", stdout);
        var settings = File.ReadAllText(dir["student/settings.json"]);
        Assert.Contains("0.7", settings);
        (code, _, stderr) = Cli.Run([.. common, "--teacher-features", toy.Features, "-o", dir["bad"]]);
        Assert.Equal(2, code);
        Assert.Contains("--distill-from", stderr);
        (code, _, stderr) = Cli.Run([.. common, "--distill-from", dir["missing"], "-o", dir["bad"]]);
        Assert.Equal(1, code);
        Assert.Contains("not a training run", stderr);
    }
}
