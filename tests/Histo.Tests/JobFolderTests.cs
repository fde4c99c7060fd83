using Histo.IO;

namespace Histo.Tests;

/// <summary>
/// The shared long-job scheme (issue 10, items 6, 19, 20): a lock per output folder, stale temporaries of killed runs
/// removed, settings compared naming each difference, and output paths that cannot be created reported in one line.
/// </summary>
public class JobFolderTests
{
    [Fact]
    public void ASecondRunOnALockedFolderIsRefusedNamingTheHolder()
    {
        using var dir = new TempDir();
        using (var first = JobFolder.Open(dir["out"], "histo train"))
        {
            var e = Assert.Throws<HistoException>(() => JobFolder.Open(dir["out"], "histo train"));
            Assert.Contains("another histo run", e.Message);
            Assert.Contains($"process {Environment.ProcessId}", e.Message);
            // Array jobs lock their own shard, so shards of one folder run side by side.
            using var shard = JobFolder.Open(dir["out"], "histo tile", (1, 4));
        }
        using var again = JobFolder.Open(dir["out"], "histo train"); // released with the first
    }

    [Fact]
    public void TemporariesOfKilledRunsAreRemovedAndReported()
    {
        using var dir = new TempDir();
        int dead = int.Parse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim()) + 1; // no process can have this id
        string host = AtomicFile.HostTag;
        Directory.CreateDirectory(dir["out/features"]);
        Directory.CreateDirectory(dir["out/patches"]);
        string staleFile = dir[$"out/features/.slide-1.h5.{host}.{dead}.0123456789abcdef0123456789abcdef.tmp"];
        string staleFolder = dir[$"out/patches/.slide-2.{host}.{dead}.tmp"];
        string live = dir[$"out/features/.slide-3.h5.{host}.{Environment.ProcessId}.0123456789abcdef0123456789abcdef.tmp"];
        string otherHost = dir[$"out/features/.slide-4.h5.another-node.{dead}.0123456789abcdef0123456789abcdef.tmp"];
        foreach (var f in new[] { staleFile, live, otherHost }) File.WriteAllText(f, "partial");
        Directory.CreateDirectory(staleFolder);
        File.WriteAllText(Path.Combine(staleFolder, "0_0.png"), "partial");

        using var folder = JobFolder.Open(dir["out"], "histo tile");
        Assert.Equal(new[] { staleFile, staleFolder }.Order(), folder.RemovedTemporaries.Order());
        Assert.False(File.Exists(staleFile));
        Assert.False(Directory.Exists(staleFolder));
        Assert.True(File.Exists(live));      // this process is alive
        Assert.True(File.Exists(otherHost)); // an array job on another node may still be writing it
    }

    sealed record Settings(string Model, double LearningRate, int Epochs);

    [Fact]
    public void ARerunWithOtherSettingsIsRefusedNamingEachDifference()
    {
        using var dir = new TempDir();
        using (var folder = JobFolder.Open(dir["run"], "histo train"))
            folder.RecordOrCheckSettings("settings.json", new Settings("abmil", 1e-3, 20), overwrite: false);
        using (var folder = JobFolder.Open(dir["run"], "histo train"))
        {
            folder.RecordOrCheckSettings("settings.json", new Settings("abmil", 1e-3, 20), overwrite: false); // same: fine
            var e = Assert.Throws<HistoException>(() => folder.RecordOrCheckSettings("settings.json", new Settings("abmil", 2e-3, 30),
                false));
            Assert.Contains("LearningRate 0.001 -> 0.002", e.Message);
            Assert.Contains("Epochs 20 -> 30", e.Message);
            Assert.DoesNotContain("Model", e.Message);
            Assert.Contains("--overwrite", e.Message);
            folder.RecordOrCheckSettings("settings.json", new Settings("abmil", 2e-3, 30), overwrite: true);
        }
        Assert.Contains("0.002", File.ReadAllText(dir["run/settings.json"]));
    }

    [Fact]
    public void FoldersThatCannotBeCreatedAreOneLineNamingThePath()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["file"], "x");
        Assert.Contains("it is a file", Assert.Throws<HistoException>(() => JobFolder.Open(dir["file"], "histo tile")).Message);
        var under = Assert.Throws<HistoException>(() => JobFolder.Open(dir["file/out"], "histo tile")).Message;
        Assert.Contains(dir["file/out"], under);
        Assert.Contains("/proc/histo-test", Assert.Throws<HistoException>(() => JobFolder.Open("/proc/histo-test/out",
            "histo tile")).Message);
        string deep = dir.Path + string.Concat(Enumerable.Repeat("/" + new string('d', 250), 17)); // beyond PATH_MAX (4096)
        var longPath = Assert.Throws<HistoException>(() => JobFolder.Open(deep, "histo tile")).Message;
        Assert.True(longPath.Length < 400, longPath);
    }

    [Fact]
    public void AFailedWriteLeavesNoTemporaryAndSaysWhy()
    {
        using var dir = new TempDir();
        // ENOSPC (28) as .NET reports a full disk on Linux.
        var e = Assert.Throws<HistoException>(() => AtomicFile.Write(dir["features.h5"], tmp =>
        {
            File.WriteAllText(tmp, "half");
            throw new IOException("No space left on device", 28);
        }));
        Assert.Contains("no space left", e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
    }
}
