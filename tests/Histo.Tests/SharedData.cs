namespace Histo.Tests;

/// <summary>
/// Paths to the real slides and tiles in ../shared/data beside the repository (never copied into it). A clone made
/// elsewhere (e.g. /tmp/fresh-check) finds them beside the repository it was cloned from (its local origin), or at
/// $HISTO_SHARED_DATA. Tests that use them are named SharedData_*.
/// </summary>
public static class SharedData
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Root { get; } = FindRoot();

    static string FindRoot()
    {
        var candidates = new List<string>();
        if (Environment.GetEnvironmentVariable("HISTO_SHARED_DATA") is { Length: > 0 } env) candidates.Add(env);
        candidates.Add(Path.Combine(RepoRoot, "..", "shared", "data"));
        if (LocalOrigin() is { } origin) candidates.Add(Path.Combine(origin, "..", "shared", "data"));
        // When none exists, the usual place, so that failing tests name it.
        return candidates.Select(Path.GetFullPath).FirstOrDefault(Directory.Exists) ?? Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "data"));
    }

    /// <summary>The folder of the "origin" remote when it is a local path (a clone of a clone on this machine).</summary>
    static string? LocalOrigin()
    {
        string config = Path.Combine(RepoRoot, ".git", "config");
        if (!File.Exists(config)) return null;
        var url = File.ReadLines(config).Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("url = "))?["url = ".Length..];
        if (url is null) return null;
        if (url.StartsWith("file://")) url = url["file://".Length..];
        return Path.IsPathRooted(url) && Directory.Exists(url) ? url : null;
    }

    public static string Path_(params string[] parts) => Path.Combine([Root, .. parts]);

    static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Histo.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Histo.slnx not found above " + AppContext.BaseDirectory);
    }
}
