using System.Collections.Concurrent;
using Histo.Imaging;
using Histo.IO;
using Histo.Pipeline;
using Histo.Slides;

namespace Histo.SelfSupervised;

/// <summary>
/// The unlabelled patches DINO trains on, read one at a time when a batch needs them (nothing is held in memory
/// but open slide handles), from a folder of images or straight from slides tiled by <c>histo tile</c>.
/// </summary>
public interface IPatchSource : IDisposable
{
    int Count { get; }
    /// <summary>Patch <paramref name="index"/> as an RGBA image; safe to call from several threads.</summary>
    RgbaImage Read(int index);
    string Describe();
}

/// <summary>
/// PNG, JPEG or TIFF images under a folder (e.g. patches/ of <c>histo tile --save-patches</c>). Hidden files and folders
/// (names starting with '.') are skipped: a killed <c>histo tile</c> leaves its staging folders
/// (.&lt;slide&gt;.&lt;host&gt;.&lt;pid&gt;.tmp) there, whose half-written patches repeat the finished ones.
/// </summary>
public sealed class ImageFolderPatches : IPatchSource
{
    static readonly string[] Extensions = [".png", ".jpg", ".jpeg", ".tif", ".tiff"];
    readonly IReadOnlyList<string> _files;
    readonly string _folder;

    public ImageFolderPatches(string folder)
    {
        if (!Directory.Exists(folder)) throw new HistoException($"{folder}: image folder not found");
        _folder = folder;
        _files = Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()) && !IsHidden(Path.GetRelativePath(folder, f)))
            .Order(StringComparer.Ordinal).ToList();
        if (_files.Count == 0) throw new HistoException($"{folder}: no PNG, JPEG or TIFF images; tile slides with 'histo tile "
            + $"--save-patches' first");
    }

    /// <summary>Whether a path relative to the folder has a file or folder name starting with '.'.</summary>
    static bool IsHidden(string relativePath) =>
        relativePath.Split(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar).Any(part => part.StartsWith('.'));

    public ImageFolderPatches(IReadOnlyList<string> files, string folder = "")
    {
        _files = files;
        _folder = folder;
    }

    public int Count => _files.Count;
    public RgbaImage Read(int index) => RgbaImage.Load(_files[index]);
    public string Describe() => $"{_files.Count} images in {_folder}";
    public void Dispose() { }
}

/// <summary>
/// Every tissue patch of a set of slides, at the magnification and size they were tiled at (coords/&lt;slide_id&gt;.h5
/// of <c>histo tile</c>), read from the slide with OpenSlide when needed. Slides without coordinates are skipped and
/// reported in <see cref="Skipped"/>.
/// </summary>
public sealed class SlidePatches : IPatchSource
{
    readonly List<(WholeSlide Slide, PatchCoordinates Coords)> _slides = [];
    readonly int[] _starts;
    readonly int _count;

    public IReadOnlyList<string> Skipped { get; }

    public SlidePatches(IReadOnlyList<string> slideFiles, string coordsDir)
    {
        var skipped = new List<string>();
        try
        {
            foreach (var file in slideFiles)
            {
                string id = WholeSlide.SlideIdOf(file), coordsPath = EmbeddingJob.CoordsPath(coordsDir, id);
                if (!File.Exists(coordsPath)) { skipped.Add($"{file}: no {coordsPath}; run 'histo tile' on it first"); continue; }
                var coords = PatchCoordinates.Read(coordsPath);
                if (coords.Count == 0) { skipped.Add($"{file}: no tissue patches in {coordsPath}"); continue; }
                _slides.Add((WholeSlide.Open(file), coords));
            }
        }
        catch
        {
            Dispose();
            throw;
        }
        Skipped = skipped;
        if (_slides.Count == 0) // --coords names a folder without these slides' tiles: the command line to fix (exit 2)
            throw new HistoException($"{coordsDir}: none of the {slideFiles.Count} slides has tissue patches; run 'histo tile SLIDES "
                + $"-o {coordsDir}' first"
                + (skipped.Count > 0 ? $" ({skipped[0]})" : ""));
        _starts = new int[_slides.Count];
        for (int i = 0; i < _slides.Count; i++) { _starts[i] = _count; _count += _slides[i].Coords.Count; }
    }

    public int Count => _count;

    public RgbaImage Read(int index)
    {
        int s = Array.BinarySearch(_starts, index);
        if (s < 0) s = ~s - 1;
        var (slide, coords) = _slides[s];
        int k = index - _starts[s];
        return Tiler.ReadPatch(slide, coords, coords.Coords[k, 0], coords.Coords[k, 1]);
    }

    public string Describe() => $"{_count} patches from {_slides.Count} slides";

    public void Dispose()
    {
        foreach (var (slide, _) in _slides) slide.Dispose();
        _slides.Clear();
    }
}
