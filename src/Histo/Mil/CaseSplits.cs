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
    public static IReadOnlyList<Fold> Make(IReadOnlyList<MilBag> bags, int folds, int seed)
    {
        if (folds < 3) throw new HistoException($"--folds {folds}: need at least 3 (train, validation and test groups)");
        var caseLabel = bags.GroupBy(b => b.CaseId).ToDictionary(g => g.Key, g => g.First().Label);
        var conflicting = bags.GroupBy(b => b.CaseId).Where(g => g.Select(b => b.Label).Distinct().Count() > 1).Select(g => g.Key).ToList();
        if (conflicting.Count > 0) throw new HistoException($"case(s) {string.Join(", ", conflicting.Take(5))} have slides with different labels; a case must have one label to be split by case");
        var tooFew = caseLabel.GroupBy(kv => kv.Value).Where(g => g.Count() < folds).Select(g => $"class {g.Key} has {g.Count()} case(s)").ToList();
        if (tooFew.Count > 0) throw new HistoException($"too few cases for {folds} folds ({string.Join("; ", tooFew)}); use fewer --folds or add cases");
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

    /// <summary>Reads CLAM's splits_{i}.csv files from a folder, checking that every slide is known.</summary>
    public static IReadOnlyList<Fold> Read(string dir, IReadOnlyCollection<string> knownSlides)
    {
        var files = Enumerable.Range(0, 100).Select(i => Path.Combine(dir, $"splits_{i}.csv")).TakeWhile(File.Exists).ToList();
        if (files.Count == 0) throw new HistoException($"{dir}: no splits_0.csv (CLAM's layout: splits_0.csv, splits_1.csv, ...)");
        var known = knownSlides.ToHashSet();
        return files.Select((file, index) =>
        {
            var lines = File.ReadAllLines(file);
            var header = lines[0].Split(',');
            int train = Array.IndexOf(header, "train"), val = Array.IndexOf(header, "val"), test = Array.IndexOf(header, "test");
            if (train < 0 || val < 0 || test < 0) throw new HistoException($"{file}: header must have train, val and test columns");
            List<string> Column(int c) => lines.Skip(1).Select(l => l.Split(',')).Where(r => r.Length > c && r[c].Length > 0).Select(r => r[c]).ToList();
            var fold = new Fold(index, Column(train), Column(val), Column(test));
            var unknown = fold.Train.Concat(fold.Val).Concat(fold.Test).Where(s => !known.Contains(s)).ToList();
            if (unknown.Count > 0) throw new HistoException($"{file}: slide(s) without features or labels: {string.Join(", ", unknown.Take(5))}");
            return fold;
        }).ToList();
    }
}
