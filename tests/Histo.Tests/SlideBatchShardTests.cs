using Histo.Slides;

namespace Histo.Tests;

/// <summary>--shard auto: the shard from the scheduler's environment (Slurm array tasks, Kubernetes Indexed Jobs).</summary>
public class SlideBatchShardTests
{
    static Func<string, string?> Env(params (string Name, string Value)[] vars) => name => vars.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void AutoReadsTheSchedulersIndex()
    {
        Assert.Equal((1, 3), SlideBatch.ParseShard("auto", Env(("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "3"))));
        // sbatch --array=1-3: task ids 1..3 are shards 0..2.
        Assert.Equal((2, 3), SlideBatch.ParseShard("auto", Env(("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "3"))));
        Assert.Equal((4, 8), SlideBatch.ParseShard("auto/8", Env(("JOB_COMPLETION_INDEX", "4"))));
        Assert.Equal((0, 2), SlideBatch.ParseShard("0/2", Env()));
        var e = Assert.Throws<UsageException>(() => SlideBatch.ParseShard("auto", Env()));
        Assert.Contains("SLURM_ARRAY_TASK_ID", e.Message);
        Assert.Throws<UsageException>(() => SlideBatch.ParseShard("auto/2", Env(("JOB_COMPLETION_INDEX", "2"))));   // index beyond n
    }

    [Fact]
    public void Cli_TileWithShardAutoSplitsTheCohortAsSlurmTasks()
    {
        using var dir = new TempDir();
        var (code, _, stderr) = Cli.Run("synth", "-o", dir["cohort"], "--slides", "5", "--width", "512", "--height", "384");
        Assert.True(code == 0, stderr);
        var seen = new List<string>();
        for (int task = 1; task <= 2; task++)   // sbatch --array=1-2
        {
            var env = new Dictionary<string, string>
            {
                ["SLURM_ARRAY_TASK_ID"] = $"{task}", ["SLURM_ARRAY_TASK_MIN"] = "1", ["SLURM_ARRAY_TASK_COUNT"] = "2",
            };
            (code, _, stderr) = Cli.Run(env, "tile", dir["cohort/slides"], "--shard", "auto", "--mpp", "2", "--patch-size", "64", "-o",
                dir["tiles"]);
            Assert.True(code == 0, stderr);
            var now = Directory.GetFiles(dir["tiles/coords"], "*.h5").Select(Path.GetFileNameWithoutExtension).ToList();
            var added = now.Except(seen).ToList();
            // Each task tiles exactly the slides of its shard.
            Assert.Equal(Enumerable.Range(1, 5).Select(i => $"slide-{i:D3}").Where(s => SlideBatch.InShard(s, (task - 1, 2))).Order(),
                added.Order()!);
            seen = now!;
        }
        Assert.Equal(5, seen.Count);
        (code, _, stderr) = Cli.Run("tile", dir["cohort/slides"], "--shard", "auto", "--mpp", "2", "-o", dir["other"]);
        Assert.Equal(2, code);
        Assert.Contains("SLURM_ARRAY_TASK_ID", stderr);
    }
}
