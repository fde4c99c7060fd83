using System.Diagnostics;

namespace Histo.Bench;

/// <summary>Paths and helpers shared by the benchmarks.</summary>
static class BenchEnvironment
{
    public static string RepoRoot { get; } = FindRepoRoot();
    public static string WorkDir => Path.Combine(RepoRoot, "out", "bench");
    public static string Histo => Path.Combine(RepoRoot, "src", "Histo.Cli", "bin", "Release", "net10.0", "linux-x64", "histo");

    /// <summary>Above the bench's own folder, or else above the working directory (a copy of the bench run from elsewhere).</summary>
    static string FindRepoRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
        {
            var dir = new DirectoryInfo(start);
            while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Histo.slnx"))) dir = dir.Parent;
            if (dir is not null) return dir.FullName;
        }
        throw new InvalidOperationException("Histo.slnx not found above the bench or the working directory; run it from the repository");
    }

    /// <summary>
    /// Installs Debian packages the Python reference needs, when missing. With any Python package comes OpenBLAS:
    /// without it Debian's numpy and torch fall back to the reference BLAS (PyTorch's DINO iteration measured 17x
    /// slower), which would flatter Histo.
    /// </summary>
    public static void EnsureDebianPackages(params string[] packages)
    {
        if (packages.Any(p => p.StartsWith("python3-"))) packages = [.. packages, "libopenblas0-pthread"];
        var missing = packages.Where(p => Run("dpkg-query", ["-W", "-f=${Status}", p]).Stdout.Contains("install ok installed") == false).ToArray();
        if (missing.Length == 0) return;
        Console.WriteLine($"Installing {string.Join(" ", missing)} ...");
        Run("apt-get", ["update", "-qq"]);
        var r = Run("apt-get", ["install", "-y", "-qq", .. missing], env: ("DEBIAN_FRONTEND", "noninteractive"));
        if (r.Code != 0) throw new InvalidOperationException("apt-get install failed: " + r.Stderr);
    }

    public static (int Code, string Stdout, string Stderr) Run(string file, string[] args, (string, string)? env = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env is { } e) psi.Environment[e.Item1] = e.Item2;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr);
    }

    /// <summary>Peak resident memory (MiB) of a command, from GNU time's %M.</summary>
    public static (double PeakMiB, double Seconds, string Output) PeakMemory(string file, params string[] args)
    {
        string stats = Path.Combine(WorkDir, $"time-{Guid.NewGuid():N}.txt");
        var r = Run("/usr/bin/time", ["-f", "%M %e", "-o", stats, file, .. args]);
        if (r.Code != 0) throw new InvalidOperationException($"{file} failed: {r.Stderr}");
        var parts = File.ReadAllText(stats).Trim().Split(' ');
        File.Delete(stats);
        return (double.Parse(parts[0]) / 1024, double.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture), r.Stdout + r.Stderr);
    }
}
