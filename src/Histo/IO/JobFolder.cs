using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Histo.IO;

/// <summary>
/// The one scheme every long job (tile, embed, train, pretrain, predict) follows for its output folder:
/// <list type="number">
/// <item>the folder is created, and a path under a file, on a read-only or pseudo file system, or too long is one
/// line naming it;</item>
/// <item>a lock file per folder (per shard for array jobs) keeps a second run out while the first writes, and the
/// second names the holder; the lock is the kernel's (flock), so a killed run never leaves a stale lock;</item>
/// <item>temporaries left by runs that were killed (<see cref="AtomicFile"/>'s files, staging folders) are removed on
/// start and reported;</item>
/// <item>the settings of the first run are recorded and a rerun must match them, naming each difference, unless it
/// overwrites.</item>
/// </list>
/// </summary>
public sealed class JobFolder : IDisposable
{
    public const string LockPrefix = ".histo.lock";
    readonly FileStream _lock;

    public string Root { get; }
    /// <summary>Temporaries of killed runs that <see cref="Open"/> removed (paths), for the command to report.</summary>
    public IReadOnlyList<string> RemovedTemporaries { get; }

    JobFolder(string root, FileStream lockStream, IReadOnlyList<string> removed)
    {
        Root = root;
        _lock = lockStream;
        RemovedTemporaries = removed;
    }

    /// <summary>Creates (if needed), locks and cleans <paramref name="dir"/>. <paramref name="shard"/> names a lock per shard.</summary>
    public static JobFolder Open(string dir, string command, (int Index, int Count)? shard = null) => Open(dir, command, shard,
        TimeSpan.Zero);

    /// <summary>As the other Open, waiting up to <paramref name="wait"/> for a run that holds
    /// the lock (array tasks that share a short setup step, such as one fold per task writing the splits).</summary>
    public static JobFolder Open(string dir, string command, (int Index, int Count)? shard, TimeSpan wait)
    {
        var deadline = DateTime.UtcNow + wait;
        while (true)
        {
            try { return OpenOnce(dir, command, shard); }
            catch (HistoException) when (DateTime.UtcNow < deadline && IsHeld(dir, shard)) { Thread.Sleep(200); }
        }
    }

    static bool IsHeld(string dir, (int Index, int Count)? shard) =>
        HeldBy(Path.Combine(Path.GetFullPath(dir), LockName(shard))) is not null;

    /// <summary>The lock file of a folder or of one shard of it.</summary>
    public static string LockName((int Index, int Count)? shard) =>
        shard is { } s ? $"{LockPrefix}.shard-{s.Index}-of-{s.Count}" : LockPrefix;

    static JobFolder OpenOnce(string dir, string command, (int Index, int Count)? shard)
    {
        string root = Path.GetFullPath(dir);
        CreateDirectory(root);
        string lockPath = Path.Combine(root, LockName(shard));
        FileStream stream;
        try
        {
            // FileShare.None takes an exclusive flock on Unix: held until this process closes it or dies.
            stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            throw new HistoException($"{root}: another histo run is writing this folder ({Holder(lockPath)}); wait for it or choose "
                + $"another -o");
        }
        catch (UnauthorizedAccessException)
        {
            throw new HistoException($"{root}: cannot write here (permission denied); choose another -o");
        }
        try
        {
            // The holder is recorded beside the lock: the locked file itself cannot be read by the run that is kept out.
            AtomicFile.WriteAllText(lockPath + ".holder",
                $"{command}, process {Environment.ProcessId} on {Environment.MachineName}, since {DateTime.Now:yyyy-MM-dd HH:mm:ss}");
            return new JobFolder(root, stream, RemoveStaleTemporaries(root));
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Creates a folder, turning the ways it can fail into one line naming the path.</summary>
    public static void CreateDirectory(string dir)
    {
        string? reason = null;
        try
        {
            if (File.Exists(dir)) reason = "it is a file";
            else
            {
                Directory.CreateDirectory(dir);
                return;
            }
        }
        catch (PathTooLongException) { reason = "the path is too long"; }
        catch (UnauthorizedAccessException) { reason = "permission denied"; }
        catch (IOException e) { reason = Describe(e); }
        throw new HistoException($"{Shorten(dir)}: cannot create this folder ({reason}); choose another -o");
    }

    /// <summary>
    /// A new run records <paramref name="settings"/> in <paramref name="fileName"/>; a rerun must match them, or its
    /// results would silently mix with the first run's. With <paramref name="overwrite"/> the new settings replace the old
    /// (the caller then redoes the outputs). Differences are named one by one ("Options.Lr 0.001 -> 0.002").
    /// </summary>
    public void RecordOrCheckSettings(string fileName, object settings, bool overwrite, bool compare = true)
    {
        var json = new JsonSerializerOptions
        {
            IncludeFields = true, WriteIndented = true,
            NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
        };
        var current = JsonSerializer.SerializeToNode(settings, settings.GetType(), json)!;
        string path = Path.Combine(Root, fileName);
        if (compare && !overwrite && File.Exists(path))
        {
            JsonNode previous;
            try { previous = JsonNode.Parse(File.ReadAllText(path))!; }
            catch (JsonException) { throw new HistoException($"{path}: unreadable settings of an earlier run; pass --overwrite or "
                + $"choose another -o"); }
            var differences = Differences(previous, current);
            if (differences.Count > 0)
                throw new HistoException($"{Root} holds a run made with other settings ({string.Join(", ", differences)}); "
                    + "rerun with the same settings, pass --overwrite to redo it, or choose another -o");
            return;
        }
        AtomicFile.WriteAllText(path, current.ToJsonString(json));
    }

    /// <summary>Leaf-by-leaf differences "path old -> new" between two JSON trees.</summary>
    public static List<string> Differences(JsonNode previous, JsonNode current)
    {
        var before = Flatten(previous);
        var now = Flatten(current);
        return before.Keys.Union(now.Keys).Where(k => before.GetValueOrDefault(k) != now.GetValueOrDefault(k))
            .Select(k => $"{k} {before.GetValueOrDefault(k) ?? "(none)"} -> {now.GetValueOrDefault(k) ?? "(none)"}").ToList();
    }

    /// <summary>Leaf values of a JSON tree by dotted path ("Options.Augmentation.LocalCrops").</summary>
    static Dictionary<string, string> Flatten(JsonNode? node, string prefix = "")
    {
        var result = new Dictionary<string, string>();
        if (node is JsonObject obj)
            foreach (var (key, child) in obj)
                foreach (var kv in Flatten(child, prefix.Length == 0 ? key : $"{prefix}.{key}")) result[kv.Key] = kv.Value;
        else result[prefix] = node?.ToJsonString() ?? "null";
        return result;
    }

    // AtomicFile's ".name.<host>.<pid>.<guid>.tmp" and staging folders ".name.<host>.<pid>.tmp".
    static readonly Regex Temporary = new(@"\.(?<host>[A-Za-z0-9-]+)\.(?<pid>\d+)(\.[0-9a-f]{32})?\.tmp$", RegexOptions.Compiled);

    /// <summary>
    /// Removes temporaries under <paramref name="root"/> whose process is gone: written on this host by a process id that
    /// no longer runs. Another host's temporaries are left alone (an array job there may still be writing them).
    /// </summary>
    static List<string> RemoveStaleTemporaries(string root)
    {
        var removed = new List<string>();
        string host = AtomicFile.HostTag;
        foreach (string path in Directory.EnumerateFileSystemEntries(root, "*.tmp", new EnumerationOptions
                 { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = true, MaxRecursionDepth = 4 }))
        {
            var match = Temporary.Match(Path.GetFileName(path));
            if (!match.Success || match.Groups["host"].Value != host) continue;
            int pid = int.Parse(match.Groups["pid"].Value);
            if (pid == Environment.ProcessId || ProcessRuns(pid)) continue;
            try
            {
                if (Directory.Exists(path)) Directory.Delete(path, true);
                else File.Delete(path);
                removed.Add(path);
            }
            catch (IOException) { }
        }
        return removed;
    }

    static bool ProcessRuns(int pid) => Directory.Exists($"/proc/{pid}") || (!OperatingSystem.IsLinux() && ProcessExists(pid));

    static bool ProcessExists(int pid)
    {
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
    }

    /// <summary>Who holds a lock file now ("histo train, process 12 on node3, since ..."), or null when no run holds it.</summary>
    public static string? HeldBy(string lockPath)
    {
        if (!File.Exists(lockPath)) return null;
        try { using var probe = new FileStream(lockPath, FileMode.Open, FileAccess.ReadWrite, FileShare.None); return null; }
        catch (IOException) { return Holder(lockPath); }
        catch (UnauthorizedAccessException) { return null; }
    }

    static string Holder(string lockPath)
    {
        try { return File.ReadAllText(lockPath + ".holder").Trim(); }
        catch (IOException) { return "holder unknown"; }
    }

    /// <summary>The reason of an I/O failure in words (ENOSPC, EROFS, ENOTDIR...), without .NET's long sentence.</summary>
    public static string Describe(IOException e) => (e.HResult & 0xFFFF) switch
    {
        28 => "no space left on the device",
        30 => "read-only file system",
        20 => "a part of the path is a file",
        13 => "permission denied",
        36 => "file name too long",
        _ => e.Message.TrimEnd('.'),
    };

    /// <summary>Very long paths are cut in the middle, so an error stays one readable line.</summary>
    public static string Shorten(string path) => path.Length <= 200 ? path : path[..100] + "..." + path[^80..];

    public void Dispose() => _lock.Dispose();
}
