using Histo.Imaging;
using Histo.IO;
using Histo.Models;
using static TorchSharp.torch;

namespace Histo.Evaluation;

/// <summary>
/// Labelled feature rows for frozen-feature evaluation, with how they were made (null for an image folder embedded
/// here: the train and test folders then share the encoder by construction).
/// </summary>
public sealed record FeatureSet(float[,] Features, string[] Labels, FeatureProvenance? Provenance = null)
{
    /// <summary>Refuses a test set made otherwise than this training set (another encoder, size or resolution).</summary>
    public void CheckComparable(FeatureSet test, string trainSource, string testSource)
    {
        if (Features.GetLength(1) != test.Features.GetLength(1))
            throw new HistoException($"{testSource}: {test.Features.GetLength(1)}-d features, but {trainSource} has "
                + $"{Features.GetLength(1)}-d; "
                + "embed both with the same encoder");
        if (Provenance is not null && test.Provenance is not null) test.Provenance.CheckMatches(testSource, Provenance, trainSource);
    }
}

/// <summary>
/// Loads labelled features from (a) Histo/CLAM feature files plus a CLAM label CSV (every patch takes its
/// slide's label), or (b) an image folder with one subfolder per class, embedded with an encoder.
/// </summary>
public static class FeatureSets
{
    public static FeatureSet Load(string path, string? labelsCsv, string encoderName, int batchSize = 32, Action<string>? warn = null)
    {
        if (labelsCsv is not null) return FromFeatureFiles(path, labelsCsv, warn);
        if (!Directory.Exists(path)) throw new HistoException($"{path}: not found; give an image folder with one subfolder per class, "
            + $"or feature files with --labels");
        var classDirs = Directory.GetDirectories(path).Order(StringComparer.Ordinal).ToList();
        if (classDirs.Count < 2) throw new HistoException($"{path}: needs one subfolder per class (found {classDirs.Count}); or pass "
            + $"--labels with feature files");
        using var encoder = EncoderRegistry.Create(encoderName);
        var rows = new List<float[]>();
        var labels = new List<string>();
        foreach (var dir in classDirs)
        {
            var files = Directory.GetFiles(dir).Where(f => new[] { ".png", ".jpg", ".jpeg", ".tif",
                ".tiff" }.Contains(Path.GetExtension(f).ToLowerInvariant())).Order(StringComparer.Ordinal).ToList();
            for (int start = 0; start < files.Count; start += batchSize)
            {
                var chunk = files.Skip(start).Take(batchSize).ToList();
                var pixels = chunk.SelectMany(f => RgbaImage.Load(f).Resize(encoder.InputSize, encoder.InputSize).Pixels).ToArray();
                using var batch = tensor(pixels, [chunk.Count, encoder.InputSize, encoder.InputSize, 4]);
                using var features = encoder.Embed(batch);
                var flat = features.data<float>().ToArray();
                for (int i = 0; i < chunk.Count; i++) { rows.Add(flat[(i * encoder.FeatureDim)..((i + 1) * encoder.FeatureDim)]); labels.Add(Path.GetFileName(dir)); }
            }
        }
        return new FeatureSet(ToMatrix(rows), labels.ToArray());
    }

    /// <summary>Warnings met while loading (feature files without a label), for the command to print.</summary>
    static FeatureSet FromFeatureFiles(string path, string labelsCsv, Action<string>? warn)
    {
        var table = CsvTable.Read(labelsCsv, "labels CSV");
        int slideCol = table.Column("slide_id"), labelCol = table.Column("label");
        if (slideCol < 0 || labelCol < 0) throw new HistoException($"{labelsCsv}: needs slide_id and label columns (CLAM's format)");
        var labelOf = new Dictionary<string, string>();
        foreach (var (line, cells) in table.Rows)
            if (!labelOf.TryAdd(cells[slideCol], cells[labelCol]))
                throw new HistoException($"{labelsCsv}:{line}: slide {cells[slideCol]} is listed twice");
        var files = Pipeline.PredictionJob.ExpandFeatures([path]);
        var unlabelled = files.Where(f => !labelOf.ContainsKey(Path.GetFileNameWithoutExtension(f))).ToList();
        if (unlabelled.Count > 0)
            warn?.Invoke($"{unlabelled.Count} feature file(s) in {path} have no row in {Path.GetFileName(labelsCsv)} and are not used: "
                + string.Join(", ", unlabelled.Take(5).Select(Path.GetFileNameWithoutExtension)) + (unlabelled.Count > 5 ? ", ..." : ""));
        files = files.Except(unlabelled).ToList();
        if (files.Count == 0) throw new HistoException($"{path}: no feature file matches a slide in {labelsCsv}");
        // One check for the whole set before reading any features: same encoder, size and resolution in every file.
        var provenance = FeatureProvenance.Common(files);
        var rows = new List<float[]>();
        var labels = new List<string>();
        foreach (var file in files)
        {
            var f = PatchFeatures.Read(file);
            f.CheckFinite(file);
            string label = labelOf[Path.GetFileNameWithoutExtension(file)];
            for (int i = 0; i < f.Count; i++)
            {
                var row = new float[f.Dim];
                for (int j = 0; j < f.Dim; j++) row[j] = f.Features[i, j];
                rows.Add(row);
                labels.Add(label);
            }
        }
        if (rows.Count == 0) throw new HistoException($"{path}: the feature files matching {labelsCsv} have no patches");
        return new FeatureSet(ToMatrix(rows), labels.ToArray(), provenance);
    }

    static float[,] ToMatrix(List<float[]> rows)
    {
        var m = new float[rows.Count, rows[0].Length];
        for (int i = 0; i < rows.Count; i++) for (int j = 0; j < rows[i].Length; j++) m[i, j] = rows[i][j];
        return m;
    }
}
