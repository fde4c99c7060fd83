namespace Histo.IO;

/// <summary>
/// Writes outputs under a temporary name in the same folder and renames them into place, so a crash or
/// a kill never leaves a half-written file under the final name (a rerun then sees "not done").
/// </summary>
public static class AtomicFile
{
    /// <summary>The temporary name used for <paramref name="path"/>: hidden, same folder, unique per process.</summary>
    public static string TemporaryPath(string path)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        return Path.Combine(dir, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
    }

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        string tmp = TemporaryPath(path);
        using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
            stream.Write(bytes);
        File.Move(tmp, path, overwrite: true);
    }

    public static void WriteAllText(string path, string text) => WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>Runs <paramref name="write"/> on a temporary path, then renames it to <paramref name="path"/>; deletes the temporary file on failure.</summary>
    public static void Write(string path, Action<string> write)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        string tmp = TemporaryPath(path);
        try
        {
            write(tmp);
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
