namespace Histo.Tests;

/// <summary>
/// Paths to the real slides and tiles in ../shared/data beside the repository (never copied into it).
/// Tests that use them carry the trait Category=SharedData.
/// </summary>
public static class SharedData
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Root => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "data"));

    public static string Path_(params string[] parts) => Path.Combine([Root, .. parts]);

    static string FindRepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Histo.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Histo.slnx not found above " + AppContext.BaseDirectory);
    }
}
