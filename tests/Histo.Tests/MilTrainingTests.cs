using Histo.IO;
using Histo.Mil;

namespace Histo.Tests;

/// <summary>Training on small made-up bags: class c's bags contain a few instances shifted along feature c.</summary>
public sealed class ToyBagsFixture : IDisposable
{
    public TempDir Dir { get; } = new();
    public string Labels => Dir["labels.csv"];
    public string Features => Dir["emb"];

    public ToyBagsFixture()
    {
        var random = new Random(3);
        var csv = new System.Text.StringBuilder("case_id,slide_id,label,grade\n");
        Directory.CreateDirectory(Dir["emb/features"]);
        for (int i = 0; i < 30; i++)
        {
            int label = i % 3;
            string caseId = $"case-{i / 2:D2}-{label}", slideId = $"slide-{i:D2}";
            csv.Append($"{caseId},{slideId},{(char)('a' + label)},{label}\n");
            int n = 10 + random.Next(30);
            var f = new float[n, 8];
            for (int k = 0; k < n; k++)
                for (int d = 0; d < 8; d++) f[k, d] = (float)(random.NextDouble() - 0.5);
            for (int k = 0; k < 4; k++) f[k, label] += 3; // a few key instances carry the class
            new PatchFeatures(slideId, f, new long[n, 2], "toy", 224, 0.5).Write(Dir[$"emb/features/{slideId}.h5"]);
        }
        File.WriteAllText(Labels, csv.ToString());
    }

    public void Dispose() => Dir.Dispose();
}

[Collection(TorchRandomCollection.Name)]
public class MilTrainingTests(ToyBagsFixture toy) : IClassFixture<ToyBagsFixture>
{
    [Fact]
    public void SplitsAreByCaseStratifiedAndDisjoint()
    {
        var data = MilDataset.Load(toy.Labels, toy.Features, MilTask.Subtype);
        var folds = CaseSplits.Make(data.Bags, 5, seed: 1, data.ClassNames);
        var caseOf = data.Bags.ToDictionary(b => b.SlideId, b => b.CaseId);
        foreach (var fold in folds)
        {
            var trainCases = fold.Train.Select(s => caseOf[s]).ToHashSet();
            Assert.Empty(fold.Test.Select(s => caseOf[s]).Where(trainCases.Contains));
            Assert.Empty(fold.Val.Select(s => caseOf[s]).Where(trainCases.Contains));
            Assert.Equal(30, fold.Train.Count + fold.Val.Count + fold.Test.Count);
            Assert.Equal(3, fold.Test.Select(s => data.Bags.First(b => b.SlideId == s).Label).Distinct().Count());
        }
        Assert.Equal(30, folds.SelectMany(f => f.Test).Distinct().Count());
        using var dir = new TempDir();
        CaseSplits.Write(folds, dir.Path);
        var back = CaseSplits.Read(dir.Path, data.Bags);
        Assert.Equal(folds.Select(f => f.Test), back.Select(f => f.Test));
        Assert.StartsWith(",train,val,test", File.ReadAllText(dir["splits_0.csv"]));
    }

    [Theory]
    [InlineData("abmil")]
    [InlineData("clam-sb")]
    public void TrainingLearnsAndResumes(string model)
    {
        var data = MilDataset.Load(toy.Labels, toy.Features, MilTask.Subtype);
        using var run = new TempDir();
        var options = new MilTrainingOptions { Model = model, Folds = 3, MaxEpochs = 15, MinEpochs = 5, Seed = 1 };
        var results = MilTraining.Run(data, options, run.Path);
        Assert.Equal(3, results.Count);
        Assert.True(results.Average(r => r.Auc) > 0.9, $"mean AUC {results.Average(r => r.Auc):F3}");
        foreach (var f in new[] { "summary.json", "summary.md", "splits/splits_0.csv", "fold_0/model.safetensors",
            "fold_0/history.csv", "fold_0/predictions.csv" })
            Assert.True(File.Exists(run[f]), f);
        // Resume: finished folds are kept, not retrained.
        var stamp = File.GetLastWriteTimeUtc(run["fold_1/model.safetensors"]);
        File.Delete(run["fold_2/metrics.json"]);
        var again = MilTraining.Run(data, options, run.Path);
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(run["fold_1/model.safetensors"]));
        Assert.Equal(results[0], again[0]);
        Assert.Throws<HistoException>(() => MilTraining.Run(data, options with { Model = "mean" }, run.Path));
    }

    [Fact]
    public void AnInterruptedFoldResumesOnTheSameTrajectory()
    {
        var data = MilDataset.Load(toy.Labels, toy.Features, MilTask.Subtype);
        var options = new MilTrainingOptions { Folds = 3, MaxEpochs = 6, MinEpochs = 6, Seed = 4 };
        using var straight = new TempDir();
        MilTraining.Run(data, options, straight.Path);
        using var interrupted = new TempDir();
        // Simulate a kill after epoch 3 of fold 1.
        Assert.Throws<OperationCanceledException>(() => MilTraining.Run(data, options, interrupted.Path, onEpoch: p =>
        {
            if (p.Fold == 1 && p.Epoch == 3) throw new OperationCanceledException();
        }));
        Assert.True(File.Exists(interrupted["fold_1/resume/state.json"]));
        var lines = new List<string>();
        MilTraining.Run(data, options, interrupted.Path, lines.Add);
        Assert.Contains(lines, l => l.Contains("resuming after epoch 3"));
        Assert.False(Directory.Exists(interrupted["fold_1/resume"]));
        Assert.Equal(File.ReadAllText(straight["fold_1/history.csv"]), File.ReadAllText(interrupted["fold_1/history.csv"]));
        Assert.Equal(File.ReadAllText(straight["fold_1/predictions.csv"]), File.ReadAllText(interrupted["fold_1/predictions.csv"]));
    }

    [Fact]
    public void OrdinalHeadsTrainOnGrades()
    {
        var data = MilDataset.Load(toy.Labels, toy.Features, MilTask.Grade);
        Assert.Equal(["0", "1", "2"], data.ClassNames);
        using var run = new TempDir();
        var results = MilTraining.Run(data, new MilTrainingOptions { Task = MilTask.Grade, Head = HeadKind.Coral, Folds = 3,
            MaxEpochs = 15, MinEpochs = 5 }, run.Path);
        Assert.True(results.Average(r => r.Kappa) > 0.5, $"mean kappa {results.Average(r => r.Kappa):F3}");
    }

    [Fact]
    public void BadInputsAreReportedClearly()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["bad.csv"], "slide,label\nx,a\n");
        Assert.Contains("case_id", Assert.Throws<HistoException>(() => MilDataset.Load(dir["bad.csv"], toy.Features,
            MilTask.Subtype)).Message);
        File.WriteAllText(dir["extra.csv"], File.ReadAllText(toy.Labels) + "case-99,slide-99,a,0\n");
        var data = MilDataset.Load(dir["extra.csv"], toy.Features, MilTask.Subtype);
        Assert.Contains(data.Warnings, w => w.Contains("slide-99"));
        Assert.Contains("too few cases", Assert.Throws<HistoException>(() => CaseSplits.Make(data.Bags, 12, 0, data.ClassNames)).Message);
        // An empty bag is an error naming its file when first used.
        new PatchFeatures("empty", new float[0, 8], new long[0, 2], "toy", 224, 0.5).Write(dir["empty.h5"]);
        var bag = new MilBag("empty", "c", 0, dir["empty.h5"]);
        Assert.Contains("empty.h5", Assert.Throws<HistoException>(() => BagLoader.Load(bag)).Message);
    }

    [Fact]
    public void TwoFreshRunsWithOneSeedGiveIdenticalFiles()
    {
        // Issue 10, item 22: energies of two fresh runs were reported to differ by 1e-5. Two processes, same seed, same
        // thread count: the weights and every prediction (probabilities and energies) must be byte-identical.
        using var dir = new TempDir();
        foreach (var run in new[] { "a", "b" })
        {
            var (code, _, stderr) = Cli.Run("train", "--features", toy.Features, "--labels", toy.Labels, "-o", dir[run],
                "--folds", "3", "--epochs", "4", "--model", "gated-abmil", "--seed", "7");
            Assert.True(code == 0, stderr);
        }
        for (int fold = 0; fold < 3; fold++)
        {
            Assert.Equal(File.ReadAllBytes(dir[$"a/fold_{fold}/model.safetensors"]),
                File.ReadAllBytes(dir[$"b/fold_{fold}/model.safetensors"]));
            Assert.Equal(File.ReadAllText(dir[$"a/fold_{fold}/predictions.csv"]), File.ReadAllText(dir[$"b/fold_{fold}/predictions.csv"]));
        }
    }
}
