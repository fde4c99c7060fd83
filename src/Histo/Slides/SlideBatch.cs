using System.Globalization;
using System.Text;
using Histo.IO;

namespace Histo.Slides;

public enum SlideStatus { Done, Skipped, Failed }

/// <summary>What happened to one slide in a batch command.</summary>
public sealed record SlideOutcome(string SlideId, string Path, SlideStatus Status, int Patches, double Seconds, string? Error)
{
    /// <summary>A failed slide: a user error keeps its one-line message; anything else (a bug, a library error) is reported too, so a
    /// batch with --skip-errors goes on.</summary>
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
    /// <summary>Expands folders to the slide files inside them (sorted; <paramref name="accept"/> chooses other inputs, such
    /// as image tiles); files are kept as given, even if missing, so they are reported per slide. A folder with no input in
    /// it is an error: a typo in a path should not pass as an empty batch.</summary>
    public static List<string> Expand(IEnumerable<string> inputs, Func<string, bool>? accept = null)
    {
        accept ??= f => WholeSlide.Extensions.Contains(Path.GetExtension(f).ToLowerInvariant());
        var files = new List<string>();
        foreach (string input in inputs)
        {
            if (Directory.Exists(input))
            {
                var inside = Directory.EnumerateFiles(input).Where(accept).Order(StringComparer.Ordinal).ToList();
                if (inside.Count == 0)
                    throw new HistoException($"{input}: this folder holds no slide or image Histo reads; check the path");
                files.AddRange(inside);
            }
            else files.Add(input);
        }
        var duplicate = files.GroupBy(WholeSlide.SlideIdOf).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new HistoException($"two slides share the slide_id '{duplicate.Key}' ({string.Join(", ", duplicate)}); outputs are "
                + $"named by slide_id, so rename one");
        return files;
    }

    /// <summary>Parses "i/n" (0-based shard i of n).</summary>
    public static (int Index, int Count) ParseShard(string text) => ParseShard(text, Environment.GetEnvironmentVariable);

    /// <summary>
    /// <c>i/n</c>; or <c>auto</c>: the index and count of a Slurm array task (SLURM_ARRAY_TASK_ID less SLURM_ARRAY_TASK_MIN,
    /// SLURM_ARRAY_TASK_COUNT), so
    /// one job file serves every task; or <c>auto/n</c>: the index of a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) or of a
    /// Slurm task, with the count given (Kubernetes does not set it).
    /// </summary>
    public static (int Index, int Count) ParseShard(string text, Func<string, string?> environment)
    {
        if (text == "auto" || text.StartsWith("auto/", StringComparison.Ordinal))
        {
            // A Slurm array need not start at 0 (--array=1-4): the index counts from SLURM_ARRAY_TASK_MIN.
            string? index = environment("JOB_COMPLETION_INDEX") ?? (environment("SLURM_ARRAY_TASK_ID") is { } id
                && int.TryParse(id, out int task) ? $"{task - (int.TryParse(environment("SLURM_ARRAY_TASK_MIN"), out int min) ? min : 0)}"
                : null);
            string? count = text == "auto" ? environment("SLURM_ARRAY_TASK_COUNT") : text[5..];
            if (index is null || count is null)
                throw new UsageException(text == "auto"
                    ? "--shard auto needs SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (an sbatch --array task); elsewhere give i/n"
                    : $"--shard {text} needs JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or SLURM_ARRAY_TASK_ID");
            text = $"{index}/{count}";
        }
        var parts = text.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], out int i) && int.TryParse(parts[1], out int n) && n >= 1 && i >= 0
            && i < n) return (i, n);
        throw new UsageException($"--shard '{text}' must be i/n with 0 <= i < n (e.g. 0/4 .. 3/4), auto (a Slurm array task) or "
            + "auto/n (a Kubernetes Indexed Job of n)");
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
            csv.Append(CultureInfo.InvariantCulture,
                $"{o.SlideId},{o.Status.ToString().ToLowerInvariant()},{o.Patches},{o.Seconds:0.###},\"{o.Error?.Replace("\"", "'")}\"\n");
        AtomicFile.WriteAllText(processList, csv.ToString());
        return done;
    }

    /// <summary>The status list's name: one per shard, so array jobs never write the same file.</summary>
    public static string ProcessListName((int Index, int Count)? shard) =>
        shard is { } s ? $"process_list.shard-{s.Index}-of-{s.Count}.csv" : "process_list.csv";

    /// <summary>Reads a CSV with header <c>slide_id,mpp</c>; a slide listed twice is an error (which line would win?).</summary>
    public static Dictionary<string, double> ReadMppCsv(string path)
    {
        var table = CsvTable.Read(path, "mpp CSV");
        int slideCol = table.Column("slide_id"), mppCol = table.Column("mpp");
        if (slideCol < 0 || mppCol < 0) throw new HistoException($"{path}: the first line must be the header 'slide_id,mpp'");
        var result = new Dictionary<string, double>();
        var lineOf = new Dictionary<string, int>();
        foreach (var (line, cells) in table.Rows)
        {
            if (!double.TryParse(cells[mppCol], NumberStyles.Float, CultureInfo.InvariantCulture, out double mpp) || !(mpp > 0)
                || !double.IsFinite(mpp))
                throw new HistoException($"{path}:{line}: expected 'slide_id,mpp' with a positive number, got '{string.Join(",", cells)}'");
            if (lineOf.TryGetValue(cells[slideCol], out int first))
                throw new HistoException($"{path}:{line}: slide {cells[slideCol]} is listed again (first on line {first}); keep one "
                    + $"line per slide");
            lineOf[cells[slideCol]] = line;
            result[cells[slideCol]] = mpp;
        }
        return result;
    }
}
