using System.Globalization;
using System.Text;
using Histo.IO;

namespace Histo.Mil;

/// <summary>
/// The out-of-distribution threshold of a run: the 95% quantile of the validation slides' energies pooled over
/// all folds, each slide's energy computed by its own fold's model (fold_i/validation.csv). One fold's
/// validation set is a handful of slides, so its own "95% quantile" is its maximum; pooling gives the
/// quantile of a few dozen. Quantile definition: numpy's default (linear interpolation between order
/// statistics, position (n - 1) q).
/// </summary>
public static class EnergyThreshold
{
    /// <summary>Share of validation slides the threshold keeps in distribution.</summary>
    public const double InDistributionQuantile = 0.95;
    public const string ValidationFile = "validation.csv";

    /// <summary>numpy.quantile(values, q) with method="linear"; NaN for no values.</summary>
    public static double Quantile(IEnumerable<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        double h = (sorted.Length - 1) * q;
        int lo = (int)Math.Floor(h), hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
    }

    /// <summary>fold_i/validation.csv: slide_id, label, energy (NaN where the head has no energy).</summary>
    internal static void WriteValidation(string foldDir, IReadOnlyList<(string SlideId, string Label)> slides,
        IReadOnlyList<double> energies)
    {
        var csv = new StringBuilder("slide_id,label,energy\n");
        for (int i = 0; i < slides.Count; i++)
            csv.Append(CultureInfo.InvariantCulture,
                $"{slides[i].SlideId},{slides[i].Label},{energies[i].ToString("R", CultureInfo.InvariantCulture)}\n");
        AtomicFile.WriteAllText(Path.Combine(foldDir, ValidationFile), csv.ToString());
    }

    /// <summary>The validation energies a fold recorded (empty when the fold has no validation.csv, e.g. a run made before it
    /// existed).</summary>
    public static IReadOnlyList<double> ReadValidation(string foldDir)
    {
        string path = Path.Combine(foldDir, ValidationFile);
        if (!File.Exists(path)) return [];
        return File.ReadLines(path).Skip(1).Where(l => l.Length > 0)
            .Select(l => double.Parse(l.Split(',')[^1], CultureInfo.InvariantCulture)).ToList();
    }

    /// <summary>
    /// The pooled 95% quantile of the given folds' validation energies; NaN when there are none, or when any is
    /// NaN (the ordinal heads have no energy).
    /// </summary>
    public static double FromFolds(IEnumerable<string> foldDirs)
    {
        var energies = foldDirs.SelectMany(ReadValidation).ToList();
        if (energies.Count == 0 || energies.Any(e => !double.IsFinite(e))) return double.NaN;
        return Quantile(energies, InDistributionQuantile);
    }

    public static double FromRun(string runDir, IEnumerable<int> folds) =>
        FromFolds(folds.Select(f => Path.Combine(runDir, $"fold_{f}")));
}
