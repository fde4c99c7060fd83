using System.Diagnostics;

namespace Histo.Tests;

/// <summary>
/// Array jobs on a real Slurm: a one-node cluster on this machine (Debian's slurm-wlm and munge, started by
/// scripts/slurm/local-cluster.sh with every file in a temporary folder, stopped after), the project's own sbatch scripts for
/// tile, embed and one fold per task, then summarise; the outputs must equal a single-process run's. Then a fold task is
/// cancelled mid-way with scancel and the array resubmitted: it resumes and the result is unchanged.
/// </summary>
public sealed class SlurmTests : IDisposable
{
    readonly TempDir _dir = new();
    readonly string _cluster;
    readonly Dictionary<string, string> _env;

    public SlurmTests()
    {
        _cluster = _dir["slurm"];
        var (code, stdout, stderr) = Run("bash", Script("local-cluster.sh"), "start", _cluster);
        Assert.True(code == 0, $"the test cluster did not start: {stderr}{stdout}");
        _env = new Dictionary<string, string> { ["SLURM_CONF"] = Path.Combine(_cluster, "slurm.conf"), ["HISTO"] = Cli.Executable };
    }

    public void Dispose()
    {
        Run("bash", Script("local-cluster.sh"), "stop", _cluster);
        _dir.Dispose();
    }

    static string Script(string name) => Path.Combine(SharedData.RepoRoot, "scripts", "slurm", name);

    (int Code, string Stdout, string Stderr) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in _env ?? []) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr);
    }

    /// <summary>sbatch an array and wait for it (sbatch --wait); the logs go to logs/.</summary>
    void SubmitArray(string tasks, string script, params string[] args)
    {
        Directory.CreateDirectory(_dir["logs"]);
        var (code, stdout, stderr) = Run("sbatch", ["--wait", $"--array={tasks}", $"--output={_dir["logs"]}/%x-%A_%a.out", Script(script),
            .. args]);
        string logs = string.Join("\n", Directory.GetFiles(_dir["logs"]).Select(f => $"{Path.GetFileName(f)}: {File.ReadAllText(f)}"));
        Assert.True(code == 0, $"sbatch {script}: {stdout}{stderr}\n{logs}");
    }

    static void AssertSameFiles(string expected, string actual, string pattern)
    {
        var files = Directory.GetFiles(expected, pattern).Select(Path.GetFileName).Order().ToList();
        Assert.NotEmpty(files);
        Assert.Equal(files, Directory.GetFiles(actual, pattern).Select(Path.GetFileName).Order().ToList());
        foreach (var f in files)
            Assert.True(File.ReadAllBytes(Path.Combine(expected, f!)).SequenceEqual(File.ReadAllBytes(Path.Combine(actual, f!))), f);
    }

    [Fact]
    public void ArrayJobsEqualASingleProcessRunAndACancelledFoldResumes()
    {
        var (code, _, stderr) = Cli.Run("synth", "-o", _dir["cohort"], "--slides", "18", "--seed", "4", "--width", "1024", "--height",
            "768");
        Assert.True(code == 0, stderr);
        string slides = _dir["cohort/slides"], labels = _dir["cohort/labels.csv"];
        string[] tileOptions = ["--mpp", "1", "--patch-size", "128"];
        string[] trainOptions = ["--epochs", "3", "--seed", "1"];

        // The single-process run.
        Assert.Equal(0, Cli.Run(["tile", slides, "-o", _dir["one/tiles"], .. tileOptions]).Code);
        Assert.Equal(0, Cli.Run("embed", slides, "--coords", _dir["one/tiles"], "-o", _dir["one/features"]).Code);
        (code, _, stderr) = Cli.Run(["train", "--features", _dir["one/features"], "--labels", labels, "-o", _dir["one/run"], "--folds",
            "3", .. trainOptions]);
        Assert.True(code == 0, stderr);

        // The same on Slurm: 3 tiling and 3 embedding tasks, 3 fold tasks, then the summary.
        SubmitArray("0-2", "tile.sbatch", [slides, _dir["slurm-run/tiles"], .. tileOptions]);
        SubmitArray("0-2", "embed.sbatch", slides, _dir["slurm-run/tiles"], _dir["slurm-run/features"]);
        SubmitArray("0-2", "train.sbatch", [_dir["slurm-run/features"], labels, _dir["slurm-run/run"], .. trainOptions]);
        var summarise = Run("sbatch", ["--wait", $"--output={_dir["logs"]}/summarise.out", Script("summarise.sbatch"),
            _dir["slurm-run/features"], labels, _dir["slurm-run/run"], "3", .. trainOptions]);
        Assert.True(summarise.Code == 0, File.ReadAllText(_dir["logs/summarise.out"]));

        AssertSameFiles(_dir["one/tiles/coords"], _dir["slurm-run/tiles/coords"], "*.h5");
        AssertSameFiles(_dir["one/features/features"], _dir["slurm-run/features/features"], "*.h5");
        for (int f = 0; f < 3; f++) AssertSameFiles(_dir[$"one/run/fold_{f}"], _dir[$"slurm-run/run/fold_{f}"], "predictions.csv");
        foreach (var dir in new[] { "tiles", "features", "run" })
        {
            var (statusCode, status, _) = Cli.Run("status", _dir[$"slurm-run/{dir}"]);
            Assert.True(statusCode == 0, $"{dir}: {status}");
        }

        // A fold task cancelled mid-way: the array resubmitted resumes it from its last epoch, to the same result.
        string[] longTraining = ["--epochs", "150", "--min-epochs", "150", "--seed", "1"];
        Assert.Equal(0, Cli.Run(["train", "--features", _dir["one/features"], "--labels", labels, "-o", _dir["one/long"], "--folds", "3",
            .. longTraining]).Code);
        var submit = Run("sbatch", ["--parsable", "--array=0-2", $"--output={_dir["logs"]}/long-%a.out", Script("train.sbatch"),
            _dir["slurm-run/features"], labels, _dir["slurm-run/long"], .. longTraining]);
        Assert.True(submit.Code == 0, submit.Stderr);
        string job = submit.Stdout.Trim();
        string state = _dir["slurm-run/long/fold_1/resume/state.json"];
        var clock = Stopwatch.StartNew();
        while (!File.Exists(state) && clock.Elapsed < TimeSpan.FromMinutes(3)) Thread.Sleep(50);
        Assert.True(File.Exists(state), "fold 1 never finished an epoch");
        Assert.Equal(0, Run("scancel", $"{job}_1").Code);
        while (Run("squeue", "-h", "-j", job).Stdout.Trim().Length > 0 && clock.Elapsed < TimeSpan.FromMinutes(5)) Thread.Sleep(200);
        var (afterCancel, stopped, _) = Cli.Run("status", _dir["slurm-run/long"]);
        Assert.Equal(1, afterCancel);
        Assert.Contains("fold 1: stopped after epoch", stopped);
        SubmitArray("0-2", "train.sbatch", [_dir["slurm-run/features"], labels, _dir["slurm-run/long"], .. longTraining]);
        for (int f = 0; f < 3; f++) AssertSameFiles(_dir[$"one/long/fold_{f}"], _dir[$"slurm-run/long/fold_{f}"], "predictions.csv");
        Assert.Equal(0, Cli.Run("status", _dir["slurm-run/long"]).Code);
    }
}
