using System.Text;
using Histo.IO;

namespace Histo.Mil;

/// <summary>One fold: slide ids for training, validation (early stopping) and testing.</summary>
public sealed record Fold(int Index, IReadOnlyList<string> Train, IReadOnlyList<string> Val, IReadOnlyList<string> Test);

/// <summary>
/// Stratified k-fold splits by case: a case's slides always sit on one side. Cases of each class are
/// shuffled (seeded) and dealt round-robin into k groups; fold i tests on group i, validates on group
/// i+1 and trains on the rest. Written and read as CLAM's <c>splits_{i}.csv</c> (columns train, val, test).
/// </summary>
public static class CaseSplits
{
    public static IReadOnlyList<Fold> Make(IReadOnlyList<MilBag> bags, int folds, int seed, IReadOnlyList<string> classNames)
    {
        if (folds < 3) throw new UsageException($"--folds {folds}: need at least 3 (train, validation and test groups)");
        var caseLabel = bags.GroupBy(b => b.CaseId).ToDictionary(g => g.Key, g => g.First().Label);
        var conflicting = bags.GroupBy(b => b.CaseId).Where(g => g.Select(b => b.Label).Distinct().Count() > 1).Select(g => g.Key).ToList();
        if (conflicting.Count > 0) throw new HistoException($"case(s) {string.Join(", ", conflicting.Take(5))} have slides with "
            + $"different labels; a case must have one label to be split by case");
        var tooFew = caseLabel.GroupBy(kv => kv.Value).Where(g => g.Count() < folds).Select(g => $"class '{classNames[g.Key]}' has "
            + $"{g.Count()} case(s)").ToList();
        if (tooFew.Count > 0) throw new HistoException($"too few cases for {folds} folds ({string.Join("; ", tooFew)}); use fewer "
            + $"--folds or add cases");
        var group = new Dictionary<string, int>();
        var random = new Random(seed);
        foreach (var cls in caseLabel.GroupBy(kv => kv.Value).OrderBy(g => g.Key))
        {
            var cases = cls.Select(kv => kv.Key).Order(StringComparer.Ordinal).ToArray();
            random.Shuffle(cases);
            for (int i = 0; i < cases.Length; i++) group[cases[i]] = i % folds;
        }
        return Enumerable.Range(0, folds).Select(f =>
        {
            List<string> In(Func<int, bool> where) => bags.Where(b => where(group[b.CaseId])).Select(b => b.SlideId).ToList();
            int val = (f + 1) % folds;
            return new Fold(f, In(g => g != f && g != val), In(g => g == val), In(g => g == f));
        }).ToList();
    }

    public static void Write(IReadOnlyList<Fold> folds, string dir)
    {
        Directory.CreateDirectory(dir);
        foreach (var fold in folds)
        {
            int rows = Math.Max(fold.Train.Count, Math.Max(fold.Val.Count, fold.Test.Count));
            var csv = new StringBuilder(",train,val,test\n");
            for (int i = 0; i < rows; i++)
                csv.Append($"{i},{fold.Train.ElementAtOrDefault(i)},{fold.Val.ElementAtOrDefault(i)},{fold.Test.ElementAtOrDefault(i)}\n");
            AtomicFile.WriteAllText(Path.Combine(dir, $"splits_{fold.Index}.csv"), csv.ToString());
        }
    }

    /// <summary>
    /// Reads CLAM's splits_{i}.csv files from a folder and checks each: every slide known, no slide twice, no case on two
    /// sides (its slides would leak between training and testing), and no empty train, val or test part.
    /// </summary>
    public static IReadOnlyList<Fold> Read(string dir, IReadOnlyList<MilBag> bags)
    {
        if (!Directory.Exists(dir)) throw new HistoException($"{dir}: splits folder not found");
        var files = Enumerable.Range(0, 100).Select(i => Path.Combine(dir, $"splits_{i}.csv")).TakeWhile(File.Exists).ToList();
        if (files.Count == 0) throw new HistoException($"{dir}: no splits_0.csv (CLAM's layout: splits_0.csv, splits_1.csv, ...)");
        var caseOf = bags.ToDictionary(b => b.SlideId, b => b.CaseId);
        return files.Select((file, index) =>
        {
            var table = CsvTable.Read(file, "splits file");
            int train = table.Column("train"), val = table.Column("val"), test = table.Column("test");
            if (train < 0 || val < 0
                || test < 0) throw new HistoException($"{file}: header must have train, val and test columns (CLAM's splits)");
            List<string> Column(int c) => table.Rows.Select(r => r.Cells[c]).Where(v => v.Length > 0).ToList();
            var fold = new Fold(index, Column(train), Column(val), Column(test));
            foreach (var (part, name) in new[] { (fold.Train, "train"), (fold.Val, "val"), (fold.Test, "test") })
                if (part.Count == 0) throw new HistoException($"{file}: the {name} column is empty; every fold needs train, val and "
                    + $"test slides");
            var all = fold.Train.Concat(fold.Val).Concat(fold.Test).ToList();
            var unknown = all.Where(s => !caseOf.ContainsKey(s)).ToList();
            if (unknown.Count > 0)
                throw new HistoException($"{file}: slide(s) without features or labels: {string.Join(", ", unknown.Take(5))}; fix the "
                    + $"splits or the labels CSV");
            var twice = all.GroupBy(s => s).FirstOrDefault(g => g.Count() > 1);
            if (twice is not null) throw new HistoException($"{file}: slide {twice.Key} is listed {twice.Count()} times");
            var sides = new[] { ("train", fold.Train), ("val", fold.Val), ("test", fold.Test) }
                .SelectMany(p => p.Item2.Select(s => (Case: caseOf[s], Side: p.Item1)));
            var split = sides.GroupBy(x => x.Case).FirstOrDefault(g => g.Select(x => x.Side).Distinct().Count() > 1);
            if (split is not null)
                throw new HistoException($"{file}: case {split.Key} has slides in "
                    + $"{string.Join(" and ", split.Select(x => x.Side).Distinct())}; "
                    + "a case's slides must sit on one side, or the test leaks into training");
            return fold;
        }).ToList();
    }
}
