using System.Text.RegularExpressions;
using Histo.IO;
using Histo.Mil;

namespace Histo.Pipeline;

/// <summary>
/// <c>histo status DIR</c>: the merged state of an output folder written by one process or by many (array tasks): for tile,
/// embed and nuclei folders, each shard's process list (done, skipped, failed with its reason) or, without one, whether a run
/// holds the shard's lock now (and which host and process) or it never finished; for a training run, each fold. Done only
/// when every shard or fold is finished and nothing failed.
/// </summary>
public static partial class JobStatus
{
    public sealed record Report(string Kind, IReadOnlyList<string> Lines, bool AllDone);

    [GeneratedRegex(@"^process_list(\.shard-(\d+)-of-(\d+))?\.csv$")]
    private static partial Regex ProcessListName();

    [GeneratedRegex(@"^\.histo\.lock\.shard-(\d+)-of-(\d+)$")]
    private static partial Regex ShardLockName();

    public static Report Of(string dir)
    {
        if (!Directory.Exists(dir)) throw new HistoException($"{dir}: folder not found; give an output folder of histo tile, embed, "
            + "nuclei or train");
        if (File.Exists(Path.Combine(dir, "config.json")) && Directory.Exists(Path.Combine(dir, "splits"))) return Training(dir);
        return Batch(dir);
    }

    static Report Training(string dir)
    {
        int folds = Directory.GetFiles(Path.Combine(dir, "splits"), "splits_*.csv").Length;
        var lines = new List<string>();
        int done = 0;
        for (int f = 0; f < folds; f++)
        {
            bool finished = File.Exists(Path.Combine(dir, $"fold_{f}", "metrics.json"))
                && File.Exists(Path.Combine(dir, $"fold_{f}", "model.safetensors"));
            if (finished) done++;
            lines.Add($"fold {f}: {(finished ? "done" : MilTraining.FoldState(dir, f, folds))}");
        }
        bool summary = File.Exists(Path.Combine(dir, "summary.json"));
        lines.Add(summary ? "summary: written" : done == folds ? "summary: missing (run 'histo train ... --summarise')"
            : "summary: after the last fold");
        lines.Insert(0, $"training run, {done} of {folds} folds done");
        return new Report("train", lines, done == folds && summary);
    }

    static Report Batch(string dir)
    {
        var shards = new Dictionary<int, (string? List, string? Lock)>();
        bool unsharded = false;
        var counts = new HashSet<int>();
        foreach (var file in Directory.GetFiles(dir))
        {
            string name = Path.GetFileName(file);
            if (ProcessListName().Match(name) is { Success: true } m)
            {
                if (!m.Groups[1].Success) { unsharded = true; continue; }
                int i = int.Parse(m.Groups[2].Value), of = int.Parse(m.Groups[3].Value);
                counts.Add(of);
                shards[i] = (file, shards.GetValueOrDefault(i).Lock);
            }
            else if (ShardLockName().Match(name) is { Success: true } l)
            {
                int i = int.Parse(l.Groups[1].Value), of = int.Parse(l.Groups[2].Value);
                counts.Add(of);
                shards[i] = (shards.GetValueOrDefault(i).List, file);
            }
        }
        if (counts.Count > 1)
            throw new HistoException($"{dir}: shards of different counts ({string.Join(", ", counts.Order().Select(c => $"of {c}"))}) "
                + "share this folder; keep one --shard count per output folder");
        int? count = counts.Count == 1 ? counts.First() : null;
        var lines = new List<string>();
        int slidesDone = 0, slidesFailed = 0, slidesSkipped = 0;
        bool allDone = true;
        void Shard(string label, string? list, string? lockPath)
        {
            if (lockPath is not null && JobFolder.HeldBy(lockPath) is { } holder)
            {
                lines.Add($"{label}: in progress ({holder})");
                allDone = false;
                return;
            }
            if (list is null)
            {
                lines.Add($"{label}: missing (never ran, or was stopped before it finished: run it again, it resumes)");
                allDone = false;
                return;
            }
            var table = CsvTable.Read(list, "process list");
            int status = table.Column("status"), slide = table.Column("slide_id"), error = table.Column("error");
            var rows = table.Rows.Select(r => r.Cells).ToList();
            int d = rows.Count(r => r[status] == "done"), s = rows.Count(r => r[status] == "skipped");
            var failed = rows.Where(r => r[status] == "failed").ToList();
            (slidesDone, slidesSkipped, slidesFailed) = (slidesDone + d, slidesSkipped + s, slidesFailed + failed.Count);
            lines.Add($"{label}: {(failed.Count == 0 ? "done" : "failed")}, {d} slide(s) done, {s} already done before, "
                + $"{failed.Count} failed");
            foreach (var f in failed) lines.Add($"  failed {f[slide]}: {(error >= 0 && error < f.Length ? f[error] : "")}");
            if (failed.Count > 0) allDone = false;
        }
        if (count is { } n)
            for (int i = 0; i < n; i++) Shard($"shard {i}/{n}", shards.GetValueOrDefault(i).List, shards.GetValueOrDefault(i).Lock);
        else if (unsharded || File.Exists(Path.Combine(dir, JobFolder.LockPrefix)))
            Shard("all slides", unsharded ? Path.Combine(dir, SlideBatchName) : null, Path.Combine(dir, JobFolder.LockPrefix));
        else
            throw new HistoException($"{dir}: no process list, lock or training run here; give an output folder of histo tile, embed, "
                + "nuclei or train");
        lines.Insert(0, $"batch{(count is { } c ? $" in {c} shard(s)" : "")}: {slidesDone} slide(s) done, {slidesSkipped} already done "
            + $"before, {slidesFailed} failed");
        return new Report("batch", lines, allDone);
    }

    const string SlideBatchName = "process_list.csv";
}
