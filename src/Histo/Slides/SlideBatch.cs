using System.Globalization;
using System.Text;
using Histo.IO;

namespace Histo.Slides;

public enum SlideStatus { Done, Skipped, Failed }

/// <summary>What happened to one slide in a batch command.</summary>
public sealed record SlideOutcome(string SlideId, string Path, SlideStatus Status, int Patches, double Seconds, string? Error)
{
    /// <summary>A failed slide: a user error keeps its one-line message; anything else (a bug, a library error) is reported too, so a batch with --skip-errors goes on.</summary>
    public static SlideOutcome Failure(string slideId, string path, double seconds, Exception e) =>
        new(slideId, path, SlideStatus.Failed, 0, seconds, e is HistoException
            ? e.Message
            : $"{path}: unexpected error ({e.GetType().Name}: {e.Message}); please report it with this slide");
}

/// <summary>
/// The slide list of a batch command: files and folders expanded, a deterministic shard picked, and
/// per-slide resolutions from an mpp CSV. Shared by tiling and (later) embedding.
/// </summary>
public static class SlideBatch
{
    /// <summary>Expands folders to the slide files inside them (sorted); files are kept as given, even if missing, so they are reported per slide.</summary>
    public static List<string> Expand(IEnumerable<string> inputs)
    {
        var files = new List<string>();
        foreach (string input in inputs)
        {
            if (Directory.Exists(input))
                files.AddRange(Directory.EnumerateFiles(input)
                    .Where(f => WholeSlide.Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                    .Order(StringComparer.Ordinal));
            else files.Add(input);
        }
        var duplicate = files.GroupBy(WholeSlide.SlideIdOf).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new HistoException($"two slides share the slide_id '{duplicate.Key}' ({string.Join(", ", duplicate)}); outputs are named by slide_id, so rename one");
        return files;
    }

    /// <summary>Parses "i/n" (0-based shard i of n).</summary>
    public static (int Index, int Count) ParseShard(string text)
    {
        var parts = text.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], out int i) && int.TryParse(parts[1], out int n) && n >= 1 && i >= 0 && i < n) return (i, n);
        throw new HistoException($"--shard '{text}' must be i/n with 0 <= i < n (e.g. 0/4 .. 3/4; with Slurm: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)");
    }

    /// <summary>
    /// Whether a slide belongs to shard i of n: by a stable hash (FNV-1a) of its slide_id, so every job of
    /// an array picks a disjoint subset without coordination, whatever order it lists the slides in.
    /// </summary>
    public static bool InShard(string slideId, (int Index, int Count) shard)
    {
        uint hash = 2166136261;
        foreach (char c in slideId) { hash ^= c; hash *= 16777619; }
        return hash % (uint)shard.Count == shard.Index;
    }

    /// <summary>
    /// Runs <paramref name="process"/> on every slide, <paramref name="parallel"/> at a time, in list order.
    /// Without <paramref name="skipErrors"/> no slide starts after a failure. Writes the per-slide status list
    /// (CLAM's process list) to <paramref name="processList"/> and returns the outcomes in list order.
    /// </summary>
    public static IReadOnlyList<SlideOutcome> Run(IReadOnlyList<string> files, int parallel, bool skipErrors,
        Func<string, SlideOutcome> process, Action<SlideOutcome>? onSlide, string processList)
    {
        var outcomes = new SlideOutcome?[files.Count];
        bool stop = false;
        object gate = new();
        Parallel.For(0, files.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, parallel) }, (i, state) =>
        {
            if (Volatile.Read(ref stop)) { state.Stop(); return; }
            var outcome = process(files[i]);
            lock (gate)
            {
                outcomes[i] = outcome;
                onSlide?.Invoke(outcome);
                // Without --skip-errors no new slide starts after a failure (one already running finishes).
                if (outcome.Status == SlideStatus.Failed && !skipErrors) { stop = true; state.Stop(); }
            }
        });
        var done = outcomes.Where(o => o is not null).Select(o => o!).ToList();
        var csv = new StringBuilder("slide_id,status,patches,seconds,error\n");
        foreach (var o in done)
            csv.Append(CultureInfo.InvariantCulture, $"{o.SlideId},{o.Status.ToString().ToLowerInvariant()},{o.Patches},{o.Seconds:0.###},\"{o.Error?.Replace("\"", "'")}\"\n");
        AtomicFile.WriteAllText(processList, csv.ToString());
        return done;
    }

    /// <summary>The status list's name: one per shard, so array jobs never write the same file.</summary>
    public static string ProcessListName((int Index, int Count)? shard) =>
        shard is { } s ? $"process_list.shard-{s.Index}-of-{s.Count}.csv" : "process_list.csv";

    /// <summary>Reads a CSV with header <c>slide_id,mpp</c>.</summary>
    public static Dictionary<string, double> ReadMppCsv(string path)
    {
        if (!File.Exists(path)) throw new HistoException($"{path}: mpp CSV not found; check the path");
        var lines = File.ReadAllLines(path);
        if (lines.Length == 0 || !lines[0].Trim().Replace(" ", "").Equals("slide_id,mpp", StringComparison.OrdinalIgnoreCase))
            throw new HistoException($"{path}: the first line must be the header 'slide_id,mpp'");
        var result = new Dictionary<string, double>();
        for (int i = 1; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i])) continue;
            var cells = lines[i].Split(',');
            if (cells.Length != 2 || !double.TryParse(cells[1].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double mpp) || !(mpp > 0) || !double.IsFinite(mpp))
                throw new HistoException($"{path}:{i + 1}: expected 'slide_id,mpp' with a positive number, got '{lines[i]}'");
            result[cells[0].Trim()] = mpp;
        }
        return result;
    }
}
