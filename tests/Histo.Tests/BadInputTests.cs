using System.CommandLine;
using Histo.IO;
using Histo.Mil;

namespace Histo.Tests;

/// <summary>
/// Bad input as a careless user gives it, through the built `histo` program (issue 10, items 6, 7, 12, 15-22): each case
/// exits 1 (bad data) or 2 (bad usage) with one line naming the file or value, and never prints a stack trace.
/// </summary>
public class BadInputTests(ToyBagsFixture toy,
    SyntheticSlideFixture slide) : IClassFixture<ToyBagsFixture>, IClassFixture<SyntheticSlideFixture>
{
    static void OneLineError(int expectedCode, (int Code, string Stdout, string Stderr) result, params string[] mentions)
    {
        Assert.True(result.Code == expectedCode, $"exit {result.Code}, expected {expectedCode}: {result.Stderr}{result.Stdout}");
        Assert.DoesNotContain("   at ", result.Stderr);
        Assert.DoesNotContain("Exception", result.Stderr);
        foreach (var m in mentions) Assert.Contains(m, result.Stderr);
    }

    /// <summary>`histo train` on the toy cohort, 3 folds of 2 epochs unless <paramref name="extra"/> says otherwise.</summary>
    string[] Train(string run, params string[] extra) =>
        ["train", "--features", toy.Features, "--labels", toy.Labels, "-o", run,
            .. extra.Contains("--folds") ? Array.Empty<string>() : ["--folds", "3"],
            .. extra.Contains("--epochs") ? Array.Empty<string>() : ["--epochs", "2"], .. extra];

    /// <summary>Copies the toy cohort's features so a test can damage some.</summary>
    static void CopyFeatures(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(Path.Combine(from, "features"))) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }

    [Fact]
    public void UsageErrorsExit2AndNamedValuesAreRefused()
    {
        // Item 21: values that used to be accepted (Infinity, NaN, 0).
        using var dir = new TempDir();
        OneLineError(2, Cli.Run("tile", slide.SlidePath, "-o", dir["t"], "--mpp", "Infinity"), "--mpp");
        OneLineError(2, Cli.Run("tile", slide.SlidePath, "-o", dir["t"], "--mpp", "1", "--min-tissue", "NaN"), "--min-tissue");
        OneLineError(2, Cli.Run(Train(dir["run"], "--weight-decay", "NaN")), "--weight-decay");
        OneLineError(2, Cli.Run(Train(dir["run"], "--lr", "0")), "--lr");
        OneLineError(2, Cli.Run(Train(dir["run"], "--cache-gb", "-1")), "--cache-gb");
        OneLineError(2, Cli.Run("knn", "--train", toy.Features, "--test", toy.Features, "--labels", toy.Labels, "--temperature", "0"),
            "--temperature");
        OneLineError(2, Cli.Run("knn", "--train", toy.Features, "--test", toy.Features, "--labels", toy.Labels, "--temperature",
            "NaN"), "--temperature");
        // A parse error is a usage error too, in one line plus a pointer to --help (not the whole help text).
        var parse = Cli.Run("train", "--bogus");
        OneLineError(2, parse, "--bogus", "histo train --help");
        Assert.DoesNotContain("Usage:", parse.Stderr + parse.Stdout);
        Assert.False(Directory.Exists(dir["t"]) || Directory.Exists(dir["run"]), "a usage error must not create outputs");
    }

    [Fact]
    public void OutputFoldersThatCannotBeWrittenAreOneLine()
    {
        // Item 20: -o under a file, on /proc, a 4 KB path, and a folder another run holds.
        using var dir = new TempDir();
        File.WriteAllText(dir["file"], "x");
        OneLineError(1, Cli.Run("tile", slide.SlidePath, "-o", dir["file/out"], "--mpp", "4"), dir["file/out"]);
        OneLineError(1, Cli.Run("tile", slide.SlidePath, "-o", "/proc/histo-out", "--mpp", "4"), "/proc/histo-out");
        string deep = dir.Path + string.Concat(Enumerable.Repeat("/" + new string('d', 250), 17));
        OneLineError(1, Cli.Run("tile", slide.SlidePath, "-o", deep, "--mpp", "4"), "cannot create");
        using (JobFolder.Open(dir["run"], "a test"))
            OneLineError(1, Cli.Run(Train(dir["run"])), "another histo run", $"process {Environment.ProcessId}");
    }

    [Fact]
    public void ARerunOfTrainWithOtherSettingsIsRefusedNamingThem()
    {
        // Item 6: a rerun with another --lr, --epochs, --weight-decay or --folds used to keep the old folds silently.
        using var dir = new TempDir();
        Assert.Equal(0, Cli.Run(Train(dir["run"])).Code);
        var again = Cli.Run(Train(dir["run"]));
        Assert.Equal(0, again.Code);
        Assert.Contains("already trained, kept", again.Stdout);
        OneLineError(1, Cli.Run(Train(dir["run"], "--lr", "0.001")), "LearningRate 0.0005 -> 0.001", "--overwrite");
        OneLineError(1, Cli.Run(Train(dir["run"], "--epochs", "3", "--weight-decay", "0.01")), "MaxEpochs 2 -> 3",
            "WeightDecay 0.0001 -> 0.01");
        var overwritten = Cli.Run(Train(dir["run"], "--lr", "0.001", "--overwrite"));
        Assert.Equal(0, overwritten.Code);
        Assert.DoesNotContain("already trained", overwritten.Stdout);
    }

    [Fact]
    public void TrainingOnClamFeaturesWithoutTilingAttributesCanBeRerun()
    {
        // Item 16: CLAM/TRIDENT files have no target_mpp; the NaN in config.json made the rerun crash (JsonException).
        using var dir = new TempDir();
        Directory.CreateDirectory(dir["clam"]);
        var csv = new System.Text.StringBuilder("case_id,slide_id,label\n");
        for (int i = 0; i < 9; i++)
        {
            File.Copy(Path.Combine(SharedData.RepoRoot, "tools/reference/golden/clam-features.h5"), dir[$"clam/s{i}.h5"]);
            csv.Append($"c{i},s{i},{(i % 2 == 0 ? "tumor" : "normal")}\n");
        }
        File.WriteAllText(dir["labels.csv"], csv.ToString());
        string[] args = ["train", "--features", dir["clam"], "--labels", dir["labels.csv"], "-o", dir["run"], "--folds", "3",
            "--epochs", "1"];
        var first = Cli.Run(args);
        Assert.True(first.Code == 0, first.Stderr);
        var rerun = Cli.Run(args);
        Assert.True(rerun.Code == 0, rerun.Stderr);
        Assert.Contains("already trained, kept", rerun.Stdout);
    }

    [Fact]
    public void FeaturesFromAnotherEncoderAreRefusedNamingTheOddFile()
    {
        // Item 15: a mixed folder trained; predict accepted another encoder's features and labelled all slides one class.
        using var dir = new TempDir();
        CopyFeatures(toy.Features, dir["mixed"]);
        var f = PatchFeatures.Read(dir["mixed/slide-07.h5"]);
        (f with { Encoder = "resnet18" }).Write(dir["mixed/slide-07.h5"]);
        OneLineError(1, Cli.Run("train", "--features", dir["mixed"], "--labels", toy.Labels, "-o", dir["run"], "--folds", "3"),
            "slide-07.h5", "encoder resnet18 vs toy");
        Assert.Equal(0, Cli.Run(Train(dir["good"])).Code);
        OneLineError(1, Cli.Run("predict", "--model", dir["good"], dir["mixed/slide-07.h5"], "-o", dir["pred"]), "slide-07.h5",
            "encoder resnet18 vs toy");
        Assert.False(File.Exists(dir["pred/predictions.csv"]));
        // Item 17: a features file of another size, for knn.
        Directory.CreateDirectory(dir["wide"]);
        new PatchFeatures("slide-00", new float[3, 16], new long[3, 2], "toy", 224, 0.5).Write(dir["wide/slide-00.h5"]);
        OneLineError(1, Cli.Run("knn", "--train", toy.Features, "--test", dir["wide"], "--labels", toy.Labels), "16-d");
    }

    [Fact]
    public void NonFiniteFeaturesAreRefusedNamingTheFile()
    {
        // Item 17: NaN features silently lowered kNN accuracy (0.99 -> 0.31); train blamed the good files.
        using var dir = new TempDir();
        CopyFeatures(toy.Features, dir["nan"]);
        var f = PatchFeatures.Read(dir["nan/slide-04.h5"]);
        f.Features[2, 3] = float.NaN;
        f.Write(dir["nan/slide-04.h5"]);
        OneLineError(1, Cli.Run("knn", "--train", dir["nan"], "--test", toy.Features, "--labels", toy.Labels), "slide-04.h5", "NaN");
        OneLineError(1, Cli.Run("probe", "--train", toy.Features, "--test", dir["nan"], "--labels", toy.Labels), "slide-04.h5");
        OneLineError(1, Cli.Run("train", "--features", dir["nan"], "--labels", toy.Labels, "-o", dir["run"], "--folds", "3",
            "--epochs", "1"),
            "slide-04.h5");
    }

    [Fact]
    public void UserSplitsAreCheckedOneLineEach()
    {
        // Item 7: an empty validation set crashed (NullReferenceException); a case on two sides leaked test into training.
        using var dir = new TempDir();
        var data = MilDataset.Load(toy.Labels, toy.Features, MilTask.Subtype);
        var train = data.Bags.Take(20).Select(b => b.SlideId).ToList();
        var test = data.Bags.Skip(20).Select(b => b.SlideId).ToList();
        void Write(string name, IList<string> tr, IList<string> va, IList<string> te)
        {
            Directory.CreateDirectory(dir[name]);
            int rows = new[] { tr.Count, va.Count, te.Count }.Max();
            File.WriteAllText(dir[$"{name}/splits_0.csv"], ",train,val,test\n" + string.Concat(Enumerable.Range(0, rows)
                .Select(i => $"{i},{tr.ElementAtOrDefault(i)},{va.ElementAtOrDefault(i)},{te.ElementAtOrDefault(i)}\n")));
        }
        Write("empty-val", train, [], test);
        OneLineError(1, Cli.Run(Train(dir["r1"], "--splits", dir["empty-val"], "--folds", "1")), "val column is empty");
        // Two slides of one case (slide-01 and slide-04, both class b), the second put in validation, the first in training.
        File.WriteAllText(dir["pairs.csv"], File.ReadAllText(toy.Labels).Replace("case-02-1,slide-04", "case-00-1,slide-04"));
        var ids = data.Bags.Select(b => b.SlideId).Where(s => s is not ("slide-01" or "slide-04")).ToList();
        Write("leak", ["slide-01", .. ids.Take(18)], ["slide-04", ids[18]], ids.Skip(19).ToList());
        OneLineError(1, Cli.Run("train", "--features", toy.Features, "--labels", dir["pairs.csv"], "-o", dir["r2"], "--splits", dir["leak"],
            "--folds", "1"), "case case-00-1 has slides in train and val");
        Write("unknown", train, ["slide-99"], test);
        OneLineError(1, Cli.Run(Train(dir["r3"], "--splits", dir["unknown"], "--folds", "1")), "slide-99");
        // Item 22: a class with too few cases is named, not numbered.
        File.WriteAllText(dir["rare.csv"], File.ReadAllText(toy.Labels).Replace("case-00-0,slide-00,a", "case-00-0,slide-00,rare"));
        OneLineError(1, Cli.Run("train", "--features", toy.Features, "--labels", dir["rare.csv"], "-o", dir["r4"], "--folds", "3"),
            "class 'rare'");
    }

    [Fact]
    public void DuplicateMppLinesCorruptTiffsAndLinkLoopsAreNamed()
    {
        using var dir = new TempDir();
        // Item 21: a duplicate slide in --mpp-csv was last-wins.
        string id = Path.GetFileNameWithoutExtension(slide.SlidePath);
        File.WriteAllText(dir["mpp.csv"], $"slide_id,mpp\r\n{id},0.5\r\n\"{id}\",0.25\r\n");
        OneLineError(1, Cli.Run("tile", slide.SlidePath, "-o", dir["t"], "--mpp", "4", "--mpp-csv", dir["mpp.csv"]), "mpp.csv:3",
            "listed again");
        // Item 22: a TIFF header with nothing readable behind it is truncated, not "not a format OpenSlide reads".
        var header = File.ReadAllBytes(slide.SlidePath)[..4096];
        File.WriteAllBytes(dir["cut.svs"], header);
        OneLineError(1, Cli.Run("tile", dir["cut.svs"], "-o", dir["t2"], "--mpp", "4"), "cut.svs", "truncated or corrupt");
        File.CreateSymbolicLink(dir["a.svs"], dir["b.svs"]);
        File.CreateSymbolicLink(dir["b.svs"], dir["a.svs"]);
        OneLineError(1, Cli.Run("tile", dir["a.svs"], "-o", dir["t3"], "--mpp", "4"), "a.svs", "loops");
    }

    [Fact]
    public void LeftoversOfKilledRunsAreRemovedAndReported()
    {
        // Item 19: a killed `tile --save-patches` left staging folders that `pretrain --patches` later read as images.
        using var dir = new TempDir();
        int dead = int.Parse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim()) + 1;
        string staging = dir[$"t/patches/.{Path.GetFileNameWithoutExtension(slide.SlidePath)}.{AtomicFile.HostTag}.{dead}.tmp"];
        Directory.CreateDirectory(staging);
        File.WriteAllText(Path.Combine(staging, "0_0.png"), "partial");
        var run = Cli.Run("tile", slide.SlidePath, "-o", dir["t"], "--mpp", "4", "--patch-size", "64", "--save-patches");
        Assert.True(run.Code == 0, run.Stderr);
        Assert.Contains($"removed {staging}", run.Stderr);
        Assert.False(Directory.Exists(staging));
        // A train fold whose resume/ lost its state restarts, and says so (it used to restart silently).
        var data = MilDataset.Load(toy.Labels, toy.Features, MilTask.Subtype);
        var options = new MilTrainingOptions { Folds = 3, MaxEpochs = 2, MinEpochs = 1 };
        MilTraining.Run(data, options, dir["run"]);
        File.Delete(dir["run/fold_1/metrics.json"]);
        Directory.CreateDirectory(dir["run/fold_1/resume"]);
        File.WriteAllText(dir["run/fold_1/resume/last.safetensors"], "half");
        var log = new List<string>();
        MilTraining.Run(data, options, dir["run"], log.Add);
        Assert.Contains(log, l => l.Contains("fold 1") && l.Contains("incomplete"));
        Assert.True(File.Exists(dir["run/fold_1/metrics.json"]));
    }

    [Fact]
    public void PredictWithSkipErrorsListsTheFailedSlidesAndExits1()
    {
        // Item 18: failing slides were dropped without a word, exit 0.
        using var dir = new TempDir();
        var random = new Random(5);
        Directory.CreateDirectory(dir["emb"]);
        var csv = new System.Text.StringBuilder("case_id,slide_id,label\n");
        for (int i = 0; i < 9; i++)
        {
            var f = new float[6, 512];
            for (int k = 0; k < 6; k++) for (int d = 0; d < 512; d++) f[k, d] = (float)random.NextDouble() + (d == i % 2 ? 2 : 0);
            new PatchFeatures($"s{i}", f, new long[6, 2], "resnet18", 64, 4.0).Write(dir[$"emb/s{i}.h5"]);
            csv.Append($"c{i},s{i},{(i % 2 == 0 ? "x" : "y")}\n");
        }
        File.WriteAllText(dir["labels.csv"], csv.ToString());
        Assert.Equal(0, Cli.Run("train", "--features", dir["emb"], "--labels", dir["labels.csv"], "-o", dir["run"], "--folds", "3",
            "--epochs", "1").Code);
        File.WriteAllText(dir["broken.svs"], "not a slide");
        var result = Cli.Run("predict", "--model", dir["run"], slide.SlidePath, dir["broken.svs"], "-o", dir["pred"], "--skip-errors");
        Assert.True(result.Code == 1, result.Stderr + result.Stdout);
        Assert.Contains("1 slide(s) failed", result.Stderr);
        Assert.Contains("broken", result.Stderr);
        var rows = File.ReadAllLines(dir["pred/predictions.csv"]);
        Assert.Equal(2, rows.Length);
        Assert.StartsWith(Path.GetFileNameWithoutExtension(slide.SlidePath) + ",", rows[1]);
    }

    [Fact]
    public void AnUnexpectedErrorIsOneLineWithTheTraceInALogFile()
    {
        // Item 12: an unexpected exception prints one line and where its stack trace went (or the trace with --verbose).
        var root = new RootCommand { };
        var boom = new Command("boom");
        boom.SetAction(Cli_Guard(_ => throw new InvalidOperationException("a bug")));
        root.Subcommands.Add(boom);
        var stderr = new StringWriter();
        var saved = Console.Error;
        Console.SetError(stderr);
        int code;
        try { code = Histo.Cli.CliRunner.Invoke(root, ["boom"]); }
        finally { Console.SetError(saved); }
        Assert.Equal(1, code);
        var lines = stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains("unexpected InvalidOperationException: a bug", lines[0]);
        string log = System.Text.RegularExpressions.Regex.Match(lines[0], @"in (\S+\.log)").Groups[1].Value;
        Assert.Contains("at ", File.ReadAllText(log));
        File.Delete(log);
    }

    static Func<ParseResult, int> Cli_Guard(Func<ParseResult, int> body) => Histo.Cli.CliRunner.Guard(body);
}
