using Histo.IO;

namespace Histo.Mil;

/// <summary>The slide-level target: CLAM's <c>label</c> column (subtypes) or an ordinal <c>grade</c> column.</summary>
public enum MilTask { Subtype, Grade }

/// <summary>One slide: its case, class index, and where its bag of patch features is (read by <see cref="BagLoader"/>).</summary>
public sealed record MilBag(string SlideId, string CaseId, int Label, string FeaturesPath);

/// <summary>
/// Bags and labels for slide-level training: a CLAM label CSV (<c>case_id,slide_id,label</c>, optional
/// <c>grade</c>) joined with <c>features/&lt;slide_id&gt;.h5</c>. Slides in the CSV without features, and feature
/// files without a CSV row, are reported (not silently dropped); empty bags and NaN features are errors
/// naming the file.
/// </summary>
public sealed class MilDataset
{
    public IReadOnlyList<MilBag> Bags { get; }
    public IReadOnlyList<string> ClassNames { get; }
    public MilTask Task { get; }
    public IReadOnlyList<string> Warnings { get; }
    public int FeatureDim { get; }
    /// <summary>How the features were made (every file agrees): so prediction can make them the same way from raw slides.</summary>
    public FeatureProvenance Provenance { get; }

    MilDataset(IReadOnlyList<MilBag> bags, IReadOnlyList<string> classNames, MilTask task, IReadOnlyList<string> warnings,
        FeatureProvenance provenance)
    {
        Bags = bags; ClassNames = classNames; Task = task; Warnings = warnings; FeatureDim = provenance.Dim; Provenance = provenance;
    }

    public static MilDataset Load(string labelsCsv, string featuresDir, MilTask task)
    {
        string dir = Directory.Exists(Path.Combine(featuresDir, "features")) ? Path.Combine(featuresDir, "features") : featuresDir;
        if (!Directory.Exists(dir)) throw new HistoException($"{featuresDir}: features folder not found; run 'histo embed' first");
        var table = CsvTable.Read(labelsCsv, "labels CSV");
        string column = task == MilTask.Grade ? "grade" : "label";
        int caseCol = table.Column("case_id"), slideCol = table.Column("slide_id"), labelCol = table.Column(column);
        if (caseCol < 0 || slideCol < 0 || labelCol < 0)
            throw new HistoException($"{labelsCsv}: header '{string.Join(",", table.Header)}' lacks "
                + $"{(labelCol < 0 ? $"'{column}'" : "case_id or slide_id")}; "
                + $"CLAM's format is 'case_id,slide_id,label'{(task == MilTask.Grade ? " plus a 'grade' column" : "")}");
        if (table.Rows.Count == 0) throw new HistoException($"{labelsCsv}: no rows; expected a header 'case_id,slide_id,label' and "
            + $"one row per slide");
        var rows = new List<(string Case, string Slide, string Label)>();
        var seen = new HashSet<string>();
        foreach (var (line, cells) in table.Rows)
        {
            if (string.IsNullOrEmpty(cells[labelCol])) throw new HistoException($"{labelsCsv}:{line}: empty {column} for slide "
                + $"{cells[slideCol]}");
            if (string.IsNullOrEmpty(cells[slideCol]) || string.IsNullOrEmpty(cells[caseCol]))
                throw new HistoException($"{labelsCsv}:{line}: empty slide_id or case_id");
            if (!seen.Add(cells[slideCol])) throw new HistoException($"{labelsCsv}:{line}: slide {cells[slideCol]} is listed twice");
            rows.Add((cells[caseCol], cells[slideCol], cells[labelCol]));
        }
        // Class names: sorted labels for subtypes; grades must be integers 0..K-1.
        List<string> classNames;
        if (task == MilTask.Grade)
        {
            var bad = rows.FirstOrDefault(r => !int.TryParse(r.Label, out int g) || g < 0);
            if (bad.Slide is not null) throw new HistoException($"{labelsCsv}: grade '{bad.Label}' of slide {bad.Slide} is not a "
                + $"whole number >= 0");
            int max = rows.Max(r => int.Parse(r.Label));
            classNames = Enumerable.Range(0, max + 1).Select(g => g.ToString()).ToList();
        }
        else classNames = rows.Select(r => r.Label).Distinct().Order(StringComparer.Ordinal).ToList();
        if (classNames.Count < 2) throw new HistoException($"{labelsCsv}: only one {column} value ('{classNames[0]}'); training needs "
            + $"at least two");
        var warnings = new List<string>();
        var missing = rows.Where(r => !File.Exists(Path.Combine(dir, r.Slide + ".h5"))).Select(r => r.Slide).ToHashSet();
        if (missing.Count > 0) warnings.Add($"{missing.Count} slide(s) in {Path.GetFileName(labelsCsv)} have no features in {dir} and "
            + $"are left out: {string.Join(", ", missing.Take(10))}{(missing.Count > 10 ? ", ..." : "")}");
        var listed = rows.Select(r => r.Slide).ToHashSet();
        var extra = Directory.EnumerateFiles(dir,
            "*.h5").Select(Path.GetFileNameWithoutExtension).Where(s => !listed.Contains(s!)).ToList();
        if (extra.Count > 0) warnings.Add($"{extra.Count} feature file(s) have no row in {Path.GetFileName(labelsCsv)} and are not "
            + $"used: {string.Join(", ", extra.Take(10))}{(extra.Count > 10 ? ", ..." : "")}");
        var bags = rows.Where(r => !missing.Contains(r.Slide))
            .Select(r => new MilBag(r.Slide, r.Case, classNames.IndexOf(r.Label), Path.Combine(dir, r.Slide + ".h5"))).ToList();
        if (bags.Count == 0) throw new HistoException($"none of the slides in {labelsCsv} has features in {dir}");
        // Every file is checked up front (its attributes only): a mix of encoders or resolutions is refused, naming the odd file.
        var first = PatchFeatures.ReadProvenance(bags[0].FeaturesPath);
        var provenance = FeatureProvenance.Common(bags.Select(b => b.FeaturesPath).ToList()) with { Overlap = first.Overlap,
            MinTissue = first.MinTissue };
        return new MilDataset(bags, classNames, task, warnings, provenance);
    }
}
