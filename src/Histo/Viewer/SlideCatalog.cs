using System.Globalization;
using Histo.IO;
using Histo.Slides;

namespace Histo.Viewer;

/// <summary>One overlay of a slide: a GeoJSON file of Histo's (or any QuPath FeatureCollection), or a tile grid.</summary>
/// <param name="Name">Its name in the viewer and in URLs: tissue, tiles, attention, nuclei, or the file's name.</param>
/// <param name="Kind">What it shows (the page styles each kind): tissue, tiles, heatmap, cells or geojson.</param>
public sealed record SlideOverlay(string Name, string Kind, string Path);

/// <summary>A slide the server shows: its file, what Histo's outputs say about it, and its overlays.</summary>
public sealed record CatalogSlide(string Id, string Path, string? Label, string? Predicted,
    IReadOnlyDictionary<string, double>? Probabilities, IReadOnlyList<SlideOverlay> Overlays);

/// <summary>
/// What <c>histo serve</c> may show, fixed when it starts: the slides it was given (addressed by slide id, never by a path
/// from a URL) and, found in the output folders it was given, each slide's overlays and its label and prediction. Files
/// found through a link that leaves their output folder are not served.
/// </summary>
public sealed class SlideCatalog
{
    const int MaxDepth = 4; // output folders nest a few levels (run/heatmaps/, tiles/coords/)

    public IReadOnlyList<CatalogSlide> Slides { get; }
    readonly Dictionary<string, CatalogSlide> _byId;

    SlideCatalog(List<CatalogSlide> slides)
    {
        Slides = slides;
        _byId = slides.ToDictionary(s => s.Id, StringComparer.Ordinal);
    }

    public CatalogSlide? Find(string id) => _byId.GetValueOrDefault(id);

    public static SlideCatalog Build(IReadOnlyList<string> slideInputs, IReadOnlyList<string> outputDirs, Action<string>? log = null)
    {
        var paths = SlideBatch.Expand(slideInputs);
        if (paths.FirstOrDefault(p => !File.Exists(p)) is { } missing)
            throw new HistoException($"{missing}: slide not found; give slide files or folders that exist");
        if (paths.Count == 0) throw new HistoException($"no slides in {string.Join(", ", slideInputs)}; give slide files or folders");
        var duplicate = paths.GroupBy(WholeSlide.SlideIdOf).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new HistoException($"two slides are called {duplicate.Key} ({string.Join(", ", duplicate)}); serve them separately");
        var ids = paths.Select(WholeSlide.SlideIdOf).ToHashSet(StringComparer.Ordinal);
        var overlays = ids.ToDictionary(id => id, _ => new List<SlideOverlay>());
        var labels = new Dictionary<string, string>();
        var predictions = new Dictionary<string, (string Predicted, Dictionary<string, double> P)>();
        var seen = new HashSet<string>(StringComparer.Ordinal); // output folders may nest (--outputs run run/heatmaps)
        foreach (var dir in outputDirs)
        {
            if (!Directory.Exists(dir)) throw new HistoException($"{dir}: output folder not found (--outputs)");
            string root = Path.GetFullPath(dir);
            foreach (var file in Files(root, root, 0))
            {
                if (!seen.Add(file)) continue;
                string name = Path.GetFileName(file);
                if (name.EndsWith(".csv", StringComparison.Ordinal)) { ReadCsv(file, ids, labels, predictions); continue; }
                var overlay = Classify(file, ids);
                if (overlay is null) continue;
                var (id, o) = overlay.Value;
                var list = overlays[id];
                string unique = o.Name;
                for (int k = 2; list.Any(x => x.Name == unique); k++) unique = $"{o.Name}-{k}";
                list.Add(o with { Name = unique });
            }
        }
        var slides = paths.Select(p =>
        {
            string id = WholeSlide.SlideIdOf(p);
            predictions.TryGetValue(id, out var pred);
            return new CatalogSlide(id, Path.GetFullPath(p), labels.GetValueOrDefault(id), pred.Predicted, pred.P, overlays[id]);
        }).ToList();
        log?.Invoke($"{slides.Count} slide(s), {slides.Sum(s => s.Overlays.Count)} overlay(s)");
        return new SlideCatalog(slides);
    }

    /// <summary>Files under an output folder, not hidden, skipping links (file or folder) whose target lies outside it.</summary>
    static IEnumerable<string> Files(string root, string dir, int depth)
    {
        foreach (var entry in new DirectoryInfo(dir).EnumerateFileSystemInfos())
        {
            if (entry.Name.StartsWith('.')) continue;
            if (entry.LinkTarget is not null)
            {
                var target = entry.ResolveLinkTarget(returnFinalTarget: true);
                if (target is null || !Inside(root, target.FullName)) continue;
            }
            if (entry is DirectoryInfo sub)
            {
                if (depth < MaxDepth) foreach (var f in Files(root, sub.FullName, depth + 1)) yield return f;
            }
            else yield return entry.FullName;
        }
    }

    static bool Inside(string root, string path)
    {
        string full = Path.GetFullPath(path);
        string prefix = root.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        return full == root || full.StartsWith(prefix, StringComparison.Ordinal);
    }

    /// <summary>Histo's outputs by their names: histo tissue, tile, heatmap and nuclei, then any GeoJSON named after a slide.</summary>
    static (string Id, SlideOverlay Overlay)? Classify(string file, HashSet<string> ids)
    {
        string name = Path.GetFileName(file);
        (string Suffix, string Name, string Kind)[] known =
        [
            (".tissue.geojson", "tissue", "tissue"),
            (".attention.geojson", "attention", "heatmap"),
            (".geojson", "nuclei", "cells"),
        ];
        if (name.EndsWith(".h5", StringComparison.Ordinal) && Path.GetFileName(Path.GetDirectoryName(file)) == "coords")
        {
            string id = name[..^3];
            return ids.Contains(id) ? (id, new SlideOverlay("tiles", "tiles", file)) : null;
        }
        foreach (var (suffix, overlayName, kind) in known)
            if (name.EndsWith(suffix, StringComparison.Ordinal) && ids.Contains(name[..^suffix.Length]))
                return (name[..^suffix.Length], new SlideOverlay(overlayName, kind, file));
        // Any other FeatureCollection whose name starts with a slide id and a dot (e.g. an export from QuPath).
        // Plain .json files only when they are one (a slide's own <id>.json description, say, is not).
        bool geo = name.EndsWith(".geojson", StringComparison.Ordinal);
        if (!geo && !name.EndsWith(".json", StringComparison.Ordinal)) return null;
        int dot = name.IndexOf('.');
        string slideId = dot > 0 ? name[..dot] : "";
        string rest = dot > 0 ? name[(dot + 1)..] : "";
        int extension = rest.LastIndexOf('.');
        if (!ids.Contains(slideId) || extension <= 0) return null;
        if (!geo && !IsFeatureCollection(file)) return null;
        return (slideId, new SlideOverlay(rest[..extension], "geojson", file));
    }

    static bool IsFeatureCollection(string file)
    {
        var head = new char[512];
        using var reader = new StreamReader(file);
        int n = reader.ReadBlock(head, 0, head.Length);
        return new string(head, 0, n).Contains("\"FeatureCollection\"", StringComparison.Ordinal);
    }

    /// <summary>CLAM label CSVs (slide_id, label) and <c>histo predict</c>'s predictions.csv (slide_id, predicted, p_*).</summary>
    static void ReadCsv(string file, HashSet<string> ids, Dictionary<string, string> labels,
        Dictionary<string, (string, Dictionary<string, double>)> predictions)
    {
        CsvTable table;
        try { table = CsvTable.Read(file, "CSV"); }
        catch (HistoException) { return; } // not every CSV in an output folder is a table of slides
        int slide = table.Column("slide_id"), label = table.Column("label"), predicted = table.Column("predicted");
        if (slide < 0) return;
        var probabilities = table.Header.Select((h, i) => (h, i)).Where(c => c.h.StartsWith("p_", StringComparison.Ordinal)).ToList();
        foreach (var (_, cells) in table.Rows)
        {
            if (slide >= cells.Length || !ids.Contains(cells[slide])) continue;
            if (label >= 0 && label < cells.Length && cells[label].Length > 0) labels[cells[slide]] = cells[label];
            if (predicted >= 0 && predicted < cells.Length)
                predictions[cells[slide]] = (cells[predicted], probabilities.Where(p => p.i < cells.Length).ToDictionary(p => p.h[2..],
                    p => double.TryParse(cells[p.i], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : double.NaN));
        }
    }
}
