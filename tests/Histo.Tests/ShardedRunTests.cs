using Histo.Mil;

namespace Histo.Tests;

/// <summary>One fold per task (<c>histo train --fold i</c>, <c>--summarise</c>) and <c>histo status</c>, without a scheduler.</summary>
[Collection(TorchRandomCollection.Name)]
public class ShardedRunTests(ToyBagsFixture toy, SyntheticSlideFixture slides)
    : IClassFixture<ToyBagsFixture>, IClassFixture<SyntheticSlideFixture>
{
    static MilTrainingOptions Options => new() { Folds = 3, MaxEpochs = 4, MinEpochs = 2, Seed = 2 };

    [Fact]
    public void FoldsTrainedOneByOneEqualAWholeRunAndTheLastWritesTheSummary()
    {
        using var dir = new TempDir();
        var data = MilDataset.Load(toy.Labels, toy.Features, MilTask.Subtype);
        MilTraining.Run(data, Options, dir["whole"]);

        MilTraining.Run(data, Options with { Fold = 1 }, dir["tasks"]);
        Assert.False(File.Exists(dir["tasks/summary.json"]));
        var error = Assert.Throws<HistoException>(() => MilTraining.Run(data, Options with { SummariseOnly = true }, dir["tasks"]));
        Assert.Contains("fold 0 not started", error.Message);
        Assert.Contains("fold 2 not started", error.Message);
        var (code, stdout, _) = Cli.Run("status", dir["tasks"]);
        Assert.Equal(1, code);
        Assert.Contains("fold 1: done", stdout);
        Assert.Contains("fold 0: not started", stdout);

        MilTraining.Run(data, Options with { Fold = 0 }, dir["tasks"]);
        MilTraining.Run(data, Options with { Fold = 2 }, dir["tasks"]); // the last: writes the summary
        Assert.True(File.Exists(dir["tasks/summary.json"]));
        foreach (var f in new[] { "splits/splits_0.csv", "fold_0/predictions.csv", "fold_1/predictions.csv", "fold_2/predictions.csv" })
            Assert.Equal(File.ReadAllText(dir[$"whole/{f}"]), File.ReadAllText(dir[$"tasks/{f}"]));
        (code, stdout, _) = Cli.Run("status", dir["tasks"]);
        Assert.True(code == 0, stdout);
        Assert.Contains("3 of 3 folds done", stdout);

        File.Delete(dir["tasks/summary.json"]);
        MilTraining.Run(data, Options with { SummariseOnly = true }, dir["tasks"]);
        Assert.Equal(File.ReadAllText(dir["whole/summary.md"]), File.ReadAllText(dir["tasks/summary.md"]));
        Assert.Throws<UsageException>(() => (Options with { Fold = 3 }).Validate());
        Assert.Throws<UsageException>(() => (Options with { Fold = 0, Overwrite = true }).Validate());
    }

    [Fact]
    public void TwoFoldTasksAtOnceShareOneSetup()
    {
        using var dir = new TempDir();
        string[] common = ["train", "--features", toy.Features, "--labels", toy.Labels, "--folds", "3", "--epochs", "2", "-o", dir["run"]];
        var tasks = new[] { "0", "1", "2" }.Select(f => Task.Run(() => Cli.Run([.. common, "--fold", f]))).ToArray();
        Task.WaitAll(tasks);
        Assert.All(tasks, t => Assert.True(t.Result.Code == 0, t.Result.Stderr));
        Assert.True(File.Exists(Path.Combine(dir["run"], "summary.md")));
        Assert.Equal(0, Cli.Run("status", dir["run"]).Code);
    }

    [Fact]
    public void StatusNamesAMissingShardUntilItRuns()
    {
        using var dir = new TempDir();
        string[] tile = ["tile", .. slides.All.Select(s => slides.Dir[s.SlideId + ".tif"]), "--mpp", "2", "--patch-size", "128", "-o",
            dir["tiles"]];
        Assert.Equal(0, Cli.Run([.. tile, "--shard", "0/2"]).Code);
        var (code, stdout, _) = Cli.Run("status", dir["tiles"]);
        Assert.Equal(1, code);
        Assert.Contains("shard 0/2: done", stdout);
        Assert.Contains("shard 1/2: missing", stdout);
        Assert.Equal(0, Cli.Run([.. tile, "--shard", "1/2"]).Code);
        (code, stdout, _) = Cli.Run("status", dir["tiles"]);
        Assert.True(code == 0, stdout);
        Assert.Contains($"{slides.All.Count} slide(s) done", stdout);
        Assert.Equal(1, Cli.Run("status", dir["nothing"]).Code);
    }
}
