namespace Histo.IO;

/// <summary>
/// Writes outputs under a temporary name in the same folder and renames them into place, so a crash or
/// a kill never leaves a half-written file under the final name (a rerun then sees "not done"). Temporary
/// names carry the host and process id, so <see cref="JobFolder"/> can tell a killed run's leftovers from a
/// live run's files; a failed write (a full disk) removes its temporary.
/// </summary>
public static class AtomicFile
{
    /// <summary>This machine's name as it appears in temporary names (letters, digits and '-').</summary>
    public static readonly string HostTag = new(Environment.MachineName.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '-').ToArray());

    /// <summary>The temporary name used for <paramref name="path"/>: hidden, same folder, unique per process.</summary>
    public static string TemporaryPath(string path)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        return Path.Combine(dir, $".{Path.GetFileName(path)}.{HostTag}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
    }

    /// <summary>A staging folder for <paramref name="path"/> (a folder written whole, then renamed into place).</summary>
    public static string StagingPath(string path)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        return Path.Combine(dir, $".{Path.GetFileName(path)}.{HostTag}.{Environment.ProcessId}.tmp");
    }

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        JobFolder.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        string tmp = TemporaryPath(path);
        try
        {
            using (var stream = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
                stream.Write(bytes);
            File.Move(tmp, path, overwrite: true);
        }
        catch (IOException e) when (e is not FileNotFoundException)
        {
            throw new HistoException($"{JobFolder.Shorten(path)}: cannot write ({JobFolder.Describe(e)})", e);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public static void WriteAllText(string path, string text) => WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));

    /// <summary>Runs <paramref name="write"/> on a temporary path, then renames it to <paramref name="path"/>; deletes the temporary
    /// file on failure.</summary>
    public static void Write(string path, Action<string> write)
    {
        JobFolder.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        string tmp = TemporaryPath(path);
        try
        {
            write(tmp);
            File.Move(tmp, path, overwrite: true);
        }
        catch (IOException e) when (e is not FileNotFoundException)
        {
            throw new HistoException($"{JobFolder.Shorten(path)}: cannot write ({JobFolder.Describe(e)})", e);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
