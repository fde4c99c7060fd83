using Histo.Imaging;
using Histo.IO;
using Histo.Models;
using static TorchSharp.torch;

namespace Histo.Evaluation;

/// <summary>Labelled feature rows for frozen-feature evaluation.</summary>
public sealed record FeatureSet(float[,] Features, string[] Labels);

/// <summary>
/// Loads labelled features from (a) Histo/CLAM feature files plus a CLAM label CSV (every patch takes its
/// slide's label), or (b) an image folder with one subfolder per class, embedded with an encoder.
/// </summary>
public static class FeatureSets
{
    public static FeatureSet Load(string path, string? labelsCsv, string encoderName, int batchSize = 32)
    {
        if (labelsCsv is not null) return FromFeatureFiles(path, labelsCsv);
        if (!Directory.Exists(path)) throw new HistoException($"{path}: not found; give an image folder with one subfolder per class, or feature files with --labels");
        var classDirs = Directory.GetDirectories(path).Order(StringComparer.Ordinal).ToList();
        if (classDirs.Count < 2) throw new HistoException($"{path}: needs one subfolder per class (found {classDirs.Count}); or pass --labels with feature files");
        using var encoder = EncoderRegistry.Create(encoderName);
        var rows = new List<float[]>();
        var labels = new List<string>();
        foreach (var dir in classDirs)
        {
            var files = Directory.GetFiles(dir).Where(f => new[] { ".png", ".jpg", ".jpeg", ".tif", ".tiff" }.Contains(Path.GetExtension(f).ToLowerInvariant())).Order(StringComparer.Ordinal).ToList();
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

    static FeatureSet FromFeatureFiles(string path, string labelsCsv)
    {
        var lines = File.ReadAllLines(labelsCsv);
        var header = lines[0].Split(',');
        int slideCol = Array.IndexOf(header, "slide_id"), labelCol = Array.IndexOf(header, "label");
        if (slideCol < 0 || labelCol < 0) throw new HistoException($"{labelsCsv}: needs slide_id and label columns (CLAM's format)");
        var labelOf = lines.Skip(1).Where(l => l.Length > 0).Select(l => l.Split(',')).ToDictionary(c => c[slideCol], c => c[labelCol]);
        var rows = new List<float[]>();
        var labels = new List<string>();
        foreach (var file in Pipeline.PredictionJob.ExpandFeatures([path]))
        {
            string slide = Path.GetFileNameWithoutExtension(file);
            if (!labelOf.TryGetValue(slide, out var label)) continue;
            var f = PatchFeatures.Read(file);
            for (int i = 0; i < f.Count; i++)
            {
                var row = new float[f.Dim];
                for (int j = 0; j < f.Dim; j++) row[j] = f.Features[i, j];
                rows.Add(row);
                labels.Add(label);
            }
        }
        if (rows.Count == 0) throw new HistoException($"{path}: no feature file matches a slide in {labelsCsv}");
        return new FeatureSet(ToMatrix(rows), labels.ToArray());
    }

    static float[,] ToMatrix(List<float[]> rows)
    {
        var m = new float[rows.Count, rows[0].Length];
        for (int i = 0; i < rows.Count; i++) for (int j = 0; j < rows[i].Length; j++) m[i, j] = rows[i][j];
        return m;
    }
}
